// `netbackd stats --prometheus`'s formatter: the --json reply in the Prometheus text format,
// with the same names, one TYPE line per metric and its samples grouped under it.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/service/stats_prometheus.hpp"

using netbackd::service::prometheus_text;

namespace {

const nlohmann::json kStats = nlohmann::json::parse(R"({
  "vifs": {
    "vif7_0": {"state": "running", "worker": 1, "tx_packets": 10, "rx_bytes": 1500, "drop_spoofed": 2},
    "vif12_3": {"state": "attaching", "worker": 0, "tx_packets": 0, "rx_bytes": 0, "drop_spoofed": 0}
  },
  "resources": {"vifs": 2, "mapped_pages": 4, "rss_bytes": 123456789,
                "mbufs_in_use": {"uplink0": 512, "guest \"rx\"": 7}, "mbufs_total": {"uplink0": 4095}},
  "workers": {"worker0": {"vifs": 1, "uplink_rx": 99, "idle_timer": 0},
              "worker1": {"vifs": 1, "uplink_rx": 5, "idle_timer": 1}}
})");

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

} // namespace

TEST_CASE("stats --prometheus: per-vif, per-worker and resource samples named after the JSON",
          "[service][stats]") {
    const std::string text = prometheus_text(kStats);
    INFO(text);
    const auto lines = lines_of(text);
    const std::set<std::string> have(lines.begin(), lines.end());
    for (const char* want : {
             R"(netbackd_vif_tx_packets{vif="7.0",domid="7",devid="0"} 10)",
             R"(netbackd_vif_tx_packets{vif="12.3",domid="12",devid="3"} 0)",
             R"(netbackd_vif_rx_bytes{vif="7.0",domid="7",devid="0"} 1500)",
             R"(netbackd_vif_drop_spoofed{vif="7.0",domid="7",devid="0"} 2)",
             R"(netbackd_vif_state{vif="7.0",domid="7",devid="0",state="running"} 1)",
             R"(netbackd_vif_state{vif="12.3",domid="12",devid="3",state="attaching"} 1)",
             R"(netbackd_vif_worker{vif="7.0",domid="7",devid="0"} 1)",
             R"(netbackd_worker_uplink_rx{worker="0"} 99)",
             R"(netbackd_worker_idle_timer{worker="1"} 1)",
             R"(netbackd_resource_vifs 2)",
             R"(netbackd_resource_rss_bytes 123456789)",
             R"(netbackd_resource_mbufs_in_use{pool="uplink0"} 512)",
             R"(netbackd_resource_mbufs_in_use{pool="guest \"rx\""} 7)", // label value escaped
             R"(netbackd_resource_mbufs_total{pool="uplink0"} 4095)",
             "# TYPE netbackd_vif_tx_packets counter",
             "# TYPE netbackd_vif_drop_spoofed counter",
             "# TYPE netbackd_vif_state gauge",
             "# TYPE netbackd_vif_worker gauge",
             "# TYPE netbackd_worker_uplink_rx counter",
             "# TYPE netbackd_worker_vifs gauge",
             "# TYPE netbackd_resource_vifs gauge",
             "# TYPE netbackd_resource_mbufs_in_use gauge",
         }) {
        CHECK(have.count(want) == 1);
    }
}

TEST_CASE("stats --prometheus: every JSON value is one sample; each metric is one group under one TYPE",
          "[service][stats]") {
    const auto lines = lines_of(prometheus_text(kStats));
    // The exposition grammar: a TYPE line, or name{labels} value.
    const std::regex type_line(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$)");
    const std::regex sample(
        R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$)re");
    std::set<std::string> typed;
    std::string current;
    std::size_t samples = 0;
    for (const auto& l : lines) {
        INFO(l);
        std::smatch m;
        if (std::regex_match(l, m, type_line)) {
            CHECK(typed.insert(m[1]).second); // a second TYPE (or a split group) for one name
            current = m[1];
        } else {
            REQUIRE(std::regex_match(l, m, sample));
            CHECK(m[1] == current); // samples follow their own TYPE line
            ++samples;
        }
    }
    // vifs: 2 x 5 fields; resources: 3 numbers + 2 + 1 pools; workers: 2 x 3 fields.
    CHECK(samples == 10 + 6 + 6);
}

TEST_CASE("stats --prometheus: nothing running prints nothing, not a malformed file", "[service][stats]") {
    CHECK(prometheus_text(nlohmann::json::object()).empty());
    CHECK(prometheus_text(nlohmann::json{{"vifs", nlohmann::json::object()},
                                         {"resources", nlohmann::json::object()},
                                         {"workers", nlohmann::json::object()}})
              .empty());
}
