// Back-pressure between guests on different workers (held_frames.hpp covers one worker).
//
// A sender cannot read the backlog of a vif another worker owns, so the owner publishes, once
// per round and only when it changed, the room that backlog has left, together with how many
// buffers it has taken so far from each other worker's ring for this vif. A sender keeps its
// own count of the buffers it handed over; the difference is what is still in the ring, and
// will take room it has not yet seen taken. With one sender the estimate is exact, so a frame
// waits instead of being dropped at the owner; with several it may still overshoot by what the
// others have in flight, and the owner then drops as before (rx_over_backlog).
//
// A sender that waits registers in `waiters`; the owner, after publishing a change, wakes
// every registered worker (Dekker: the owner stores the room then reads waiters, the sender
// registers then reads the room, all seq_cst).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace netbackd::dataplane {

// One published room, unpacked; packed into one word so that a reader sees all of it at once.
struct BacklogRoom {
    static constexpr std::uint32_t kTakenMask = (1u << 23) - 1; // counts wrap: only differences matter
    static constexpr std::uint64_t kMaxMbufs = 0xffff;
    static constexpr std::uint64_t kByteUnit = 256; // bytes are published rounded down to this
    static constexpr std::uint64_t kMaxBytes = ((std::uint64_t{1} << 23) - 1) * kByteUnit;

    bool waits = false;      // false (the word 0): stalled, not running or waits off: never wait
    bool empty = false;      // the backlog is empty
    std::uint32_t taken = 0; // buffers taken from the reader's ring for this vif, mod 2^23
    std::uint64_t mbufs = 0;
    std::uint64_t bytes = 0;

    std::uint64_t pack() const noexcept {
        if (!waits) return 0;
        const std::uint64_t m = std::min(mbufs, kMaxMbufs);
        const std::uint64_t b = std::min(bytes, kMaxBytes) / kByteUnit;
        return (std::uint64_t{1} << 63) | (b << 40) | (m << 24) | (std::uint64_t{empty} << 23) |
               (taken & kTakenMask);
    }
    static BacklogRoom unpack(std::uint64_t w) noexcept {
        BacklogRoom r;
        r.waits = (w >> 63) != 0;
        r.empty = ((w >> 23) & 1) != 0;
        r.taken = static_cast<std::uint32_t>(w & kTakenMask);
        r.mbufs = (w >> 24) & kMaxMbufs;
        r.bytes = ((w >> 40) & ((std::uint64_t{1} << 23) - 1)) * kByteUnit;
        return r;
    }
};

class CrossRoom {
public:
    // Sized when the vif is created (control thread), for every worker of the data plane.
    // `first` stands until the owner first publishes (one round after it takes the vif): an
    // empty backlog's room from the configured caps, which the owner may lower.
    void reserve(std::size_t workers, BacklogRoom first) {
        taken_.assign(workers, 0);
        words_ = std::make_unique<Word[]>(workers);
        for (std::size_t w = 0; w < workers; ++w) words_[w].v.store(first.pack(), std::memory_order_relaxed);
        workers_ = workers;
    }

    // ---- the owner
    void took(std::size_t from, std::uint32_t mbufs) noexcept {
        if (from < workers_) taken_[from] += mbufs;
    }
    // Publishes `room` to every other worker (its `taken` is filled in per reader); returns the
    // workers that asked to be woken when it changed, and clears their requests.
    std::uint64_t publish(BacklogRoom room, std::size_t self) noexcept {
        bool changed = false;
        for (std::size_t w = 0; w < workers_; ++w) {
            if (w == self) continue;
            room.taken = taken_[w];
            const std::uint64_t word = room.pack();
            if (words_[w].v.load(std::memory_order_relaxed) == word) continue;
            words_[w].v.store(word, std::memory_order_seq_cst);
            changed = true;
        }
        if (!changed || waiters_.load(std::memory_order_seq_cst) == 0) return 0;
        return waiters_.exchange(0, std::memory_order_seq_cst);
    }

    // ---- a sender
    std::uint64_t word(std::size_t self) const noexcept {
        return self < workers_ ? words_[self].v.load(std::memory_order_seq_cst) : 0;
    }
    void wake_me(std::size_t self) noexcept {
        waiters_.fetch_or(std::uint64_t{1} << (self & 63), std::memory_order_seq_cst);
    }

private:
    struct alignas(64) Word {
        std::atomic<std::uint64_t> v{0};
    };
    std::vector<std::uint32_t> taken_; // owner only, per sending worker
    std::unique_ptr<Word[]> words_;    // shared: owner writes, reader w reads words_[w]
    std::size_t workers_ = 0;
    std::atomic<std::uint64_t> waiters_{0}; // shared: bit per worker waiting for a change
};

} // namespace netbackd::dataplane
