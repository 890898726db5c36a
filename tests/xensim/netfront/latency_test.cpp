// Latency mode (--latency-peer) and polling generator (--poll) of `xensim netfront`, as bench/
// runs them against the netbackd binary, and the percentile arithmetic behind the figures.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/latency.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

void add_vif(SimWorld& w, std::uint32_t devid) {
    xensim::NicSpec s;
    s.frontend = 7;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = "00:16:3e:00:07:0" + std::to_string(devid);
    xensim::nic_add(w.dom0(), s);
}

nlohmann::json last_json(const std::string& path, const std::string& first_key) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    INFO(text);
    const auto brace = text.rfind("{\"" + first_key + "\"");
    REQUIRE(brace != std::string::npos);
    return nlohmann::json::parse(text.substr(brace, text.find('\n', brace) - brace));
}

} // namespace

TEST_CASE("percentiles are nearest-rank over sorted samples", "[xensim][netfront][latency]") {
    std::vector<std::uint32_t> s;
    for (std::uint32_t i = 1; i <= 1000; ++i) s.push_back(i * 1000); // 1..1000 us
    CHECK(xensim::percentile_us(s, 0.50) == Approx(500));
    CHECK(xensim::percentile_us(s, 0.99) == Approx(990));
    CHECK(xensim::percentile_us(s, 0.999) == Approx(999));
    CHECK(xensim::percentile_us(s, 0.0) == Approx(1));
    CHECK(xensim::percentile_us(s, 1.0) == Approx(1000));
    CHECK(xensim::percentile_us({}, 0.5) == 0);
    CHECK(xensim::percentile_us({7000}, 0.999) == Approx(7));
}

TEST_CASE("netfront verb: latency mode bounces a frame between two vifs through netbackd",
          "[xensim][netfront][latency]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    add_vif(w, 0);
    add_vif(w, 1);
    const std::string log = w.dir() + "/lat.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--latency-peer", "1",
                            "--generate", "128", "--seconds", "1", "--dir", w.host_dir()},
                           log);
    REQUIRE(reap(nf) == 0);
    const auto j = last_json(log, "rounds");
    CHECK(j.at("rounds").get<std::uint64_t>() > 0);
    CHECK(j.at("lost").get<std::uint64_t>() == 0);
    CHECK(j.at("min_us").get<double>() > 0);
    CHECK(j.at("min_us").get<double>() <= j.at("p50_us").get<double>());
    CHECK(j.at("p50_us").get<double>() <= j.at("p99_us").get<double>());
    CHECK(j.at("p99_us").get<double>() <= j.at("p999_us").get<double>());
    CHECK(j.at("p999_us").get<double>() <= j.at("max_us").get<double>());
    // Both devices were closed on the way out.
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
    CHECK(w.dom0().read(0, W::fe(7, 1) + "/state") == "6");
}

TEST_CASE("netfront verb: latency mode refuses to pair a vif with itself", "[xensim][netfront][latency]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    add_vif(w, 0);
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--latency-peer", "0", "--seconds", "1",
               "--dir", w.host_dir()},
              w.dir() + "/self.log") != 0);
}

TEST_CASE("netfront verb: a polling generator moves frames and asks for no events",
          "[xensim][netfront][gen]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    add_vif(w, 0);
    const std::string log = w.dir() + "/poll.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--generate", "64", "--poll",
                            "--seconds", "1", "--dir", w.host_dir()},
                           log);
    REQUIRE(reap(nf) == 0);
    const auto j = last_json(log, "tx_pkts");
    CHECK(j.at("tx_pkts").get<std::uint64_t>() > 0);
    CHECK(j.at("tx_errors").get<std::uint64_t>() == 0);
}
