// Grant tables on the simulated hypervisor: who may map/copy what, with Xen's status codes.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/platform/gntst.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/sim_hypervisor.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

using namespace netbackd;
using namespace netbackd::xensim;
using platform::CopySegment;
using platform::PlatformError;

namespace {

constexpr DomId kFront = 5;
constexpr DomId kBack = 7;
constexpr DomId kOther = 9;

struct World {
    xensim::testing::HvHost host;
    std::shared_ptr<HvClient> admin = HvClient::connect_admin(host.dir());
    World() {
        admin->create_domain(kFront, "front", 4u << 20);
        admin->create_domain(kBack, "back", 4u << 20);
        admin->create_domain(kOther, "other", 4u << 20);
    }
};

int map_status(platform::Grants& grants, DomId domid, platform::GrantRef ref, bool writable) {
    try {
        grants.map(domid, ref, writable);
        return GNTST_okay;
    } catch (const PlatformError& e) {
        return e.code();
    }
}

CopySegment from_grant(DomId domid, platform::GrantRef ref, std::uint16_t offset, void* to,
                       std::uint16_t len) {
    CopySegment s{};
    s.source.foreign.domid = domid;
    s.source.foreign.ref = ref;
    s.source.foreign.offset = offset;
    s.dest.virt = to;
    s.len = len;
    s.flags = GNTCOPY_source_gref;
    s.status = 1;
    return s;
}

CopySegment to_grant(void* from, DomId domid, platform::GrantRef ref, std::uint16_t offset,
                     std::uint16_t len) {
    CopySegment s{};
    s.source.virt = from;
    s.dest.foreign.domid = domid;
    s.dest.foreign.ref = ref;
    s.dest.foreign.offset = offset;
    s.len = len;
    s.flags = GNTCOPY_dest_gref;
    s.status = 1;
    return s;
}

int copy_status(platform::Grants& grants, CopySegment seg) {
    grants.copy(std::span(&seg, 1));
    return seg.status;
}

} // namespace

TEST_CASE("only the named grantee may map a grant, and writes reach the granting domain",
          "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    SimGrants back(HvClient::connect(w.host.dir(), kBack));
    SimGrants other(HvClient::connect(w.host.dir(), kOther));

    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);

    CHECK(map_status(other, kFront, ref, false) == GNTST_general_error);
    CHECK(map_status(other, kFront, ref, true) == GNTST_general_error);
    {
        auto mapping = back.map(kFront, ref, true);
        REQUIRE(mapping->page().size() == platform::kPageSize);
        std::memcpy(mapping->page().data() + 100, "hello", 5);
        CHECK(std::memcmp(front.page(gfn).data() + 100, "hello", 5) == 0);
        CHECK(front.in_use(ref));
        // Revocation while mapped fails, and the grant stays usable.
        CHECK_FALSE(front.end_access(ref));
        CHECK(map_status(back, kFront, ref, false) == GNTST_okay);
    }
    CHECK_FALSE(front.in_use(ref));
    CHECK(front.end_access(ref));
    CHECK(map_status(back, kFront, ref, false) == GNTST_general_error);
}

TEST_CASE("read-only grants refuse writable maps and copies into them", "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    SimGrants back(HvClient::connect(w.host.dir(), kBack));

    Gfn gfn = front.alloc_page();
    std::memcpy(front.page(gfn).data(), "readonly", 8);
    auto ref = front.grant_access(gfn, kBack, true);

    CHECK(map_status(back, kFront, ref, true) == GNTST_general_error);
    {
        auto mapping = back.map(kFront, ref, false);
        CHECK(std::memcmp(mapping->page().data(), "readonly", 8) == 0);
    }
    char buf[8] = {};
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf, 8)) == GNTST_okay);
    CHECK(std::memcmp(buf, "readonly", 8) == 0);
    char junk[8] = {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'};
    CHECK(copy_status(back, to_grant(junk, kFront, ref, 0, 8)) == GNTST_general_error);
    CHECK(std::memcmp(front.page(gfn).data(), "readonly", 8) == 0);
}

