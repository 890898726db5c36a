#include <thread>

#include <catch2/catch.hpp>

#include "backend/dataplane/spsc_queue.hpp"

using netbackd::dataplane::SpscQueue;

TEST_CASE("SPSC queue: FIFO, full and empty", "[dataplane]") {
    SpscQueue<int> q(4);
    CHECK_FALSE(q.pop().has_value());
    for (int i = 0; i < 4; ++i) CHECK(q.push(i));
    CHECK_FALSE(q.push(99));
    for (int i = 0; i < 4; ++i) CHECK(q.pop() == i);
    CHECK_FALSE(q.pop().has_value());
}

TEST_CASE("SPSC queue: a million values cross threads in order", "[dataplane]") {
    SpscQueue<std::uint32_t> q(64);
    constexpr std::uint32_t kN = 1'000'000;
    std::thread producer([&] {
        for (std::uint32_t i = 0; i < kN;)
            if (q.push(i)) ++i;
    });
    std::uint32_t expect = 0;
    std::uint32_t wrong = 0;
    while (expect < kN) {
        if (auto v = q.pop()) {
            if (*v != expect) ++wrong;
            ++expect;
        }
    }
    producer.join();
    CHECK(wrong == 0);
}
