// A worker driven step by step from the test thread, over a World and a RingUplink.
#pragma once

#include <memory>

#include <catch2/catch.hpp>
#include <rte_cycles.h>
#include <vector>

#include "backend/dataplane/worker.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

namespace netbackd::dataplane::test {

struct Rig {
    explicit Rig(std::vector<platform::DomId> guests, pmd::Offloads hw = pmd::Offloads::none(),
                 WorkerConfig cfg = {}, std::uint16_t uplink_mtu = 1500, std::uint32_t pool_mbufs = 16383)
        : world(std::move(guests)),
          pool(pmd::test::small_pool(pool_mbufs)),
          indirect(pmd::test::small_pool(8191, 0)),
          pools(pool, indirect),
          up(pool, hw, uplink_mtu),
          tx_burst(cfg.tx_burst),
          worker(std::make_unique<Worker>(cfg, WorkerContext{world.grants, world.events, pools, {&up}})) {}

    ~Rig() { worker.reset(); } // before the vifs it points to

    VifRuntime& attach(Netfront& nf, MacAddr m, control::NegotiatedFeatures f = Netfront::default_features(),
                       std::optional<control::Rate> rate = std::nullopt) {
        return attach(nf.handle(m, f, rate));
    }

    VifRuntime& attach(std::unique_ptr<control::VifHandle> h) {
        vifs.push_back(std::make_unique<VifRuntime>(std::move(h), 0, rte_get_tsc_hz()));
        vifs.back()->held.reserve(tx_burst); // as DataPlane::attach does
        REQUIRE(worker->post(WorkerMsg{WorkerMsgKind::attach, vifs.back().get(), std::nullopt}));
        worker->poll_once();
        return *vifs.back();
    }

    void poll(int n = 1) {
        for (int i = 0; i < n; ++i) worker->poll_once();
    }

    World world;
    pmd::Mempool pool;
    pmd::Mempool indirect;
    FramePools pools;
    RingUplink up;
    std::size_t tx_burst;
    std::vector<std::unique_ptr<VifRuntime>> vifs;
    std::unique_ptr<Worker> worker;
};

} // namespace netbackd::dataplane::test
