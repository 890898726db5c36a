// Many guests on one netbackd, attached at once as parallel `xl network-attach` calls would:
// every vif connects and every one carries traffic. How long the attach took and what netbackd
// holds afterwards are reported, not asserted (the machine may be busy). NETBACKD_SCALE_VIFS
// sets the number of guests (default 200; the driver domain is given the event channels it
// needs, two per vif with split channels, as an operator raises xl.cfg's max_event_channels for a
// driver domain of more than ~500 vifs); NETBACKD_SCALE_KEEP=FILE keeps netbackd's log.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

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

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

TEST_CASE("scale: a host's guests attach at once, all connect and all carry traffic", "[scale]") {
    const unsigned n = scale_vifs();
    REQUIRE(n >= 2); // each guest sends to another
    // ~20 nodes and one watch per vif in the driver domain.
    SimWorld w(SimWorldOptions{.quota_nodes = 40 * n + 1000,
                               .quota_watches = n + 64,
                               .driver_event_channels = std::max(1023u, std::min(4095u, 2 * n + 64))});
    for (unsigned i = 0; i < n; ++i) w.create_domain(fmt::format("g{}", i), domid_of(i), 4);
    w.start_netbackd();

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
    for (unsigned i = 0; i < n; ++i) fleet.join(domid_of(i), 0, guest_mac(domid_of((i + 1) % n)));
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
    CHECK(receiving == n);
    WARN(fmt::format(
        "{} vifs: all at InitWait after {:.2f} s, all Connected after {:.2f} s; netbackd holds {} "
        "fds, {} mappings of guest memory, RSS {} MiB (touched simulated guest memory included)",
        n, initwait_s, connected_s, w.netbackd_fds(), w.netbackd_maps(), rss_kib(w.netbackd_pid()) / 1024));
    CHECK(w.netbackd_log().find("hotplug-status error") == std::string::npos);
    if (const char* keep = std::getenv("NETBACKD_SCALE_KEEP")) std::ofstream(keep) << w.netbackd_log();
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}
