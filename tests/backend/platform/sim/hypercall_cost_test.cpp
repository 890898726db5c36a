// The host's hypercall cost model: what `xensim up --grant-copy-*-ns` sets reaches every
// process that joins a domain, and a charged grant copy still copies exactly as before.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/platform/gntst.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/hypercall_cost.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "xensim/hypervisor/guest_memory.hpp"
#include "xensim/hypervisor/hypervisor.hpp"

using namespace netbackd;
using namespace netbackd::xensim;

namespace {

// A hypervisor serving on a thread of this process, in its own temp dir.
struct CostHost {
    std::string dir;
    std::unique_ptr<Hypervisor> hv;
    std::thread thread;
    explicit CostHost(wire::CostModel costs) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "netbackd-hvcost-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir = tmpl;
        hv = std::make_unique<Hypervisor>(dir, costs);
        thread = std::thread([this] { hv->run(); });
    }
    ~CostHost() {
        hv->stop();
        thread.join();
        hv.reset();
        std::filesystem::remove_all(dir);
    }
};

} // namespace

TEST_CASE("cost model packs into one reply word and back", "[simxen][cost]") {
    const wire::CostModel c{2000, 100};
    CHECK(wire::unpack_costs(wire::pack_costs(c)) == c);
    CHECK(wire::unpack_costs(wire::pack_costs({0xffffffffu, 7})) == wire::CostModel{0xffffffffu, 7});
    CHECK(grant_copy_cost(c, 1) == std::chrono::nanoseconds(2100));
    CHECK(grant_copy_cost(c, 0) == std::chrono::nanoseconds(0));
    CHECK(grant_copy_cost({}, 64) == std::chrono::nanoseconds(0));
}

TEST_CASE("a grant copy costs one hypercall per 16 segments, as gntdev splits it", "[simxen][cost]") {
    const wire::CostModel c{2000, 100};
    CHECK(gntdev_hypercalls(16) == 1);
    CHECK(gntdev_hypercalls(17) == 2);
    CHECK(grant_copy_cost(c, 16) == std::chrono::nanoseconds(2000 + 16 * 100));
    CHECK(grant_copy_cost(c, 17) == std::chrono::nanoseconds(2 * 2000 + 17 * 100));
    CHECK(grant_copy_cost(c, 32) == std::chrono::nanoseconds(2 * 2000 + 32 * 100));
    CHECK(grant_copy_cost(c, 64) == std::chrono::nanoseconds(4 * 2000 + 64 * 100));
}

TEST_CASE("a process joining a domain learns the host's costs", "[simxen][cost]") {
    const wire::CostModel costs{500, 50};
    CostHost host(costs);
    auto admin = HvClient::connect_admin(host.dir);
    admin->create_domain(3, "front", 4u << 20);
    admin->create_domain(4, "back", 4u << 20);
    CHECK(admin->costs() == wire::CostModel{});
    auto back = HvClient::connect(host.dir, 4);
    CHECK(back->costs() == costs);

    SECTION("a charged copy still copies, segment by segment") {
        auto front = HvClient::connect(host.dir, 3);
        GuestMemory memory(front);
        const Gfn gfn = memory.alloc_page();
        const platform::GrantRef ref = memory.grant_access(gfn, 4, false);
        std::vector<std::byte> src(256);
        for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>(i * 7 + 1);
        SimGrants grants(back);
        std::vector<platform::CopySegment> segs(2);
        for (std::size_t i = 0; i < segs.size(); ++i) {
            auto& s = segs[i];
            s.source.virt = src.data() + i * 128;
            s.dest.foreign.domid = 3;
            s.dest.foreign.ref = ref;
            s.dest.foreign.offset = static_cast<std::uint16_t>(1000 + i * 128);
            s.len = 128;
            s.flags = GNTCOPY_dest_gref;
            s.status = 1;
        }
        grants.copy(segs);
        CHECK(segs[0].status == GNTST_okay);
        CHECK(segs[1].status == GNTST_okay);
        CHECK(std::memcmp(memory.page(gfn).data() + 1000, src.data(), src.size()) == 0);
    }
}

TEST_CASE("a host started without costs charges nothing", "[simxen][cost]") {
    CostHost host({});
    auto admin = HvClient::connect_admin(host.dir);
    admin->create_domain(4, "back", 4u << 20);
    CHECK(HvClient::connect(host.dir, 4)->costs() == wire::CostModel{});
}
