// Per-vif rate limit with the semantics of the toolstack's `rate` key ("<bytes>,<usec>"):
// every period the vif regains `bytes` of credit. Credit may build up to one period's worth or
// 128 KiB, whichever is larger, so a maximal GSO packet can always pass eventually.
//
// Two ways to spend it:
// - RX (a frame in hand, size known): available() then charge(), or try_consume().
// - TX (the size is known only once the request is copied off the guest's ring): take a packet
//   while has_credit(), then charge() what was taken. The credit may go negative by up to one
//   packet and later refills pay it back, which is what Linux netback's tx_credit_exceeded
//   amounts to; deciding on a peek at the ring instead would be a second read the guest can
//   change in between (issue 14 item 5).
//
// Time is whatever monotonic tick the caller reads once per burst (e.g. TSC); nothing here makes
// a syscall.
#pragma once

#include <algorithm>
#include <cstdint>

namespace netbackd::dataplane {

class TokenBucket {
public:
    static constexpr std::int64_t kMinBurst = 128 * 1024;
    // Keeps credit arithmetic (credit + one period, minus a packet) far from overflow.
    static constexpr std::int64_t kMaxCredit = std::int64_t{1} << 62;

    TokenBucket() = default; // unlimited
    TokenBucket(std::uint64_t bytes_per_period, std::uint64_t period_ticks, std::uint64_t now)
        : bytes_(std::min<std::uint64_t>(bytes_per_period, kMaxCredit)),
          period_(period_ticks == 0 ? 1 : period_ticks),
          max_credit_(std::max(kMinBurst, static_cast<std::int64_t>(bytes_))),
          credit_(static_cast<std::int64_t>(bytes_)),
          next_refill_(now + period_) {}

    bool unlimited() const { return bytes_ == 0; }

    // True (and the bytes are charged) when `size` may go now.
    bool try_consume(std::uint64_t size, std::uint64_t now) {
        if (!available(size, now)) return false;
        charge(size);
        return true;
    }

    // For a frame whose size is known before it is taken: true when it could go now; the
    // caller then charge()s it once it really went.
    bool available(std::uint64_t size, std::uint64_t now) {
        if (unlimited()) return true;
        if (now >= next_refill_) refill(now);
        return credit_ > 0 && size <= static_cast<std::uint64_t>(credit_);
    }

    // For a packet whose size is known only once taken: true when one may be taken now.
    bool has_credit(std::uint64_t now) {
        if (unlimited()) return true;
        if (now >= next_refill_) refill(now);
        return credit_ > 0;
    }

    // Charges what went; the credit may go negative (see the file comment).
    void charge(std::uint64_t size) {
        if (!unlimited()) credit_ -= static_cast<std::int64_t>(std::min<std::uint64_t>(size, kMaxCredit));
    }

    // No credit until the next refill (or later ones): nothing may be taken before then.
    bool exhausted() const { return !unlimited() && credit_ <= 0; }
    // When the next credit arrives: a rate-limited vif may sleep until then.
    std::uint64_t next_refill() const { return next_refill_; }
    std::int64_t credit() const { return credit_; }

private:
    void refill(std::uint64_t now) {
        const std::uint64_t periods = (now - next_refill_) / period_ + 1;
        // Saturate rather than overflow when a vif sat idle for a very long time.
        const auto room = static_cast<std::uint64_t>(max_credit_ - std::min(credit_, max_credit_));
        const std::uint64_t gained = periods > room / bytes_ ? room : periods * bytes_;
        credit_ = std::min(max_credit_, credit_ + static_cast<std::int64_t>(gained));
        next_refill_ += periods * period_;
    }

    std::uint64_t bytes_ = 0;
    std::uint64_t period_ = 1;
    std::int64_t max_credit_ = 0;
    std::int64_t credit_ = 0;
    std::uint64_t next_refill_ = 0;
};

} // namespace netbackd::dataplane
