// What `netbackd run` says when its configuration cannot work: each problem on a log line of its
// own with its level, and an MTU the uplink's device cannot take named by key, file:line, port
// and the device's maximum.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/support/netbackd_on_xensim.hpp"

using namespace netbackd::testing;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    return out;
}

std::string write_config(const SimWorld& w, const std::string& extra) {
    const std::string path = w.dir() + "/netbackd.toml";
    std::ofstream(path) << fmt::format("[service]\nplatform = \"sim\"\nclients_dir = \"clients\"\n"
                                       "[sim]\ndir = \"{}\"\ndomid = {}\n{}",
                                       w.host_dir(), kDriverDomain, extra);
    return path;
}

} // namespace

TEST_CASE("a rejected configuration is one error line per problem", "[service][config]") {
    SimWorld w;
    const std::string port = "[[dpdk.ports]]\nname = \"uplink0\"\nvdev = \"net_null0\"\n";
    // Two problems in the global file.
    auto cfg = write_config(w, port + "mtu = 65535\n[workers]\nburst = 0\n");
    CHECK(run({NETBACKD_BINARY, "run", "--config", cfg}, w.dir() + "/global.log") == 2);
    auto lines = lines_of(w.dir() + "/global.log");
    INFO(fmt::format("{}", fmt::join(lines, "\n")));
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].find("[error] configuration rejected: " + cfg + ":10: 'mtu' = 65535 outside 68..16110") !=
          std::string::npos);
    CHECK(lines[1].find("[error] configuration rejected: " + cfg + ":12: 'burst' = 0 outside 1..256") !=
          std::string::npos);

    // Two bad client files: one names no port, one has a VLAN out of range.
    cfg = write_config(w, port);
    w.write_client_file("a.toml", "[match]\ndomain = \"a\"\n[vif]\nuplink = \"nope\"\n");
    w.write_client_file("b.toml", "[match]\ndomain = \"b\"\n[vif]\nvlan = 0\n");
    CHECK(run({NETBACKD_BINARY, "run", "--config", cfg}, w.dir() + "/clients.log") == 2);
    lines = lines_of(w.dir() + "/clients.log");
    INFO(fmt::format("{}", fmt::join(lines, "\n")));
    REQUIRE(lines.size() == 2);
    for (const auto& l : lines) CHECK(l.find("[error] configuration rejected: ") != std::string::npos);
    CHECK(lines[0].find("b.toml:4: 'vlan' = 0 outside 1..4094") != std::string::npos);
    CHECK(lines[1].find("a.toml:4: 'uplink' = \"nope\" is not a port of " + cfg + " (ports: uplink0)") !=
          std::string::npos);
}

TEST_CASE("an MTU the uplink cannot take is refused at start with key, file:line, port and maximum",
          "[service][config][mtu]") {
    // net_af_packet bounds frames at 1518 bytes by its max_rx_pktlen (max_mtu says 65535); it
    // needs CAP_NET_RAW for its socket on lo.
    if (geteuid() != 0) {
        WARN("skipped: net_af_packet needs root");
        return;
    }
    SimWorld w;
    const auto cfg =
        write_config(w, "[[dpdk.ports]]\nname = \"uplink0\"\nvdev = \"net_af_packet0,iface=lo\"\n"
                        "\nmtu = 9000\n");
    const std::string log = w.dir() + "/mtu.log";
    CHECK(run({NETBACKD_BINARY, "run", "--config", cfg}, log) == 1);
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    INFO(text.str());
    CHECK(text.str().find(fmt::format("cannot start the data plane: {}:11: 'mtu' = 9000 for port uplink0 "
                                      "(net_af_packet0): the device takes at most 1500",
                                      cfg)) != std::string::npos);
}
