// A stand-in for one direction of an event channel, for the self-check and the tests only: the
// fast path never includes it. Like an evtchn port it is a sticky "pending" bit: notify() sets
// it, wait() sleeps until it is set and clears it, so a notify before the wait is not lost.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace netbackd::ring {

class SimEvent {
public:
    void notify() {
        sent_.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard lock(mu_);
            pending_ = true;
        }
        cv_.notify_one();
    }

    // False when nothing arrived before the timeout: callers treat that as a lost notification
    // (a deadlock detector, not a performance bound).
    bool wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, timeout, [&] { return pending_; })) return false;
        pending_ = false;
        waits_.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    std::uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
    std::uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool pending_ = false;
    std::atomic<std::uint64_t> sent_{0};
    std::atomic<std::uint64_t> waits_{0};
};

} // namespace netbackd::ring
