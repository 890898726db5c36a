// What workers share when there are several: one lock-free SPSC ring for every ordered pair of
// workers (frames switched on one worker to a vif another worker owns), and each worker's
// "asleep" flag and wake-up eventfd, so a producer wakes a sleeping consumer once per burst
// rather than once per frame, and never when the consumer is polling anyway.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/dataplane/spsc_queue.hpp"
#include "backend/platform/fd.hpp"

struct rte_mbuf;

namespace netbackd::dataplane {

class VifRuntime;

// A frame for vif `to`, which the consuming worker owns.
struct CrossFrame {
    rte_mbuf* m = nullptr;
    VifRuntime* to = nullptr;
};

class WorkerMesh {
public:
    explicit WorkerMesh(std::size_t workers, std::size_t ring_capacity = 1024);
    ~WorkerMesh();
    WorkerMesh(const WorkerMesh&) = delete;
    WorkerMesh& operator=(const WorkerMesh&) = delete;

    std::size_t size() const noexcept { return peers_.size(); }
    SpscQueue<CrossFrame>& ring(std::size_t from, std::size_t to) noexcept {
        return *rings_[from * size() + to];
    }

    // ---- the worker itself
    void set_wake_fd(std::size_t self, int fd) noexcept {
        peers_[self]->wake_fd.store(fd, std::memory_order_relaxed);
    }
    // Before the final checks of a sleep: from here on producers signal the eventfd.
    void going_to_sleep(std::size_t self) noexcept {
        peers_[self]->asleep.store(true, std::memory_order_seq_cst);
        // Orders the flag before the ring checks that follow (store-load, the Dekker pattern).
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    void awake(std::size_t self) noexcept { peers_[self]->asleep.store(false, std::memory_order_relaxed); }
    // Whether any ring into `self` holds frames.
    bool inbound_pending(std::size_t self) const noexcept;

    // ---- a producer, after pushing into ring(from, to): wakes `to` if it sleeps (one syscall).
    void wake(std::size_t to) noexcept;

private:
    struct alignas(64) Peer {
        std::atomic<bool> asleep{false};
        std::atomic<int> wake_fd{-1};
    };
    std::vector<std::unique_ptr<Peer>> peers_;
    std::vector<std::unique_ptr<SpscQueue<CrossFrame>>> rings_; // [from * n + to]; diagonal unused
};

} // namespace netbackd::dataplane
