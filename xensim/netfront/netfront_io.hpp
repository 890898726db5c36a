// The data half of the simulated xen-netfront: packet I/O over the rings the control half
// (Netfront) negotiated, for one or more queues.
//
// Buffers are pages of the guest's own memory, granted once when the rings are attached and
// kept for the life of the connection: TX pages read-only, RX pages writable. Linux grants per
// packet; keeping the grants makes the per-packet path free of hypervisor calls, which is what
// the benchmark modes need, and the backend cannot tell the difference (it copies either way).
//
// RX buffers are bound to ring slots (request id == slot index), as Linux netfront binds its
// skbs: every response slot, data or extra, frees the buffer posted at that position, so the
// ring can be kept full with no bookkeeping beyond the indices.
//
// Nothing on the per-packet path allocates or makes a syscall; notifications are sent per
// batch (flush) and only when the backend's req_event asks for them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backend/platform/platform.hpp"
#include "ring/front_packets.hpp"
#include "ring/front_ring.hpp"
#include "xensim/hypervisor/guest_memory.hpp"
#include "xensim/netfront/netfront.hpp"

namespace netbackd::xensim {

struct IoQueueSpec {
    Gfn tx_gfn = 0;
    Gfn rx_gfn = 0;
    platform::EvtchnPort tx_port = 0;
    platform::EvtchnPort rx_port = 0;
};

struct TxMeta {
    ring::TxFrontFlags flags{};
    std::optional<ring::TxGso> gso; // only with the matching feature-gso-* from the backend
    std::uint16_t offset = 0;       // where the frame starts in its first buffer page
};

enum class SendResult : std::uint8_t {
    queued,  // in the ring, not yet pushed (flush)
    busy,    // no ring slots or buffers now; reap TX responses and retry
    refused, // never fits: too big for one page without sg, too many slots, bad size/offset,
             // or an offload the backend did not offer
};

// One received packet: views into the RX buffer pages, valid until the next refill() of its
// queue (which hands the pages back to the backend).
struct RxFrame {
    std::array<std::span<const std::byte>, ring::kMaxTxSegments> frag_storage;
    std::uint8_t nr_frags = 0;
    std::uint32_t length = 0;
    std::uint16_t flags = 0; // NETRXF_* of the first response
    std::optional<netif_extra_info_t> gso;
    std::optional<netif_extra_info_t> hash; // XEN_NETIF_EXTRA_TYPE_HASH (control-ring hashing)
    bool error = false;                     // a negative status or a response pointing outside its page
    bool headroom_error = false;            // a buffer not starting at the xdp-headroom asked for

    std::span<const std::span<const std::byte>> frags() const noexcept {
        return {frag_storage.data(), nr_frags};
    }
};

struct IoCounters {
    std::uint64_t tx_pkts = 0; // answered NETIF_RSP_OKAY
    std::uint64_t tx_bytes = 0;
    std::uint64_t tx_errors = 0; // answered with an error status
    std::uint64_t rx_pkts = 0;
    std::uint64_t rx_bytes = 0;
    std::uint64_t rx_errors = 0;
    std::uint64_t tx_notifies = 0; // event channel kicks we sent
    std::uint64_t rx_notifies = 0;
    std::uint64_t events = 0;             // kicks we received
    std::uint64_t protocol_errors = 0;    // bad response ids, malformed RX, rsp_prod overflow
    std::uint64_t rx_headroom_errors = 0; // frames not placed after the xdp-headroom asked for
    std::uint64_t mcast_ok = 0;           // multicast-control requests answered OKAY
    std::uint64_t mcast_errors = 0;       // ... answered with an error (the backend's filter is full)
};

class NetfrontIo {
public:
    static constexpr std::size_t kBuffers = 256; // per ring and queue: one per slot

    NetfrontIo(GuestMemory& memory, platform::Events& events);
    ~NetfrontIo();
    NetfrontIo(const NetfrontIo&) = delete;
    NetfrontIo& operator=(const NetfrontIo&) = delete;

    // Attaches to rings a Netfront set up; grants the buffer pools to `backend`. Replaces any
    // earlier attachment. Throws PlatformError when guest memory runs out.
    void attach(platform::DomId backend, std::span<const IoQueueSpec> queues,
                const BackendFeatures& features);
    // Lets go of rings and buffers; buffers the backend still holds are retried later.
    void detach() noexcept;
    bool attached() const noexcept { return !queues_.empty(); }

    // Follows a Netfront through (re)connects: attaches when it has fresh rings, detaches
    // (from inside its release) before it frees them. Call after its process_watches().
    // Returns true when the attachment changed.
    bool follow(Netfront& nf);

