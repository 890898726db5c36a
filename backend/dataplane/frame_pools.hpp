// The buffers guest frames are copied into, as pools added while vifs attach: memory and
// start-up then follow the vifs a host runs, not the most it may run (a pool for 64 vifs, 35,264
// buffers, took 3.3 s of a restart's outage in the lab).
//
// Workers copy guest frames into buffers of the newest pool and fall back to older ones only when
// it runs dry; a buffer goes back to the pool it came from (rte_mbuf::pool), so pools never need
// to be merged. The first pool serves the ports: they receive into it, and software GSO cuts
// the segments that fill their TX descriptors from it and its indirect twin; it is sized for
// their descriptors.
//
// Threads: the constructor and add() on the control thread only, the rest from any thread.
// Shared: `frames_`, each slot written once before `count_` is raised with release and never
// again; a reader loads `count_` with acquire and reads only the slots below it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "pmd/mempool.hpp"

namespace netbackd::dataplane {

class FramePools {
public:
    // Enough for doubling from one vif to 1,024 several times over.
    static constexpr std::size_t kMaxPools = 16;

    // The first pool and software GSO's payload references into it (data room 0 is enough).
    // Both, and every pool added, must outlive every reader.
    FramePools(const pmd::Mempool& frames, const pmd::Mempool& indirect) : indirect_(&indirect) {
        add(frames);
    }
    FramePools(const FramePools&) = delete;
    FramePools& operator=(const FramePools&) = delete;

    // Control thread. Every pool's buffers must have the first pool's data room, since workers
    // size their copies by it; false when kMaxPools are in use.
    bool add(const pmd::Mempool& frames) {
        const std::size_t n = count_.load(std::memory_order_relaxed);
        if (n > 0 && frames.data_room() != frames_[0]->data_room())
            throw std::invalid_argument("frame pools: every pool needs the first one's data room");
        if (n == kMaxPools) return false;
        frames_[n] = &frames;
        count_.store(n + 1, std::memory_order_release);
        return true;
    }

    std::size_t count() const noexcept { return count_.load(std::memory_order_acquire); }
    // i < count().
    const pmd::Mempool& operator[](std::size_t i) const noexcept { return *frames_[i]; }
    const pmd::Mempool& base() const noexcept { return *frames_[0]; }
    const pmd::Mempool& base_indirect() const noexcept { return *indirect_; }

    // Buffers of every pool published so far.
    std::uint64_t capacity() const noexcept {
        std::uint64_t total = 0;
        for (std::size_t i = 0, n = count(); i < n; ++i) total += frames_[i]->capacity();
        return total;
    }

private:
    std::array<const pmd::Mempool*, kMaxPools> frames_{};
    const pmd::Mempool* indirect_;
    std::atomic<std::size_t> count_{0};
};

} // namespace netbackd::dataplane
