// BackRing / FrontRing: index arithmetic, event-index notification, final checks, producer index
// validation, wrap-around at 2^32 and a full ring.
#include <catch2/catch.hpp>

#include "tests/ring/ring_pairs.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::test;

TEST_CASE("event_in_range follows RING_PUSH_*_AND_CHECK_NOTIFY modulo 2^32", "[ring][ends]") {
    CHECK(event_in_range(1, 0, 1));
    CHECK(event_in_range(5, 0, 5));
    CHECK_FALSE(event_in_range(6, 0, 5));
    CHECK_FALSE(event_in_range(0, 0, 5)); // the event was already passed before this push
    CHECK(event_in_range(0, 0xFFFFFFFEu, 2));
    CHECK(event_in_range(0xFFFFFFFFu, 0xFFFFFFFEu, 2));
    CHECK_FALSE(event_in_range(3, 0xFFFFFFFEu, 2));
}

TEST_CASE("a fresh shared ring has the SHARED_RING_INIT values", "[ring][ends]") {
    TxPair p(7);
    auto s = p.shared();
    CHECK(s.req_prod().load() == 7);
    CHECK(s.rsp_prod().load() == 7);
    CHECK(s.req_event().load() == 8);
    CHECK(s.rsp_event().load() == 8);
    CHECK(p.front.free_requests() == TxRing::kSize);
    CHECK(p.back.poll().count == 0);
}

TEST_CASE("requests go front to back and responses back to front, with the same content", "[ring][ends]") {
    TxPair p;
    for (std::uint16_t i = 0; i < 10; ++i)
        p.front.put_request(tx_req(100 + i, i, 0, i, static_cast<std::uint16_t>(60 + i)));
    CHECK(p.back.poll().count == 0); // not pushed yet
    p.front.push();
    const Avail a = p.back.poll();
    REQUIRE(a.count == 10);
    for (RingIdx i = 0; i < a.count; ++i) {
        const auto r = p.back.copy_request(i);
        CHECK(r.gref == 100 + i);
        CHECK(r.offset == i);
        CHECK(r.id == i);
        CHECK(r.size == 60 + i);
    }
    p.back.consume(a.count);
    for (std::uint16_t i = 0; i < 10; ++i)
        p.back.put_response(netif_tx_response_t{static_cast<std::uint16_t>(9 - i), NETIF_RSP_OKAY});
    CHECK(p.front.poll().count == 0);
    p.back.push();
    const Avail r = p.front.poll();
    REQUIRE(r.count == 10);
    for (RingIdx i = 0; i < r.count; ++i) CHECK(p.front.copy_response(i).id == 9 - i);
    p.front.consume(r.count);
    CHECK(p.front.free_requests() == TxRing::kSize);
}

TEST_CASE("the frontend notifies only when the backend's req_event falls in the pushed range",
          "[ring][ends]") {
    TxPair p;
    // Fresh ring: req_event = 1, so the first push notifies.
    p.front.put_request(tx_req(1, 0, 0, 0, 60));
    CHECK(p.front.push_and_check_notify());
    // The backend has not re-armed: further pushes stay silent.
    p.front.put_request(tx_req(2, 0, 0, 1, 60));
    CHECK_FALSE(p.front.push_and_check_notify());
    // Nothing new: never a notification.
    CHECK_FALSE(p.front.push_and_check_notify());

    // Backend drains, re-arms through the final check, and the next push notifies again.
    const Avail a = p.back.poll();
    REQUIRE(a.count == 2);
    p.back.consume(a.count);
    const Avail f = p.back.final_check();
    CHECK(f.count == 0);
    CHECK(p.shared().req_event().load() == p.back.req_cons() + 1);
    p.front.put_request(tx_req(3, 0, 0, 2, 60));
    CHECK(p.front.push_and_check_notify());
}

