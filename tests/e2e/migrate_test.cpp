// Guests that sleep and move, on the simulated platform, as the lab's scenarios a and b run them
// on real Xen: a guest saved and restored, and a guest migrated to this same host, come back
// as a new domain with a new backend dir and the same NIC (devid and MAC). netbackd serves the
// new vif and keeps nothing of the old one.
#include <catch2/catch.hpp>

#include <cerrno>

#include <fmt/format.h>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr const char* kMac = "00:16:3e:00:00:11";

xensim::NicSpec nic(platform::DomId fe, std::uint32_t devid = 0) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = kMac;
    return s;
}

// `xensim domain destroy`: what libxl does to the old domain once the new one runs.
void destroy(SimWorld& w, const std::string& name) {
    REQUIRE(run({XENSIM_BINARY, "domain", "destroy", name, "--dir", w.host_dir()},
                w.dir() + "/destroy.log") == 0);
}

// The guest's NIC attached by the toolstack and its netfront Connected.
void attach_connected(SimWorld& w, platform::DomId fe) {
    xensim::nic_add(w.dom0(), nic(fe));
    w.guest(fe).start_netfront(0);
    REQUIRE(w.wait_state(W::be(fe, 0) + "/state", "4"));
}

} // namespace

TEST_CASE("e2e: save + restore: the restored guest's new vif connects, nothing of the old one stays",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("client1", 7);
    w.start_netbackd();
    attach_connected(w, 7);
    const int ports = w.driver_ports_in_use();
    // xl save: the guest suspends, then the domain is destroyed with its devices.
    w.guest(7).netfront.reset();
    destroy(w, "client1");
    CHECK(w.driver_ports_in_use() == 0);
    // xl restore: a new domain, the same NIC; its netfront comes back through Initialising.
    w.create_domain("client1", 9);
    xensim::nic_add(w.dom0(), nic(9));
    w.guest(9).start_netfront(0);
    CHECK(w.wait_state(W::be(9, 0) + "/state", "4"));
    CHECK(w.driver_ports_in_use() == ports);
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/1/backend/vif/7"));
}

TEST_CASE("e2e: migration to this host: the incoming vif with the same NIC waits for the old one, then "
          "connects",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("client1", 7);
    w.start_netbackd();
    attach_connected(w, 7);
    const int ports = w.driver_ports_in_use();
    // The sender suspends the guest (its vif stays connected) and streams it; the receiver
    // creates the incoming domain and its devices, and fails the migration unless the backend
    // reaches InitWait: the same MAC on the same devid must not be refused here.
    w.guest(7).netfront.reset();
    w.create_domain("client1--incoming", 8);
    REQUIRE_NOTHROW(xensim::nic_add(w.dom0(), nic(8)));
    CHECK(w.dom0().read(0, W::be(8, 0) + "/hotplug-status").value_or("") != "error");
    // The receiver unpauses the guest: its netfront resumes and connects, while the old
    // domain still holds the MAC. The new vif waits for it instead of being refused.
    w.guest(8).start_netfront(0);
    CHECK_FALSE(w.wait_state(W::be(8, 0) + "/state", "4", std::chrono::seconds(2)));
    CHECK(w.dom0().read(0, W::be(8, 0) + "/state") == "2");
    // The sender destroys the old domain: the MAC is free and the new vif connects.
    destroy(w, "client1");
    CHECK(w.wait_state(W::be(8, 0) + "/state", "4", std::chrono::seconds(20)));
    CHECK(w.dom0().read(0, W::be(8, 0) + "/hotplug-status") == "connected");
    CHECK_FALSE(w.dom0().read(0, W::error_node(8, 0)));
    CHECK(w.driver_ports_in_use() == ports);
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/1/backend/vif/7"));
    const auto log = w.netbackd_log();
    CHECK(log.find("vif 8.0: hotplug-status error") == std::string::npos);
}

TEST_CASE("e2e: a failed migration: the incoming vif goes, the old guest keeps its vif", "[control][e2e]") {
    SimWorld w;
    w.create_domain("client1", 7);
    w.start_netbackd();
    attach_connected(w, 7);
    w.create_domain("client1--incoming", 8);
    REQUIRE_NOTHROW(xensim::nic_add(w.dom0(), nic(8)));
    w.guest(8).start_netfront(0);
    // The receiver gives up and destroys its domain; the sender resumes the old one.
    w.guest(8).netfront.reset();
    destroy(w, "client1--incoming");
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/1/backend/vif/8"));
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
    CHECK(w.driver_ports_in_use() == 2);
}

TEST_CASE("e2e: the same NIC on two guests that both stay is refused at connect after the move wait",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.create_domain("web2", 8);
    w.start_netbackd();
    attach_connected(w, 7);
    // Two guests configured with one MAC look like a guest moving here until the wait (30 s)
    // is over: then the second is refused, before Connected, as any MAC in use is.
    REQUIRE_NOTHROW(xensim::nic_add(w.dom0(), nic(8)));
    w.guest(8).start_netfront(0);
    // Refused means hotplug-status=error and Closing; the netfront may answer Closing with
    // Closed quickly enough that the backend is Closed before a poll of its state sees 5.
    // hotplug-status comes first, then the error node, then the state: wait for the last.
    CHECK(w.wait_state(W::be(8, 0) + "/hotplug-status", "error", std::chrono::seconds(90)));
    CHECK(w.wait_closing_or_closed(W::be(8, 0) + "/state"));
    CHECK(w.dom0().read(0, W::error_node(8, 0)) ==
          fmt::format(
              "{} MAC {} is already in use by vif 7.0 on the guest-only switch (no uplink) (waited 30 s "
              "for it to go)",
              EADDRINUSE, kMac));
    CHECK(w.netbackd_log().find("vif 8.0: backend state 4") == std::string::npos);
    CHECK(w.driver_ports_in_use() == 2); // vif 7.0's only
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
}
