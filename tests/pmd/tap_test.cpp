// net_tap in a network namespace of this test's own, so that its kernel interface is invisible
// to the host and to tests running in parallel. Skipped (exit code 77) where /dev/net/tun or
// unshare(CLONE_NEWNET) is not available.
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/platform/fd.hpp"
#include "pmd/bytes.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/frames.hpp"

using namespace netbackd::pmd;
using namespace netbackd::pmd::test;
using netbackd::pmd::test::FrameSpec;

namespace {

constexpr int kSkip = 77;                    // SKIP_RETURN_CODE in tests/pmd/CMakeLists.txt
constexpr std::uint16_t kEtherType = 0x88b5; // IEEE local experimental: nothing else sends it
constexpr int kWaitMs = 10000;               // a bound for events, not a speed expectation

// Enters a fresh network namespace before EAL starts its threads (namespaces are per thread and
// inherited), or skips the test.
void require_private_netns() {
    static const bool done = [] {
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            std::fprintf(stderr, "SKIP: /dev/net/tun is not available\n");
            std::exit(kSkip);
        }
        if (::unshare(CLONE_NEWNET) != 0) {
            std::fprintf(stderr, "SKIP: cannot create a network namespace: %s\n", std::strerror(errno));
            std::exit(kSkip);
        }
        return true;
    }();
    (void)done;
    dataplane_eal();
}

void set_interface_up(const std::string& ifname, bool up) {
    netbackd::platform::Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
    REQUIRE(::ioctl(s.get(), SIOCGIFFLAGS, &ifr) == 0);
    if (up) {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    } else {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    }
    REQUIRE(::ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0);
}

bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, kWaitMs) == 1;
}

// Waits as a control thread would: on the LSC eventfd if there is one, with a poll as backstop.
std::optional<LinkStatus> wait_link_change(Port& port) {
    for (int waited = 0; waited < kWaitMs; waited += 10) {
        if (port.has_link_interrupt()) {
            pollfd p{port.link_event_fd(), POLLIN, 0};
            ::poll(&p, 1, 10);
        } else {
            ::usleep(10000);
        }
        if (auto change = port.link_change()) {
            return change;
        }
    }
    return std::nullopt;
}

// A packet socket on the tap's kernel side that sees every frame arriving there.
netbackd::platform::Fd kernel_side_socket(const std::string& ifname, std::uint16_t protocol) {
    const int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    REQUIRE(ifindex > 0);
    netbackd::platform::Fd sock(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(protocol)));
    REQUIRE(sock);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(protocol);
    addr.sll_ifindex = ifindex;
    REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    return sock;
}

// Next frame on the socket from the MAC build_frame() uses as source, or empty on timeout.
std::vector<std::byte> receive_test_frame(int sock) {
    const auto ours = netbackd::pmd::test::build_frame({});
    for (;;) {
        if (!wait_readable(sock)) {
            return {};
        }
        std::vector<std::byte> f(70000);
        const auto n = ::recv(sock, f.data(), f.size(), 0);
        if (n < 14) {
            continue;
        }
        f.resize(static_cast<std::size_t>(n));
        if (std::equal(f.begin() + 6, f.begin() + 12, ours.begin() + 6)) {
            return f;
        }
    }
}

struct Tap {
    Tap()
        : ifname(unique_name("nbtap")),
          dev(unique_name("net_tap_t"), "iface=" + ifname),
          pool(small_pool()),
          port(dev.name(), {}, pool) {}
    std::string ifname;
    VirtualDevice dev;
    Mempool pool;
    Port port;
};

std::vector<std::byte> test_frame(std::size_t payload, std::uint8_t seed) {
    std::vector<std::byte> f(14 + payload);
    for (std::size_t i = 0; i < 6; ++i) {
        f[i] = std::byte{0xff};
        f[6 + i] = static_cast<std::byte>(i == 0 ? 0x02 : seed);
    }
    f[12] = static_cast<std::byte>(kEtherType >> 8);
    f[13] = static_cast<std::byte>(kEtherType & 0xff);
    for (std::size_t i = 0; i < payload; ++i) {
        f[14 + i] = static_cast<std::byte>((i + seed) & 0xff);
    }
    return f;
}

} // namespace