TEST_CASE("the backend's final check finds requests published before it armed req_event", "[ring][ends]") {
    TxPair p;
    p.front.put_request(tx_req(1, 0, 0, 0, 60));
    p.front.push();
    CHECK(p.back.final_check().count == 1);
    // With work found, req_event is left alone (no need to be woken).
    CHECK(p.shared().req_event().load() == 1);
}

TEST_CASE("final_check(want) asks to be woken at the want-th request", "[ring][ends]") {
    RxPair p;
    p.front.put_request(netif_rx_request_t{0, 0, 10});
    p.front.push();
    const Avail a = p.back.final_check(3);
    CHECK(a.count == 1);
    CHECK(p.shared().req_event().load() == p.back.req_cons() + 3);
    // The frontend's next push of one request does not reach the event; a second one does.
    p.front.put_request(netif_rx_request_t{1, 0, 11});
    CHECK_FALSE(p.front.push_and_check_notify());
    p.front.put_request(netif_rx_request_t{2, 0, 12});
    CHECK(p.front.push_and_check_notify());
}

TEST_CASE("the backend notifies only when the frontend's rsp_event falls in the pushed range",
          "[ring][ends]") {
    TxPair p;
    for (std::uint16_t i = 0; i < 3; ++i) p.front.put_request(tx_req(1, 0, 0, i, 60));
    p.front.push();
    p.back.consume(p.back.poll().count);

    p.back.put_response(netif_tx_response_t{0, NETIF_RSP_OKAY});
    CHECK(p.back.push_and_check_notify()); // rsp_event = 1 initially
    p.back.put_response(netif_tx_response_t{1, NETIF_RSP_OKAY});
    CHECK_FALSE(p.back.push_and_check_notify());
    CHECK_FALSE(p.back.push_and_check_notify());

    const Avail r = p.front.poll();
    REQUIRE(r.count == 2);
    p.front.consume(r.count);
    CHECK(p.front.final_check().count == 0);
    CHECK(p.shared().rsp_event().load() == p.front.rsp_cons() + 1);
    p.back.put_response(netif_tx_response_t{2, NETIF_RSP_OKAY});
    CHECK(p.back.push_and_check_notify());
}

TEST_CASE("req_prod more than a ring ahead of the answered requests is an overflow", "[ring][ends]") {
    TxPair p;
    auto s = p.shared();
    s.req_prod().store(TxRing::kSize);
    CHECK(p.back.poll().error == ProdError::none);
    CHECK(p.back.poll().count == TxRing::kSize);
    s.req_prod().store(TxRing::kSize + 1);
    CHECK(p.back.poll().error == ProdError::overflow);
    CHECK(p.back.final_check().error == ProdError::overflow);
    s.req_prod().store(0xFFFFFFFFu); // far "behind" reads as far ahead
    CHECK(p.back.poll().error == ProdError::overflow);
}

TEST_CASE("req_prod moving behind req_cons is detected", "[ring][ends]") {
    TxPair p;
    auto s = p.shared();
    s.req_prod().store(10);
    p.back.consume(p.back.poll().count);
    s.req_prod().store(5);
    CHECK(p.back.poll().error == ProdError::regressed);
    // Unanswered requests count against the ring: 10 consumed, none answered.
    s.req_prod().store(TxRing::kSize + 1);
    CHECK(p.back.poll().error == ProdError::overflow);
}

TEST_CASE("the frontend rejects more responses than requests outstanding", "[ring][ends]") {
    TxPair p;
    p.front.put_request(tx_req(1, 0, 0, 0, 60));
    p.front.push();
    auto s = p.shared();
    s.rsp_prod().store(2);
    CHECK(p.front.poll().error != ProdError::none);
    s.rsp_prod().store(1);
    CHECK(p.front.poll().count == 1);
}

