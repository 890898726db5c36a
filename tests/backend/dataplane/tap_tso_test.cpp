// A guest's TSO frame through a real net_tap uplink: found in the real-Xen lab, where TCP from a
// Linux netfront to the driver domain's tap ran 20x slower than through xen-netback. net_tap
// (22.11) refuses a TSO frame whose segments, Ethernet header included, exceed the MTU, and with
// it the rest of the burst; the guest's MSS (MTU - 40 - options) fits only without that header,
// so every GSO frame was dropped and TCP crawled on retransmits. The segments must now fit.
// Runs in a private network namespace; exits 77 (skipped) where that or /dev/net/tun is missing.
#include <cstdint>
#include <cstring>
#include <vector>

#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "backend/dataplane/dataplane.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/backend/dataplane/tap_netns.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

TEST_CASE("a guest's TSO frame with a full-size MSS leaves a net_tap uplink as MTU-sized segments",
          "[dataplane][tso][tap]") {
    enter_private_netns();
    constexpr platform::DomId kA = 52;
    const MacAddr kMacA = mac(0xa);
    const MacAddr kOutside = mac(0x99);
    World world({kA});
    pmd::Mempool pool = pmd::test::small_pool(4095);
    pmd::Mempool indirect = pmd::test::small_pool(2047, 0);
    const std::string ifname = pmd::test::unique_name("nbtso");
    pmd::VirtualDevice dev(pmd::test::unique_name("net_tap_t"), "iface=" + ifname);
    pmd::Port port(dev.name(), {}, pool);
    REQUIRE(port.hardware().tx_tcp_tso); // else this is netbackd's software GSO, tested elsewhere
    REQUIRE(port.mtu() == 1500);
    prepare_kernel_side(ifname);
    const platform::Fd sock = kernel_socket(ifname, true);
    PortUplink up(port);

    DataPlaneConfig c;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    DataPlane dp(c, world.worker_grants(), world.events);
    Netfront a(world, kA);
    dp.attach(a.handle(kMacA));

    // Two frames of 20000 payload bytes with the MSS a 1500-byte guest uses without TCP options:
    // 1460, so 1514-byte segments; each frame is 14 of them.
    constexpr std::size_t kPayload = 20000;
    constexpr std::uint16_t kMss = 1460;
    constexpr std::size_t kFrames = 2;
    ring::TxExtras x;
    x.gso = ring::TxGso{kMss, XEN_NETIF_GSO_TYPE_TCPV4, 0};
    for (std::size_t i = 0; i < kFrames; ++i)
        a.send(frame(kOutside, kMacA, kPayload), ring::TxFrontFlags{.csum_blank = true}, x);
    a.push_tx();

    std::size_t segments = 0;
    std::size_t payload = 0;
    std::size_t too_long = 0;
    std::vector<std::byte> buf(65536);
    const auto src = kMacA.bytes();
    const bool all = within(3000ms, [&] {
        for (;;) {
            const ssize_t n = ::recv(sock.get(), buf.data(), buf.size(), MSG_DONTWAIT);
            if (n <= 0) break;
            // Only the test's frames: TCP over IPv4 from the guest's MAC.
            if (n < 54 || std::memcmp(buf.data() + 6, src.data(), 6) != 0) continue;
            ++segments;
            payload += static_cast<std::size_t>(n) - 54;
            if (n > 1514) ++too_long;
        }
        return payload >= kFrames * kPayload;
    });
    INFO("segments " << segments << ", payload " << payload << ", uplink_tx_dropped "
                     << dp.worker_counters().uplink_tx_dropped.get() << ", tx_packets "
                     << dp.stats({kA, 0})->tx_packets);
    CHECK(all);
    CHECK(segments == kFrames * ((kPayload + kMss - 1) / kMss));
    CHECK(payload == kFrames * kPayload);
    CHECK(too_long == 0);
    CHECK(dp.worker_counters().uplink_tx_dropped.get() == 0);
}
