// Several workers: vifs spread over them, frames crossing between workers through the mesh
// (guest to guest, floods, wire to guest), every worker sending on its own uplink TX queue, and
// vifs detached and attached while the others carry traffic.
#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <rte_mempool.h>

#include "backend/dataplane/dataplane.hpp"
#include "pmd/checksum.hpp"
#include "tests/support/dataplane_rig.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"

using netbackd::testing::eventually;

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 41;
constexpr platform::DomId kB = 42;
constexpr platform::DomId kC = 43;
const MacAddr kMacA = mac(0xa);
const MacAddr kMacB = mac(0xb);
const MacAddr kMacC = mac(0xc);
const MacAddr kOutside = mac(0x99);
const MacAddr kBroadcast{0xffff'ffff'ffffULL};

// Collects frames arriving at a guest until `n` have come (or the guard runs out).
std::vector<Bytes> receive_n(Netfront& nf, std::size_t n) {
    std::vector<Bytes> got;
    eventually([&] {
        for (auto& r : nf.receive()) got.push_back(std::move(r.frame));
        return got.size() >= n;
    });
    return got;
}

std::vector<Bytes> uplink_n(RingUplink& up, std::size_t n) {
    std::vector<Bytes> got;
    eventually([&] {
        for (auto& f : up.sent()) got.push_back(std::move(f));
        return got.size() >= n;
    });
    return got;
}

// Which threads copied through one Grants object; the lock is the test's, not the fast path's.
class ThreadRecordingGrants final : public platform::Grants {
public:
    explicit ThreadRecordingGrants(std::unique_ptr<platform::Grants> inner) : inner_(std::move(inner)) {}
    std::unique_ptr<platform::GrantMapping> map(platform::DomId d, platform::GrantRef r, bool w) override {
        return inner_->map(d, r, w);
    }
    void copy(std::span<platform::CopySegment> segs) override {
        {
            std::lock_guard lock(mutex_);
            threads_.insert(std::this_thread::get_id());
            ++calls_;
        }
        inner_->copy(segs);
    }
    std::set<std::thread::id> threads() const {
        std::lock_guard lock(mutex_);
        return threads_;
    }
    std::size_t calls() const {
        std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    std::unique_ptr<platform::Grants> inner_;
    mutable std::mutex mutex_;
    std::set<std::thread::id> threads_;
    std::size_t calls_ = 0;
};

} // namespace

TEST_CASE("two workers: each copies through a Grants of its own, never shared between threads",
          "[dataplane][workers][threads]") {
    // Issue 14 item 1: one Grants shared by every worker raced on the gntdev wrapper's scratch.
    std::vector<ThreadRecordingGrants*> opened;
    DataPlaneRig rig({kA, kB}, 2, [&](World& w) -> platform::GrantsFactory {
        return [&opened, back = w.back]() -> std::unique_ptr<platform::Grants> {
            auto g = std::make_unique<ThreadRecordingGrants>(std::make_unique<xensim::SimGrants>(back));
            opened.push_back(g.get());
            return g;
        };
    });
    REQUIRE(opened.size() == 2);
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    rig.dp->attach(a.handle(kMacA));
    rig.dp->attach(b.handle(kMacB));
    REQUIRE(rig.dp->worker_of({kA, 0}) != rig.dp->worker_of({kB, 0}));
    a.post_rx_buffers(64);
    b.post_rx_buffers(64);
    std::vector<Bytes> ab, ba;
    for (std::uint8_t i = 0; i < 16; ++i) {
        ab.push_back(with_checksums(frame(kMacB, kMacA, 300u + i, 4, i)));
        ba.push_back(with_checksums(frame(kMacA, kMacB, 700u + i, 6, i)));
        a.send(ab.back());
        b.send(ba.back());
    }
    a.push_tx();
    b.push_tx();
    CHECK(receive_n(b, ab.size()) == ab);
    CHECK(receive_n(a, ba.size()) == ba);
    // Both workers copied (TX from their guest, RX to it), each through its own object only.
    std::set<std::thread::id> all;
    for (const ThreadRecordingGrants* g : opened) {
        CHECK(g->calls() > 0);
        CHECK(g->threads().size() == 1);
        for (auto t : g->threads()) all.insert(t);
    }
    CHECK(all.size() == 2);
    CHECK(all.count(std::this_thread::get_id()) == 0);
    rig.dp.reset();
}