TEST_CASE("a full ring takes no more requests until responses come back", "[ring][ends]") {
    TxPair p;
    for (RingIdx i = 0; i < TxRing::kSize; ++i)
        p.front.put_request(tx_req(i, 0, 0, static_cast<std::uint16_t>(i), 60));
    CHECK(p.front.full());
    CHECK(p.front.free_requests() == 0);
    const TxFrontSegment seg{1, 0, 60, 999};
    CHECK_FALSE(put_tx_packet(p.front, std::span(&seg, 1)));
    p.front.push();
    const Avail a = p.back.poll();
    CHECK(a.count == TxRing::kSize);
    CHECK(a.error == ProdError::none);
    p.back.consume(5);
    for (std::uint16_t i = 0; i < 5; ++i) p.back.put_response(netif_tx_response_t{i, NETIF_RSP_OKAY});
    p.back.push();
    CHECK(p.front.full()); // still full until the frontend consumes the responses
    p.front.consume(p.front.poll().count);
    CHECK(p.front.free_requests() == 5);
    CHECK(put_tx_packet(p.front, std::span(&seg, 1)));
}

TEST_CASE("indices wrap around 2^32 on both ends without losing or reordering a slot", "[ring][ends]") {
    const RingIdx start = 0xFFFFFFFFu - 300;
    TxPair p(start);
    std::uint32_t sent = 0, seen = 0, answered = 0;
    while (answered < 2000) {
        while (!p.front.full() && sent < 2000) {
            p.front.put_request(tx_req(sent, 0, 0, static_cast<std::uint16_t>(sent), 60));
            ++sent;
        }
        p.front.push();
        const Avail a = p.back.poll();
        REQUIRE(a.error == ProdError::none);
        for (RingIdx i = 0; i < a.count; ++i) REQUIRE(p.back.copy_request(i).gref == seen + i);
        p.back.consume(a.count);
        for (RingIdx i = 0; i < a.count; ++i)
            p.back.put_response(netif_tx_response_t{static_cast<std::uint16_t>(seen + i), NETIF_RSP_OKAY});
        seen += a.count;
        p.back.push();

        const Avail r = p.front.poll();
        REQUIRE(r.error == ProdError::none);
        for (RingIdx i = 0; i < r.count; ++i)
            REQUIRE(p.front.copy_response(i).id == static_cast<std::uint16_t>(answered + i));
        p.front.consume(r.count);
        answered += r.count;
        REQUIRE((a.count != 0 || r.count != 0));
    }
    CHECK(answered == 2000);
    CHECK(p.front.req_prod_pvt() == start + 2000);
    CHECK(p.front.req_prod_pvt() < start); // it really wrapped
    CHECK(p.back.req_cons() == start + 2000);
}

TEST_CASE("a backend attaching to a used ring resumes after the last published response", "[ring][ends]") {
    TxPair p;
    // The first backend answers 5 of 7 requests, then goes away (netbackd restarted).
    for (std::uint16_t i = 0; i < 7; ++i) p.front.put_request(tx_req(i, 0, 0, i, 60));
    p.front.push();
    p.back.consume(p.back.poll().count);
    for (std::uint16_t i = 0; i < 5; ++i) p.back.put_response(netif_tx_response_t{i, NETIF_RSP_OKAY});
    p.back.push();

    const RingIdx start = BackRing<TxRing>::attach_index(p.page->bytes);
    CHECK(start == 5);
    BackRing<TxRing> again(p.page->bytes, start);
    const Avail a = again.poll();
    REQUIRE(a.error == ProdError::none);
    REQUIRE(a.count == 2); // the two unanswered requests are served again
    CHECK(again.copy_request(0).id == 5);
    CHECK(again.copy_request(1).id == 6);

    // A scribbled rsp_prod only moves the start; a req_prod a ring ahead of it is still refused.
    p.shared().rsp_prod().store(7 + 3 * TxRing::kSize);
    BackRing<TxRing> lied_to(p.page->bytes, BackRing<TxRing>::attach_index(p.page->bytes));
    CHECK(lied_to.poll().error == ProdError::overflow);
}
