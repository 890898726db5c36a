// The uplink's MTU comes from [[dpdk.ports]] mtu (the data plane drops longer frames toward it).
#include <catch2/catch.hpp>

#include "backend/control/config.hpp"

using netbackd::control::ConfigError;
using netbackd::control::parse_global;

TEST_CASE("a port's MTU is read from [[dpdk.ports]], range-checked, and optional", "[dataplane][mtu]") {
    const auto g = parse_global(R"([[dpdk.ports]]
name = "up0"
vdev = "net_tap0"
mtu = 9000
[[dpdk.ports]]
name = "up1"
vdev = "net_tap1"
)",
                                "t.toml");
    REQUIRE(g.ports.size() == 2);
    CHECK(g.ports[0].mtu == 9000);
    CHECK_FALSE(g.ports[1].mtu.has_value());
    CHECK_THROWS_AS(parse_global("[[dpdk.ports]]\nname = \"u\"\nvdev = \"net_tap0\"\nmtu = 20\n", "t.toml"),
                    ConfigError);
    CHECK_THROWS_AS(
        parse_global("[[dpdk.ports]]\nname = \"u\"\nvdev = \"net_tap0\"\nmtu = \"big\"\n", "t.toml"),
        ConfigError);
}
