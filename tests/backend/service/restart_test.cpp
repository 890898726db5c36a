// A restart of netbackd under traffic (issue 19): while it starts, `netbackd stats` says so
// rather than "(no vifs connected)", the frame pool is sized once from EAL's memory (no
// try-and-retry), and the vifs of the killed process carry traffic again. Counts and states
// only: the outage itself is measured in the README, not asserted here.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <string>

#include <sys/types.h>
#include <unistd.h>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/netbackd_on_xensim.hpp"

using namespace netbackd;
using namespace netbackd::testing;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), {}};
}

// `netbackd stats` of the process `pid`: its output, or nothing while it does not answer.
std::optional<std::string> stats_of(const std::string& prefix, const std::string& dir) {
    const std::string out = dir + "/restart-stats.txt";
    const int rc = run({"/bin/sh", "-c",
                        fmt::format("timeout 20 '{}' stats --file-prefix {} > '{}' 2>/dev/null",
                                    NETBACKD_BINARY, prefix, out)},
                       dir + "/restart-stats.log");
    if (rc != 0) return std::nullopt;
    return slurp(out);
}

pid_t xensim_pid(const SimWorld& w) {
    pid_t pid = 0;
    std::ifstream(w.host_dir() + "/xensim.pid") >> pid;
    return pid;
}

} // namespace

TEST_CASE("restart: stats says starting until the vifs are re-adopted, then they carry traffic again",
          "[service][restart]") {
    SimWorld w;
    w.create_domain("a", 7);
    w.create_domain("b", 8);
    // A small EAL memory: the pool that fits is made at the first try.
    const std::string prefix = fmt::format("nbrestart-{}", ::getpid());
    w.start_netbackd(fmt::format("[dpdk]\neal_args = [\"--no-huge\", \"-m\", \"96\", \"--no-pci\", "
                                 "\"--file-prefix\", \"{}\", \"--log-level\", \"*:error\"]\n",
                                 prefix));
    GuestFleet fleet(w);
    FleetGuest& a = fleet.add(7, 0, guest_mac(8));
    FleetGuest& b = fleet.add(8, 0, guest_mac(7));
    REQUIRE(fleet.pump_until_received({&a, &b}, 200) >= 200);

    w.stop_netbackd(SIGKILL);
    // The simulated host holds still, so the new process cannot get past its start: what
    // `stats` says meanwhile does not depend on timing.
    const pid_t host = xensim_pid(w);
    REQUIRE(host > 0);
    REQUIRE(::kill(host, SIGSTOP) == 0);
    const pid_t nb =
        spawn({NETBACKD_BINARY, "run", "--config", w.dir() + "/netbackd.toml"}, w.dir() + "/restart.log");
    std::optional<std::string> starting;
    for (int i = 0; i < 600 && !starting; ++i) { // a liveness bound: EAL comes up, then it answers
        starting = stats_of(prefix, w.dir());
        if (!starting) ::usleep(100'000);
    }
    REQUIRE(::kill(host, SIGCONT) == 0);
    REQUIRE(starting.has_value());
    INFO(*starting);
    CHECK(starting->find("(starting: re-adopting the vifs in xenstore)") != std::string::npos);
    CHECK(starting->find("(no vifs connected)") == std::string::npos);

    // Started: both vifs are back without a new handshake and carry traffic.
    const auto a_before = a.rx_pkts();
    const auto b_before = b.rx_pkts();
    CHECK(fleet.pump_until_received({&a, &b}, 200) >= 200);
    CHECK(a.rx_pkts() > a_before);
    CHECK(b.rx_pkts() > b_before);
    CHECK(a.connected());
    CHECK(b.connected());
    std::optional<std::string> running = stats_of(prefix, w.dir());
    REQUIRE(running.has_value());
    CHECK(running->find("starting") == std::string::npos);
    CHECK(running->find("vif 7.0") != std::string::npos);

    const std::string log = slurp(w.dir() + "/restart.log");
    INFO(log);
    CHECK(log.find("frame pool: ") != std::string::npos);
    CHECK(log.find("retrying") == std::string::npos);
    ::kill(nb, SIGTERM);
    CHECK(reap(nb) == 0);
}