TEST_CASE("two workers: vifs spread, guest-to-guest, floods and the wire cross between them",
          "[dataplane][workers]") {
    DataPlaneRig rig({kA, kB, kC});
    REQUIRE(rig.dp->worker_count() == 2);
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    Netfront c(rig.world, kC);
    rig.dp->attach(a.handle(kMacA));
    rig.dp->attach(b.handle(kMacB));
    rig.dp->attach(c.handle(kMacC));
    // Least loaded: a on 0, b on 1, c on 0.
    REQUIRE(rig.dp->worker_of({kA, 0}) == 0u);
    REQUIRE(rig.dp->worker_of({kB, 0}) == 1u);
    REQUIRE(rig.dp->worker_of({kC, 0}) == 0u);
    CHECK(rig.dp->worker_load(0) == 2);
    CHECK(rig.dp->worker_load(1) == 1);
    for (Netfront* nf : {&a, &b, &c}) nf->post_rx_buffers(64);

    SECTION("guest to guest across workers, both ways, byte-exact and off the wire") {
        std::vector<Bytes> ab, ba;
        for (std::uint8_t i = 0; i < 20; ++i) {
            ab.push_back(with_checksums(frame(kMacB, kMacA, 100u + i * 50u, 4, i)));
            ba.push_back(with_checksums(frame(kMacA, kMacB, 1400u - i * 30u, 6, i)));
            a.send(ab.back());
            b.send(ba.back());
        }
        a.push_tx();
        b.push_tx();
        CHECK(receive_n(b, ab.size()) == ab);
        CHECK(receive_n(a, ba.size()) == ba);
        CHECK(rig.up.sent().empty());
        const auto w0 = rig.dp->worker_counters(0).cross_out.get();
        const auto w1 = rig.dp->worker_counters(1).cross_out.get();
        CHECK(w0 == 20);
        CHECK(w1 == 20);
        CHECK(rig.dp->worker_counters(0).cross_in.get() == 20);
        CHECK(rig.dp->worker_counters(1).cross_in.get() == 20);
    }

    SECTION("a broadcast reaches every other guest on both workers and the wire, from either side") {
        const Bytes from_a = with_checksums(frame(kBroadcast, kMacA, 300, 4, 1));
        const Bytes from_b = with_checksums(frame(kBroadcast, kMacB, 200, 4, 2));
        a.send(from_a);
        a.push_tx();
        b.send(from_b);
        b.push_tx();
        const auto at_a = receive_n(a, 1);
        const auto at_b = receive_n(b, 1);
        const auto at_c = receive_n(c, 2);
        REQUIRE(at_a.size() == 1);
        REQUIRE(at_b.size() == 1);
        REQUIRE(at_c.size() == 2);
        CHECK(at_a[0] == from_b);
        CHECK(at_b[0] == from_a);
        CHECK(std::count(at_c.begin(), at_c.end(), from_a) == 1);
        CHECK(std::count(at_c.begin(), at_c.end(), from_b) == 1);
        const auto wire = uplink_n(rig.up, 2);
        REQUIRE(wire.size() == 2);
        CHECK(std::count(wire.begin(), wire.end(), from_a) == 1);
        CHECK(std::count(wire.begin(), wire.end(), from_b) == 1);
    }

    SECTION("the wire reaches vifs on both workers, and both workers send to the wire") {
        std::vector<Bytes> to_a, to_b;
        for (std::uint8_t i = 0; i < 10; ++i) {
            to_a.push_back(with_checksums(frame(kMacA, kOutside, 500, 4, i)));
            to_b.push_back(with_checksums(frame(kMacB, kOutside, 600, 4, i)));
            rig.up.inject(to_a.back());
            rig.up.inject(to_b.back());
        }
        // Worker 0 polls the wire (one RX queue); b's frames cross to worker 1.
        CHECK(receive_n(a, 10) == to_a);
        CHECK(receive_n(b, 10) == to_b);
        const Bytes out_a = with_checksums(frame(kOutside, kMacA, 700, 4, 7));
        const Bytes out_b = with_checksums(frame(kOutside, kMacB, 800, 4, 8));
        a.send(out_a);
        a.push_tx();
        b.send(out_b);
        b.push_tx();
        const auto wire = uplink_n(rig.up, 2);
        REQUIRE(wire.size() == 2);
        CHECK(std::count(wire.begin(), wire.end(), out_a) == 1);
        CHECK(std::count(wire.begin(), wire.end(), out_b) == 1);
        CHECK(rig.dp->worker_counters(0).uplink_tx.get() == 1);
        CHECK(rig.dp->worker_counters(1).uplink_tx.get() == 1);
        CHECK(rig.dp->worker_counters(1).uplink_rx.get() == 0);
        CHECK(rig.dp->worker_counters(0).uplink_rx.get() == 20);
    }

    for (auto id : {kA, kB, kC}) CHECK(rig.dp->detach({id, 0}) != nullptr);
}

