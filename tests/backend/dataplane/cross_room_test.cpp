// The room a vif's owner publishes for senders on other workers (cross_room.hpp).
#include <catch2/catch.hpp>

#include "backend/dataplane/cross_room.hpp"

using namespace netbackd::dataplane;

TEST_CASE("a published room reads back whole, rounded down, and 'no waiting' is the zero word",
          "[dataplane][cross_room]") {
    const BacklogRoom room{true, true, 12345, 300, 100'000};
    const BacklogRoom back = BacklogRoom::unpack(room.pack());
    CHECK(back.waits);
    CHECK(back.empty);
    CHECK(back.taken == 12345);
    CHECK(back.mbufs == 300);
    CHECK(back.bytes == 100'000 / BacklogRoom::kByteUnit * BacklogRoom::kByteUnit);
    CHECK(BacklogRoom{}.pack() == 0);
    CHECK_FALSE(BacklogRoom::unpack(0).waits);
    // Counts wrap, room saturates: a sender never reads more room than there is.
    const BacklogRoom big = BacklogRoom::unpack(
        BacklogRoom{true, false, BacklogRoom::kTakenMask + 3, 1u << 20, 1ull << 40}.pack());
    CHECK(big.taken == 2);
    CHECK(big.mbufs == BacklogRoom::kMaxMbufs);
    CHECK(big.bytes == BacklogRoom::kMaxBytes);
}

TEST_CASE("each sender reads what the owner took from its own ring", "[dataplane][cross_room]") {
    CrossRoom r;
    r.reserve(3, BacklogRoom{true, true, 0, 7, 1 << 20});
    // Until the owner (worker 1) publishes, senders see the room they were given.
    CHECK(BacklogRoom::unpack(r.word(0)).waits);
    CHECK(BacklogRoom::unpack(r.word(0)).mbufs == 7);
    r.took(0, 4);
    r.took(2, 1);
    r.took(2, 2);
    (void)r.publish(BacklogRoom{true, false, 0, 10, 1 << 20}, 1);
    CHECK(BacklogRoom::unpack(r.word(0)).taken == 4);
    CHECK(BacklogRoom::unpack(r.word(2)).taken == 3);
    CHECK(BacklogRoom::unpack(r.word(0)).mbufs == 10);
}

TEST_CASE("the owner wakes a waiting sender once, and only when the room changed",
          "[dataplane][cross_room]") {
    CrossRoom r;
    const BacklogRoom full{true, false, 0, 0, 0};
    r.reserve(4, full);
    r.wake_me(2);
    r.wake_me(3);
    CHECK(r.publish(full, 0) == 0); // nothing changed: nobody is woken, the requests stay
    CHECK(r.publish(BacklogRoom{true, false, 0, 5, 10'000}, 0) == ((1u << 2) | (1u << 3)));
    CHECK(r.publish(BacklogRoom{true, true, 0, 9, 20'000}, 0) == 0); // already woken
    // A stalled receiver (no waiting) is a change too: its senders must go on.
    r.wake_me(1);
    CHECK(r.publish(BacklogRoom{}, 0) == (1u << 1));
    CHECK_FALSE(BacklogRoom::unpack(r.word(1)).waits);
}
