// Many guests on one netbackd, attached at once as parallel `xl network-attach` calls would:
// every vif connects and every one carries traffic. How long the attach took and what netbackd
// holds afterwards are reported, not asserted (the machine may be busy). NETBACKD_SCALE_VIFS
// sets the number of guests (default 200; the driver domain is given the event channels it
// needs, two per vif with split channels, as an operator raises xl.cfg's max_event_channels for a
// driver domain of more than ~500 vifs); NETBACKD_SCALE_KEEP=FILE keeps netbackd's log.
// NETBACKD_SCALE_REPORT=FILE appends one JSON line of measurements (bench/scale_table.py runs
// the test for several N and writes the README's table from them): netbackd's own memory and
// fds before the attach and with every vif connected, its CPU over NETBACKD_SCALE_IDLE_S
// (default 10) idle seconds, and the xenstore nodes the driver domain owns.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "tests/support/guest_fleet.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using namespace std::chrono_literals;
using W = SimWorld;

namespace {

unsigned scale_vifs() {
    const char* v = std::getenv("NETBACKD_SCALE_VIFS");
    return v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 200u;
}

platform::DomId domid_of(unsigned i) { return static_cast<platform::DomId>(10 + i); }

// VmRSS of a process in KiB (0 when unreadable).
long rss_kib(pid_t pid) {
    std::ifstream f(fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

// Resident memory of a process in KiB, split into the mappings of simulated domain memory
// (xensim maps each guest's whole memory, which real Xen never does: only granted pages are
// mapped there) and the rest, netbackd's own.
struct Rss {
    long total_kib = 0;
    long sim_kib = 0;
    long own_kib() const { return total_kib - sim_kib; }
};

Rss rss_split(pid_t pid) {
    std::ifstream f(fmt::format("/proc/{}/smaps", pid));
    Rss r;
    bool sim = false;
    for (std::string line; std::getline(f, line);) {
        // A mapping's header line starts with its address range ("7f..-7f.. rw-s ...").
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17 &&
            line.find(':') > line.find(' ')) {
            sim = line.find("memfd:xensim") != std::string::npos;
        } else if (line.rfind("Rss:", 0) == 0) {
            const long kib = std::strtol(line.c_str() + 4, nullptr, 10);
            r.total_kib += kib;
            if (sim) r.sim_kib += kib;
        }
    }
    return r;
}

// CPU time of a process's threads, in seconds: the scheduler's own nanoseconds (schedstat).
// utime + stime count whole clock ticks, and a thread that wakes on a timer aligned with the
// tick is charged a full tick for a few microseconds of work (1.5% against 0.2% by perf here).
double cpu_seconds(pid_t pid) {
    std::uint64_t ns = 0;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        std::ifstream f(task.path() / "schedstat");
        std::uint64_t on_cpu = 0;
        if (f >> on_cpu) ns += on_cpu;
    }
    return static_cast<double>(ns) / 1e9;
}

// Nodes under `path` owned by `domid` (the owner is the first permission, as xenstored's quota
// counts them), `path` included.
unsigned owned_nodes(platform::Store& s, const std::string& path, platform::DomId domid) {
    unsigned n = 0;
    const auto perms = s.get_perms(0, path);
    if (!perms.empty() && perms.front().domid == domid) ++n;
    if (const auto kids = s.directory(0, path))
        for (const auto& k : *kids) n += owned_nodes(s, path == "/" ? "/" + k : path + "/" + k, domid);
    return n;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

TEST_CASE("scale: a host's guests attach at once, all connect and all carry traffic", "[scale]") {
    const unsigned n = scale_vifs();
    REQUIRE(n >= 1); // each guest sends to the next one (a single guest only sinks)
    // ~20 nodes and one watch per vif in the driver domain.
    SimWorld w(SimWorldOptions{.quota_nodes = 40 * n + 1000,
                               .quota_watches = n + 64,
                               .driver_event_channels = std::max(1023u, std::min(4095u, 2 * n + 64))});
    for (unsigned i = 0; i < n; ++i) w.create_domain(fmt::format("g{}", i), domid_of(i), 4);
    w.start_netbackd();
    const pid_t pid = w.netbackd_pid();
    const Rss rss_before = rss_split(pid);
    const int fds_before = w.netbackd_fds();
    const unsigned nodes_before = owned_nodes(w.dom0(), "/local/domain", kDriverDomain);

    // Every attach at once, each toolstack thread on its own connection.
    const auto t0 = std::chrono::steady_clock::now();
    constexpr unsigned kToolstacks = 8;
    std::atomic<unsigned> failures{0};
    std::vector<std::thread> toolstacks;
    for (unsigned t = 0; t < kToolstacks; ++t)
        toolstacks.emplace_back([&, t] {
            auto store = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), 0));
            for (unsigned i = t; i < n; i += kToolstacks) {
                xensim::NicSpec s;
                s.frontend = domid_of(i);
                s.backend = kDriverDomain;
                s.devid = 0;
                s.mac = guest_mac_text(domid_of(i));
                try {
                    // Longer than libxl's 10 s: a busy test machine must not turn into a failure.
                    xensim::nic_add(*store, s, 60s);
                } catch (const std::exception& e) {
                    ++failures;
                    WARN(e.what());
                }
            }
        });
    for (auto& t : toolstacks) t.join();
    REQUIRE(failures == 0);
    const double initwait_s = seconds_since(t0);

    // Each guest's netfront, sending to the next guest.
    GuestFleet fleet(w);
    for (unsigned i = 0; i < n; ++i) {
        std::optional<ring::MacAddr> dst;
        if (n > 1) dst = guest_mac(domid_of((i + 1) % n));
        fleet.join(domid_of(i), 0, dst);
    }
    REQUIRE(fleet.settle(180s));
    // A netfront is Connected a moment before its backend writes 4.
    for (unsigned i = 0; i < n; ++i) CHECK(w.wait_state(W::be(domid_of(i), 0) + "/state", "4"));
    const double connected_s = seconds_since(t0);
    CHECK(w.driver_ports_in_use() == static_cast<int>(2 * n)); // split channels

    // Every guest receives from its neighbour.
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    unsigned receiving = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        fleet.pump(500ms);
        receiving = 0;
        for (const auto& g : fleet.guests()) receiving += g->rx_pkts() > 0 ? 1 : 0;
        if (receiving == n) break;
    }
    if (n > 1) CHECK(receiving == n);
    WARN(fmt::format(
        "{} vifs: all at InitWait after {:.2f} s, all Connected after {:.2f} s; netbackd holds {} "
        "fds, {} mappings of guest memory, RSS {} MiB (touched simulated guest memory included)",
        n, initwait_s, connected_s, w.netbackd_fds(), w.netbackd_maps(), rss_kib(w.netbackd_pid()) / 1024));
    CHECK(w.netbackd_log().find("hotplug-status error") == std::string::npos);

    if (const char* report = std::getenv("NETBACKD_SCALE_REPORT")) {
        // Idle: nothing pumps the guests, so no frame moves; netbackd's workers should sleep.
        const char* idle_env = std::getenv("NETBACKD_SCALE_IDLE_S");
        const double idle_s = idle_env ? std::strtod(idle_env, nullptr) : 10.0;
        std::this_thread::sleep_for(2s); // let the last frames drain and adaptive polling back off
        const double cpu0 = cpu_seconds(pid);
        const auto i0 = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
        const double idle_cpu_pct = 100.0 * (cpu_seconds(pid) - cpu0) / seconds_since(i0);
        const Rss rss = rss_split(pid);
        const int fds = w.netbackd_fds();
        const unsigned nodes = owned_nodes(w.dom0(), "/local/domain", kDriverDomain);
        double load[3] = {0, 0, 0};
        getloadavg(load, 3);
        std::ofstream(report, std::ios::app) << fmt::format(
            "{{\"vifs\": {}, \"initwait_s\": {:.2f}, \"connected_s\": {:.2f}, \"rss_before_kib\": {}, "
            "\"own_rss_before_kib\": {}, \"rss_kib\": {}, \"own_rss_kib\": {}, \"sim_rss_kib\": {}, "
            "\"fds_before\": {}, \"fds\": {}, \"idle_s\": {:.1f}, \"idle_cpu_pct\": {:.2f}, "
            "\"driver_nodes_before\": {}, \"driver_nodes\": {}, \"loadavg\": [{:.2f}, {:.2f}, {:.2f}]}}\n",
            n, initwait_s, connected_s, rss_before.total_kib, rss_before.own_kib(), rss.total_kib,
            rss.own_kib(), rss.sim_kib, fds_before, fds, idle_s, idle_cpu_pct, nodes_before, nodes, load[0],
            load[1], load[2]);
    }
    if (const char* keep = std::getenv("NETBACKD_SCALE_KEEP")) std::ofstream(keep) << w.netbackd_log();
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}
