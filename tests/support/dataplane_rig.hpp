// A data plane running its own worker threads over the simulated world, with one ring uplink
// ("up0"): what tests of the threaded data plane (several workers, frames crossing between
// them, staging) start from. tests/support/stepped_worker.hpp steps one worker by hand instead.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "backend/dataplane/dataplane.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

namespace netbackd::dataplane::test {

struct DataPlaneRig {
    // grants: what the data plane opens per worker, given the world (default: World's own);
    // tune: changes to the workers' configuration; held: DataPlaneConfig::start_held.
    using GrantsOf = std::function<platform::GrantsFactory(World&)>;
    using Tune = std::function<void(WorkerConfig&)>;
    explicit DataPlaneRig(std::vector<platform::DomId> guests, unsigned workers = 2,
                          const GrantsOf& grants = {}, const Tune& tune = {}, bool held = false)
        : world(std::move(guests), 64u << 20),
          pool(pmd::test::small_pool(8191)),
          indirect(pmd::test::small_pool(4095, 0)),
          up(pool) {
        DataPlaneConfig c;
        c.workers = workers;
        c.pool = &pool;
        c.indirect_pool = &indirect;
        c.uplinks.push_back(UplinkBinding{"up0", &up});
        c.worker.idle_before_sleep = std::chrono::microseconds(100);
        if (tune) tune(c.worker);
        c.start_held = held;
        dp = std::make_unique<DataPlane>(c, grants ? grants(world) : world.worker_grants(), world.events);
    }
    World world;
    pmd::Mempool pool;
    pmd::Mempool indirect;
    RingUplink up;
    std::unique_ptr<DataPlane> dp;
};

} // namespace netbackd::dataplane::test
