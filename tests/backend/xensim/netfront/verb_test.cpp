// The `xensim netfront` verb's data modes as a guest process against the netbackd binary:
// generator/sink output for bench/, and TAP mode's device in the guest's namespace.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "backend/xensim/netfront/tap.hpp"
#include "backend/xensim/toolstack/toolstack.hpp"
#include "tests/backend/control/sim_world.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr int kSkip = 77; // SKIP_RETURN_CODE, see skip_codes.cmake.in

void attach(SimWorld& w)
{
    w.create_domain("web1", 7);
    w.start_netbackd();
    xensim::NicSpec s;
    s.frontend = 7;
    s.backend = kDriverDomain;
    s.mac = "00:16:3e:00:07:00";
    xensim::nic_add(w.dom0(), s);
}

std::string slurp(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string capture(const std::string& cmd)
{
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p) != nullptr)
            out += buf;
        ::pclose(p);
    }
    return out;
}

} // namespace

TEST_CASE("netfront verb: generator/sink prints per-second lines and a final JSON line", "[xensim][netfront][gen]")
{
    SimWorld w;
    attach(w);
    const std::string log = w.dir() + "/gen.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--generate", "1514", "--sink",
                            "--seconds", "2", "--dir", w.host_dir()},
                           log);
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    REQUIRE(reap(nf) == 0);
    const std::string text = slurp(log);
    INFO(text);
    CHECK(text.find("state 4") != std::string::npos);
    CHECK(text.find("t=1s tx_pps=") != std::string::npos);
    const auto brace = text.rfind("{\"tx_pkts\"");
    REQUIRE(brace != std::string::npos);
    const auto j = nlohmann::json::parse(text.substr(brace, text.find('\n', brace) - brace));
    for (const char* k : {"tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes", "tx_errors"})
        CHECK(j.at(k).is_number_unsigned());
    CHECK(j.at("seconds").get<double>() >= 2.0);
    CHECK(j.at("tx_bytes").get<std::uint64_t>() == j.at("tx_pkts").get<std::uint64_t>() * 1514);
    // The device was closed on the way out.
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
}

TEST_CASE("netfront verb: a frame size below the headers is refused", "[xensim][netfront][gen]")
{
    SimWorld w;
    w.create_domain("web1", 7);
    const std::string log = w.dir() + "/bad.log";
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--generate", "20", "--dir", w.host_dir()}, log) != 0);
    CHECK(slurp(log).find("--generate") != std::string::npos);
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--tap", "x", "--sink", "--dir", w.host_dir()}, log) != 0);
    CHECK(slurp(log).find("exclude each other") != std::string::npos);
}

TEST_CASE("netfront verb: TAP mode makes the guest's device in its namespace, with the vif's MAC, up",
          "[xensim][netfront][tap]")
{
    std::string why;
    if (!xensim::tap_supported(&why)) {
        std::fprintf(stderr, "SKIP: %s\n", why.c_str());
        std::exit(kSkip);
    }
    SimWorld w;
    attach(w);
    const std::string ns = fmt::format("nbnfv{}", ::getpid());
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--tap", "nfv0", "--netns", ns,
                            "--dir", w.host_dir()},
                           w.dir() + "/tap.log");
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    std::string link;
    CHECK(w.wait_node("/", [&](auto&&) {
        link = capture(fmt::format("ip -n {} link show nfv0 2>/dev/null", ns));
        return link.find("00:16:3e:00:07:00") != std::string::npos;
    }));
    INFO(link << slurp(w.dir() + "/tap.log"));
    CHECK(link.find(",UP") != std::string::npos);
    kill(nf, SIGTERM);
    CHECK(reap(nf) == 0);
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
    xensim::delete_netns(ns);
}
