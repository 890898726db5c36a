// xensim's toolstack and guest verbs that end a vif without a normal detach, against the real
// netbackd: `xensim domain destroy` (what `xl destroy` does to a domain's devices) and a
// netfront that goes straight to Closed without ever connecting.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

xensim::NicSpec nic(platform::DomId fe, std::uint32_t devid) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = fmt::format("00:16:3e:00:{:02x}:{:02x}", fe & 0xff, devid & 0xff);
    return s;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    return {std::istreambuf_iterator<char>(f), {}};
}

} // namespace

TEST_CASE("e2e: xensim domain destroy takes the domain's vifs down as xl destroy does", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.create_domain("web2", 8);
    w.start_netbackd();
    for (std::uint32_t devid = 0; devid < 2; ++devid) {
        xensim::nic_add(w.dom0(), nic(7, devid));
        w.guest(7).start_netfront(devid);
        REQUIRE(w.wait_state(W::be(7, devid) + "/state", "4"));
    }
    xensim::nic_add(w.dom0(), nic(8, 0));
    w.guest(8).start_netfront(0);
    REQUIRE(w.wait_state(W::be(8, 0) + "/state", "4"));
    w.guest(7).netfront.reset(); // the guest stops; it never answers again

    const std::string log = w.dir() + "/destroy.log";
    REQUIRE(run({XENSIM_BINARY, "domain", "destroy", "web1", "--dir", w.host_dir()}, log) == 0);
    // When it returns, netbackd has closed both vifs and removed their backend dirs: the
    // toolstack waited for that (online=0, state 5 -> 6 -> removal), with nothing to force.
    CHECK(slurp(log).find("unable to remove") == std::string::npos);
    CHECK(slurp(log).find("timed out") == std::string::npos);
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/1/backend/vif/7"));
    CHECK_FALSE(w.dom0().directory(0, "/libxl/7"));
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/7"));
    CHECK(w.driver_ports_in_use() == 2); // web2's vif only
    CHECK(w.dom0().read(0, W::be(8, 0) + "/state") == "4");
    const auto nb = w.netbackd_log();
    CHECK(nb.find("vif 7.0: backend state 6 (Closed)") != std::string::npos);
    CHECK(nb.find("vif 7.1: backend state 6 (Closed)") != std::string::npos);
}

TEST_CASE("e2e: xensim domain destroy does not wait forever for a backend that never answers",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    xensim::NicSpec s = nic(7, 0);
    // Written as libxl does, with no netbackd running: nobody answers.
    CHECK_THROWS_AS(xensim::nic_add(w.dom0(), s, std::chrono::milliseconds(100)), xensim::ToolstackError);
    const std::string log = w.dir() + "/destroy.log";
    REQUIRE(run({XENSIM_BINARY, "domain", "destroy", "web1", "--dir", w.host_dir()}, log) == 0);
    CHECK(slurp(log).find("wanted state 6 timed out") != std::string::npos);
    CHECK(w.dom0().read(0, W::be(7, 0) + "/online") == "0"); // the driver domain's to remove
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "5");
    CHECK_FALSE(w.dom0().directory(0, "/local/domain/7"));
}

TEST_CASE("e2e: a netfront that goes straight to Closed: the backend follows, no error, the dir stays",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    xensim::nic_add(w.dom0(), nic(7, 0));
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--flavour", "closes", "--dir", w.host_dir()},
                           w.dir() + "/netfront.log");
    CHECK(w.wait_state(W::fe(7, 0) + "/state", "6"));
    CHECK(w.wait_state(W::be(7, 0) + "/state", "6"));
    CHECK_FALSE(w.dom0().read(0, W::error_node(7, 0)));
    CHECK(w.dom0().read(0, W::be(7, 0) + "/online") == "1"); // a guest's close is not a detach
    CHECK(w.driver_ports_in_use() == 0);
    CHECK(w.netbackd_log().find("vif 7.0: backend state 4") == std::string::npos);
    kill(nf, SIGTERM);
    CHECK(reap(nf) == 0);
    CHECK_NOTHROW(xensim::nic_remove(w.dom0(), 7, 0));
    CHECK_FALSE(w.dom0().read(0, W::be(7, 0) + "/state"));
}