TEST_CASE("two workers: vifs detach and attach while traffic flows, nothing leaks", "[dataplane][workers]") {
    DataPlaneRig rig({kA, kB, kC});
    const unsigned pool_size = rte_mempool_avail_count(rig.pool.get());
    {
        Netfront a(rig.world, kA);
        Netfront b(rig.world, kB);
        rig.dp->attach(a.handle(kMacA));
        rig.dp->attach(b.handle(kMacB));
        REQUIRE(rig.dp->worker_of({kA, 0}) != rig.dp->worker_of({kB, 0}));
        b.post_rx_buffers(128);

        constexpr std::uint32_t kRounds = 12;
        std::size_t unicast_ab = 0;
        std::size_t from_a_at_b = 0;
        std::size_t at_b = 0;
        auto drain_b = [&] {
            const auto got = b.receive();
            for (const auto& r : got) {
                ++at_b;
                if (r.frame[0] != std::byte{0xff} &&
                    MacAddr::from_bytes(std::span<const std::uint8_t, 6>(
                        reinterpret_cast<const std::uint8_t*>(r.frame.data()) + 6, 6)) == kMacA)
                    ++from_a_at_b;
            }
            if (!got.empty()) b.post_rx_buffers(got.size());
        };
        for (std::uint32_t round = 0; round < kRounds; ++round) {
            // A fresh netfront of C each round (devid = round), on whichever worker is lighter.
            Netfront c(rig.world, kC, round);
            rig.dp->attach(c.handle(kMacC));
            c.post_rx_buffers(16);
            // In flight while C goes: unicast a->b across workers, floods that reach C, and
            // wire frames to C.
            for (int i = 0; i < 8; ++i, ++unicast_ab)
                a.send(frame(kMacB, kMacA, 200, 4, static_cast<std::uint8_t>(i)));
            a.send(frame(kBroadcast, kMacA, 100));
            a.push_tx();
            for (int i = 0; i < 8; ++i) rig.up.inject(frame(kMacC, kOutside, 300));
            rig.up.inject(frame(kBroadcast, kOutside, 120));
            auto back = rig.dp->detach({kC, round});
            REQUIRE(back != nullptr);
            drain_b();
            (void)rig.up.discard();
        }
        // b heard every unicast and both broadcasts of every round, whatever C did meanwhile.
        const std::size_t expected = unicast_ab + 2 * kRounds;
        REQUIRE(eventually([&] {
            drain_b();
            return at_b >= expected;
        }));
        CHECK(at_b == expected);
        CHECK(from_a_at_b == unicast_ab);
        CHECK(rig.dp->stats({kB, 0})->dropped(Drop::rx_no_buffer) == 0);
        std::vector<netif_tx_response_t> rs;
        REQUIRE(eventually([&] {
            for (auto r : a.tx_responses()) rs.push_back(r);
            return rs.size() == 9 * kRounds;
        }));
        CHECK(std::all_of(rs.begin(), rs.end(), [](auto r) { return r.status == NETIF_RSP_OKAY; }));
        CHECK(rig.dp->detach({kA, 0}) != nullptr);
        CHECK(rig.dp->detach({kB, 0}) != nullptr);
    }
    rig.dp.reset();
    (void)rig.up.discard();
    // Every buffer is back: nothing stayed in a backlog, a ring between workers, or a detached
    // vif's queue.
    CHECK(rte_mempool_avail_count(rig.pool.get()) == pool_size);
}

