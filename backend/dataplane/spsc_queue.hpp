// A fixed-capacity single-producer/single-consumer queue: how the control thread and a worker
// hand each other messages without a lock. Capacity is fixed at construction, so neither side
// ever allocates or blocks; a full queue is reported and the producer decides what to do.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <optional>

namespace netbackd::dataplane {

template <class T>
class SpscQueue {
public:
    explicit SpscQueue(std::size_t capacity)
        : mask_(std::bit_ceil(capacity < 2 ? std::size_t{2} : capacity) - 1),
          slots_(std::make_unique<T[]>(mask_ + 1)) {}

    // Producer side. False when full.
    bool push(const T& value) noexcept {
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        if (tail - head_cache_ > mask_) {
            head_cache_ = head_.load(std::memory_order_acquire);
            if (tail - head_cache_ > mask_) return false;
        }
        slots_[tail & mask_] = value;
        // release: the slot is written before the consumer can see the new tail.
        tail_.store(tail + 1, std::memory_order_release);
        return true;
    }

    // Consumer side.
    std::optional<T> pop() noexcept {
        const std::size_t head = head_.load(std::memory_order_relaxed);
        if (head == tail_cache_) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (head == tail_cache_) return std::nullopt;
        }
        T value = slots_[head & mask_];
        // release: the slot is read before the producer may overwrite it.
        head_.store(head + 1, std::memory_order_release);
        return value;
    }

    std::size_t capacity() const noexcept { return mask_ + 1; }
    // Either side: a snapshot (the consumer's "anything left?" before it sleeps).
    bool empty() const noexcept {
        return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
    }

private:
    const std::size_t mask_;
    std::unique_ptr<T[]> slots_;
    // Each index on its own cache line, so producer and consumer do not false-share.
    alignas(64) std::atomic<std::size_t> head_{0};
    std::size_t tail_cache_ = 0; // consumer's last view of tail_
    alignas(64) std::atomic<std::size_t> tail_{0};
    std::size_t head_cache_ = 0; // producer's last view of head_
};

} // namespace netbackd::dataplane
