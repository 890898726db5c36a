// TAP mode: a tap device in a fresh network namespace bridged to NetfrontIo, with the loopback
// backend behind the rings. A frame sent in the namespace leaves through the tap into the TX
// ring, comes back on the RX ring and is written to the tap, where the namespace receives it.
// Exits with 77 (skipped) where /dev/net/tun or `ip netns` is unavailable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/platform/fd.hpp"
#include "tests/support/netfront_loopback.hpp"
#include "xensim/netfront/tap.hpp"
#include "xensim/netfront/udp_frame.hpp"

using namespace netbackd;
using namespace netbackd::xensim;
using namespace netbackd::xensim::test;

namespace {

constexpr int kSkip = 77;                    // SKIP_RETURN_CODE, see skip_codes.cmake.in
constexpr std::uint16_t kEtherType = 0x88b5; // IEEE local experimental: nothing else sends it

void require_tap() {
    std::string why;
    if (!tap_supported(&why)) {
        std::fprintf(stderr, "SKIP: %s\n", why.c_str());
        std::exit(kSkip);
    }
}

struct Netns {
    std::string name = "nbnf" + std::to_string(::getpid());
    Netns() { ensure_netns(name); }
    ~Netns() { delete_netns(name); }
};

// A raw packet socket for `ethertype` on interface `ifname` inside `netns`.
platform::Fd packet_socket_in(const std::string& netns, const std::string& ifname,
                              std::uint16_t ethertype = kEtherType) {
    platform::Fd ns(::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(ns);
    platform::Fd sock;
    int err = 0;
    std::thread t([&] {
        if (::setns(ns.get(), CLONE_NEWNET) != 0) {
            err = errno;
            return;
        }
        sock.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ethertype)));
        if (!sock) {
            err = errno;
            return;
        }
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ethertype);
        sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
        if (sll.sll_ifindex == 0 || ::bind(sock.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
            err = errno != 0 ? errno : ENODEV;
    });
    t.join();
    INFO("packet socket errno " << err);
    REQUIRE(err == 0);
    return sock;
}

} // namespace

TEST_CASE("tap mode: a frame from the guest namespace goes out the TX ring and comes back in",
          "[xensim][netfront][tap]") {
    require_tap();
    Netns ns;
    World w;
    const GuestQueue q = w.make_queue();
    NetfrontIo io(w.memory, w.guest_events);
    io.attach(kBack, std::span(&q.spec, 1), BackendFeatures{true, true, true, true});
    Loopback back(w, q);

    const ring::MacAddr mac{0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0c};
    TapDevice tap = TapDevice::open("nftap0", ns.name, mac);
    TapBridge bridge(io, tap);
    platform::Fd sock = packet_socket_in(ns.name, "nftap0");

    // Addressed to the tap's own MAC: the namespace takes the echo as PACKET_HOST, so the test
    // also shows the MAC was set.
    std::vector<std::byte> frame(200);
    for (std::size_t i = 0; i < 6; ++i) {
        frame[i] = static_cast<std::byte>(mac[i]);
        frame[6 + i] = static_cast<std::byte>(0x02 + i);
    }
    frame[12] = std::byte{kEtherType >> 8};
    frame[13] = std::byte{kEtherType & 0xff};
    for (std::size_t i = 14; i < frame.size(); ++i) frame[i] = static_cast<std::byte>(i * 13);
    REQUIRE(::send(sock.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));

    bool echoed = false;
    std::vector<std::byte> got(2048);
    // A bound against hanging (10 s), not a speed expectation.
    for (int i = 0; i < 1000 && !echoed; ++i) {
        bridge.tap_to_ring();
        back.step();
        bridge.ring_to_tap();
        pollfd p{sock.get(), POLLIN, 0};
        ::poll(&p, 1, 10);
        for (;;) {
            sockaddr_ll from{};
            socklen_t len = sizeof from;
            const ssize_t n =
                ::recvfrom(sock.get(), got.data(), got.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0) break;
            if (from.sll_pkttype == PACKET_OUTGOING) continue; // our own send, seen on the way out
            CHECK(from.sll_pkttype == PACKET_HOST);
            REQUIRE(static_cast<std::size_t>(n) == frame.size());
            CHECK(std::equal(frame.begin(), frame.end(), got.begin()));
            echoed = true;
        }
    }
    CHECK(echoed);
    CHECK(bridge.counters().from_tap >= 1);
    CHECK(bridge.counters().to_tap >= 1);
    CHECK(back.echoed >= 1);
    CHECK(bridge.counters().dropped_tx == 0);
}