TEST_CASE("net_tap offers checksum and TSO offload and has link interrupts", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    CHECK(tap.port.driver() == "net_tap");
    CHECK(tap.port.hardware().tx_l4_cksum());
    CHECK(tap.port.hardware().tx_tcp_tso);
    CHECK(tap.port.hardware().tx_multi_segs);
    CHECK(tap.port.hardware().rx_l4_cksum());
    // It declares LSC interrupts (though it never raises the event: see Port::link_change).
    CHECK(tap.port.has_link_interrupt());
    CHECK(tap.port.link().up);
}

TEST_CASE("net_tap link state follows its kernel interface", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    const auto first = tap.port.link_change();
    REQUIRE(first);
    CHECK(first->up);
    CHECK_FALSE(tap.port.link_change());

    set_interface_up(tap.ifname, false);
    const auto down = wait_link_change(tap.port);
    REQUIRE(down);
    CHECK_FALSE(down->up);
    CHECK(std::string(carrier_value(*down)) == "0");
    CHECK_FALSE(tap.port.link_change());

    set_interface_up(tap.ifname, true);
    const auto up = wait_link_change(tap.port);
    REQUIRE(up);
    CHECK(up->up);
    CHECK(std::string(carrier_value(*up)) == "1");
}

TEST_CASE("frames cross between net_tap and its kernel interface intact", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    const auto sock = kernel_side_socket(tap.ifname, kEtherType);

    // DPDK -> kernel
    const auto out = test_frame(700, 5);
    auto m = mbuf_from_bytes(tap.pool.get(), out);
    REQUIRE(m);
    std::array<rte_mbuf*, 1> burst{m.release()};
    REQUIRE(tap.port.tx_burst(0, burst) == 1);
    REQUIRE(wait_readable(sock.get()));
    std::vector<std::byte> got(2048);
    const auto n = ::recv(sock.get(), got.data(), got.size(), 0);
    REQUIRE(n > 0);
    got.resize(static_cast<std::size_t>(n));
    CHECK(got == out);

    // kernel -> DPDK; the kernel sends other frames of its own (IPv6 neighbour discovery), so
    // look for ours among them.
    const auto in = test_frame(300, 9);
    REQUIRE(::send(sock.get(), in.data(), in.size(), 0) == static_cast<ssize_t>(in.size()));
    bool found = false;
    for (int polls = 0; !found && polls < kWaitMs; ++polls) {
        std::array<rte_mbuf*, 32> rx{};
        const auto count = tap.port.rx_burst(0, rx);
        for (std::size_t i = 0; i < count; ++i) {
            MbufPtr owned(rx[i]);
            found = found || mbuf_to_bytes(owned.get()) == in;
        }
        if (count == 0) {
            ::usleep(1000);
        }
    }
    CHECK(found);
}

TEST_CASE("checksums left to net_tap's offload arrive valid at the kernel", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    REQUIRE(tap.port.hardware().tx_l4_cksum());
    const auto sock = kernel_side_socket(tap.ifname, ETH_P_ALL);
    for (int version : {4, 6}) {
        for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}}) {
            INFO("IPv" << version << " protocol " << int{proto});
            FrameSpec spec;
            spec.ip_version = version;
            spec.proto = proto;
            spec.payload = 999;
            auto m = mbuf_from_bytes(tap.pool.get(), build_frame(spec));
            REQUIRE(m);
            REQUIRE(prepare_tx_checksums(m.get(), tap.port.hardware()));
            CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) != 0); // the hardware path was taken
            std::array<rte_mbuf*, 1> out{m.release()};
            REQUIRE(tap.port.tx_burst(0, out) == 1);
            const auto got = receive_test_frame(sock.get());
            REQUIRE(!got.empty());
            CHECK(verify_checksums(got) == ChecksumVerdict::valid);
        }
    }
}

