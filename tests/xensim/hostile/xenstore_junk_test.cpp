// xenstore junk from a guest against the real netbackd binary (SimWorld): the guest writes what
// it likes into its own frontend dir. netbackd must keep serving the healthy vifs (guest to guest
// through its switch: kFrames frames delivered while the junk is being written, counted in
// frames, not in time), and leave the attacked one as Linux netback would: error node and
// Closing for unreadable keys.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <exception>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/support/guest_fleet.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kHealthy = 7;
constexpr platform::DomId kAttacker = 8;
constexpr platform::DomId kPeer = 9; // receives the healthy vif's traffic
// Frames the peer must receive from the healthy vif while the junk is written. A count, not a
// rate: a busy host makes the window longer, never fails it.
constexpr std::uint64_t kFrames = 20'000;

struct JunkWorld {
    JunkWorld() {
        w.create_domain("healthy", kHealthy);
        w.create_domain("attacker", kAttacker);
        w.create_domain("peer", kPeer);
        w.start_netbackd();
        fleet.add(kHealthy, 0, guest_mac(kPeer));
        rx = &fleet.add(kPeer, 0, std::nullopt);
        fleet.pump(std::chrono::milliseconds(300));
        REQUIRE(fleet.pump_until_received({rx}, kFrames) >= kFrames); // the world works unattacked
    }
    // Runs `junk` over and over on the attacker's own thread (its own store connection) while
    // the healthy traffic is counted: kFrames frames must arrive while the junk is being written
    // (the count starts after the first round of junk and the writer must still be going at the
    // end). A failed write fails the test: junk that was never written proves nothing.
    template <class Junk>
    std::uint64_t under_attack(Junk junk, std::uint64_t min_rounds = 1) {
        std::atomic<std::uint64_t> rounds{0};
        std::exception_ptr failed;
        std::uint64_t got = 0, rounds_at_start = 0, rounds_at_end = 0;
        {
            std::jthread t([&](std::stop_token st) {
                try {
                    while (!st.stop_requested()) {
                        junk();
                        rounds.fetch_add(1);
                    }
                } catch (...) {
                    failed = std::current_exception();
                }
            });
            while (rounds.load() == 0 && !failed) fleet.pump(std::chrono::milliseconds(10));
            rounds_at_start = rounds.load();
            got = fleet.pump_until_received({rx}, kFrames);
            rounds_at_end = rounds.load();
            const auto cap = std::chrono::steady_clock::now() + std::chrono::seconds(120);
            while (rounds.load() < min_rounds && !failed && std::chrono::steady_clock::now() < cap)
                fleet.pump(std::chrono::milliseconds(10));
        }
        if (failed) std::rethrow_exception(failed);
        INFO("healthy vif: " << got << " frames to its peer while " << rounds_at_end - rounds_at_start
                             << " rounds of junk were written (" << rounds.load() << " in all)");
        CHECK(got >= kFrames);
        CHECK(rounds_at_end > rounds_at_start);
        return rounds.load();
    }
    // netbackd still alive and the healthy vifs still connected with their channels bound.
    void check_healthy() {
        CHECK(::kill(w.netbackd_pid(), 0) == 0);
        for (auto d : {kHealthy, kPeer}) {
            CHECK(w.dom0().read(0, W::be(d, 0) + "/state") == "4");
            CHECK_FALSE(w.dom0().read(0, W::error_node(d, 0)).has_value());
        }
        CHECK(w.driver_ports_in_use() >= 2);
    }
    platform::Store& attacker() { return *w.guest(kAttacker).store; }
    W w;
    GuestFleet fleet{w};
    FleetGuest* rx = nullptr;
};

} // namespace