TEST_CASE("copies are checked per grant: grantee, revocation, bounds, refs, domains", "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    SimGrants back(HvClient::connect(w.host.dir(), kBack));
    SimGrants other(HvClient::connect(w.host.dir(), kOther));

    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);
    std::vector<char> buf(platform::kPageSize, 'a');

    CHECK(copy_status(other, from_grant(kFront, ref, 0, buf.data(), 16)) == GNTST_general_error);
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf.data(), 4096)) == GNTST_okay);
    CHECK(copy_status(back, from_grant(kFront, ref, 4095, buf.data(), 1)) == GNTST_okay);
    CHECK(copy_status(back, from_grant(kFront, ref, 4095, buf.data(), 2)) == GNTST_bad_copy_arg);
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf.data(), 4097)) == GNTST_bad_copy_arg);
    CHECK(copy_status(back, to_grant(buf.data(), kFront, ref, 2048, 2049)) == GNTST_bad_copy_arg);
    CHECK(copy_status(back, from_grant(kFront, kNrGrants, 0, buf.data(), 1)) == GNTST_bad_gntref);
    CHECK(copy_status(back, from_grant(kFront, 0xffffffffu, 0, buf.data(), 1)) == GNTST_bad_gntref);
    CHECK(copy_status(back, from_grant(4321, ref, 0, buf.data(), 1)) == GNTST_bad_domain);
    CHECK(map_status(back, kFront, kNrGrants, false) == GNTST_bad_gntref);
    CHECK(map_status(back, 4321, ref, false) == GNTST_bad_domain);
    // A ref that was never granted.
    CHECK(copy_status(back, from_grant(kFront, ref + 1, 0, buf.data(), 1)) == GNTST_general_error);
    // Copies pin only for their duration, so the frontend can revoke right after.
    CHECK(front.end_access(ref));
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf.data(), 16)) == GNTST_general_error);
}

TEST_CASE("a grant naming a frame outside the domain's memory is a bad page", "[simxen][grants]") {
    World w;
    auto front_client = HvClient::connect(w.host.dir(), kFront);
    GuestMemory front(front_client);
    SimGrants back(HvClient::connect(w.host.dir(), kBack));
    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);
    auto view = front_client->domain(kFront);
    view->state->grants[ref].frame.store(view->state->nr_pages);
    char buf[4];
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf, 4)) == GNTST_bad_page);
    CHECK(map_status(back, kFront, ref, true) == GNTST_bad_page);
    // The failed pins left nothing behind.
    CHECK_FALSE(front.in_use(ref));
}

TEST_CASE("a copy batch completes its good segments around bad ones", "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    SimGrants back(HvClient::connect(w.host.dir(), kBack));

    Gfn src_gfn = front.alloc_page();
    Gfn dst_gfn = front.alloc_page();
    for (std::size_t i = 0; i < platform::kPageSize; ++i)
        front.page(src_gfn)[i] = static_cast<std::byte>(i * 7);
    auto src = front.grant_access(src_gfn, kBack, true);
    auto dst = front.grant_access(dst_gfn, kBack, false);

    std::vector<std::byte> got(platform::kPageSize);
    std::vector<std::byte> put(64, std::byte{0x5a});
    std::vector<CopySegment> batch{
        from_grant(kFront, src, 0, got.data(), 1000),
        from_grant(kFront, src, 4000, got.data(), 200),   // beyond the page
        from_grant(kFront, dst + 100, 0, got.data(), 10), // never granted
        from_grant(kFront, src, 1000, got.data() + 1000, 3096),
        to_grant(put.data(), kFront, src, 0, 64), // read-only grant
        to_grant(put.data(), kFront, dst, 128, 64),
        from_grant(77, src, 0, got.data(), 1), // no such domain
    };
    // A grant-to-grant copy inside the same batch.
    CopySegment both{};
    both.source.foreign = {src, 0, kFront};
    both.dest.foreign = {dst, 2048, kFront};
    both.len = 16;
    both.flags = GNTCOPY_source_gref | GNTCOPY_dest_gref;
    batch.push_back(both);

    back.copy(batch);

    std::vector<int> status;
    for (const auto& s : batch) status.push_back(s.status);
    CHECK(status == std::vector<int>{GNTST_okay, GNTST_bad_copy_arg, GNTST_general_error, GNTST_okay,
                                     GNTST_general_error, GNTST_okay, GNTST_bad_domain, GNTST_okay});
    CHECK(std::equal(got.begin(), got.end(), front.page(src_gfn).begin()));
    CHECK(std::all_of(front.page(dst_gfn).begin() + 128, front.page(dst_gfn).begin() + 192,
                      [](std::byte b) { return b == std::byte{0x5a}; }));
    CHECK(std::equal(front.page(dst_gfn).begin() + 2048, front.page(dst_gfn).begin() + 2064,
                     front.page(src_gfn).begin()));
    CHECK(front.page(src_gfn)[0] == std::byte{0});
    CHECK_FALSE(front.in_use(src));
    CHECK_FALSE(front.in_use(dst));
}

