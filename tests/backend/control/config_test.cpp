#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "backend/control/config.hpp"

using namespace netbackd::control;
namespace fs = std::filesystem;

namespace {

std::string error_of(auto&& fn) {
    try {
        fn();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return {};
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "netbackd-config-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
    void write(const fs::path& rel, std::string_view text) const {
        fs::create_directories((path / rel).parent_path());
        std::ofstream(path / rel) << text;
    }
};

} // namespace

TEST_CASE("the shipped example configs load", "[control][config]") {
    const Config cfg = load_config(fs::path(NETBACKD_SOURCE_DIR) / "configs/netbackd.toml");
    CHECK(cfg.global.platform == "xen");
    CHECK(cfg.global.max_queues == 4);
    CHECK(cfg.global.max_vifs == 1024);
    REQUIRE(cfg.global.ports.size() == 1);
    CHECK(cfg.global.ports[0].pci == "0000:03:00.0");
    CHECK(cfg.global.worker_cores == std::vector<unsigned>{2, 3});
    REQUIRE(cfg.clients.size() == 1);
    const auto& c = cfg.clients[0];
    CHECK(c.match_domain == "web1");
    CHECK(c.vlan == 100);
    REQUIRE(c.rate);
    CHECK(c.rate->usec == 50000);
    CHECK(c.rate->bytes == 100'000'000 / 8 / 20);
    CHECK(c.queues == 2);
}

TEST_CASE("global config errors name file and line", "[control][config]") {
    CHECK(error_of([] { parse_global("[service]\nplatfrom = \"xen\"\n", "g.toml"); }) ==
          "g.toml:2: unknown key 'platfrom' in [service]");
    CHECK(error_of([] { parse_global("[service]\nplatform = \"kvm\"\n", "g.toml"); }) ==
          "g.toml:2: 'platform' = \"kvm\" is not one of: xen, sim");
    CHECK(error_of([] { parse_global("[vif]\n\nmax_queues = 0\n", "g.toml"); }) ==
          "g.toml:3: 'max_queues' = 0 outside 1..64");
    CHECK(error_of([] { parse_global("[vif\n", "g.toml"); }).rfind("g.toml:1: ", 0) == 0);
    CHECK(error_of([] { parse_global("[[dpdk.ports]]\nname = \"a\"\n", "g.toml"); }) ==
          "g.toml:1: [[dpdk.ports]] needs exactly one of 'pci' or 'vdev'");
    const auto two = error_of([] { parse_global("[workers]\ncores = [1, -1]\npolling = 3\n", "g.toml"); });
    CHECK(two == "g.toml:2: 'cores' must hold core numbers 0..1023\ng.toml:3: 'polling' must be a string");
    CHECK(error_of([] { parse_global("[service]\nplatform = \"sim\"\n", "g.toml"); }).empty());
}

TEST_CASE("workers burst: unset keeps the worker's defaults, else 1..256", "[control][config]") {
    CHECK_FALSE(parse_global("[workers]\npolling = \"busy\"\n", "g.toml").burst.has_value());
    CHECK(parse_global("[workers]\nburst = 1\n", "g.toml").burst == 1u);
    CHECK(parse_global("[workers]\nburst = 64\n", "g.toml").burst == 64u);
    CHECK(error_of([] { parse_global("[workers]\nburst = 0\n", "g.toml"); }) ==
          "g.toml:2: 'burst' = 0 outside 1..256");
    CHECK(error_of([] { parse_global("[workers]\n\nburst = 257\n", "g.toml"); }) ==
          "g.toml:3: 'burst' = 257 outside 1..256");
}

TEST_CASE("client config validation", "[control][config]") {
    CHECK(error_of([] { parse_client("[vif]\nmac = \"00:16:3e:00:00:01\"\n", "c.toml"); }) ==
          "c.toml: needs a [match] table (domain = \"name\" [+ devid = N], or mac = \"..\")");
    CHECK(error_of([] { parse_client("[match]\ndevid = 1\n", "c.toml"); }) ==
          "c.toml:1: [match] needs 'domain' or 'mac'\nc.toml:1: [match] 'devid' only makes sense with "
          "'domain'");
    CHECK(error_of([] { parse_client("[match]\ndomain = \"a\"\n[vif]\nvlan = 4095\n", "c.toml"); }) ==
          "c.toml:4: 'vlan' = 4095 outside 1..4094");
    CHECK(error_of([] {
              parse_client("[match]\ndomain = \"a\"\n[vif]\nmac = \"01:00:00:00:00:01\"\n", "c.toml");
          }).find("c.toml:4: 'mac' = \"01:00:00:00:00:01\": multicast") == 0);
    CHECK(error_of([] { parse_client("[match]\ndomain = \"a\"\n[vif]\nrate = \"1,0\"\n", "c.toml"); }) ==
          "c.toml:4: 'rate' = \"1,0\": rate interval of 0 usec");
    CHECK(error_of([] { parse_client("[match]\ndomain = \"a\"\n[vif]\nscript = \"hook\"\n", "c.toml"); }) ==
          "c.toml:4: 'script' must be an absolute path");
    const auto ok =
        parse_client("[vif]\nrate = \"1000,20000\"\n[match]\nmac = \"00:16:3e:00:00:01\"\n", "c.toml");
    CHECK(ok.rate == Rate{1000, 20000});
    CHECK(ok.source == "c.toml:3");
}

TEST_CASE("load_config reads clients_dir and reports every bad file", "[control][config]") {
    TempDir d;
    d.write("netbackd.toml", "[service]\nplatform = \"sim\"\nclients_dir = \"cl\"\n");
    d.write("cl/a.toml", "[match]\ndomain = \"a\"\n");
    d.write("cl/ignored.txt", "junk");
    CHECK(load_config(d.path / "netbackd.toml").clients.size() == 1);

    d.write("cl/b.toml", "[vif]\nvlan = 0\n[match]\ndomain = \"b\"\n");
    d.write("cl/c.toml", "[match\n");
    const auto e = error_of([&] { load_config(d.path / "netbackd.toml"); });
    CHECK(e.find((d.path / "cl/b.toml").string() + ":2: 'vlan' = 0 outside 1..4094") != std::string::npos);
    CHECK(e.find((d.path / "cl/c.toml").string() + ":1: ") != std::string::npos);
    CHECK(error_of([&] { load_config(d.path / "missing.toml"); }).find("cannot read") != std::string::npos);
}

TEST_CASE("a port MTU outside 68..16110 is refused at load with its key and line", "[control][config]") {
    const std::string port = "[[dpdk.ports]]\nname = \"up\"\nvdev = \"net_null0\"\n";
    CHECK(error_of([&] { parse_global(port + "mtu = 65535\n", "g.toml"); }) ==
          "g.toml:4: 'mtu' = 65535 outside 68..16110");
    CHECK(error_of([&] { parse_global(port + "mtu = 16111\n", "g.toml"); }) ==
          "g.toml:4: 'mtu' = 16111 outside 68..16110");
    CHECK(error_of([&] { parse_global(port + "mtu = 67\n", "g.toml"); }) ==
          "g.toml:4: 'mtu' = 67 outside 68..16110");
    const auto g = parse_global(port + "\nmtu = 9000\n", "g.toml");
    REQUIRE(g.ports.size() == 1);
    CHECK(g.ports[0].mtu == 9000);
    // Kept for a refusal at start, when the device's own maximum is known.
    CHECK(g.ports[0].mtu_source == "g.toml:5");
    CHECK(parse_global(port + "mtu = 16110\n", "g.toml").ports[0].mtu == kMaxPortMtu);
}

TEST_CASE("a client rate that could wrap the token bucket is refused at load", "[control][config]") {
    CHECK(error_of([] {
              parse_client("[match]\ndomain = \"a\"\n[vif]\nrate = \"18446744073709551615,50000\"\n",
                           "c.toml");
          }) == "c.toml:4: 'rate' = \"18446744073709551615,50000\": 18446744073709551615 bytes per interval "
                "above the maximum 1099511627776");
    // rate_mbit's largest value stays within the bound.
    const auto c = parse_client("[match]\ndomain = \"a\"\n[vif]\nrate_mbit = 1000000\n", "c.toml");
    REQUIRE(c.rate);
    CHECK(c.rate->bytes <= kMaxRateBytes);
}

TEST_CASE("a client naming an uplink that does not exist is refused at load with file:line",
          "[control][config]") {
    TempDir d;
    d.write("netbackd.toml", "[service]\nplatform = \"sim\"\nclients_dir = \"" + (d.path / "cl").string() +
                                 "\"\n[[dpdk.ports]]\nname = \"uplink0\"\nvdev = \"net_null0\"\n");
    d.write("cl/a.toml", "[match]\ndomain = \"a\"\n[vif]\nuplink = \"uplink0\"\n");
    CHECK(load_config(d.path / "netbackd.toml").clients.at(0).uplink == "uplink0");
    d.write("cl/b.toml", "[match]\ndomain = \"b\"\n[vif]\nvlan = 5\nuplink = \"uplnk0\"\n");
    CHECK(error_of([&] { load_config(d.path / "netbackd.toml"); }) ==
          (d.path / "cl/b.toml").string() + ":5: 'uplink' = \"uplnk0\" is not a port of " +
              (d.path / "netbackd.toml").string() + " (ports: uplink0)");
    // Without any port, every uplink is unknown.
    d.write("netbackd.toml",
            "[service]\nplatform = \"sim\"\nclients_dir = \"" + (d.path / "cl").string() + "\"\n");
    const auto e = error_of([&] { load_config(d.path / "netbackd.toml"); });
    CHECK(e.find("a.toml:4: 'uplink' = \"uplink0\" is not a port of") != std::string::npos);
    CHECK(e.find("(it has no [[dpdk.ports]])") != std::string::npos);
    CHECK(std::count(e.begin(), e.end(), '\n') == 1); // one line per problem
}

TEST_CASE("match_client prefers the most specific entry", "[control][config]") {
    Config cfg;
    cfg.clients.push_back(parse_client("[vif]\nvlan = 1\n[match]\ndomain = \"web\"\n", "1.toml"));
    cfg.clients.push_back(parse_client("[vif]\nvlan = 2\n[match]\nmac = \"00:16:3e:00:00:02\"\n", "2.toml"));
    cfg.clients.push_back(parse_client("[vif]\nvlan = 3\n[match]\ndomain = \"web\"\ndevid = 1\n", "3.toml"));
    const Mac m2{0x00, 0x16, 0x3e, 0, 0, 2};
    const Mac other{0x00, 0x16, 0x3e, 0, 0, 9};

    CHECK(match_client(cfg, "web", 1, other)->vlan == 3);
    CHECK(match_client(cfg, "web", 0, other)->vlan == 1);
    CHECK(match_client(cfg, "web", 0, m2)->vlan == 2);
    CHECK(match_client(cfg, "db", 1, m2)->vlan == 2);
    CHECK(match_client(cfg, "db", 1, other) == nullptr);
    CHECK(match_client(cfg, "db", 1, std::nullopt) == nullptr);
}

TEST_CASE("the vif limit is a [vif] key, 1024 by default, range-checked", "[control][config]") {
    CHECK(parse_global("", "g.toml").max_vifs == 1024);
    CHECK(parse_global("[vif]\nmax_vifs = 4096\n", "g.toml").max_vifs == 4096);
    CHECK(error_of([] { parse_global("[vif]\nmax_vifs = 0\n", "g.toml"); }) ==
          "g.toml:2: 'max_vifs' = 0 outside 1..16384");
    CHECK(error_of([] { parse_global("[vif]\nmax_vifs = 70000\n", "g.toml"); }) ==
          "g.toml:2: 'max_vifs' = 70000 outside 1..16384");
}

TEST_CASE("the back-pressure wait is a [vif] key, 20 ms by default, range-checked", "[control][config]") {
    CHECK(parse_global("", "g.toml").rx_wait_ms == 20);
    CHECK(parse_global("[vif]\nrx_wait_ms = 0\n", "g.toml").rx_wait_ms == 0);
    CHECK(error_of([] { parse_global("[vif]\nrx_wait_ms = 5000\n", "g.toml"); }) ==
          "g.toml:2: 'rx_wait_ms' = 5000 outside 0..1000");
}
