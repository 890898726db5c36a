// How much of the shared frame pool one vif's RX backlog may hold (frames switched to it and
// waiting for its RX buffers). The pool is shared by every guest and by the NIC's RX refill, so a
// guest that posts no buffers must not be able to keep it (the XSA-392 class).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace netbackd::dataplane {

// The fewest buffers a vif's backlog is allowed whatever the share: two 64 KiB GSO frames in
// 2 KiB buffers (33 each), so that a busy host still delivers whole GSO frames to every guest.
inline constexpr std::uint32_t kMinVifBacklogMbufs = 66;

// The rule: every RX backlog together holds at most half the pool; the other half is the
// headroom for what the pool sizing counts besides backlogs (the NIC's RX descriptors, frames in
// flight to the NIC, per-lcore caches, bursts in hand). That half is split evenly between the
// workers and, within a worker, between the vifs it runs, so the sum of every vif's cap fits it
// and no backlog, however stalled, can take another guest's share or the NIC's:
//
//   cap = min(configured, max(kMinVifBacklogMbufs, pool_mbufs / 2 / workers / vifs))
//
// The floor wins only past pool_mbufs / 2 / workers / kMinVifBacklogMbufs vifs per worker (267
// for one worker and the default 35,264-buffer pool); the backlogs then hold at most
// vifs * kMinVifBacklogMbufs, still short of the whole pool up to 534 vifs per worker.
// pool_mbufs is the pool's real capacity, whatever start-up made of it.
constexpr std::uint32_t vif_backlog_mbufs(std::uint32_t pool_mbufs, std::size_t workers, std::size_t vifs,
                                          std::uint32_t configured) noexcept {
    const std::uint64_t share =
        std::uint64_t{pool_mbufs} / 2 / std::max<std::size_t>(workers, 1) / std::max<std::size_t>(vifs, 1);
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(configured, std::max<std::uint64_t>(kMinVifBacklogMbufs, share)));
}

} // namespace netbackd::dataplane
