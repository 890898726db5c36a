// An idle data plane with a net_tap uplink sleeps on the port's RX interrupt, not on a timer:
// over an idle second it hardly wakes, and a wire frame after a long idle still arrives.
// Runs in a private network namespace; exits 77 (skipped) where that or /dev/net/tun is missing.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "backend/dataplane/dataplane.hpp"
#include "backend/platform/fd.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/backend/dataplane/tap_netns.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 51;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);

std::uint64_t total_sleeps(const DataPlane& dp) {
    std::uint64_t n = 0;
    for (std::size_t w = 0; w < dp.worker_count(); ++w) n += dp.worker_counters(w).sleeps.get();
    return n;
}

} // namespace

TEST_CASE("an idle worker sleeps on the tap's RX interrupt and wakes for a wire frame", "[dataplane][intr]") {
    enter_private_netns();
    World world({kA}); // starts EAL after forking the hypervisor, inside the new namespace
    pmd::Mempool pool = pmd::test::small_pool(4095);
    pmd::Mempool indirect = pmd::test::small_pool(2047, 0);
    const std::string ifname = pmd::test::unique_name("nbintr");
    pmd::VirtualDevice dev(pmd::test::unique_name("net_tap_i"), "iface=" + ifname);
    pmd::Port port(dev.name(), {}, pool);
    REQUIRE(port.has_rx_interrupts()); // net_tap has them in DPDK 22.11
    prepare_kernel_side(ifname);
    PortUplink up(port);

    DataPlaneConfig c;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    c.worker.idle_before_sleep = 100us;
    DataPlane dp(c, world.worker_grants(), world.events);
    REQUIRE(dp.worker_sleeps_on_rx_interrupts(0));

    Netfront a(world, kA);
    dp.attach(a.handle(kMacA));
    a.post_rx_buffers(16);

    // Settle, then an idle second: a timer-polled worker would wake 100+ times (8 ms at most).
    REQUIRE(within(2000ms, [&] { return total_sleeps(dp) >= 1; }));
    std::this_thread::sleep_for(200ms);
    const auto s0 = total_sleeps(dp);
    const auto t0 = dp.worker_counters().wakeups_timer.get();
    std::this_thread::sleep_for(1000ms);
    const auto idle_wakeups = total_sleeps(dp) - s0;
    INFO("wake-ups over an idle second: " << idle_wakeups);
    CHECK(idle_wakeups <= 5);
    CHECK(dp.worker_counters().wakeups_timer.get() == t0);

    // After that long idle, a frame from the wire still reaches the guest (1 s is a generous
    // bound for a deadlock guard, not a latency figure).
    const auto intr0 = dp.worker_counters().wakeups_rx_intr.get();
    const Bytes f = with_checksums(frame(kMacA, kOutside, 200));
    const platform::Fd sock = kernel_socket(ifname);
    REQUIRE(::send(sock.get(), f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()));
    std::vector<Netfront::Received> got;
    REQUIRE(within(1000ms, [&] {
        for (auto& r : a.receive()) got.push_back(std::move(r));
        return !got.empty();
    }));
    CHECK(got[0].frame == f);
    CHECK(dp.worker_counters().wakeups_rx_intr.get() > intr0);
    CHECK(dp.detach({kA, 0}) != nullptr);
}

