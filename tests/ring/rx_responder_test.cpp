// RxResponder: responses land in the slot of the request they answer, multi-slot packets carry
// NETRXF_more_data, a GSO extra sits right after the first response; plus the netfront reader.
#include <vector>

#include <catch2/catch.hpp>

#include "tests/ring/ring_pairs.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::test;

namespace {

struct Rx {
    explicit Rx(RingIdx start = 0) : p(start), rx(p.back) {}
    void post(std::uint16_t n, std::uint16_t first_id = 0) {
        for (std::uint16_t i = 0; i < n; ++i)
            p.front.put_request(netif_rx_request_t{static_cast<std::uint16_t>(first_id + i), 0,
                                                   static_cast<grant_ref_t>(1000 + first_id + i)});
        p.front.push();
    }
    RxPair p;
    RxResponder rx;
    RxReservation res;
};

} // namespace

TEST_CASE("a single-slot RX packet answers its own request's slot", "[ring][rx]") {
    Rx t;
    t.post(3, 40);
    REQUIRE(t.rx.reserve(1, false, t.res) == RxStep::ok);
    REQUIRE(t.res.buffers().size() == 1);
    CHECK(t.res.buffers()[0] == RxBuffer{40, 1040});
    const RxChunk c{64, 1500};
    t.rx.complete(t.res, std::span(&c, 1), RxMeta{true, true, std::nullopt});
    t.p.back.push();
    const Avail a = t.p.front.poll();
    REQUIRE(a.count == 1);
    const auto r = t.p.front.copy_response(0);
    CHECK(r.id == 40);
    CHECK(r.offset == 64);
    CHECK(r.status == 1500);
    CHECK(r.flags == (NETRXF_data_validated | NETRXF_csum_blank));
    CHECK(t.p.back.req_cons() == 1);
}

TEST_CASE("a multi-slot RX packet chains with more_data and responds in request order", "[ring][rx]") {
    Rx t;
    t.post(4, 7);
    REQUIRE(t.rx.reserve(3, false, t.res) == RxStep::ok);
    const RxChunk c[] = {{0, 4096}, {0, 4096}, {0, 100}};
    t.rx.complete(t.res, c, RxMeta{});
    t.p.back.push();
    RxFrontPacket pkt;
    REQUIRE(read_rx_packet(t.p.front, pkt) == RxReadStep::packet);
    REQUIRE(pkt.nr_frags == 3);
    CHECK(pkt.length == 8292);
    CHECK_FALSE(pkt.error);
    CHECK_FALSE(pkt.gso);
    for (std::uint16_t i = 0; i < 3; ++i) CHECK(pkt.frags()[i].id == 7 + i);
    CHECK(pkt.frags()[0].flags == NETRXF_more_data);
    CHECK(pkt.frags()[1].flags == NETRXF_more_data);
    CHECK(pkt.frags()[2].flags == 0);
}

TEST_CASE("a GSO packet puts its extra in the second slot, consuming that slot's request", "[ring][rx]") {
    Rx t;
    t.post(3, 0);
    REQUIRE(t.rx.reserve(2, true, t.res) == RxStep::ok);
    CHECK(t.res.slots() == 3);
    // The data goes to the first and third buffers; the second slot is the extra.
    REQUIRE(t.res.buffers().size() == 2);
    CHECK(t.res.buffers()[0].id == 0);
    CHECK(t.res.buffers()[1].id == 2);
    const RxChunk c[] = {{0, 4096}, {0, 2000}};
    t.rx.complete(t.res, c, RxMeta{false, true, TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV4, 0}});
    t.p.back.push();
    const Avail a = t.p.front.poll();
    REQUIRE(a.count == 3);
    const auto first = t.p.front.copy_response(0);
    CHECK(first.flags == (NETRXF_more_data | NETRXF_extra_info | NETRXF_csum_blank));
    const auto extra = t.p.front.copy_response<netif_extra_info_t>(1);
    CHECK(extra.type == XEN_NETIF_EXTRA_TYPE_GSO);
    CHECK(extra.flags == 0);
    CHECK(extra.u.gso.size == 1448);
    CHECK(extra.u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4);
    const auto last = t.p.front.copy_response(2);
    CHECK(last.id == 2);
    CHECK(last.status == 2000);

    RxFrontPacket pkt;
    REQUIRE(read_rx_packet(t.p.front, pkt) == RxReadStep::packet);
    CHECK(pkt.nr_frags == 2);
    CHECK(pkt.length == 6096);
    REQUIRE(pkt.gso);
    CHECK(pkt.gso->u.gso.size == 1448);
}

