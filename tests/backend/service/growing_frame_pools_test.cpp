// The frame pools grown as vifs attach (issue 19): a small first pool, then one pool per
// doubling of the vifs up to the cap, and a refusal from EAL that leaves the vifs sharing.
#include <limits>

#include <catch2/catch.hpp>

#include "backend/service/growing_frame_pools.hpp"
#include "tests/support/dpdk_eal.hpp"

using namespace netbackd;
using namespace netbackd::service;

namespace {

FramePoolPlan plan(std::uint32_t vif_cap) {
    pmd::test::dataplane_eal();
    FramePoolPlan p;
    p.vif_cap = vif_cap;
    p.page_size = pmd::pool_page_size();
    p.name = pmd::test::unique_name("gfp");
    return p;
}

} // namespace

TEST_CASE("frame pools start with one vif's worth and double as vifs attach, up to the cap",
          "[service][pools]") {
    GrowingFramePools g(plan(4));
    pmd::MempoolSizing one;
    CHECK(g.pools().count() == 1);
    CHECK(g.vifs_provided() == 1);
    CHECK(g.base().capacity() == pmd::mbufs_needed(one)); // one vif and one port queue

    g.reserve_for(1);
    CHECK(g.pools().count() == 1);
    g.reserve_for(2);
    CHECK(g.pools().count() == 2);
    CHECK(g.vifs_provided() == 2);
    g.reserve_for(3); // doubles: room for 4
    CHECK(g.pools().count() == 3);
    CHECK(g.vifs_provided() == 4);
    g.reserve_for(4);
    CHECK(g.pools().count() == 3);
    g.reserve_for(100); // the cap: the vifs beyond share
    CHECK(g.pools().count() == 3);

    pmd::MempoolSizing two;
    two.vifs = 2;
    two.nic_queues = 0;
    CHECK(g.pools()[2].capacity() == pmd::mbufs_needed(two));
    CHECK(g.capacity() == g.pools()[0].capacity() + g.pools()[1].capacity() + g.pools()[2].capacity());
    CHECK(g.pools().base_indirect().capacity() == g.base().capacity()); // GSO references: the first pool's
}

TEST_CASE("frame pools that EAL has no memory for leave the vifs sharing, asked once", "[service][pools]") {
    FramePoolPlan p = plan(64);
    p.keep_free_bytes = std::numeric_limits<std::uint64_t>::max(); // nothing to spare
    GrowingFramePools g(p); // the first pool is made whatever the budget says
    REQUIRE(g.pools().count() == 1);
    g.reserve_for(2);
    g.reserve_for(40);
    CHECK(g.pools().count() == 1);
    CHECK(g.vifs_provided() == 1);
}

TEST_CASE("frame pools made at a restart hold the vifs to re-adopt in one pool", "[service][pools]") {
    FramePoolPlan p = plan(64);
    p.first_vifs = 3;
    GrowingFramePools g(p);
    pmd::MempoolSizing three;
    three.vifs = 3;
    CHECK(g.pools().count() == 1);
    CHECK(g.vifs_provided() == 3);
    CHECK(g.base().capacity() == pmd::mbufs_needed(three));
    g.reserve_for(3);
    CHECK(g.pools().count() == 1);
    g.reserve_for(4); // doubles: room for 6
    CHECK(g.pools().count() == 2);
    CHECK(g.vifs_provided() == 6);
}
