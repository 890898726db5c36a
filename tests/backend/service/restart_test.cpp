// A restart of netbackd under traffic (issue 19): while it starts, `netbackd stats` says so
// rather than "(no vifs connected)", the frame pool is sized once from EAL's memory (no
// try-and-retry), and the vifs of the killed process carry traffic again. The outage of a
// restart is measured and printed (README), and asserted only as a liveness bound.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iterator>
#include <string>

#include <sys/types.h>
#include <sys/wait.h>
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

// xensim held with SIGSTOP, let go however the test section ends: a REQUIRE failing while it
// is stopped would otherwise leave `xensim down` (in ~SimWorld) waiting on it for ever.
struct HeldHost {
    pid_t pid;
    explicit HeldHost(pid_t p) : pid(p) { REQUIRE(::kill(pid, SIGSTOP) == 0); }
    ~HeldHost() { release(); }
    void release() {
        if (pid > 0) ::kill(pid, SIGCONT);
        pid = -1;
    }
};

// A netbackd the test started itself: stopped (SIGTERM, then SIGKILL after 30 s) however the
// test ends, so a failing check cannot leave it behind or wait on it without bound.
struct OwnNetbackd {
    pid_t pid;
    ~OwnNetbackd() {
        if (pid > 0) stop();
    }
    int stop() {
        ::kill(pid, SIGTERM);
        int status = 0;
        for (int i = 0; i < 300; ++i) {
            if (::waitpid(pid, &status, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            ::usleep(100'000);
        }
        ::kill(pid, SIGKILL);
        reap(pid);
        pid = -1;
        return -1; // did not stop on SIGTERM
    }
};

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
    HeldHost held(host);
    OwnNetbackd nb{
        spawn({NETBACKD_BINARY, "run", "--config", w.dir() + "/netbackd.toml"}, w.dir() + "/restart.log")};
    std::optional<std::string> starting;
    // A liveness bound in time, not in tries (each try may itself wait 20 s): EAL comes up,
    // then it answers.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!starting && std::chrono::steady_clock::now() < give_up) {
        starting = stats_of(prefix, w.dir());
        if (!starting) ::usleep(100'000);
    }
    held.release();
    INFO(slurp(w.dir() + "/restart.log"));
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
    // Two vifs to re-adopt: one pool for both at start, none added while the guests wait.
    CHECK(log.find("frame pool 0: ") != std::string::npos);
    CHECK(log.find(" for 2 vif(s) and 1 port queue(s)") != std::string::npos);
    CHECK(log.find("frame pool 1: ") == std::string::npos);
    CHECK(log.find("retrying") == std::string::npos);
    CHECK(nb.stop() == 0);
}

// The outage itself (issue 19): SIGKILL under traffic and an immediate restart, as a service
// manager's Restart= does. Measured from the kill to netbackd's READY=1 and to frames reaching
// both guests again, and printed; asserted only as a liveness bound a loaded host cannot break.
// The guests' generators keep their TX rings full, so nothing is lost on the way: frames wait
// on the rings of the dead backend. The new netbackd's log says where its start went.
TEST_CASE("restart: the outage of a SIGKILL and an immediate restart under traffic", "[service][restart]") {
    SimWorld w;
    w.create_domain("a", 7);
    w.create_domain("b", 8);
    w.start_netbackd(); // the default EAL memory (512 MiB)
    GuestFleet fleet(w);
    FleetGuest& a = fleet.add(7, 0, guest_mac(8));
    FleetGuest& b = fleet.add(8, 0, guest_mac(7));
    REQUIRE(fleet.pump_until_received({&a, &b}, 200) >= 200);

    const auto killed = std::chrono::steady_clock::now();
    w.stop_netbackd(SIGKILL);
    const auto a_before = a.rx_pkts();
    const auto b_before = b.rx_pkts();
    w.start_netbackd(); // returns at READY=1 (or fails the test after 20 s)
    const auto ready = std::chrono::steady_clock::now();
    const auto give_up = ready + std::chrono::seconds(120);
    while ((a.rx_pkts() == a_before || b.rx_pkts() == b_before) && std::chrono::steady_clock::now() < give_up)
        fleet.pump(std::chrono::milliseconds(1));
    const auto flowing = std::chrono::steady_clock::now();
    const auto ms = [&](auto t) { return std::chrono::duration<double, std::milli>(t - killed).count(); };
    const std::string log = w.netbackd_log();
    INFO(log);
    REQUIRE(a.rx_pkts() > a_before);
    REQUIRE(b.rx_pkts() > b_before);
    CHECK(a.connected());
    CHECK(b.connected());
    // Printed for the README: a 0.5 s ping would see about outage / 0.5 s pings late or lost.
    std::string steps;
    for (std::size_t at = log.rfind("start: EAL"); at != std::string::npos && at < log.size();) {
        const auto end = log.find('\n', at);
        steps += "\n  " + log.substr(at, end - at);
        at = log.find("start: ", end);
    }
    fmt::print("restart outage: READY=1 {:.0f} ms after SIGKILL, frames reach both guests {:.0f} ms after "
               "it (~{:.0f} pings at 0.5 s){}\n",
               ms(ready), ms(flowing), ms(flowing) / 500.0, steps);
    CHECK(fleet.pump_until_received({&a, &b}, 200) >= 200);
}

// What the real-Xen lab found about a restart (scenario 6): no frame is lost. Frames a guest
// sends while netbackd is dead wait on its ring and reach their receiver after the restart. A
// paced sender (as a ping) keeps queueing during the outage; every frame it queued after the
// kill must arrive. Frames queued before it may be lost in the one burst the old process had
// answered but not yet delivered, so they are not counted; duplicates only add.
TEST_CASE("restart: frames a paced guest sends while netbackd is dead all arrive after the restart",
          "[service][restart]") {
    SimWorld w;
    w.create_domain("a", 7);
    w.create_domain("b", 8);
    w.start_netbackd();
    GuestFleet fleet(w);
    FleetGuest& b = fleet.add(8, 0, std::nullopt);
    FleetGuest& a = fleet.add(7, 0, guest_mac(8));
    a.options.pps = 200;
    a.options.batch = 1;
    a.traffic = std::make_unique<xensim::Traffic>(*a.io, a.options);
    REQUIRE(fleet.pump_until_received({&b}, 20) >= 20);

    w.stop_netbackd(SIGKILL);
    const auto queued_at_kill = a.traffic->queued();
    const auto received_at_kill = b.rx_pkts();
    // The guest keeps sending into its ring meanwhile; nobody answers.
    fleet.pump(std::chrono::milliseconds(300));
    const auto queued_while_dead = a.traffic->queued() - queued_at_kill;
    REQUIRE(queued_while_dead >= 10);
    w.start_netbackd();
    fleet.pump_until_received({&b}, queued_while_dead + 20);
    fleet.receive_only(std::chrono::milliseconds(200));
    INFO("queued while dead " << queued_while_dead << ", since the kill "
                              << a.traffic->queued() - queued_at_kill << ", received since the kill "
                              << b.rx_pkts() - received_at_kill);
    CHECK(b.rx_pkts() - received_at_kill >= a.traffic->queued() - queued_at_kill);
    // Every queued request was answered, by one process or the other, and only once.
    CHECK(a.tx_pkts() == a.traffic->queued());
}