    unsigned queue_count() const noexcept { return static_cast<unsigned>(queues_.size()); }

    // Staging grants: asks the backend, through nf's control ring (NetfrontOptions::staging), to
    // map queue q's pre-granted buffers for good: TX pages read-only, then RX pages writable, as
    // many as GET_GREF_MAPPING_SIZE allows, one ADD_GREF_MAPPING each. Returns the pages mapped.
    std::size_t stage_buffers(Netfront& nf, unsigned q);
    // The grant refs of queue q's TX or RX buffer pool.
    std::vector<platform::GrantRef> buffer_refs(unsigned q, bool tx) const;
    const BackendFeatures& features() const noexcept { return features_; }

    // Copies one frame into free TX buffers and queues it (single slot when it fits the first
    // page from meta.offset, else one slot per page with NETTXF_more_data, if sg was offered).
    SendResult send(unsigned q, std::span<const std::byte> frame, const TxMeta& meta = {}) noexcept;
    // Writes `frame` once into the start of every TX buffer page; send_stamped() then queues
    // copies of it with no per-packet copy. Frames up to one page only.
    bool stamp_tx_buffers(std::span<const std::byte> frame) noexcept;
    SendResult send_stamped(unsigned q, std::uint16_t length, ring::TxFrontFlags flags = {}) noexcept;
    // Queues a multicast-control request (netif.h): one dummy slot with an MCAST_ADD or
    // MCAST_DEL extra. The backend answers OKAY (tx_pkts) or ERROR (tx_errors: filter full).
    SendResult send_mcast(unsigned q, bool add, const ring::MacAddr& mac) noexcept;
    // The xdp-headroom this guest asked for: every received buffer must start there, or the
    // frame counts in IoCounters::rx_headroom_errors.
    void set_rx_headroom(std::uint16_t headroom) noexcept { rx_headroom_ = headroom; }
    // Publishes queued TX requests; kicks the backend only when its req_event asks.
    bool flush(unsigned q) noexcept;
    // Frees the buffers of answered TX requests; returns the responses seen.
    std::size_t reap_tx(unsigned q) noexcept;
    // TX packets of one page that fit now.
    std::size_t tx_room(unsigned q) const noexcept;

    // Next received packet, if any (see RxFrame for how long its views stay valid).
    bool next_rx(unsigned q, RxFrame& out) noexcept;
    // Posts every free RX buffer (keeps the ring full, as xennet_alloc_rx_buffers does).
    // Returns whether the backend was kicked.
    bool refill(unsigned q) noexcept;
    // RX requests outstanding in the ring.
    std::size_t rx_posted(unsigned q) const noexcept;

    // Acknowledges fired event channels (unmasking them); returns how many fired.
    std::size_t drain_events() noexcept;
    // The final checks before sleeping: sets rsp_event on both rings, then re-reads. True when
    // work arrived meanwhile (do not sleep).
    bool prepare_to_sleep(unsigned q) noexcept;
    int event_fd() const noexcept { return events_.fd(); }

    const IoCounters& counters() const noexcept { return counters_; }
    std::size_t leaked_grants() const noexcept { return stuck_.size(); }

private:
    struct Buffer {
        Gfn gfn = 0;
        platform::GrantRef ref = 0;
        std::byte* data = nullptr;
        std::uint32_t head_length = 0; // a packet's first slot: its length; 0 otherwise
        bool mcast = false;            // a multicast-control request's slot
        bool in_flight = false;
    };
    struct Queue {
        std::optional<ring::FrontRing<ring::TxRing>> tx;
        std::optional<ring::FrontRing<ring::RxRing>> rx;
        platform::EvtchnPort tx_port = 0;
        platform::EvtchnPort rx_port = 0;
        std::array<Buffer, kBuffers> txb{};
        std::array<Buffer, kBuffers> rxb{};
        std::array<std::uint16_t, kBuffers> tx_free{};
        std::size_t nr_tx_free = 0;
    };

    void make_pool(std::array<Buffer, kBuffers>& pool, bool readonly);
    void release_pool(std::array<Buffer, kBuffers>& pool) noexcept;
    void retry_stuck() noexcept;
    std::uint16_t take_tx_buffer(Queue& q) noexcept;

    GuestMemory& memory_;
    platform::Events& events_;
    platform::DomId backend_ = 0;
    BackendFeatures features_;
    std::vector<Queue> queues_;
    std::vector<std::pair<platform::GrantRef, Gfn>> stuck_;
    std::optional<std::uint16_t> rx_headroom_;
    IoCounters counters_;
    Netfront* followed_ = nullptr;
    std::uint64_t seen_generation_ = 0;
};

} // namespace netbackd::xensim
