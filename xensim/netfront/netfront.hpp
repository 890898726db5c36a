// A simulated Linux xen-netfront: the control half (talk_to_netback and the xenbus state
// dance), run by a process acting as a guest domain on xensim. It allocates and grants its
// ring pages from the domain's own memory and allocates its event channels unbound for the
// backend, exactly as the guest kernel would; the data plane issue adds packet I/O on top of
// queues().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/platform/platform.hpp"
#include "ring/ctrl_ring.hpp"
#include "ring/front_ring.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

namespace netbackd::xensim {

enum class NetfrontFlavour {
    linux_guest, // Linux xen-netfront: flat keys for one queue, every feature flag
    unikraft,    // writes multi-queue-num-queues unconditionally, omits rx-notify and sg
    windows,     // Windows PV drivers: a Closing/Closed cycle before the first connect
    closes,      // a driver that gives up at probe: straight to Closed, never connects
};

// A Windows-style frontend's receive-side scaling: a control ring (when the backend offers
// feature-ctrl-ring), its own Toeplitz key and mapping table, sent by configure_hash().
struct HashOptions {
    std::vector<std::uint8_t> key;      // at most ring::kHashKeyMax octets
    std::uint32_t flags = 0;            // XEN_NETIF_CTRL_HASH_TYPE_*
    std::vector<std::uint32_t> mapping; // queue per table entry; empty: hash % queues
};

struct NetfrontOptions {
    platform::DomId self = 0;
    std::uint32_t devid = 0;
    unsigned queues = 1;              // wanted; the backend's multi-queue-max-queues caps it
    bool split_event_channels = true; // used when the backend offers them
    NetfrontFlavour flavour = NetfrontFlavour::linux_guest;
    std::optional<HashOptions> hash; // set: provide a control ring
    // request-multicast-control=1 when the backend offers feature-multicast-control; the
    // subscriptions themselves go as MCAST_ADD extras on the TX ring (NetfrontIo::send_mcast).
    bool multicast_control = false;
    // xdp-headroom written when the backend offers feature-xdp-headroom (not checked here: tests
    // ask for absurd values on purpose); NetfrontIo::set_rx_headroom() checks received frames.
    std::optional<std::uint32_t> xdp_headroom;
    // Provide a control ring for staging grants (netif.h ADD_GREF_MAPPING): the data half's
    // pre-granted buffers can then be mapped by the backend once (NetfrontIo::stage_buffers).
    bool staging = false;
};

struct FrontQueue {
    Gfn tx_gfn = 0;
    Gfn rx_gfn = 0;
    platform::GrantRef tx_ref = 0;
    platform::GrantRef rx_ref = 0;
    platform::EvtchnPort tx_port = 0;
    platform::EvtchnPort rx_port = 0; // == tx_port without split channels
};

// What the backend offered, read at talk_to_netback time; the data half decides per frame
// with it (netfront's xennet_fix_features).
struct BackendFeatures {
    bool sg = false;
    bool gso_tcpv4 = false;
    bool gso_tcpv6 = false;
    bool csum_offload = true;               // unless the backend wrote feature-no-csum-offload=1
    bool multicast_control = false;         // feature-multicast-control
    bool dynamic_multicast_control = false; // feature-dynamic-multicast-control
    bool xdp_headroom = false;              // feature-xdp-headroom
};

class Netfront {
public:
    // `store` must be the guest's own connection (its domain socket); `events` and `memory`
    // run in the same domain.
    Netfront(platform::Store& store, platform::Events& events, GuestMemory& memory, NetfrontOptions options);
    ~Netfront();
    Netfront(const Netfront&) = delete;
    Netfront& operator=(const Netfront&) = delete;

    // Reads the frontend dir the toolstack wrote and starts watching the backend's state.
    void start();
    // Reacts to the backend; call when the store's watch fd is readable (or just often).
    void process_watches();
    // process_watches() until `state() == want` or the timeout passes.
    bool wait_for_state(int want, std::chrono::milliseconds timeout);

    // Guest shutdown of the device: Closing, then Closed once the backend follows.
    void close();
    // Guest reboot or migration: back to Initialising, a fresh handshake follows.
    void reinitialise();

