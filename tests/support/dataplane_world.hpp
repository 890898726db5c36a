// Test world for the fast path: a simulated hypervisor, a driver domain whose grants and events
// the worker uses (grant copies counted), netfronts acting as guests in the same process, and an
// uplink over two rte_rings so the test sees exactly what went to the wire and injects what
// comes from it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include <rte_ring.h>

#include "backend/control/data_plane_sink.hpp"
#include "backend/dataplane/mac.hpp"
#include "backend/dataplane/uplink.hpp"
#include "backend/platform/checked_grants.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/mempool.hpp"
#include "ring/front_packets.hpp"
#include "ring/front_ring.hpp"
#include "tests/support/sim_hypervisor.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

namespace netbackd::dataplane::test {

using Bytes = std::vector<std::byte>;
inline constexpr platform::DomId kBackDom = 1;

// Counts copy calls and segments, and can make chosen grant refs fail (as a revoked grant would).
// Held to the seam's one-thread-per-Grants contract like the simulated platform's own Grants.
class CountingGrants final : public platform::Grants {
public:
    explicit CountingGrants(platform::Grants& inner) : inner_(inner) {}
    std::unique_ptr<platform::GrantMapping> map(platform::DomId d, platform::GrantRef r, bool w) override {
        return inner_.map(d, r, w);
    }
    void copy(std::span<platform::CopySegment> segs) override;

    std::uint64_t calls = 0;
    std::uint64_t segments = 0;
    std::vector<platform::GrantRef> poisoned; // source refs whose segments fail

private:
    platform::Grants& inner_;
    platform::CopyOwnerCheck check_{"CountingGrants::copy"};
};

class RingUplink final : public Uplink {
public:
    RingUplink(const pmd::Mempool& pool, pmd::Offloads hw = pmd::Offloads::none(), std::uint16_t mtu = 1500);
    ~RingUplink() override;
    std::uint16_t rx_burst(std::uint16_t queue, std::span<rte_mbuf*> out) noexcept override;
    std::uint16_t tx_burst(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept override;
    const pmd::Offloads& hardware() const noexcept override { return hw_; }
    std::uint16_t mtu() const noexcept override { return mtu_; }
    // Multi-producer rte_rings: any number of workers may each have "their" TX queue.
    std::uint16_t tx_queues() const noexcept override { return 8; }

    void inject(std::span<const std::byte> frame);
    void inject_mbuf(rte_mbuf* m); // takes it
    // Frees what was sent; returns how many.
    std::size_t discard();
    // Everything sent so far, taken.
    std::vector<Bytes> sent();
    std::vector<pmd::MbufPtr> sent_mbufs();

private:
    const pmd::Mempool& pool_;
    pmd::Offloads hw_;
    std::uint16_t mtu_;
    rte_ring* to_backend_;
    rte_ring* from_backend_;
    // Orders the workers' enqueues into from_backend_ among themselves, in a way that
    // ThreadSanitizer can see (rte_ring's multi-producer hand-off is a relaxed wait). Test
    // harness only: a real port has one TX queue per worker.
    std::mutex tx_lock_;
};

struct World {
    // start_eal: start the shared test EAL (false when the test brings its own).
    explicit World(std::vector<platform::DomId> guests, std::uint64_t guest_bytes = 32u << 20,
                   bool start_eal = true);
    xensim::testing::HvHost host;
    std::shared_ptr<xensim::HvClient> admin;
    std::shared_ptr<xensim::HvClient> back;
    xensim::SimGrants sim_grants;
    CountingGrants grants;
    xensim::SimEvents events;
    // What a DataPlane opens for each worker: its own simulated Grants, held to the contract.
    platform::GrantsFactory worker_grants();
};

// One guest's netfront with one queue.
class Netfront {
public:
    Netfront(World& world, platform::DomId domid, std::uint32_t devid = 0);

    // The handle the control plane would hand over (rings mapped, port bound by the backend).
    std::unique_ptr<control::VifHandle> handle(MacAddr mac,
                                               control::NegotiatedFeatures features = default_features(),
                                               std::optional<control::Rate> rate = std::nullopt);
    static control::NegotiatedFeatures default_features();
    // This netfront's rings as one queue of a handle (several netfronts of one domain make a
    // multi-queue vif).
    control::QueueRings queue_rings();

    // Queues one frame (not pushed): slots of at most one page each, the first starting at
    // first_offset. Returns the first slot's id.
    std::uint16_t send(std::span<const std::byte> frame, ring::TxFrontFlags flags = {},
                       ring::TxExtras extras = {}, std::uint16_t first_offset = 0,
                       std::optional<platform::GrantRef> bad_ref = std::nullopt);
    // Publishes requests; notifies when the backend asked. Returns whether it notified.
    bool push_tx();
    // All TX responses so far.
    std::vector<netif_tx_response_t> tx_responses();

    void post_rx_buffers(std::size_t n);
    struct Received {
        Bytes frame;
        std::uint16_t flags;
        std::optional<netif_extra_info_t> gso;
        bool error;
    };
    std::vector<Received> receive();

    // A fresh page holding `content` (at offset 0), granted to the backend; for benchmarks that
    // reuse one buffer for every request.
    platform::GrantRef granted_page(std::span<const std::byte> content, bool readonly);

    // Backend -> this guest notifications seen (and acknowledged).
    std::size_t drain_notifications();
    // Kicks the backend without publishing anything (after writing the shared ring directly).
    void notify();

    platform::DomId domid() const { return domid_; }
    ring::FrontRing<ring::TxRing>& tx() { return *tx_; }
    ring::FrontRing<ring::RxRing>& rx() { return *rx_; }
    std::span<std::byte> tx_page() { return mem_.page(tx_gfn_); }

private:
    World& world_;
    platform::DomId domid_;
    std::uint32_t devid_;
    std::shared_ptr<xensim::HvClient> client_;
    xensim::GuestMemory mem_;
    xensim::SimEvents events_;
    xensim::Gfn tx_gfn_, rx_gfn_;
    platform::GrantRef tx_ref_, rx_ref_;
    platform::EvtchnPort port_;
    std::unique_ptr<ring::FrontRing<ring::TxRing>> tx_;
    std::unique_ptr<ring::FrontRing<ring::RxRing>> rx_;
    std::uint16_t next_tx_id_ = 0;
    std::uint16_t next_rx_id_ = 0;
    std::map<std::uint16_t, xensim::Gfn> rx_pages_;
};

MacAddr mac(std::uint8_t last);
// A TCP/IPv4 (or other per spec) frame with the given MACs, checksums left zero.
Bytes frame(MacAddr dst, MacAddr src, std::size_t payload, int ip_version = 4, std::uint8_t seed = 1);
// The same frame with valid checksums.
Bytes with_checksums(Bytes f);

} // namespace netbackd::dataplane::test
