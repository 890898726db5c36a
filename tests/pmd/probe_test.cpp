// netbackd-pmd-probe, run as an operator would run it.
#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace {

struct Run {
    int status = -1;
    std::string out;
};

struct PipeClose {
    void operator()(FILE* f) const noexcept { ::pclose(f); }
};

Run run(const std::string& args) {
    // A prefix of our own: ctest runs tests in parallel.
    const std::string cmd = std::string(NETBACKD_PMD_PROBE) + " --file-prefix nbprobe-" +
                            std::to_string(::getpid()) + " " + args + " 2>/dev/null";
    Run r;
    FILE* raw = ::popen(cmd.c_str(), "r");
    REQUIRE(raw != nullptr);
    std::unique_ptr<FILE, PipeClose> pipe(raw);
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0) {
        r.out.append(buf.data(), n);
    }
    r.status = ::pclose(pipe.release());
    return r;
}

} // namespace

TEST_CASE("the probe reports a net_ring port as JSON", "[dataplane][probe]") {
    const auto r = run("--vdev net_ring0 --json");
    REQUIRE(WIFEXITED(r.status));
    REQUIRE(WEXITSTATUS(r.status) == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["port"] == "net_ring0");
    CHECK(j["driver"] == "net_ring");
    CHECK(j["enabled"]["tx_multi_segs"] == true);
    CHECK(j["enabled"]["tx_tcp_tso"] == false);
    CHECK(j["link"]["up"] == true);
    CHECK(j["carrier"] == "1");
    CHECK(j["mtu"] == 1500);
}

TEST_CASE("the probe explains what it cannot do", "[dataplane][probe]") {
    const auto none = run("");
    REQUIRE(WIFEXITED(none.status));
    CHECK(WEXITSTATUS(none.status) == 2);

    const auto bad = run("--vdev net_ring0 --in-memory");
    REQUIRE(WIFEXITED(bad.status));
    CHECK(WEXITSTATUS(bad.status) == 1);
}