    // The frontend's own state as last written (xenbus numbering).
    int state() const noexcept { return state_; }
    const std::vector<FrontQueue>& queues() const noexcept { return queues_; }
    const std::string& frontend_path() const noexcept { return fe_; }
    const std::string& backend_path() const noexcept { return be_; }
    platform::DomId backend_id() const noexcept { return backend_; }
    const BackendFeatures& backend_features() const noexcept { return features_; }
    // Bumped whenever the rings change (made or released): the data half re-attaches on change.
    std::uint64_t generation() const noexcept { return generation_; }
    // Runs just before the ring pages are released, so the data half lets go of them first.
    void set_release_hook(std::function<void()> hook) { release_hook_ = std::move(hook); }
    // Grants still mapped by the backend after release (should stay 0).
    std::size_t leaked_grants() const noexcept { return stuck_refs_.size(); }

    // ---- the control ring (options.hash set and the backend offered feature-ctrl-ring)
    bool has_ctrl_ring() const noexcept { return ctrl_.has_value(); }
    // One request, answered within `timeout` (nullopt: no answer, or no control ring).
    std::optional<xen_netif_ctrl_response>
    ctrl_call(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0, std::uint32_t d2 = 0,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // What the Windows drivers send once connected: Toeplitz, the flags, the key, the mapping
    // size and the table, each from a page granted for the call. True when all succeeded.
    bool configure_hash(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Writes request-multicast-control now (after connect it takes effect only with the
    // backend's feature-dynamic-multicast-control, as netif.h says).
    void set_multicast_control(bool on);
    // Raw access for hostile tests: the front end of the control ring and its channel.
    ring::FrontRing<ring::CtrlRing>* ctrl_front() noexcept { return ctrl_ ? &ctrl_->front : nullptr; }
    platform::EvtchnPort ctrl_port() const noexcept { return ctrl_ ? ctrl_->port : 0; }
    // Grants one page holding `bytes` to the backend (writable: it may write back, as the
    // gref-mapping lists' statuses); undone by release_rings().
    platform::GrantRef grant_bytes(std::span<const std::byte> bytes, bool writable = false);
    // The page behind a grant_bytes() ref, as the backend left it (empty: not one of ours).
    std::span<const std::byte> granted_page(platform::GrantRef ref) const;

    // Staging grants: one ADD_GREF_MAPPING or DEL_GREF_MAPPING (type) of `entries` on queue q,
    // through a list page granted writable. The answer (nullopt: none), and in `statuses` each
    // entry's status as the backend wrote it back.
    std::optional<xen_netif_ctrl_response>
    gref_call(std::uint16_t type, unsigned q, std::span<const xen_netif_gref> entries,
              std::vector<std::uint16_t>* statuses = nullptr,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));

private:
    std::optional<std::string> read_backend(const std::string& key);
    void on_backend_state(std::optional<int> bs);
    void talk_to_netback();
    void set_state(int s);
    void release_rings();
    void fatal(int err, const std::string& message);

    platform::Store& store_;
    platform::Events& events_;
    GuestMemory& memory_;
    NetfrontOptions opt_;
    std::string fe_;
    std::string be_;
    platform::DomId backend_ = 0;
    std::string token_;
    int state_ = 1;
    std::vector<FrontQueue> queues_;
    std::vector<std::pair<platform::GrantRef, Gfn>> stuck_refs_;
    bool watching_ = false;
    bool close_cycle_done_ = false; // windows flavour
    BackendFeatures features_;
    std::uint64_t generation_ = 0;
    std::function<void()> release_hook_;
    struct Ctrl {
        Gfn gfn = 0;
        platform::GrantRef ref = 0;
        platform::EvtchnPort port = 0;
        ring::FrontRing<ring::CtrlRing> front;
    };
    std::optional<Ctrl> ctrl_;
    std::vector<std::pair<platform::GrantRef, Gfn>> data_pages_; // keys and tables granted
    std::uint16_t next_ctrl_id_ = 0;
};

} // namespace netbackd::xensim
