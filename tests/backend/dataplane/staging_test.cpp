// Staging grants in the data plane, with real worker threads (label `threads`: TSan runs it):
// the control thread (this test) maps a guest page and publishes StagedPages snapshots while a
// worker copies TX requests from that page; frames arrive byte-exact whether the page is staged
// (memcpy, no grant copy) or not (grant copy), the snapshot swaps are race-free, and a DEL is
// refused while the worker still has a request naming the gref on the guest's ring.
#include <chrono>
#include <cstring>
#include <thread>

#include <catch2/catch.hpp>

#include "backend/dataplane/dataplane.hpp"
#include "tests/support/dataplane_rig.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"

using netbackd::testing::eventually;

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 41;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);

struct Rig : DataPlaneRig {
    Rig() : DataPlaneRig({kA}, 1) {}
};

std::shared_ptr<const control::StagedPages> staged(platform::GrantRef ref, platform::GrantMapping& m) {
    std::vector<std::vector<control::StagedPage>> q(1);
    q[0].push_back(control::StagedPage{ref, m.page().data(), false});
    return std::make_shared<const control::StagedPages>(std::move(q));
}

// One TX request for `len` bytes of the page `ref`, pushed.
void send_from(Netfront& nf, platform::GrantRef ref, std::uint16_t len, std::uint16_t id) {
    netif_tx_request_t req{};
    req.gref = ref;
    req.offset = 0;
    req.flags = 0;
    req.id = id;
    req.size = len;
    nf.tx().put_request(req);
    nf.push_tx();
}

} // namespace

TEST_CASE("staging: TX from a staged page is memcpy'd, no grant copy; snapshots swap under traffic",
          "[dataplane][staging][ctrl]") {
    Rig rig;
    Netfront a(rig.world, kA);
    rig.dp->attach(a.handle(kMacA));
    const Bytes f = with_checksums(frame(kOutside, kMacA, 200));
    const platform::GrantRef page = a.granted_page(f, true);
    // The control thread's mapping, as StagingTable holds it.
    auto mapping = rig.world.grants.map(kA, page, false);
    REQUIRE(rig.dp->set_staging({kA, 0}, staged(page, *mapping), 0, {}));

    constexpr int kFrames = 200;
    std::atomic<bool> stop{false};
    std::atomic<int> swaps{0};
    std::atomic<int> refused{0}; // Catch2 asserts on this thread only

    // The control side keeps publishing: staged, not staged, staged... while the worker copies.
    std::thread control([&] {
        bool on = true;
        while (!stop.load()) {
            on = !on;
            if (!rig.dp->set_staging({kA, 0}, on ? staged(page, *mapping) : nullptr, 0, {}))
                refused.fetch_add(1);
            swaps.fetch_add(1);
            std::this_thread::sleep_for(200us);
        }
        if (!rig.dp->set_staging({kA, 0}, staged(page, *mapping), 0, {})) refused.fetch_add(1);
    });
    std::vector<Bytes> got;
    for (int i = 0; i < kFrames; ++i) {
        // One request in flight at a time keeps the TX ring far from full.
        send_from(a, page, static_cast<std::uint16_t>(f.size()), static_cast<std::uint16_t>(i));
        REQUIRE(eventually([&] {
            for (auto& s : rig.up.sent()) got.push_back(std::move(s));
            return got.size() == static_cast<std::size_t>(i + 1);
        }));
    }
    stop = true;
    control.join();
    CHECK(swaps.load() > 0);
    CHECK(refused.load() == 0);
    for (const Bytes& g : got) CHECK(g == f);
    const auto st = rig.dp->stats({kA, 0});
    REQUIRE(st);
    // Some frames went each way (the swaps interleave with them), all of them counted.
    CHECK(st->staged_copies + st->copy_segments == kFrames);
    CHECK(st->staged_pages == 1);

    SECTION("with the page staged throughout, not one grant copy") {
        const auto before = *rig.dp->stats({kA, 0});
        for (int i = 0; i < 50; ++i) send_from(a, page, static_cast<std::uint16_t>(f.size()), 1000 + i);
        std::size_t n = 0;
        REQUIRE(eventually([&] {
            n += rig.up.sent().size();
            return n == 50;
        }));
        const auto after = *rig.dp->stats({kA, 0});
        CHECK(after.copy_batches == before.copy_batches);
        CHECK(after.staged_copies == before.staged_copies + 50);
    }
    SECTION("hostile: DEL refused while a request on the ring names the page") {
        // A request the worker cannot take yet: the guest's RX ring is what we use, as a
        // frontend does, by posting the staged page as an RX buffer (never filled: no traffic).
        netif_rx_request_t rx{};
        rx.id = 7;
        rx.gref = page;
        a.rx().put_request(rx);
        a.rx().push();
        const std::array<platform::GrantRef, 1> removed{page};
        CHECK_FALSE(rig.dp->set_staging({kA, 0}, nullptr, 0, removed));
        CHECK(rig.dp->stats({kA, 0})->staged_pages == 1); // not applied
        // Another gref is not in flight: that DEL goes through.
        const std::array<platform::GrantRef, 1> other{page + 1000};
        CHECK(rig.dp->set_staging({kA, 0}, staged(page, *mapping), 0, other));
    }
    rig.dp->detach({kA, 0});
}
