// Per-vif rate limit with the semantics of the toolstack's `rate` key ("<bytes>,<usec>"):
// every period the vif regains `bytes` of credit. Credit may build up to one period's worth or
// 128 KiB, whichever is larger, so a maximal GSO packet can always pass eventually.
//
// Time is whatever monotonic tick the caller reads once per burst (e.g. TSC); nothing here makes
// a syscall.
#pragma once

#include <algorithm>
#include <cstdint>

namespace netbackd::dataplane {

class TokenBucket {
public:
    static constexpr std::uint64_t kMinBurst = 128 * 1024;

    TokenBucket() = default; // unlimited
    TokenBucket(std::uint64_t bytes_per_period, std::uint64_t period_ticks, std::uint64_t now)
        : bytes_(bytes_per_period),
          period_(period_ticks == 0 ? 1 : period_ticks),
          max_credit_(std::max(kMinBurst, bytes_per_period)),
          credit_(bytes_per_period),
          next_refill_(now + period_) {}

    bool unlimited() const { return bytes_ == 0; }

    // True (and the bytes are charged) when `size` may go now.
    bool try_consume(std::uint64_t size, std::uint64_t now) {
        if (unlimited()) return true;
        if (now >= next_refill_) refill(now);
        if (size > credit_) return false;
        credit_ -= size;
        return true;
    }

    // For a packet whose size is known before it is taken off a ring: true when it could go
    // now; the caller then charge()s it once it really went.
    bool available(std::uint64_t size, std::uint64_t now) {
        if (unlimited()) return true;
        if (now >= next_refill_) refill(now);
        return size <= credit_;
    }
    void charge(std::uint64_t size) {
        if (!unlimited()) credit_ -= std::min(credit_, size);
    }

    // When the next credit arrives: a rate-limited vif may sleep until then.
    std::uint64_t next_refill() const { return next_refill_; }
    std::uint64_t credit() const { return credit_; }

private:
    void refill(std::uint64_t now) {
        const std::uint64_t periods = (now - next_refill_) / period_ + 1;
        // Saturate rather than overflow when a vif sat idle for a very long time.
        const std::uint64_t gained =
            periods > max_credit_ / std::max<std::uint64_t>(bytes_, 1) ? max_credit_ : periods * bytes_;
        credit_ = std::min(max_credit_, credit_ + gained);
        next_refill_ += periods * period_;
    }

    std::uint64_t bytes_ = 0;
    std::uint64_t period_ = 1;
    std::uint64_t max_credit_ = 0;
    std::uint64_t credit_ = 0;
    std::uint64_t next_refill_ = 0;
};

} // namespace netbackd::dataplane
