#include "tests/backend/dataplane/tap_netns.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

namespace netbackd::dataplane::test {

void enter_private_netns() {
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
        std::fprintf(stderr, "SKIP: /dev/net/tun is not available\n");
        std::exit(kSkip);
    }
    if (::unshare(CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "SKIP: cannot create a network namespace: %s\n", std::strerror(errno));
        std::exit(kSkip);
    }
}

void prepare_kernel_side(const std::string& ifname) {
    std::ofstream(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname)) << "1\n";
    platform::Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
    REQUIRE(::ioctl(s.get(), SIOCGIFFLAGS, &ifr) == 0);
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    REQUIRE(::ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0);
}

platform::Fd kernel_socket(const std::string& ifname, bool receive) {
    const int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    REQUIRE(ifindex > 0);
    // Protocol 0 receives nothing, which keeps a send-only socket's queue empty.
    const auto protocol = receive ? htons(ETH_P_ALL) : 0;
    platform::Fd sock(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, protocol));
    REQUIRE(sock);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = static_cast<unsigned short>(protocol);
    addr.sll_ifindex = ifindex;
    REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    return sock;
}

} // namespace netbackd::dataplane::test