// Issue 19: the control thread adds a pool as a vif attaches (as netbackd run's growing pools
// do); both workers take it up with the attach and allocate from it, the older one as fallback.
TEST_CASE("two workers: a pool added at an attach is taken up by both workers",
          "[dataplane][workers][pools]") {
    World world({kA, kB}, 64u << 20);
    pmd::Mempool pool = pmd::test::small_pool(4095);
    pmd::Mempool indirect = pmd::test::small_pool(1023, 0);
    pmd::Mempool more = pmd::test::small_pool(4095);
    RingUplink up(pool);
    FramePools pools(pool, indirect);
    std::vector<std::size_t> asked;
    DataPlaneConfig c;
    c.workers = 2;
    c.pools = &pools;
    c.grow_pools = [&](std::size_t vifs) {
        asked.push_back(vifs);
        if (vifs == 2) REQUIRE(pools.add(more));
    };
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    c.worker.idle_before_sleep = 100us;
    auto dp = std::make_unique<DataPlane>(c, world.worker_grants(), world.events);
    Netfront a(world, kA);
    Netfront b(world, kB);
    dp->attach(a.handle(kMacA));
    dp->attach(b.handle(kMacB));
    CHECK(asked == std::vector<std::size_t>{1, 2});
    REQUIRE(dp->worker_of({kA, 0}) != dp->worker_of({kB, 0}));
    a.post_rx_buffers(64);
    b.post_rx_buffers(64);

    for (std::uint8_t i = 0; i < 10; ++i) {
        a.send(with_checksums(frame(kOutside, kMacA, 300, 4, i)));
        b.send(with_checksums(frame(kOutside, kMacB, 300, 4, i)));
    }
    a.push_tx();
    b.push_tx();
    std::vector<pmd::MbufPtr> wire;
    eventually([&] {
        for (auto& m : up.sent_mbufs()) wire.push_back(std::move(m));
        return wire.size() >= 20;
    });
    REQUIRE(wire.size() == 20);
    for (const auto& m : wire) CHECK(m->pool == more.get());
    const Bytes ab = with_checksums(frame(kMacB, kMacA, 400, 4, 1));
    a.send(ab);
    a.push_tx();
    CHECK(receive_n(b, 1) == std::vector<Bytes>{ab});
    wire.clear();
    for (auto id : {kA, kB}) CHECK(dp->detach({id, 0}) != nullptr);
    dp.reset();
}

// A restarted netbackd re-adopts its vifs one by one (issue 19, found by the simulated restart
// test): a sender's frames queued while no netbackd ran were dropped as unknown unicast when
// the sender was served before its receiver was back in the switch. A held data plane takes
// the vifs and serves none until release().
TEST_CASE("two workers: started held, they take vifs but move no frame until released",
          "[dataplane][workers][threads]") {
    DataPlaneRig rig({kA, kB}, 2, {}, {}, true);
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    rig.dp->attach(a.handle(kMacA));
    std::vector<Bytes> ab;
    for (std::uint8_t i = 0; i < 16; ++i) {
        ab.push_back(with_checksums(frame(kMacB, kMacA, 300u + i, 4, i)));
        a.send(ab.back());
    }
    a.push_tx();
    // Held: nothing is answered, however long we look (on a loaded host this only looks less).
    std::this_thread::sleep_for(50ms);
    CHECK(a.tx_responses().empty());
    rig.dp->attach(b.handle(kMacB));
    b.post_rx_buffers(64);
    rig.dp->release();
    // B was attached after A's frames were queued: all of them reach it, in order.
    CHECK(receive_n(b, ab.size()) == ab);
    CHECK(a.tx_responses().size() == ab.size());
    rig.dp.reset();
}
