// Choosing the platform, and failing cleanly where the chosen one is not available.
#include <string>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "backend/platform/options.hpp"
#include "backend/platform/platform.hpp"
#include "backend/platform/xen/xen_events.hpp"
#include "backend/platform/xen/xen_grants.hpp"

using namespace netbackd::platform;

namespace {

bool on_xen() {
    struct stat st {};
    return ::stat("/dev/xen/gntdev", &st) == 0;
}

std::string failure_of(const PlatformOptions& options) {
    try {
        open_platform(options);
    } catch (const PlatformError& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("platform names parse", "[simxen][platform]") {
    CHECK(parse_platform_kind("xen") == PlatformKind::xen);
    CHECK(parse_platform_kind("sim") == PlatformKind::sim);
    CHECK(parse_platform_kind("") == std::nullopt);
    CHECK(parse_platform_kind("Xen") == std::nullopt);
    CHECK(parse_platform_kind("simulated") == std::nullopt);
}

TEST_CASE("the real platform, opened without /dev/xen, fails with one line", "[simxen][platform]") {
    if (on_xen()) {
        WARN("running on Xen: the not-on-Xen failure cannot be observed here");
        return;
    }
    PlatformOptions xen;
    xen.kind = PlatformKind::xen;
    std::string why = failure_of(xen);
    CHECK(why == "/dev/xen/gntdev is missing: not running on Xen (use --platform=sim)");
    CHECK(why.find('\n') == std::string::npos);

    CHECK_THROWS_AS(XenGrants(), PlatformError);
    try {
        XenEvents events;
        FAIL("XenEvents opened without /dev/xen/evtchn");
    } catch (const PlatformError& e) {
        CHECK(std::string(e.what()) == "/dev/xen/evtchn is missing: not running on Xen (use --platform=sim)");
        CHECK(e.code() == ENOENT);
    }
}

TEST_CASE("the simulated platform names what is missing", "[simxen][platform]") {
    PlatformOptions sim;
    sim.kind = PlatformKind::sim;
    CHECK(failure_of(sim).find("--sim-dir") != std::string::npos);
    sim.sim_dir = "/nonexistent/netbackd-sim-host";
    std::string why = failure_of(sim);
    CHECK(why.find("/nonexistent/netbackd-sim-host/hypervisor.sock") != std::string::npos);
    CHECK(why.find("xensim up") != std::string::npos);
    CHECK(why.find('\n') == std::string::npos);
}

TEST_CASE("the platform options (--platform, --sim-dir, --sim-domid) parse", "[simxen][platform]") {
    {
        CLI::App app;
        PlatformOptions o;
        add_platform_options(app, o);
        // CLI11 consumes a vector of arguments from its back.
        app.parse(std::vector<std::string>{"7", "--sim-domid", "/tmp/host", "--sim-dir", "--platform=sim"});
        CHECK(o.kind == PlatformKind::sim);
        CHECK(o.sim_dir == "/tmp/host");
        CHECK(o.sim_domid == 7);
    }
    {
        CLI::App app;
        PlatformOptions o;
        add_platform_options(app, o);
        app.parse(std::vector<std::string>{"--platform=xen"});
        CHECK(o.kind == PlatformKind::xen);
    }
    {
        CLI::App app;
        PlatformOptions o;
        add_platform_options(app, o);
        CHECK_THROWS_AS(app.parse(std::vector<std::string>{"--platform=kvm"}), CLI::ValidationError);
    }
}