TEST_CASE("reserve takes nothing when too few buffers are posted", "[ring][rx]") {
    Rx t;
    t.post(2);
    CHECK(t.rx.reserve(2, true, t.res) == RxStep::short_of);
    CHECK(t.p.back.req_cons() == 0);
    t.post(1, 2);
    CHECK(t.rx.reserve(2, true, t.res) == RxStep::ok);
    CHECK(t.p.back.req_cons() == 3);
}

TEST_CASE("fail answers every reserved slot with the error status", "[ring][rx]") {
    Rx t;
    t.post(4);
    REQUIRE(t.rx.reserve(3, true, t.res) == RxStep::ok);
    t.rx.fail(t.res, NETIF_RSP_ERROR);
    t.p.back.push();
    const Avail a = t.p.front.poll();
    REQUIRE(a.count == 4);
    for (RingIdx i = 0; i < a.count; ++i) {
        const auto r = t.p.front.copy_response(i);
        CHECK(r.status == NETIF_RSP_ERROR);
        CHECK(r.flags == 0);
    }
    CHECK(t.p.front.copy_response(0).id == 0);
    CHECK(t.p.front.copy_response(2).id == 2);
}

TEST_CASE("RX req_prod beyond a ring is fatal for the RX responder", "[ring][rx][hostile]") {
    Rx t;
    t.p.shared().req_prod().store(RxRing::kSize + 1);
    CHECK(t.rx.reserve(1, false, t.res) == RxStep::fatal);
    CHECK(t.rx.stopped());
    CHECK(t.rx.fatal_error() == ProdError::overflow);
    t.p.shared().req_prod().store(1);
    CHECK(t.rx.reserve(1, false, t.res) == RxStep::fatal);
}

TEST_CASE("RX responses keep slot positions across wrap-around at 2^32", "[ring][rx]") {
    Rx t(0xFFFFFFFFu - 10);
    std::uint16_t id = 0;
    for (int round = 0; round < 50; ++round) {
        t.post(3, id);
        REQUIRE(t.rx.reserve(2, true, t.res) == RxStep::ok);
        const RxChunk c[] = {{10, 100}, {20, 200}};
        t.rx.complete(t.res, c, RxMeta{true, false, TxGso{536, XEN_NETIF_GSO_TYPE_TCPV6, 0}});
        t.p.back.push();
        RxFrontPacket pkt;
        REQUIRE(read_rx_packet(t.p.front, pkt) == RxReadStep::packet);
        CHECK(pkt.frags()[0].id == id);
        CHECK(pkt.frags()[1].id == static_cast<std::uint16_t>(id + 2));
        CHECK(pkt.length == 300);
        id = static_cast<std::uint16_t>(id + 3);
    }
    CHECK(t.p.back.req_cons() < 1000);
}

TEST_CASE("a full RX ring: the frontend cannot post more until responses return", "[ring][rx]") {
    Rx t;
    t.post(static_cast<std::uint16_t>(RxRing::kSize));
    CHECK(t.p.front.full());
    for (RingIdx i = 0; i < RxRing::kSize; ++i) {
        REQUIRE(t.rx.reserve(1, false, t.res) == RxStep::ok);
        const RxChunk c{0, 60};
        t.rx.complete(t.res, std::span(&c, 1), RxMeta{});
    }
    CHECK(t.rx.reserve(1, false, t.res) == RxStep::short_of);
    CHECK(t.p.back.push_and_check_notify());
    RxFrontPacket pkt;
    std::uint32_t n = 0;
    while (read_rx_packet(t.p.front, pkt) == RxReadStep::packet) ++n;
    CHECK(n == RxRing::kSize);
    CHECK(t.p.front.free_requests() == RxRing::kSize);
}

TEST_CASE("the netfront reader rejects a backend that claims too many continuation slots", "[ring][rx]") {
    Rx t;
    t.post(static_cast<std::uint16_t>(kMaxTxSegments + 2));
    t.p.back.consume(kMaxTxSegments + 2);
    for (std::uint16_t i = 0; i < kMaxTxSegments + 2; ++i)
        t.p.back.put_response(netif_rx_response_t{i, 0, NETRXF_more_data, 10});
    t.p.back.push();
    RxFrontPacket pkt;
    CHECK(read_rx_packet(t.p.front, pkt) == RxReadStep::malformed);
}
