// Issue 14 item 3: the control thread's waits on the data plane are bounded. A worker stuck in
// its fast path (here: in a grant copy the test holds) cannot hang a detach; the vif is logged
// and quarantined, its rings stay mapped while a worker may still touch them, and a late answer
// releases it.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <catch2/catch.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "backend/dataplane/dataplane.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"

using netbackd::testing::eventually;

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 51;
constexpr platform::DomId kB = 52;
const MacAddr kMacA = mac(0xa);
const MacAddr kMacB = mac(0xb);
const MacAddr kOutside = mac(0x99);

// Copies wait while the gate is closed: a worker stuck in its fast path.
struct Gate {
    std::atomic<bool> closed{false};
    std::atomic<int> stuck{0}; // copies waiting at the gate now
};

class GatedGrants final : public platform::Grants {
public:
    GatedGrants(std::unique_ptr<platform::Grants> inner, Gate& gate)
        : inner_(std::move(inner)), gate_(gate) {}
    std::unique_ptr<platform::GrantMapping> map(platform::DomId d, platform::GrantRef r, bool w) override {
        return inner_->map(d, r, w);
    }
    void copy(std::span<platform::CopySegment> segs) override {
        if (gate_.closed.load()) {
            gate_.stuck.fetch_add(1);
            while (gate_.closed.load()) std::this_thread::sleep_for(1ms);
            gate_.stuck.fetch_sub(1);
        }
        inner_->copy(segs);
    }

private:
    std::unique_ptr<platform::Grants> inner_;
    Gate& gate_;
};

bool logged(const std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt>& sink, const std::string& what) {
    for (const auto& line : sink->last_formatted())
        if (line.find(what) != std::string::npos) return true;
    return false;
}

} // namespace

TEST_CASE("a detach a stuck worker does not answer is bounded, logged and quarantined",
          "[dataplane][workers][threads]") {
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
    spdlog::default_logger()->sinks().push_back(sink);
    struct Unhook {
        ~Unhook() { spdlog::default_logger()->sinks().pop_back(); }
    } unhook;

    Gate gate;
    World world({kA, kB}, 64u << 20);
    pmd::Mempool pool = pmd::test::small_pool(8191);
    pmd::Mempool indirect = pmd::test::small_pool(4095, 0);
    RingUplink up(pool);
    DataPlaneConfig c;
    c.workers = 2;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(UplinkBinding{"up0", &up});
    c.worker.idle_before_sleep = 100us;
    c.control_wait = 300ms;
    auto dp = std::make_unique<DataPlane>(
        c,
        [&gate, back = world.back] {
            return std::make_unique<GatedGrants>(std::make_unique<xensim::SimGrants>(back), gate);
        },
        world.events);
    Netfront a(world, kA);
    Netfront b(world, kB);
    dp->attach(a.handle(kMacA));
    dp->attach(b.handle(kMacB));
    REQUIRE(dp->worker_of({kA, 0}) == 0u);
    REQUIRE(dp->worker_of({kB, 0}) == 1u);
    // B's frame goes through: both workers run.
    b.send(frame(kOutside, kMacB, 60));
    b.push_tx();
    REQUIRE(eventually([&] { return up.discard() == 1; }));

    // Worker 1 gets stuck in the grant copy of B's next frame.
    gate.closed = true;
    b.send(frame(kOutside, kMacB, 60));
    b.push_tx();
    REQUIRE(eventually([&] { return gate.stuck.load() == 1; }));

    // Detach A (worker 0's): worker 1 never answers its detach_remote. Run on a thread of its
    // own so that a detach without a bound fails this test instead of hanging it.
    auto detach = [&](control::VifId id) {
        auto f = std::async(std::launch::async, [&] { return dp->detach(id) == nullptr; });
        const bool done = f.wait_for(30s) == std::future_status::ready;
        if (!done) gate.closed = false; // let the unbounded wait end, then fail
        const bool quarantined = f.get();
        return done && quarantined;
    };
    CHECK(detach({kA, 0}));
    CHECK(dp->quarantined() == 1);
    CHECK(logged(sink, "vif 51.0: worker 1 did not answer 'detach_remote' within 300 ms"));
    CHECK(logged(sink, "quarantined"));
    // Detach B, whose owner is the stuck worker.
    CHECK(detach({kB, 0}));
    CHECK(dp->quarantined() == 2);
    CHECK(logged(sink, "vif 52.0: worker 1 did not answer 'detach' within 300 ms"));
    CHECK_FALSE(dp->worker_of({kA, 0}));
    CHECK_FALSE(dp->worker_of({kB, 0}));

    // The worker comes back: its late answers release both (on the control loop's tick).
    gate.closed = false;
    CHECK(eventually([&] {
        (void)dp->take_faults();
        return dp->quarantined() == 0;
    }));
    CHECK(logged(sink, "worker 1 answered late for vif 51.0"));
    CHECK(logged(sink, "vif 51.0: every worker let go; its rings are released now"));
    CHECK(logged(sink, "vif 52.0: every worker let go; its rings are released now"));

    // And the data plane works on: A attaches again and its frames leave.
    Netfront a2(world, kA, 1);
    dp->attach(a2.handle(kMacA));
    a2.send(frame(kOutside, kMacA, 60));
    a2.push_tx();
    CHECK(eventually([&] { return up.discard() >= 1; }));
    CHECK(dp->detach({kA, 1}) != nullptr);
    CHECK(dp->quarantined() == 0);
}
