// `netbackd capture` against a running netbackd on the simulated platform: known frames both
// ways through one vif land in the pcapng file with the right direction, tshark reads it back,
// and a filter keeps out what it should.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/netbackd_on_xensim.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 21;
constexpr platform::DomId kB = 22;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Starts `netbackd capture` and returns once the service accepted it (the CLI says so).
// stdout_to: a file for its standard output (the pcapng stream when no -w is given).
pid_t start_capture(SimWorld& w, const std::vector<std::string>& args, const std::string& log,
                    const std::string& stdout_to = "") {
    std::vector<std::string> argv{NETBACKD_BINARY, "capture", "--file-prefix",
                                  fmt::format("netbackd-{}", w.netbackd_pid())};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!stdout_to.empty()) {
        std::string cmd = "exec";
        for (const auto& a : argv) cmd += fmt::format(" '{}'", a);
        argv = {"/bin/sh", "-c", fmt::format("{} > '{}'", cmd, stdout_to)};
    }
    const pid_t pid = spawn(argv, log);
    const auto limit = std::chrono::steady_clock::now() + 60s;
    while (slurp(log).find("netbackd capture: vif") == std::string::npos) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) FAIL("netbackd capture exited early:\n" << slurp(log));
        if (std::chrono::steady_clock::now() > limit) FAIL("netbackd capture never started:\n" << slurp(log));
        std::this_thread::sleep_for(20ms);
    }
    return pid;
}

// Moves the fleet's traffic until the capture process exits; its exit code.
int pump_until_exit(GuestFleet& fleet, pid_t pid) {
    const auto limit = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < limit) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        fleet.pump(20ms);
    }
    kill(pid, SIGKILL);
    return reap(pid);
}

// The guest sends `count` UDP frames to `dst` (port `port`), from now on.
void send_frames(FleetGuest& g, const ring::MacAddr& dst, std::uint16_t port, std::uint64_t count) {
    g.options.generate = true;
    g.options.count = count;
    g.options.frame.dst = dst;
    g.options.frame.dst_port = port;
    g.traffic = std::make_unique<xensim::Traffic>(*g.io, g.options);
    REQUIRE_FALSE(g.traffic->on_attach().has_value());
}

bool pump_until(GuestFleet& fleet, const std::function<bool()>& done) {
    const auto limit = std::chrono::steady_clock::now() + 60s;
    while (!done() && std::chrono::steady_clock::now() < limit) fleet.pump(20ms);
    return done();
}

struct Row {
    std::string src;
    unsigned direction = 0; // pcapng epb_flags: 1 inbound, 2 outbound
    unsigned port = 0;
    std::string ifname;
    double time = 0; // seconds since the epoch
};

// tshark's view of the file: one row per frame.
std::vector<Row> read_back(const std::string& pcapng, const std::string& log) {
    const std::string out = pcapng + ".txt";
    const int rc = run({"/bin/sh", "-c",
                        fmt::format("tshark -r '{}' -T fields -E separator=/t -e eth.src "
                                    "-e frame.packet_flags_direction -e udp.dstport -e frame.interface_name "
                                    "-e frame.time_epoch > '{}'",
                                    pcapng, out)},
                       log);
    REQUIRE(rc == 0);
    std::vector<Row> rows;
    std::istringstream in(slurp(out));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        Row r;
        std::string dir, port;
        std::getline(f, r.src, '\t');
        std::getline(f, dir, '\t');
        std::getline(f, port, '\t');
        std::getline(f, r.ifname, '\t');
        std::string time;
        std::getline(f, time, '\t');
        r.time = std::stod(time);
        r.direction = static_cast<unsigned>(std::stoul(dir, nullptr, 0));
        r.port = static_cast<unsigned>(std::stoul(port));
        rows.push_back(r);
    }
    return rows;
}

} // namespace

