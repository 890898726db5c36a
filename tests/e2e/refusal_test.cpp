// Refusals before Connected, end to end: what netbackd can decide about a vif (its MAC, the
// vif limit, a frontend state that is no xenbus state) fails the attach as a failing vif
// script would (hotplug-status=error, an error node naming the cause), never as a vif that
// connects and is then torn down.
#include <catch2/catch.hpp>

#include <cerrno>

#include <fmt/format.h>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

xensim::NicSpec nic(platform::DomId fe, std::uint32_t devid, std::string mac = "") {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = mac.empty() ? fmt::format("00:16:3e:00:{:02x}:{:02x}", fe & 0xff, devid & 0xff) : mac;
    return s;
}

// libxl gives up after 10 s of no InitWait; a refusal never brings it, so wait less.
constexpr std::chrono::seconds kShortInit{2};

void connect(SimWorld& w, platform::DomId fe, std::uint32_t devid, std::string mac = "") {
    xensim::nic_add(w.dom0(), nic(fe, devid, std::move(mac)));
    w.guest(fe).start_netfront(devid);
    REQUIRE(w.wait_state(W::be(fe, devid) + "/state", "4"));
}

// The refusal as the toolstack sees it, and that the vif never reached Connected.
void check_refused(SimWorld& w, platform::DomId fe, std::uint32_t devid, const std::string& error) {
    // Refused: hotplug-status=error and Closing; a netfront that was waiting answers Closing with
    // Closed, and the backend may be Closed before a poll of its state sees 5.
    // hotplug-status comes first, then the error node, then the state: wait for the last.
    CHECK(w.wait_state(W::be(fe, devid) + "/hotplug-status", "error", std::chrono::seconds(60)));
    CHECK(w.wait_closing_or_closed(W::be(fe, devid) + "/state"));
    CHECK(w.dom0().read(0, W::error_node(fe, devid)) == error);
    const auto log = w.netbackd_log();
    CHECK(log.find(fmt::format("vif {}.{}: backend state 4", fe, devid)) == std::string::npos);
    CHECK(log.find(fmt::format("vif {}.{}: hotplug-status connected", fe, devid)) == std::string::npos);
}

} // namespace

TEST_CASE("e2e: a MAC already in use is refused before InitWait, naming the MAC and its owner",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.create_domain("web2", 8);
    w.start_netbackd();
    connect(w, 7, 0);
    // xl network-attach fails: InitWait never comes. (Another guest's vif 1: the same devid
    // would be taken for a guest migrating here, decided at connect, see migrate_test.cpp.)
    CHECK_THROWS_AS(xensim::nic_add(w.dom0(), nic(8, 1, "00:16:3e:00:07:00"), kShortInit),
                    xensim::ToolstackError);
    check_refused(w, 8, 1,
                  fmt::format("{} MAC 00:16:3e:00:07:00 is already in use by vif 7.0 on the guest-only "
                              "switch (no uplink)",
                              EADDRINUSE));
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
    // The toolstack's clean-up after the failed attach completes.
    CHECK_NOTHROW(xensim::nic_remove(w.dom0(), 8, 1));
    CHECK_FALSE(w.dom0().read(0, W::be(8, 1) + "/state"));
}

TEST_CASE("e2e: of two vifs waiting with one MAC, the second to connect is refused before Connected",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.create_domain("web2", 8);
    w.start_netbackd();
    // Both reach InitWait: neither runs yet, so neither holds the MAC.
    xensim::nic_add(w.dom0(), nic(7, 0, "00:16:3e:00:00:99"));
    xensim::nic_add(w.dom0(), nic(8, 1, "00:16:3e:00:00:99"));
    w.guest(7).start_netfront(0);
    REQUIRE(w.wait_state(W::be(7, 0) + "/state", "4"));
    w.guest(8).start_netfront(1);
    check_refused(w, 8, 1,
                  fmt::format("{} MAC 00:16:3e:00:00:99 is already in use by vif 7.0 on the guest-only "
                              "switch (no uplink)",
                              EADDRINUSE));
    CHECK(w.driver_ports_in_use() == 2); // vif 7.0's split channels only: nothing of 8.0 is bound
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
}

TEST_CASE("e2e: the vif limit refuses the next attach and states the limit", "[control][e2e]") {
    SimWorld w;
    for (platform::DomId d = 7; d <= 10; ++d) w.create_domain(fmt::format("web{}", d), d);
    w.start_netbackd("[vif]\nmax_vifs = 2\n");
    connect(w, 7, 0);
    connect(w, 8, 0);
    CHECK_THROWS_AS(xensim::nic_add(w.dom0(), nic(9, 0), kShortInit), xensim::ToolstackError);
    check_refused(w, 9, 0,
                  fmt::format("{} netbackd already runs 2 vifs, its limit ([vif] max_vifs = 2)", ENOSPC));
    // A vif that goes frees its place.
    CHECK_NOTHROW(xensim::nic_remove(w.dom0(), 9, 0));
    CHECK_NOTHROW(xensim::nic_remove(w.dom0(), 8, 0));
    connect(w, 10, 0);
}

TEST_CASE("e2e: a frontend state outside the xenbus range writes Linux's error and closes",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    connect(w, 7, 0);
    w.guest(7).store->write(0, W::fe(7, 0) + "/state", "42");
    // Closing, or already Closed when the netfront answered Closing before a poll saw 5.
    CHECK(w.wait_closing_or_closed(W::be(7, 0) + "/state"));
    CHECK(w.dom0().read(0, W::error_node(7, 0)) == fmt::format("{} saw state 42 at frontend", EINVAL));
    CHECK(w.driver_ports_in_use() == 0);
}
