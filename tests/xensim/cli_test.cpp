// The xensim CLI builds a world that open_platform(--platform=sim) can live in.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <sys/wait.h>

#include "backend/platform/gntst.hpp"
#include "backend/platform/platform.hpp"
#include "backend/platform/sim/client.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

using namespace netbackd;

namespace {

int run_xensim(const std::string& dir, const std::string& args) {
    std::string cmd = fmt::format("'{}' {} --dir '{}' >/dev/null 2>&1", XENSIM_BINARY, args, dir);
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/netbackd-xensim-cli-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

platform::Platform open_in(const std::string& dir, platform::DomId domid) {
    platform::PlatformOptions o;
    o.kind = platform::PlatformKind::sim;
    o.sim_dir = dir;
    o.sim_domid = domid;
    return platform::open_platform(o);
}

} // namespace

TEST_CASE("xensim up, domain create/destroy, down: a world for open_platform", "[simxen][cli]") {
    TempDir dir;
    REQUIRE(run_xensim(dir.path, "up") == 0);
    CHECK(run_xensim(dir.path, "up") != 0); // one host per directory

    REQUIRE(run_xensim(dir.path, "domain create guest --domid 3 --memory 8") == 0);
    CHECK(run_xensim(dir.path, "domain create guest --domid 4") != 0); // name taken
    CHECK(run_xensim(dir.path, "domain create other --domid 3") != 0); // domid taken
    CHECK(run_xensim(dir.path, "domain create bad --domid 0") != 0);
    CHECK(run_xensim(dir.path, "domain list") == 0);
    CHECK(run_xensim(dir.path, "env 3") == 0);
    CHECK(run_xensim(dir.path, "env 9") != 0);

    {
        auto backend = open_in(dir.path, 0);
        auto guest = open_in(dir.path, 3);
        CHECK(guest.store->self_domid() == 3);
        CHECK(backend.store->read(0, "/local/domain/3/name") == "guest");
        CHECK(guest.store->read(0, "/local/domain/3/domid") == "3");

        // The guest grants a page to dom0, which copies from it.
        platform::GrantRef ref;
        xensim::Gfn gfn;
        xensim::GuestMemory memory(xensim::HvClient::connect(dir.path, 3));
        gfn = memory.alloc_page();
        memory.page(gfn)[5] = std::byte{42};
        ref = memory.grant_access(gfn, 0, true);
        std::byte out[8] = {};
        platform::CopySegment seg{};
        seg.source.foreign = {ref, 0, 3};
        seg.dest.virt = out;
        seg.len = sizeof out;
        seg.flags = GNTCOPY_source_gref;
        backend.grants->copy(std::span(&seg, 1));
        CHECK(seg.status == GNTST_okay);
        CHECK(out[5] == std::byte{42});

        // Channels between the two.
        auto fport = guest.events->alloc_unbound(0);
        auto bport = backend.events->bind_interdomain(3, fport);
        CHECK(backend.events->pending() == bport);

        REQUIRE(run_xensim(dir.path, "domain destroy guest") == 0);
        CHECK(backend.store->read(0, "/local/domain/3") == std::nullopt);
        backend.grants->copy(std::span(&seg, 1));
        CHECK(seg.status == GNTST_bad_domain);
        CHECK(run_xensim(dir.path, "domain destroy guest") != 0);
    }

    REQUIRE(run_xensim(dir.path, "down") == 0);
    CHECK_FALSE(std::filesystem::exists(dir.path + "/hypervisor.sock"));
    CHECK_FALSE(std::filesystem::exists(dir.path + "/xensim.pid"));
    CHECK_THROWS_AS(open_in(dir.path, 0), platform::PlatformError);
    CHECK(run_xensim(dir.path, "down") == 0); // idempotent
}