TEST_CASE("netbackd capture writes a vif's frames both ways as pcapng that tshark reads",
          "[service][capture]") {
    SimWorld w;
    w.create_domain("a", kA);
    w.create_domain("b", kB);
    w.start_netbackd();
    GuestFleet fleet(w);
    FleetGuest& a = fleet.add(kA, 0, std::nullopt);
    FleetGuest& b = fleet.add(kB, 0, std::nullopt);
    const std::string mac_a = guest_mac_text(kA);
    const std::string mac_b = guest_mac_text(kB);
    INFO(w.netbackd_log());

    SECTION("both directions, counted") {
        constexpr std::uint64_t kFromA = 7;
        constexpr std::uint64_t kToA = 5;
        const std::string file = w.dir() + "/both.pcapng";
        const std::string log = w.dir() + "/capture-both.log";
        const pid_t cap = start_capture(w, {"21.0", "-w", file, "-c", std::to_string(kFromA + kToA)}, log);
        send_frames(a, guest_mac(kB), 9, kFromA);
        send_frames(b, guest_mac(kA), 9, kToA);
        REQUIRE(pump_until(fleet, [&] { return b.rx_pkts() == kFromA && a.rx_pkts() == kToA; }));
        REQUIRE(pump_until_exit(fleet, cap) == 0);
        INFO(slurp(log));

        const auto rows = read_back(file, log);
        REQUIRE(rows.size() == kFromA + kToA);
        std::uint64_t in = 0;
        std::uint64_t out = 0;
        const double now = static_cast<double>(std::time(nullptr));
        for (const auto& r : rows) {
            CHECK(r.ifname == "vif21.0");
            CHECK(std::abs(r.time - now) < 3600); // wall-clock ns, as the IDB's if_tsresol says
            if (r.src == mac_a) {
                CHECK(r.direction == 1); // what the guest sent arrives, as on a Linux vif
                ++in;
            } else {
                CHECK(r.src == mac_b);
                CHECK(r.direction == 2);
                ++out;
            }
        }
        CHECK(in == kFromA);
        CHECK(out == kToA);
    }

    SECTION("to standard output by default") {
        const std::string file = w.dir() + "/stdout.pcapng";
        const std::string log = w.dir() + "/capture-stdout.log";
        const pid_t cap = start_capture(w, {"21.0", "-c", "3"}, log, file);
        send_frames(a, guest_mac(kB), 9, 3);
        REQUIRE(pump_until(fleet, [&] { return b.rx_pkts() == 3; }));
        REQUIRE(pump_until_exit(fleet, cap) == 0);
        INFO(slurp(log));
        const auto rows = read_back(file, log);
        REQUIRE(rows.size() == 3);
        for (const auto& r : rows) CHECK(r.direction == 1);
    }

    SECTION("a filter keeps out the frames it does not match") {
        const std::string file = w.dir() + "/filtered.pcapng";
        const std::string log = w.dir() + "/capture-filtered.log";
        const pid_t cap =
            start_capture(w, {"21.0", "-w", file, "-c", "4", "udp", "dst", "port", "7777"}, log);
        // First what the filter must drop (both directions), all delivered; then what it keeps.
        send_frames(b, guest_mac(kA), 9, 6);
        send_frames(a, guest_mac(kB), 9, 3);
        REQUIRE(pump_until(fleet, [&] { return a.rx_pkts() == 6 && b.rx_pkts() == 3; }));
        send_frames(a, guest_mac(kB), 7777, 4);
        REQUIRE(pump_until_exit(fleet, cap) == 0);
        INFO(slurp(log));

        const auto rows = read_back(file, log);
        REQUIRE(rows.size() == 4);
        for (const auto& r : rows) {
            CHECK(r.src == mac_a);
            CHECK(r.direction == 1);
            CHECK(r.port == 7777);
        }
    }

    SECTION("a bad filter or an unknown vif is refused with the reason") {
        const std::string log = w.dir() + "/capture-refused.log";
        CHECK(run({NETBACKD_BINARY, "capture", "--file-prefix", fmt::format("netbackd-{}", w.netbackd_pid()),
                   "21.0", "-w", w.dir() + "/x.pcapng", "udp", "prot", "9"},
                  log) == 1);
        CHECK(run({NETBACKD_BINARY, "capture", "--file-prefix", fmt::format("netbackd-{}", w.netbackd_pid()),
                   "29.0", "-w", w.dir() + "/y.pcapng"},
                  log) == 1);
        const std::string text = slurp(log);
        CHECK(text.find("filter 'udp prot 9'") != std::string::npos);
        CHECK(text.find("vif 29.0 is not connected here") != std::string::npos);
    }
}
