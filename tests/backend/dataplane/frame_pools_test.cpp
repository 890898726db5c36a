// Frame pools added as vifs attach (issue 19): a worker allocates from the newest, falls back to
// older ones when it runs dry, and keeps stalled guests from holding more than half of the first
// pool, which the uplink receives into.
#include <catch2/catch.hpp>
#include <rte_mbuf.h>

#include "backend/dataplane/frame_pools.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;

namespace {

constexpr platform::DomId kA = 11;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);

// Sends `n` frames from the guest to the wire and returns the pools their buffers came from.
std::vector<const rte_mempool*> send_and_see_pools(Rig& rig, Netfront& nf, int n) {
    for (int i = 0; i < n; ++i) nf.send(frame(kOutside, kMacA, 200, 4, static_cast<std::uint8_t>(i)));
    nf.push_tx();
    rig.poll(2);
    std::vector<const rte_mempool*> from;
    for (const auto& m : rig.up.sent_mbufs()) from.push_back(m.get()->pool);
    return from;
}

} // namespace

TEST_CASE("a worker takes up a pool added before an attach and falls back to older ones when it "
          "runs dry",
          "[dataplane][pools]") {
    Rig rig({kA});
    pmd::Mempool more = pmd::test::small_pool(511);
    REQUIRE(rig.pools.add(more));
    CHECK(rig.pools.count() == 2);
    CHECK(rig.pools.capacity() == rig.pool.capacity() + more.capacity());

    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);
    const auto newest = send_and_see_pools(rig, a, 8);
    REQUIRE(newest.size() == 8);
    for (const auto* p : newest) CHECK(p == more.get());

    // The newest pool emptied by someone else: the next burst comes from the first one.
    std::vector<pmd::MbufPtr> held;
    while (rte_mbuf* m = rte_pktmbuf_alloc(more.get())) held.emplace_back(m);
    const auto older = send_and_see_pools(rig, a, 8);
    REQUIRE(older.size() == 8);
    for (const auto* p : older) CHECK(p == rig.pool.get());
    CHECK(snapshot(va.counters()).dropped(Drop::tx_no_mbuf) == 0);
}

TEST_CASE("a pool of another data room is refused", "[dataplane][pools]") {
    pmd::test::dataplane_eal();
    pmd::Mempool frames = pmd::test::small_pool(511);
    pmd::Mempool indirect = pmd::test::small_pool(255, 0);
    pmd::Mempool jumbo = pmd::test::small_pool(255, pmd::data_room_for_mtu(9000));
    FramePools pools(frames, indirect);
    CHECK_THROWS_AS(pools.add(jumbo), std::invalid_argument);
    CHECK(pools.count() == 1);
}

TEST_CASE("stalled guests' backlogs hold at most half of the pool the uplink receives into",
          "[dataplane][pools][backlog]") {
    // A first pool of 255 buffers and a larger second one: the vif's share of all of them
    // (512, its configured cap) would let wire frames take every buffer of the first.
    Rig rig({kA}, pmd::Offloads::none(), WorkerConfig{}, 1500, 255);
    pmd::Mempool more = pmd::test::small_pool(4095);
    REQUIRE(rig.pools.add(more));
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);

    constexpr int kSent = 200;
    for (int i = 0; i < kSent; ++i)
        rig.up.inject(frame(kMacA, kOutside, 64, 4, static_cast<std::uint8_t>(i)));
    rig.poll(kSent / 32 + 2); // a burst of the uplink per round
    const std::uint64_t held = 255 / 2;
    CHECK(snapshot(va.counters()).dropped(Drop::rx_over_backlog) == kSent - held);
    a.post_rx_buffers(256);
    rig.poll(kSent / 32 + 2);
    CHECK(a.receive().size() == held);
    // Delivered frames give their room back.
    for (int i = 0; i < 10; ++i) rig.up.inject(frame(kMacA, kOutside, 64, 4, static_cast<std::uint8_t>(i)));
    rig.poll(2);
    CHECK(a.receive().size() == 10);
}