TEST_CASE("destroying a domain revokes its grants", "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    SimGrants back(HvClient::connect(w.host.dir(), kBack));
    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);
    char buf[4];
    REQUIRE(copy_status(back, from_grant(kFront, ref, 0, buf, 4)) == GNTST_okay);
    auto mapping = back.map(kFront, ref, true);

    w.admin->destroy_domain(kFront);

    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf, 4)) == GNTST_bad_domain);
    CHECK(map_status(back, kFront, ref, false) == GNTST_bad_domain);
    // An existing mapping stays safe to touch and to drop.
    mapping->page()[0] = std::byte{1};
    mapping.reset();

    // A new domain under the same id starts with an empty grant table.
    w.admin->create_domain(kFront, "front2", 4u << 20);
    CHECK(copy_status(back, from_grant(kFront, ref, 0, buf, 4)) == GNTST_general_error);
}

TEST_CASE("a process that dies with a grant mapped releases it", "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);
    xensim::testing::Channel mapped;
    xensim::testing::Channel may_exit;
    pid_t child = xensim::testing::spawn([&] {
        SimGrants back(HvClient::connect(w.host.dir(), kBack));
        auto mapping = back.map(kFront, ref, true);
        mapped.send(1);
        may_exit.receive();
        (void)mapping.release(); // dies without unmapping
        return 0;
    });
    REQUIRE(mapped.receive() == 1);
    CHECK(front.in_use(ref));
    CHECK_FALSE(front.end_access(ref));
    may_exit.send(1);
    REQUIRE(xensim::testing::join(child) == 0);
    // One round-trip after the hang-up: the hypervisor has processed it by then.
    w.admin->list_domains();
    w.admin->list_domains();
    CHECK_FALSE(front.in_use(ref));
    CHECK(front.end_access(ref));
}

// A restart under traffic found this: netbackd SIGKILLed while it held a grant's active-entry
// lock (shared memory) left it held, and the next netbackd's worker spun on it forever.
TEST_CASE("a grant's active-entry lock held by a dead process is taken over, a live holder's is not",
          "[simxen][grants]") {
    World w;
    GuestMemory front(HvClient::connect(w.host.dir(), kFront));
    auto back = std::make_shared<SimGrants>(HvClient::connect(w.host.dir(), kBack));
    Gfn gfn = front.alloc_page();
    auto ref = front.grant_access(gfn, kBack, false);
    auto view = w.admin->domain(kFront);
    REQUIRE(view);
    std::atomic<std::uint32_t>& lock = view->state->active[ref].lock;

    // A copy in a thread of its own: without the take-over it never returns (the thread is
    // left behind, the check fails).
    auto copy_in_thread = [&] {
        auto status = std::make_shared<std::atomic<int>>(1);
        std::thread([back, status, ref] {
            std::vector<char> buf(64);
            CopySegment s = from_grant(kFront, ref, 0, buf.data(), 64);
            back->copy({&s, 1});
            status->store(s.status);
        }).detach();
        return status;
    };

    // A live holder (this process) keeps its lock: the copy waits until it lets go.
    lock.store(static_cast<std::uint32_t>(::getpid()));
    auto waiting = copy_in_thread();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(waiting->load() == 1);
    lock.store(0);
    CHECK(netbackd::testing::eventually([&] { return waiting->load() != 1; }));
    CHECK(waiting->load() == GNTST_okay);

    // A holder that no longer exists: its lock is taken over.
    const pid_t gone = xensim::testing::spawn([] { return 0; });
    REQUIRE(xensim::testing::join(gone) == 0);
    lock.store(static_cast<std::uint32_t>(gone));
    auto status = copy_in_thread();
    CHECK(netbackd::testing::eventually([&] { return status->load() != 1; }));
    CHECK(status->load() == GNTST_okay);
    CHECK(lock.load() == 0);
    CHECK(front.end_access(ref));
}
