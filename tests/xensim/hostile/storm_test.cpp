// An event-channel storm against the real netbackd: a guest that took over its connected vif's
// rings notifies millions of times. netbackd must stay responsive: the other vifs keep passing
// traffic (guest to guest through netbackd's switch: kFrames frames delivered while the storm
// runs, counted in frames, not in time), a new vif still connects, `netbackd stats` still
// answers, and the storming vif itself is not harmed.
#include <atomic>
#include <csignal>
#include <optional>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/held_resources.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/hostile/hostile_front.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kA = 61, kB = 62, kStorm = 63, kLate = 64;
constexpr std::uint64_t kNotifies = 5'000'000;
// Frames guest B must receive while the storm is on. A count, not a rate: a busy host makes
// the window longer, never fails it (the storm runs until B got them, up to its cap).
constexpr std::uint64_t kFrames = 20'000;

} // namespace

TEST_CASE("evtchn storm: millions of notifies, netbackd stays responsive", "[hostile][storm]") {
    W w;
    for (auto d : {kA, kB, kStorm, kLate}) w.create_domain(fmt::format("g{}", d), d);
    w.start_netbackd();
    GuestFleet fleet(w);
    fleet.add(kA, 0, guest_mac(kB));
    FleetGuest& b = fleet.add(kB, 0, std::nullopt);

    // The storming guest: a clean handshake, then its kernel turns hostile.
    attach_vif(w, kStorm);
    Guest& sg = w.guest(kStorm);
    sg.start_netfront(0, 1, false);
    REQUIRE(w.wait_state(W::be(kStorm, 0) + "/state", "4"));
    REQUIRE(w.wait_node(W::be(kStorm, 0) + "/state", [&](auto&&) { return sg.netfront->state() == 4; }));
    const auto& q = sg.netfront->queues().front();
    xensim::hostile::HostileFront front(
        sg.hv, kDriverDomain,
        xensim::hostile::HostileFront::Rings{q.tx_gfn, q.rx_gfn, q.tx_ref, q.rx_ref, q.tx_port}, *sg.events);

    fleet.pump(std::chrono::milliseconds(300));                   // warm up
    REQUIRE(fleet.pump_until_received({&b}, kFrames) >= kFrames); // the world works unattacked

    std::atomic<std::uint64_t> notified{0};
    std::uint64_t got = 0;
    std::uint64_t storm_at_start = 0, storm_at_end = 0;
    bool counted = false;
    bool late_connected = false;
    std::optional<Held> mid;
    xensim::hostile::AttackEnv env;
    env.duration = std::chrono::seconds(1);
    env.storm_notifies = kNotifies;
    env.notified = &notified;
    env.finished = [&] { return mid.has_value(); };
    env.during = [&] {
        if (!counted) {
            // Counted once the storm is under way, so that the frames cross it.
            if (notified.load() == 0) return fleet.pump(std::chrono::milliseconds(10));
            storm_at_start = notified.load();
            got = fleet.pump_until_received({&b}, kFrames);
            storm_at_end = notified.load();
            counted = true;
        } else if (!late_connected) {
            // The control plane answers too: a new vif connects in the middle of the storm.
            fleet.add(kLate, 0, std::nullopt);
            late_connected = true;
        } else if (!mid) {
            mid = netbackd_stats(w.netbackd_pid(), w.dir() + "/stats.log");
        } else {
            fleet.pump(std::chrono::milliseconds(50)); // the storm's notify count still to reach
        }
    };
    xensim::hostile::find_attack("evtchn_storm")->run(front, env);

    INFO("storm: " << notified.load() << " notifies; guest B got " << got << " frames while "
                   << storm_at_end - storm_at_start << " of them were sent");
    CHECK(notified.load() >= kNotifies);
    REQUIRE(counted);
    CHECK(got >= kFrames);
    CHECK(storm_at_end > storm_at_start); // the frames were counted while the storm ran
    CHECK(late_connected);
    REQUIRE(mid.has_value());
    CHECK(mid->vifs == 4);
    REQUIRE(::kill(w.netbackd_pid(), 0) == 0);
    // The storming vif was only noisy: still Connected, no error node.
    CHECK(w.dom0().read(0, W::be(kStorm, 0) + "/state") == "4");
    CHECK_FALSE(w.dom0().read(0, W::error_node(kStorm, 0)).has_value());
    CHECK(w.dom0().read(0, W::be(kA, 0) + "/state") == "4");
}
