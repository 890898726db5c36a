// `netbackd run` under a systemd watchdog (WATCHDOG_USEC, as WatchdogSec= sets it): the process
// sends WATCHDOG=1 to NOTIFY_SOCKET while its workers run, and none without WATCHDOG_USEC.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string_view>

#include <poll.h>
#include <sys/socket.h>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/netbackd_on_xensim.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using namespace std::chrono_literals;

namespace {

// WATCHDOG=1 messages received until `want` arrived or `limit` passed (a deadlock guard).
int pings(int fd, int want, std::chrono::seconds limit) {
    int n = 0;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (n < want && std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char buf[512];
        const ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got > 0 &&
            std::string_view(buf, static_cast<std::size_t>(got)).find("WATCHDOG=1") != std::string_view::npos)
            ++n;
    }
    return n;
}

} // namespace

TEST_CASE("netbackd run pings the systemd watchdog while its workers run", "[service][watchdog]") {
    SimWorld w;
    w.create_domain("a", 21);
    w.netbackd_env = {"WATCHDOG_USEC=400000"};
    w.start_netbackd("[workers]\ncores = [0, 1]\n");
    GuestFleet fleet(w);
    fleet.add(21, 0, std::nullopt);
    INFO(w.netbackd_log());
    CHECK(pings(w.notify_fd(), 5, 60s) == 5);
    CHECK(w.netbackd_log().find("systemd watchdog: checking the data plane every 200 ms") !=
          std::string::npos);
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}

TEST_CASE("netbackd run sends no watchdog ping without WATCHDOG_USEC", "[service][watchdog]") {
    SimWorld w;
    w.start_netbackd();
    // The watchdog would have checked several times in this span (a count, not a window: the
    // assertion is on the log line that says whether it runs at all).
    CHECK(pings(w.notify_fd(), 1, 1s) == 0);
    CHECK(w.netbackd_log().find("systemd watchdog") == std::string::npos);
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}
