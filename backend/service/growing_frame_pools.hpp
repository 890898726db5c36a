// The data plane's frame pools, created as vifs attach (backend/dataplane/frame_pools.hpp says
// why): the first at start for the uplinks' descriptors and one vif, then, each time the vifs
// attached pass what the pools hold buffers for, one more pool for as many vifs again (doubling),
// up to `vif_cap` vifs; vifs beyond that share what there is (a dry pool drops, counted as
// tx_no_mbuf). Every pool is sized from the EAL memory free when it is made, keeping
// `keep_free_bytes` for ports' rings, workers' queues and EAL itself; when EAL has no room for
// more, that is said once and the vifs share.
//
// Threads: control thread only (the workers read the FramePools, whose header says how).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/dataplane/frame_pools.hpp"
#include "pmd/mempool.hpp"

namespace netbackd::service {

struct FramePoolPlan {
    pmd::MempoolSizing per_vif;        // vifs and nic_queues are set per pool
    std::uint32_t nic_queues = 1;      // in the first pool only: ports receive into it
    std::uint32_t vif_cap = 64;        // vifs the pools grow for, at most
    std::uint32_t first_vifs = 1;      // vifs the first pool holds buffers for (a restart: those to re-adopt)
    std::uint64_t keep_free_bytes = 0; // EAL memory no pool may take
    bool eal_grows_on_demand = false;  // see pmd::eal_free_memory
    std::uint64_t page_size = 0;       // see pmd::pool_page_size
    std::string name = "nb";           // pools are <name>-frames, <name>-frames-1, ...
};

class GrowingFramePools {
public:
    // Creates the first pool; throws pmd::DpdkError when EAL cannot hold even that.
    explicit GrowingFramePools(const FramePoolPlan& plan);

    // Before `vifs` vifs are attached: adds a pool when they are more than the pools were made
    // for. Never throws: a pool EAL cannot make leaves the vifs sharing (logged once).
    void reserve_for(std::size_t vifs) noexcept;

    // What later pools leave free, once what the first had to leave for (jumbo ports' pools)
    // has been made.
    void keep_free(std::uint64_t bytes) noexcept { plan_.keep_free_bytes = bytes; }

    dataplane::FramePools& pools() noexcept { return *pools_; }
    const pmd::Mempool& base() const noexcept { return *frames_.front(); }
    std::uint32_t vifs_provided() const noexcept { return vifs_provided_; }
    std::uint64_t capacity() const noexcept { return pools_->capacity(); }

private:
    // A frame pool for `vifs` more vifs (the first also for `nic_queues` ports' descriptors, and
    // with the GSO reference pool); false when EAL has no room for it.
    bool add(std::uint32_t vifs, std::uint32_t nic_queues);

    FramePoolPlan plan_;
    std::vector<std::unique_ptr<pmd::Mempool>> frames_;
    std::unique_ptr<pmd::Mempool> indirect_; // the first pool's GSO references
    std::unique_ptr<dataplane::FramePools> pools_;
    std::uint32_t vifs_provided_ = 0;
    bool exhausted_ = false; // EAL said no once: not asked again
};

} // namespace netbackd::service
