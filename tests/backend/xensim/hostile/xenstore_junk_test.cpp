// xenstore junk from a guest against the real netbackd binary (SimWorld): the guest writes what
// it likes into its own frontend dir. netbackd must keep serving the healthy vif, and leave the
// attacked one as Linux netback would: error node and Closing for unreadable keys.
#include <csignal>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "../../control/sim_world.hpp"
#include "backend/xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kHealthy = 7;
constexpr platform::DomId kAttacker = 8;

xensim::NicSpec nic(platform::DomId fe) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = 0;
    s.mac = fmt::format("00:16:3e:00:{:02x}:00", fe & 0xff);
    return s;
}

struct JunkWorld {
    JunkWorld() {
        w.create_domain("healthy", kHealthy);
        w.create_domain("attacker", kAttacker);
        w.start_netbackd();
        xensim::nic_add(w.dom0(), nic(kHealthy));
        w.guest(kHealthy).start_netfront(0);
        REQUIRE(w.wait_state(W::be(kHealthy, 0) + "/state", "4"));
    }
    // netbackd still alive and the healthy vif still connected with its channels bound.
    void check_healthy() {
        CHECK(::kill(w.netbackd_pid(), 0) == 0);
        CHECK(w.dom0().read(0, W::be(kHealthy, 0) + "/state") == "4");
        CHECK_FALSE(w.dom0().read(0, W::error_node(kHealthy, 0)).has_value());
        CHECK(w.driver_ports_in_use() >= 1);
    }
    platform::Store& attacker() { return *w.guest(kAttacker).store; }
    W w;
};

} // namespace

TEST_CASE("xenstore junk: non-numeric and huge ring refs close that vif with an error node", "[hostile][xenstore]") {
    JunkWorld j;
    xensim::nic_add(j.w.dom0(), nic(kAttacker)); // backend at InitWait
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    j.attacker().write(0, fe + "/tx-ring-ref", "not-a-number");
    j.attacker().write(0, fe + "/rx-ring-ref", std::string(3000, '9'));
    j.attacker().write(0, fe + "/event-channel", "0x");
    j.attacker().write(0, fe + "/request-rx-copy", "1");
    j.attacker().write(0, fe + "/state", "4");
    // xenbus_dev_fatal: error node written, backend Closing.
    REQUIRE(j.w.wait_node(W::error_node(kAttacker, 0), [](const auto& v) { return v.has_value(); }));
    CHECK(j.w.wait_state(W::be(kAttacker, 0) + "/state", "5"));
    j.check_healthy();
}

TEST_CASE("xenstore junk: frontend state flapping 1<->4 a thousand times", "[hostile][xenstore]") {
    JunkWorld j;
    xensim::nic_add(j.w.dom0(), nic(kAttacker));
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    for (int i = 0; i < 1000; ++i) j.attacker().write(0, fe + "/state", i % 2 == 0 ? "1" : "4");
    j.attacker().write(0, fe + "/state", "1");
    j.check_healthy();
    // A real netfront still gets the vif afterwards.
    j.w.guest(kAttacker).start_netfront(0);
    CHECK(j.w.wait_state(W::be(kAttacker, 0) + "/state", "4"));
    j.check_healthy();
}

TEST_CASE("xenstore junk: frontend dir deleted under a connected vif", "[hostile][xenstore]") {
    JunkWorld j;
    xensim::nic_add(j.w.dom0(), nic(kAttacker));
    j.w.guest(kAttacker).start_netfront(0);
    REQUIRE(j.w.wait_state(W::be(kAttacker, 0) + "/state", "4"));
    j.attacker().rm(0, W::fe(kAttacker, 0));
    // A vanished frontend reads as Closed: the backend leaves Connected.
    CHECK(j.w.wait_node(W::be(kAttacker, 0) + "/state", [](const auto& v) { return v != "4"; }));
    j.check_healthy();
}

TEST_CASE("xenstore junk: a huge value in the frontend dir", "[hostile][xenstore]") {
    JunkWorld j;
    xensim::nic_add(j.w.dom0(), nic(kAttacker));
    (void)j.w.guest(kAttacker);
    const std::string fe = W::fe(kAttacker, 0);
    try {
        j.attacker().write(0, fe + "/mac", std::string(4000, 'f'));
        j.attacker().write(0, fe + "/feature-sg", std::string(4000, '1'));
    } catch (const std::exception&) {
        // xenstored may refuse the size itself; then the junk never reaches netbackd.
    }
    j.w.guest(kAttacker).start_netfront(0);
    // Whatever it makes of the junk, netbackd answers: Connected or an error node.
    CHECK(j.w.wait_node(W::be(kAttacker, 0) + "/state",
                        [](const auto& v) { return v == "4" || v == "5"; }));
    j.check_healthy();
}
