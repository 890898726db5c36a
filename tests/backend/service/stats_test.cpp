// `netbackd stats` reports what the running service holds: every connected vif's ring pages,
// its bound channels, and gives them back on detach. The counts a soak test relies on.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <string>

#include "tests/support/held_resources.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

xensim::NicSpec nic(platform::DomId fe) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = 0;
    s.mac = fmt::format("00:16:3e:00:{:02x}:00", fe & 0xff);
    return s;
}

} // namespace

TEST_CASE("netbackd stats: held resources follow attach and detach", "[service][stats]") {
    SimWorld w;
    w.create_domain("a", 21);
    w.create_domain("b", 22);
    w.start_netbackd();
    const std::string log = w.dir() + "/stats.log";

    const Held idle = netbackd_stats(w.netbackd_pid(), log);
    CHECK(idle.vifs == 0);
    CHECK(idle.mapped_pages == 0);
    CHECK(idle.bound_ports == 0);
    CHECK(idle.negative_counts == 0);
    CHECK(idle.open_fds > 0);
    CHECK(idle.rss_bytes > 0);
    INFO(idle.raw);
    REQUIRE_FALSE(idle.mbufs_in_use.empty());

    for (platform::DomId d : {21, 22}) {
        xensim::nic_add(w.dom0(), nic(d));
        w.guest(d).start_netfront(0, 1, d == 21); // one with split channels, one without
        REQUIRE(w.wait_state(W::be(d, 0) + "/state", "4"));
    }
    const Held two = netbackd_stats(w.netbackd_pid(), log);
    CHECK(two.vifs == 2);
    CHECK(two.mapped_pages == 4); // TX and RX ring of one queue each
    CHECK(two.bound_ports == 3);  // split channels: 2, shared: 1
    CHECK(two.bound_ports == w.driver_ports_in_use());
    CHECK(two.vifs_json.size() == 2);

    xensim::nic_remove(w.dom0(), 21, 0);
    const Held one = netbackd_stats(w.netbackd_pid(), log);
    CHECK(one.vifs == 1);
    CHECK(one.mapped_pages == 2);
    CHECK(one.bound_ports == 1);
    CHECK(one.bound_ports == w.driver_ports_in_use());

    xensim::nic_remove(w.dom0(), 22, 0);
    const Held none = netbackd_stats(w.netbackd_pid(), log);
    CHECK(none.vifs == 0);
    CHECK(none.mapped_pages == 0);
    CHECK(none.bound_ports == 0);
    CHECK(none.negative_counts == 0);
    CHECK(same_mbufs_held(idle, none));
    // The hypervisor client keeps one view (descriptor) per domain it has mapped from, while the
    // domain lives: two domains, two more. A second cycle must not add any.
    CHECK(none.open_fds <= idle.open_fds + 2);
    for (platform::DomId d : {21, 22}) {
        xensim::nic_add(w.dom0(), nic(d));
        w.guest(d).start_netfront(0, 1, true);
        REQUIRE(w.wait_state(W::be(d, 0) + "/state", "4"));
        xensim::nic_remove(w.dom0(), d, 0);
    }
    const Held again = netbackd_stats(w.netbackd_pid(), log);
    CHECK(again.vifs == 0);
    CHECK(again.mapped_pages == 0);
    CHECK(again.bound_ports == 0);
    CHECK(again.open_fds == none.open_fds);
    CHECK(same_mbufs_held(idle, again));
}

TEST_CASE("netbackd stats --prometheus: the same names and values as --json, valid text format",
          "[service][stats]") {
    SimWorld w;
    w.create_domain("a", 21);
    w.start_netbackd();
    xensim::nic_add(w.dom0(), nic(21));
    w.guest(21).start_netfront(0, 1, true);
    REQUIRE(w.wait_state(W::be(21, 0) + "/state", "4"));

    const std::string log = w.dir() + "/stats.log";
    const std::string prom = w.dir() + "/stats.prom";
    const std::string json = w.dir() + "/stats.json";
    const auto stats = [&](const char* flag, const std::string& out) {
        return run({"/bin/sh", "-c",
                    fmt::format("'{}' stats {} --file-prefix netbackd-{} > '{}'", NETBACKD_BINARY, flag,
                                w.netbackd_pid(), out)},
                   log);
    };
    REQUIRE(stats("--prometheus", prom) == 0);
    REQUIRE(stats("--json", json) == 0);
    // The client library's own parser, and every --json value under its name.
    const int rc = run({"/usr/bin/python3", PROMETHEUS_CHECK, prom, json}, log);
    std::ifstream in(log);
    INFO(std::string(std::istreambuf_iterator<char>(in), {}));
    CHECK(rc == 0);
}
