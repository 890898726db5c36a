// A frontend revoking a grant races a backend copying from it, in two processes: the backend
// must never complete a copy that overlaps the frontend's reuse of the page (GTF_reading).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>
#include <sys/mman.h>

#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "tests/support/sim_hypervisor.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

using namespace netbackd;
using namespace netbackd::xensim;

namespace {

constexpr DomId kFront = 21;
constexpr DomId kBack = 22;
constexpr int kCopies = 200'000;
constexpr std::byte kGood{0x11};
constexpr std::byte kPoison{0xee};

} // namespace

TEST_CASE("a revoked grant is never copied while the frontend reuses its page", "[simxen][grants]") {
    testing::HvHost host;
    auto admin = HvClient::connect_admin(host.dir());
    admin->create_domain(kFront, "front", 1u << 20);
    admin->create_domain(kBack, "back", 1u << 20);

    void* shared =
        ::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED);
    auto* stop = new (shared) std::atomic<int>(0);

    testing::Channel ref_out;
    pid_t front_pid = testing::spawn([&] {
        GuestMemory memory(HvClient::connect(host.dir(), kFront));
        Gfn gfn = memory.alloc_page();
        auto page = memory.page(gfn);
        std::fill(page.begin(), page.end(), kGood);
        auto ref = memory.grant_access(gfn, kBack, true);
        ref_out.send(ref);
        int cycles = 0;
        while (stop->load() == 0) {
            if (!memory.end_access(ref)) continue; // backend mid-copy: try again
            // Revoked: the page is ours again; scribble on it, then restore and re-grant.
            std::fill(page.begin(), page.end(), kPoison);
            std::fill(page.begin(), page.end(), kGood);
            if (memory.grant_access(gfn, kBack, true) != ref) return 2; // lowest free ref again
            ++cycles;
            // Leave the grant up for a while so that copies succeed too, not only fail.
            for (int spin = 0; spin < 20'000 && stop->load(std::memory_order_relaxed) == 0; ++spin) {}
        }
        return cycles > 0 ? 0 : 3;
    });

    SimGrants grants(HvClient::connect(host.dir(), kBack));
    auto ref = ref_out.receive();
    std::vector<std::byte> buf(platform::kPageSize);
    int ok = 0;
    int refused = 0;
    int torn = 0;
    for (int i = 0; i < kCopies; ++i) {
        std::fill(buf.begin(), buf.end(), std::byte{0});
        platform::CopySegment seg{};
        seg.source.foreign = {ref, 0, kFront};
        seg.dest.virt = buf.data();
        seg.len = platform::kPageSize;
        seg.flags = GNTCOPY_source_gref;
        grants.copy(std::span(&seg, 1));
        if (seg.status == GNTST_okay) {
            ++ok;
            if (!std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == kGood; })) ++torn;
        } else if (seg.status == GNTST_general_error) {
            ++refused;
        }
    }
    stop->store(1);
    INFO("copies ok " << ok << ", refused (revoked) " << refused);
    CHECK(torn == 0);
    CHECK(ok + refused == kCopies);
    CHECK(testing::join(front_pid) == 0);
    ::munmap(shared, sizeof(std::atomic<int>));
}