TEST_CASE("xenstore junk: non-numeric and huge ring refs close that vif with an error node",
          "[hostile][xenstore]") {
    JunkWorld j;
    attach_vif(j.w, kAttacker); // backend at InitWait
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    j.attacker().write(0, fe + "/tx-ring-ref", "not-a-number");
    j.attacker().write(0, fe + "/rx-ring-ref", std::string(3000, '9'));
    j.attacker().write(0, fe + "/event-channel", "0x");
    j.attacker().write(0, fe + "/request-rx-copy", "1");
    j.attacker().write(0, fe + "/state", "4");
    // xenstore_dev_fatal: error node written, backend Closing.
    REQUIRE(j.w.wait_node(W::error_node(kAttacker, 0), [](const auto& v) { return v.has_value(); }));
    CHECK(j.w.wait_state(W::be(kAttacker, 0) + "/state", "5"));
    // And the guest goes on writing junk refs: every write fires netbackd's watch.
    int i = 0;
    j.under_attack([&] {
        j.attacker().write(0, fe + "/tx-ring-ref", fmt::format("junk{}", i++));
        j.attacker().write(0, fe + "/rx-ring-ref", std::string(3000, '9'));
    });
    j.check_healthy();
}

TEST_CASE("xenstore junk: frontend state flapping 1<->4 thousands of times", "[hostile][xenstore]") {
    JunkWorld j;
    attach_vif(j.w, kAttacker);
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    std::uint64_t flaps = 0;
    j.under_attack([&] { j.attacker().write(0, fe + "/state", flaps++ % 2 == 0 ? "1" : "4"); }, 1000);
    CHECK(flaps >= 1000);
    j.attacker().write(0, fe + "/state", "1");
    j.check_healthy();
    // A real netfront still gets the vif afterwards.
    j.w.guest(kAttacker).start_netfront(0);
    CHECK(j.w.wait_state(W::be(kAttacker, 0) + "/state", "4"));
    j.check_healthy();
}

TEST_CASE("xenstore junk: frontend dir deleted under a connected vif", "[hostile][xenstore]") {
    JunkWorld j;
    attach_vif(j.w, kAttacker);
    j.w.guest(kAttacker).start_netfront(0);
    REQUIRE(j.w.wait_state(W::be(kAttacker, 0) + "/state", "4"));
    j.w.guest(kAttacker).netfront.reset(); // the guest kernel no longer runs a netfront
    j.attacker().rm(0, W::fe(kAttacker, 0));
    // A vanished frontend reads as Closed: the backend leaves Connected.
    CHECK(j.w.wait_node(W::be(kAttacker, 0) + "/state", [](const auto& v) { return v != "4"; }));
    // Then the guest keeps recreating and deleting it.
    int i = 0;
    j.under_attack([&] {
        if (i++ % 2 == 0)
            j.attacker().write(0, W::fe(kAttacker, 0) + "/state", "4");
        else
            j.attacker().rm(0, W::fe(kAttacker, 0));
    });
    j.check_healthy();
}

TEST_CASE("xenstore junk: huge values in the frontend dir", "[hostile][xenstore]") {
    JunkWorld j;
    attach_vif(j.w, kAttacker);
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    const std::string mq = fe + "/multi-queue-num-queues";
    const std::string huge_count(4000, '9');
    j.under_attack([&] {
        // Each write must land (a refused write throws and fails the test): read one back.
        j.attacker().write(0, fe + "/mac", std::string(4000, 'f'));
        j.attacker().write(0, fe + "/feature-sg", std::string(4000, '1'));
        j.attacker().write(0, mq, huge_count);
        if (j.attacker().read(0, mq) != huge_count) throw std::runtime_error("the junk did not stick: " + mq);
    });
    // The guest then says Connected over its junk: netbackd reads the queue count first, as
    // Linux netback does, and a 4000-digit count is fatal there (xenbus_dev_fatal, Closing).
    j.attacker().write(0, fe + "/request-rx-copy", "1");
    j.attacker().write(0, fe + "/state", "4");
    REQUIRE(j.w.wait_node(W::error_node(kAttacker, 0), [](const auto& v) { return v.has_value(); }));
    CHECK_THAT(j.w.dom0().read(0, W::error_node(kAttacker, 0)).value_or(""),
               Catch::Contains("multi-queue-num-queues"));
    CHECK(j.w.wait_state(W::be(kAttacker, 0) + "/state", "5"));
    CHECK(j.w.dom0().read(0, W::be(kAttacker, 0) + "/state") == "5");
    j.check_healthy();
}
