#include <catch2/catch.hpp>

#include "backend/dataplane/token_bucket.hpp"

using netbackd::dataplane::TokenBucket;

TEST_CASE("an unset rate never limits", "[dataplane]") {
    TokenBucket tb;
    REQUIRE(tb.try_consume(1'000'000'000, 0));
}

TEST_CASE("credit is spent, refused when short, and refilled each period", "[dataplane]") {
    TokenBucket tb(10'000, 1000, 0); // 10 kB per 1000 ticks
    REQUIRE(tb.try_consume(6000, 10));
    REQUIRE_FALSE(tb.try_consume(6000, 20));
    REQUIRE(tb.try_consume(4000, 30));
    REQUIRE_FALSE(tb.try_consume(1, 999));
    REQUIRE(tb.try_consume(6000, 1000));
    REQUIRE(tb.next_refill() == 2000);
}

TEST_CASE("credit accumulates only up to max(one period, 128 KiB)", "[dataplane]") {
    TokenBucket small(1000, 10, 0);
    small.try_consume(1, 1'000'000);
    REQUIRE(small.credit() == TokenBucket::kMinBurst - 1);
    // A 64 KiB GSO packet passes a slow vif eventually instead of starving forever.
    TokenBucket slow(1000, 10, 0);
    std::uint64_t t = 0;
    while (!slow.try_consume(65536, t)) t += 10;
    REQUIRE(t >= 640);
    TokenBucket big(1'000'000, 10, 0);
    big.try_consume(1, 1'000'000'000'000ULL);
    REQUIRE(big.credit() == 1'000'000 - 1);
}

TEST_CASE("long idle periods do not overflow", "[dataplane]") {
    TokenBucket tb(~0ULL / 3, 1, 0);
    REQUIRE(tb.try_consume(5, ~0ULL / 2));
    REQUIRE(tb.credit() > 0);
    REQUIRE(tb.credit() <= TokenBucket::kMaxCredit);
}

TEST_CASE("a packet known only once taken is charged in full, the credit going negative",
          "[dataplane][rate]") {
    // The TX side: take while has_credit(), charge what was taken (issue 14 item 5).
    constexpr std::uint64_t kRate = 1000, kPeriod = 100, kPacket = 65535;
    TokenBucket tb(kRate, kPeriod, 0);
    std::uint64_t taken = 0;
    constexpr std::uint64_t kPeriods = 1000;
    for (std::uint64_t now = 0; now < kPeriods * kPeriod; now += 7) {
        while (tb.has_credit(now)) {
            tb.charge(kPacket);
            taken += kPacket;
        }
        REQUIRE(tb.exhausted());
        REQUIRE(tb.credit() > -static_cast<std::int64_t>(kPacket));
    }
    // Over K periods: the first period's credit, K - 1 refills, and at most one packet of debt.
    CHECK(taken <= kPeriods * kRate + TokenBucket::kMinBurst);
    CHECK(taken >= (kPeriods - 1) * kRate - kPacket);
    // A refill pays the debt back before anything else may go.
    TokenBucket d(kRate, kPeriod, 0);
    d.charge(kPacket);
    CHECK_FALSE(d.has_credit(kPeriod * 60));
    CHECK(d.has_credit(kPeriod * 66));
}