TEST_CASE("a port without RX interrupts falls back to the poll timer", "[dataplane][intr]") {
    World world({kA});
    pmd::Mempool pool = pmd::test::small_pool(4095);
    pmd::Mempool indirect = pmd::test::small_pool(2047, 0);
    // net_ring has no RX interrupts: the probe must configure it without and say so.
    pmd::VirtualDevice dev(pmd::test::unique_name("net_ring_i"), "");
    pmd::Port port(dev.name(), {}, pool);
    CHECK_FALSE(port.has_rx_interrupts());
    PortUplink up(port);
    DataPlaneConfig c;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    c.worker.idle_before_sleep = 100us;
    DataPlane dp(c, world.worker_grants(), world.events);
    CHECK_FALSE(dp.worker_sleeps_on_rx_interrupts(0));
    REQUIRE(within(2000ms, [&] { return dp.worker_counters().wakeups_timer.get() >= 3; }));
    // The port still works: a guest's frame goes out and loops back in.
    Netfront a(world, kA);
    dp.attach(a.handle(kMacA));
    a.post_rx_buffers(8);
    const Bytes f = with_checksums(frame(MacAddr{0xffff'ffff'ffffULL}, kOutside, 100));
    // From the wire side: net_ring loops what it sends, so a frame sent on the port comes back.
    auto m = pmd::mbuf_from_bytes(pool.get(), f);
    REQUIRE(m);
    rte_mbuf* raw = m.release();
    REQUIRE(port.tx_burst(1 % port.tx_queues(), std::span(&raw, 1)) == 1);
    std::vector<Netfront::Received> got;
    REQUIRE(within(1000ms, [&] {
        for (auto& r : a.receive()) got.push_back(std::move(r));
        return !got.empty();
    }));
    CHECK(got[0].frame == f);
    CHECK(dp.detach({kA, 0}) != nullptr);
}

TEST_CASE("two workers on a net_tap with one RX queue each: both sleep on interrupts, the wire reaches both",
          "[dataplane][intr][workers]") {
    enter_private_netns();
    constexpr platform::DomId kB = 52;
    const MacAddr kMacB = mac(0xb);
    World world({kA, kB});
    pmd::Mempool pool = pmd::test::small_pool(8191);
    pmd::Mempool indirect = pmd::test::small_pool(2047, 0);
    const std::string ifname = pmd::test::unique_name("nbintr");
    pmd::VirtualDevice dev(pmd::test::unique_name("net_tap_i"), "iface=" + ifname);
    pmd::PortConfig pc;
    pc.rx_queues = 2;
    pc.tx_queues = 2;
    pc.rx_desc = 512;
    pc.tx_desc = 512;
    pmd::Port port(dev.name(), pc, pool);
    REQUIRE(port.has_rx_interrupts());
    prepare_kernel_side(ifname);
    PortUplink up(port);

    DataPlaneConfig c;
    c.workers = 2;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    c.worker.idle_before_sleep = 100us;
    DataPlane dp(c, world.worker_grants(), world.events);
    CHECK(dp.worker_sleeps_on_rx_interrupts(0));
    CHECK(dp.worker_sleeps_on_rx_interrupts(1));

    Netfront a(world, kA);
    Netfront b(world, kB);
    dp.attach(a.handle(kMacA));
    dp.attach(b.handle(kMacB));
    REQUIRE(dp.worker_of({kA, 0}) != dp.worker_of({kB, 0}));
    a.post_rx_buffers(64);
    b.post_rx_buffers(64);
    REQUIRE(within(2000ms, [&] { return total_sleeps(dp) >= 2; }));

    // Many flows (source addresses), so the kernel spreads them over both tap queues.
    const platform::Fd sock = kernel_socket(ifname);
    constexpr int kPerVif = 32;
    for (int i = 0; i < kPerVif; ++i) {
        for (const MacAddr dst : {kMacA, kMacB}) {
            Bytes f = frame(dst, kOutside, 100);
            f[29] = static_cast<std::byte>(i + 1); // last byte of the IPv4 source address
            f = with_checksums(std::move(f));
            REQUIRE(::send(sock.get(), f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()));
        }
    }
    std::size_t at_a = 0;
    std::size_t at_b = 0;
    REQUIRE(within(2000ms, [&] {
        at_a += a.receive().size();
        at_b += b.receive().size();
        return at_a == kPerVif && at_b == kPerVif;
    }));
    const auto rx0 = dp.worker_counters(0).uplink_rx.get();
    const auto rx1 = dp.worker_counters(1).uplink_rx.get();
    INFO("wire RX: worker0 " << rx0 << ", worker1 " << rx1);
    CHECK(rx0 + rx1 == 2 * kPerVif);
    CHECK(rx0 > 0);
    CHECK(rx1 > 0);
    // Whatever queue a frame came in on, frames for the other worker's vif crossed over.
    CHECK(dp.worker_counters(0).cross_out.get() + dp.worker_counters(1).cross_out.get() > 0);
    CHECK(dp.detach({kA, 0}) != nullptr);
    CHECK(dp.detach({kB, 0}) != nullptr);
}