TEST_CASE("tap mode: a received frame with a blank checksum reaches the namespace completed",
          "[xensim][netfront][tap]") {
    require_tap();
    Netns ns;
    World w;
    const GuestQueue q = w.make_queue();
    NetfrontIo io(w.memory, w.guest_events);
    io.attach(kBack, std::span(&q.spec, 1), BackendFeatures{true, true, true, true});
    Loopback back(w, q);
    const ring::MacAddr mac{0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0d};
    TapDevice tap = TapDevice::open("nftap1", ns.name, mac);
    TapBridge bridge(io, tap);
    platform::Fd sock = packet_socket_in(ns.name, "nftap1", 0x0800);

    UdpFrameSpec s;
    s.dst = mac;
    s.src = {0x02, 0, 0, 0, 0, 0x07};
    s.size = 300;
    s.dst_port = 40404;
    std::vector<std::byte> full(s.size), partial(s.size);
    REQUIRE(build_udp_frame(s, full));
    s.partial_csum = true;
    REQUIRE(build_udp_frame(s, partial));
    // Straight onto the TX ring, as a guest with checksum offload sends it; the loopback
    // hands it back still blank, flagged csum_blank.
    REQUIRE(io.send(0, partial, TxMeta{{true, true}, std::nullopt, 0}) == SendResult::queued);
    io.flush(0);
    REQUIRE(back.step() == 1);
    CHECK(bridge.ring_to_tap() == 1);
    CHECK(bridge.counters().csum_filled == 1);

    std::vector<std::byte> got(2048);
    bool seen = false;
    // A bound against hanging (10 s), not a speed expectation.
    for (int i = 0; i < 1000 && !seen; ++i) {
        pollfd p{sock.get(), POLLIN, 0};
        ::poll(&p, 1, 10);
        sockaddr_ll from{};
        socklen_t len = sizeof from;
        const ssize_t n =
            ::recvfrom(sock.get(), got.data(), got.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n != static_cast<ssize_t>(full.size()) || from.sll_pkttype == PACKET_OUTGOING) continue;
        if (std::to_integer<unsigned>(got[36]) << 8 != (40404u & 0xff00u))
            continue; // something else the namespace sent or got
        seen = true;
        CHECK(std::equal(full.begin(), full.end(), got.begin()));
    }
    CHECK(seen);
}

TEST_CASE("tap mode: with two queues, one flow stays on one queue and flows spread",
          "[xensim][netfront][tap]") {
    require_tap();
    Netns ns;
    World w;
    const GuestQueue q0 = w.make_queue();
    const GuestQueue q1 = w.make_queue();
    const IoQueueSpec specs[] = {q0.spec, q1.spec};
    NetfrontIo io(w.memory, w.guest_events);
    io.attach(kBack, specs, BackendFeatures{true, true, true, true});
    Loopback b0(w, q0);
    Loopback b1(w, q1);
    const ring::MacAddr mac{0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0e};
    TapDevice tap = TapDevice::open("nftap2", ns.name, mac);
    TapBridge bridge(io, tap);
    platform::Fd sock = packet_socket_in(ns.name, "nftap2", 0x0800);

    // A size nothing else the namespace sends has (IPv6 router solicitations, MLD reports).
    constexpr std::size_t kSize = 333;
    auto ours = [&](const Loopback& b) {
        return static_cast<std::size_t>(std::count(b.seen_lengths.begin(), b.seen_lengths.end(), kSize));
    };
    auto send_flow = [&](std::uint16_t port) {
        UdpFrameSpec s;
        s.src = mac;
        s.dst = {0x02, 0, 0, 0, 0, 0x08};
        s.size = kSize;
        s.src_port = port;
        std::vector<std::byte> f(s.size);
        REQUIRE(build_udp_frame(s, f));
        REQUIRE(::send(sock.get(), f.data(), f.size(), 0) == static_cast<ssize_t>(f.size()));
    };
    // Drains the tap into the rings until `want` of our frames went through (a bound, not a
    // speed check).
    auto pump = [&](std::size_t want) {
        for (int i = 0; i < 1000 && ours(b0) + ours(b1) < want; ++i) {
            bridge.tap_to_ring();
            b0.step();
            b1.step();
            pollfd p{tap.fd(), POLLIN, 0};
            ::poll(&p, 1, 10);
        }
    };

    for (int i = 0; i < 8; ++i) send_flow(7000);
    pump(8);
    REQUIRE(ours(b0) + ours(b1) == 8);
    CHECK(((ours(b0) == 8 && ours(b1) == 0) || (ours(b0) == 0 && ours(b1) == 8)));

    for (std::uint16_t port = 7001; port < 7033; ++port) send_flow(port);
    pump(40);
    REQUIRE(ours(b0) + ours(b1) == 40);
    CHECK(ours(b0) > 0);
    CHECK(ours(b1) > 0);
}
