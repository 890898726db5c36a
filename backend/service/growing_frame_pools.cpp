#include "backend/service/growing_frame_pools.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pmd/error.hpp"

namespace netbackd::service {
namespace {

// The smallest pool worth adding: below a ring's worth of buffers it only adds a cache to drain.
constexpr std::uint32_t kMinGrowth = 512;

std::string pool_name(const std::string& prefix, const char* what, std::size_t index) {
    return index == 0 ? fmt::format("{}-{}", prefix, what) : fmt::format("{}-{}-{}", prefix, what, index);
}

} // namespace

GrowingFramePools::GrowingFramePools(const FramePoolPlan& plan) : plan_(plan) {
    plan_.vif_cap = std::max(1u, plan_.vif_cap);
    if (!add(std::clamp(plan_.first_vifs, 1u, plan_.vif_cap), plan_.nic_queues))
        throw pmd::DpdkError("frame pool: EAL has no memory for the first pool", ENOMEM);
}

bool GrowingFramePools::add(std::uint32_t vifs, std::uint32_t nic_queues) {
    pmd::MempoolSizing sizing = plan_.per_vif;
    sizing.vifs = vifs;
    sizing.nic_queues = nic_queues;
    const std::uint32_t wanted = pmd::mbufs_needed(sizing);
    const bool first = frames_.empty();
    // Software GSO's segments (payload references) come from the first pool's twin only.
    const std::uint64_t per_mbuf = pmd::mbuf_footprint(pmd::kDefaultDataRoom, plan_.page_size) +
                                   (first ? pmd::mbuf_footprint(0, plan_.page_size) : 0);
    const std::uint64_t free = pmd::eal_free_memory(plan_.eal_grows_on_demand);
    const std::uint64_t budget = free > plan_.keep_free_bytes ? free - plan_.keep_free_bytes : 0;
    // The first pool never goes below pmd::frame_pool_size's floor (EAL then says why it
    // cannot); a later one is only made where it fits.
    const std::uint32_t mbufs =
        first ? pmd::frame_pool_size(wanted, budget, per_mbuf)
              : static_cast<std::uint32_t>(std::min<std::uint64_t>(wanted, budget / per_mbuf));
    if (!first && mbufs < std::min(kMinGrowth, wanted)) {
        spdlog::warn(
            "frame pool: no EAL memory for {} more buffers ({} MiB free); the {} vif(s) beyond {} share "
            "the {} buffers there are (raise the EAL -m for more)",
            wanted, free >> 20, vifs, vifs_provided_, capacity());
        return false;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t index = frames_.size();
    try {
        auto frames = std::make_unique<pmd::Mempool>(pmd::MempoolConfig{
            .name = pool_name(plan_.name, "frames", index), .mbufs = mbufs, .cache = sizing.cache});
        if (first) {
            // Software GSO only references payload in the frame pool: no data room needed.
            indirect_ = std::make_unique<pmd::Mempool>(
                pmd::MempoolConfig{.name = pool_name(plan_.name, "indirect", 0),
                                   .mbufs = mbufs,
                                   .cache = sizing.cache,
                                   .data_room = 0});
            pools_ = std::make_unique<dataplane::FramePools>(*frames, *indirect_);
        } else if (!pools_->add(*frames)) {
            spdlog::warn("frame pool: {} pools in use, the most there can be; further vifs share them",
                         dataplane::FramePools::kMaxPools);
            return false;
        }
        frames_.push_back(std::move(frames));
    } catch (const pmd::DpdkError& e) {
        if (first) throw;
        spdlog::warn("frame pool: {}; the vifs beyond {} share the {} buffers there are", e.what(),
                     vifs_provided_, capacity());
        return false;
    }
    vifs_provided_ += vifs;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info(
        "frame pool {}: {} buffers ({} MiB{}) for {} vif(s){} in {} ms; {} MiB of EAL memory were free{}",
        index, mbufs, std::uint64_t{mbufs} * per_mbuf >> 20, first ? " with their GSO references" : "", vifs,
        nic_queues != 0 ? fmt::format(" and {} port queue(s)", nic_queues) : std::string(), ms, free >> 20,
        mbufs < wanted ? fmt::format("; {} wanted (raise the EAL -m for more)", wanted) : "");
    return true;
}

void GrowingFramePools::reserve_for(std::size_t vifs) noexcept {
    if (exhausted_ || vifs <= vifs_provided_ || vifs_provided_ >= plan_.vif_cap) return;
    const std::uint32_t target = std::min<std::uint32_t>(
        plan_.vif_cap, std::max<std::uint32_t>(static_cast<std::uint32_t>(vifs), 2 * vifs_provided_));
    try {
        exhausted_ = !add(target - vifs_provided_, 0);
    } catch (const std::exception& e) {
        spdlog::warn("frame pool: {}; the vifs share the buffers there are", e.what());
        exhausted_ = true;
    }
}

} // namespace netbackd::service