TEST_CASE("TSO left to net_tap arrives at the kernel as valid MTU-sized segments", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    REQUIRE(tap.port.hardware().tx_tcp_tso);
    const auto sock = kernel_side_socket(tap.ifname, ETH_P_ALL);
    FrameSpec spec;
    spec.payload = 20000;
    auto m = mbuf_from_bytes(tap.pool.get(), build_frame(spec));
    REQUIRE(m);
    // 1500 - 14: see prepare_tx_tso about net_tap's view of the MTU.
    REQUIRE(prepare_tx_tso(m.get(), 1460, 1500 - 14));
    CHECK(m->tso_segsz == 1446);
    std::array<rte_mbuf*, 1> out{m.release()};
    REQUIRE(tap.port.tx_burst(0, out) == 1);

    std::vector<std::byte> payload;
    std::uint32_t next_seq = spec.seq;
    while (payload.size() < spec.payload) {
        const auto seg = receive_test_frame(sock.get());
        REQUIRE(!seg.empty());
        CHECK(seg.size() <= 1500);
        CHECK(verify_checksums(seg) == ChecksumVerdict::valid);
        CHECK(load_be32(seg, 14 + 20 + 4) == next_seq);
        payload.insert(payload.end(), seg.begin() + 54, seg.end());
        next_seq = spec.seq + static_cast<std::uint32_t>(payload.size());
    }
    std::vector<std::byte> expected(spec.payload);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        expected[i] = netbackd::pmd::test::payload_byte(i, spec.payload_seed);
    }
    CHECK(payload == expected);
}

TEST_CASE("net_tap's RX checksum flags decide data_validated", "[dataplane][tap]") {
    require_private_netns();
    Tap tap;
    REQUIRE(tap.port.hardware().rx_l4_cksum());
    const auto sock = kernel_side_socket(tap.ifname, ETH_P_ALL);
    for (const bool corrupt : {false, true}) {
        INFO("corrupt: " << corrupt);
        FrameSpec spec;
        spec.payload = 500;
        spec.payload_seed = corrupt ? 1 : 2;
        auto frame = build_frame(spec);
        REQUIRE(fill_checksums(frame));
        if (corrupt) {
            frame.back() ^= std::byte{0x10};
        }
        REQUIRE(::send(sock.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));
        MbufPtr got;
        for (int polls = 0; !got && polls < kWaitMs; ++polls) {
            std::array<rte_mbuf*, 32> rx{};
            const auto count = tap.port.rx_burst(0, rx);
            for (std::size_t i = 0; i < count; ++i) {
                MbufPtr owned(rx[i]);
                if (!got && mbuf_to_bytes(owned.get()) == frame) {
                    got = std::move(owned);
                }
            }
            if (count == 0) {
                ::usleep(1000);
            }
        }
        REQUIRE(got);
        // The PMD looked (flags are not UNKNOWN), and its verdict is the one used.
        CHECK((got->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN);
        CHECK(rx_checksums_good(got.get(), tap.port.hardware()) == !corrupt);
    }
}

TEST_CASE("net_tap with several queues spreads RX by hash", "[dataplane][tap]") {
    require_private_netns();
    const std::string ifname = unique_name("nbtap");
    VirtualDevice dev(unique_name("net_tap_t"), "iface=" + ifname);
    auto pool = small_pool(8191);
    PortConfig cfg;
    cfg.rx_queues = 2;
    cfg.tx_queues = 2;
    cfg.rx_desc = 512;
    cfg.tx_desc = 512;
    Port port(dev.name(), cfg, pool);
    CHECK(port.rx_queues() == 2);
    CHECK(port.rss());
    CHECK(port.warnings().empty());
}
