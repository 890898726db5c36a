// TxAssembler: packet shapes, extras, and one test per hostile-input rule.
#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/ring/ring_pairs.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::test;

namespace {

struct Tx {
    explicit Tx(TxLimits limits = {}, RingIdx start = 0) : p(start), tx(p.back, limits) {}
    void put(const netif_tx_request_t& r) { p.front.put_request(r); }
    void push() { p.front.push(); }
    // All responses the frontend can see now, in ring order.
    std::vector<netif_tx_response_t> responses() {
        p.back.push();
        const Avail a = p.front.poll();
        std::vector<netif_tx_response_t> out;
        for (RingIdx i = 0; i < a.count; ++i) out.push_back(p.front.copy_response(i));
        p.front.consume(a.count);
        return out;
    }
    TxPair p;
    TxAssembler tx;
    TxPacket pkt;
};

void check_all_error(const std::vector<netif_tx_response_t>& rsps, std::vector<std::uint16_t> ids,
                     std::size_t nulls_after_first = 0) {
    REQUIRE(rsps.size() == ids.size() + nulls_after_first);
    std::size_t k = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CHECK(rsps[k].id == ids[i]);
        CHECK(rsps[k].status == NETIF_RSP_ERROR);
        ++k;
        if (i == 0)
            for (std::size_t j = 0; j < nulls_after_first; ++j) CHECK(rsps[k++].status == NETIF_RSP_NULL);
    }
}

} // namespace

TEST_CASE("an empty ring yields empty", "[ring][tx]") {
    Tx t;
    CHECK(t.tx.next(t.pkt).step == TxStep::empty);
}

TEST_CASE("a single-slot packet keeps gref, offset, size, id and flags", "[ring][tx]") {
    Tx t;
    t.put(tx_req(77, 100, NETTXF_csum_blank | NETTXF_data_validated, 5, 1514));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    REQUIRE(r.step == TxStep::packet);
    REQUIRE(t.pkt.nr_segments == 1);
    CHECK(t.pkt.segments()[0] == TxSegment{77, 100, 1514});
    CHECK(t.pkt.ids[0] == 5);
    CHECK(t.pkt.length == 1514);
    CHECK(t.pkt.csum_blank);
    CHECK(t.pkt.data_validated);
    CHECK_FALSE(t.pkt.gso);
    CHECK(t.p.back.req_cons() == 1);
    CHECK(t.responses().empty()); // answered only by respond()
    t.tx.respond(t.pkt, NETIF_RSP_OKAY);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == 1);
    CHECK(rsps[0].id == 5);
    CHECK(rsps[0].status == NETIF_RSP_OKAY);
    CHECK(t.tx.next(t.pkt).step == TxStep::empty);
}

TEST_CASE("a multi-slot packet: the first segment is the total minus the others", "[ring][tx]") {
    Tx t;
    t.put(tx_req(1, 10, NETTXF_more_data, 11, 3000));
    t.put(tx_req(2, 0, NETTXF_more_data, 12, 1000));
    t.put(tx_req(3, 96, 0, 13, 900));
    t.push();
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    REQUIRE(t.pkt.nr_segments == 3);
    CHECK(t.pkt.segments()[0] == TxSegment{1, 10, 1100});
    CHECK(t.pkt.segments()[2] == TxSegment{3, 96, 900});
    CHECK(t.pkt.segments()[1] == TxSegment{2, 0, 1000});
    // Only the packet's own segments' ids are defined (TxPacket::clear leaves the rest).
    CHECK(std::vector<std::uint16_t>(t.pkt.ids.begin(), t.pkt.ids.begin() + t.pkt.nr_segments) ==
          std::vector<std::uint16_t>{11, 12, 13});
    t.tx.respond(t.pkt, NETIF_RSP_OKAY);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == 3);
    CHECK(rsps[0].id == 11);
    CHECK(rsps[1].id == 12);
    CHECK(rsps[2].id == 13);
}

TEST_CASE("extras GSO, hash and multicast are parsed and answered with NULL in their slots", "[ring][tx]") {
    Tx t;
    const TxFrontSegment segs[] = {{1, 0, 2000, 21}, {2, 0, 1000, 22}};
    TxExtras x;
    x.gso = TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV6, 0};
    x.hash = TxHash{_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0xA1B2C3D4u};
    REQUIRE(put_tx_packet(t.p.front, segs, x, TxFrontFlags{true, false}));
    t.push();
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    CHECK(t.pkt.nr_extra_slots == 2);
    CHECK(t.pkt.slots() == 4);
    REQUIRE(t.pkt.gso);
    CHECK(*t.pkt.gso == TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV6, 0});
    REQUIRE(t.pkt.hash);
    CHECK(*t.pkt.hash ==
          TxHash{_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0xA1B2C3D4u});
    CHECK(t.pkt.csum_blank);
    CHECK_FALSE(t.pkt.data_validated);
    CHECK(t.pkt.length == 3000);
    CHECK(t.pkt.segments()[0].size == 2000);
    CHECK(t.pkt.segments()[1].size == 1000);
    t.tx.respond(t.pkt, NETIF_RSP_OKAY);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == 4);
    CHECK((rsps[0].id == 21 && rsps[0].status == NETIF_RSP_OKAY));
    CHECK(rsps[1].status == NETIF_RSP_NULL);
    CHECK(rsps[2].status == NETIF_RSP_NULL);
    CHECK((rsps[3].id == 22 && rsps[3].status == NETIF_RSP_OKAY));
}

TEST_CASE("a multicast control packet is delivered even with zero length", "[ring][tx]") {
    Tx t;
    const TxFrontSegment seg{1, 0, 0, 3};
    TxExtras x;
    x.mcast_add = MacAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};
    x.mcast_del = MacAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01};
    REQUIRE(put_tx_packet(t.p.front, std::span(&seg, 1), x));
    t.push();
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    CHECK(t.pkt.is_mcast_control());
    CHECK(*t.pkt.mcast_add == MacAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb});
    CHECK(*t.pkt.mcast_del == MacAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01});
}

TEST_CASE("rule: an unknown extra type is fatal and stops the ring", "[ring][tx][hostile]") {
    const std::uint8_t type = GENERATE(std::uint8_t{XEN_NETIF_EXTRA_TYPE_NONE},
                                       std::uint8_t{XEN_NETIF_EXTRA_TYPE_MAX}, std::uint8_t{0xff});
    Tx t;
    t.put(tx_req(1, 0, NETTXF_extra_info, 1, 60));
    t.put(tx_extra(type, 0));
    t.put(tx_req(2, 0, 0, 2, 60)); // a good packet behind it is never reached
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::unknown_extra);
    CHECK(is_fatal(r.error));
    CHECK(t.tx.stopped());
    CHECK(t.tx.next(t.pkt).step == TxStep::fatal);
    CHECK(t.p.back.req_cons() == 0);
    CHECK(t.responses().empty());
}

TEST_CASE("rule: an unknown extra deep in a chain is fatal too", "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_extra_info, 1, 60));
    t.put(gso_extra(1448, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_EXTRA_FLAG_MORE));
    t.put(tx_extra(9, 0));
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::unknown_extra);
}

TEST_CASE("rule: a GSO extra with zero size or unknown type is fatal", "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_extra_info, 1, 60));
    const bool zero = GENERATE(true, false);
    t.put(zero ? gso_extra(0, XEN_NETIF_GSO_TYPE_TCPV4) : gso_extra(1448, 7));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::bad_gso);
}

TEST_CASE("rule: req_prod more than a ring ahead of req_cons is fatal", "[ring][tx][hostile]") {
    Tx t;
    t.p.shared().req_prod().store(TxRing::kSize + 1);
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::req_prod_overflow);
    t.p.shared().req_prod().store(1); // going back to sane does not revive the ring
    CHECK(t.tx.next(t.pkt).step == TxStep::fatal);
}

TEST_CASE("rule: req_prod moving backwards is fatal", "[ring][tx][hostile]") {
    Tx t;
    for (std::uint16_t i = 0; i < 4; ++i) t.put(tx_req(i, 0, 0, i, 60));
    t.push();
    for (int i = 0; i < 4; ++i) REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    t.p.shared().req_prod().store(2);
    CHECK(t.tx.next(t.pkt).error == TxError::req_prod_regressed);
}

// Page crossing, as Linux netback: fatal for any slot (xenvif_count_requests checks every slot
// after the first, xenvif_tx_build_gops the first slot's own share), after the drops for size.

TEST_CASE("page: a later slot crossing the page end is fatal (xenvif_count_requests)",
          "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data, 31, 300));
    t.put(tx_req(2, 4000, 0, 32, 97)); // 4000 + 97 = 4097
    t.put(tx_req(3, 0, 0, 33, 60));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::page_cross);
    CHECK(is_fatal(r.error));
    CHECK(t.responses().empty());
    CHECK(t.tx.next(t.pkt).step == TxStep::fatal); // the ring stays stopped
}

TEST_CASE("page: a later slot ending exactly at the page end is accepted", "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data, 31, 296));
    t.put(tx_req(2, 4000, 0, 32, 96)); // 4000 + 96 = 4096
    t.push();
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    CHECK(t.pkt.segments()[1] == TxSegment{2, 4000, 96});
}

TEST_CASE("page: a crossing slot is fatal even in a packet already dropped for its slot count",
          "[ring][tx][hostile]") {
    // xenvif_count_requests goes on reading (into dropped_tx) after drop_err is set, and checks
    // each slot's offset + size before looking at drop_err.
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data, 0, 60 * 20));
    for (std::uint16_t i = 1; i < 19; ++i) t.put(tx_req(1, 0, NETTXF_more_data, i, 60));
    t.put(tx_req(1, 4090, 0, 19, 60)); // 20th data slot: past the 18 Linux takes, and crossing
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::page_cross);
    CHECK(t.responses().empty());
}

TEST_CASE("page: the first slot's own share crossing the page end is fatal (xenvif_tx_build_gops)",
          "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 4000, NETTXF_more_data, 1, 200)); // own share 100 -> 4100
    t.put(tx_req(2, 0, 0, 2, 100));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::page_cross);
    CHECK(t.responses().empty());
    // Exactly at the page end is fine.
    Tx u;
    u.put(tx_req(1, 4000, NETTXF_more_data, 3, 196));
    u.put(tx_req(2, 0, 0, 4, 100));
    u.push();
    CHECK(u.tx.next(u.pkt).step == TxStep::packet);
    // A single slot likewise: 4000 + 97 crosses, 4000 + 96 does not.
    Tx v;
    v.put(tx_req(1, 4000, 0, 5, 96));
    v.put(tx_req(1, 4000, 0, 6, 97));
    v.push();
    CHECK(v.tx.next(v.pkt).step == TxStep::packet);
    CHECK(v.tx.next(v.pkt).error == TxError::page_cross);
}

TEST_CASE("page: a crossing first slot shorter than an Ethernet header is only dropped",
          "[ring][tx][hostile]") {
    // xenvif_tx_build_gops checks txreq.size < ETH_HLEN (drop) before the page (fatal).
    Tx t;
    t.put(tx_req(1, 4090, NETTXF_more_data, 1, 110)); // own share 10, 4090 + 10 = 4100
    t.put(tx_req(2, 0, 0, 2, 100));
    t.put(tx_req(3, 0, 0, 3, 60));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::dropped);
    CHECK(r.error == TxError::runt);
    check_all_error(t.responses(), {1, 2});
    CHECK(t.tx.next(t.pkt).step == TxStep::packet);
}

TEST_CASE("rule: a first slot holding less than an Ethernet header drops the packet", "[ring][tx][hostile]") {
    // Linux compares the first slot's own share (txreq.size after xenvif_count_requests took
    // the others off) with ETH_HLEN, not the packet's length.
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data, 1, 113)); // own share 13
    t.put(tx_req(2, 0, 0, 2, 100));
    t.put(tx_req(1, 0, NETTXF_more_data, 3, 114)); // own share 14
    t.put(tx_req(2, 0, 0, 4, 100));
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::runt);
    check_all_error(t.responses(), {1, 2});
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    CHECK(t.pkt.segments()[0].size == kEthHeaderLen);
}

TEST_CASE("rule: a first-slot size below the sum of the other slots drops the packet",
          "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data, 1, 100));
    t.put(tx_req(2, 0, NETTXF_more_data, 2, 60));
    t.put(tx_req(3, 0, 0, 3, 41));
    t.push();
    const TxResult r = t.tx.next(t.pkt);
    CHECK(r.step == TxStep::dropped);
    CHECK(r.error == TxError::size_mismatch);
    check_all_error(t.responses(), {1, 2, 3});
}

TEST_CASE("rule: a packet larger than the configured maximum is dropped", "[ring][tx][hostile]") {
    // The 16-bit size field cannot exceed 64 KiB - 1, so the bound is exercised with a lower one.
    TxLimits lim;
    lim.max_length = 1514;
    Tx t(lim);
    t.put(tx_req(1, 0, 0, 1, 1515));
    t.put(tx_req(1, 0, 0, 2, 1514));
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::too_large);
    CHECK(t.tx.next(t.pkt).step == TxStep::packet);
    // The default accepts the largest size the wire can express.
    Tx d;
    d.put(tx_req(1, 0, NETTXF_more_data, 1, 0xFFFF));
    for (std::uint16_t i = 0; i < 15; ++i)
        d.put(tx_req(1, 0, NETTXF_more_data, static_cast<std::uint16_t>(2 + i), 4096));
    d.put(tx_req(1, 0, 0, 17, 4096 - 16));
    d.push();
    CHECK(d.tx.next(d.pkt).step == TxStep::packet);
    CHECK(d.pkt.segments()[0].size == 15);
}

TEST_CASE("rule: zero-length and runt packets are dropped with an error", "[ring][tx][hostile]") {
    Tx t;
    t.put(tx_req(1, 0, 0, 1, 0));
    t.put(tx_req(1, 0, 0, 2, kEthHeaderLen - 1));
    t.put(tx_req(1, 0, 0, 3, kEthHeaderLen));
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::zero_length);
    CHECK(t.tx.next(t.pkt).error == TxError::runt);
    CHECK(t.tx.next(t.pkt).step == TxStep::packet);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == 2);
    CHECK((rsps[0].id == 1 && rsps[0].status == NETIF_RSP_ERROR));
    CHECK((rsps[1].id == 2 && rsps[1].status == NETIF_RSP_ERROR));
}

namespace {
void put_chain(Tx& t, std::uint32_t slots, std::uint16_t first_id = 0) {
    t.put(tx_req(1, 0, slots > 1 ? NETTXF_more_data : 0, first_id, static_cast<std::uint16_t>(60 * slots)));
    for (std::uint32_t i = 1; i < slots; ++i)
        t.put(
            tx_req(1, 0, i + 1 < slots ? NETTXF_more_data : 0, static_cast<std::uint16_t>(first_id + i), 60));
}
} // namespace

// Slot counts, as Linux netback's xenvif_count_requests counts them: the slots *after the first*.
// Before reading one more such slot it is fatal if fatal_skb_slots (20) were read already, and
// the packet is dropped if XEN_NETBK_LEGACY_SLOTS_MAX (18) were. So, in data slots per packet:
// up to 19 accepted, 20 and 21 dropped, 22 and more fatal. One case per boundary.
namespace {

TxResult chain(Tx& t, std::uint32_t slots) {
    put_chain(t, slots, 100);
    t.push();
    return t.tx.next(t.pkt);
}

void check_accepted(std::uint32_t slots) {
    Tx t;
    REQUIRE(chain(t, slots).step == TxStep::packet);
    CHECK(t.pkt.nr_segments == slots);
    CHECK(t.p.back.req_cons() == slots);
    t.tx.respond(t.pkt, NETIF_RSP_OKAY);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == slots);
    for (std::uint32_t i = 0; i < slots; ++i) {
        CHECK(rsps[i].id == 100 + i);
        CHECK(rsps[i].status == NETIF_RSP_OKAY);
    }
}

void check_dropped(std::uint32_t slots) {
    Tx t;
    const TxResult r = chain(t, slots);
    CHECK(r.step == TxStep::dropped);
    CHECK(r.error == TxError::too_many_slots);
    std::vector<std::uint16_t> ids;
    for (std::uint32_t i = 0; i < slots; ++i) ids.push_back(static_cast<std::uint16_t>(100 + i));
    check_all_error(t.responses(), ids);
    // The ring goes on.
    put_chain(t, 1, 7);
    t.push();
    CHECK(t.tx.next(t.pkt).step == TxStep::packet);
}

void check_fatal(std::uint32_t slots) {
    Tx t;
    const TxResult r = chain(t, slots);
    CHECK(r.step == TxStep::fatal);
    CHECK(r.error == TxError::fatal_slot_count);
    CHECK(t.responses().empty());
}

} // namespace

TEST_CASE("slots: 17 data slots (16 after the first) are accepted", "[ring][tx][hostile]") {
    check_accepted(17);
}

TEST_CASE("slots: 18 data slots (17 after the first) are accepted", "[ring][tx][hostile]") {
    check_accepted(18);
}

TEST_CASE("slots: 19 data slots (18 after the first, XEN_NETBK_LEGACY_SLOTS_MAX) are accepted",
          "[ring][tx][hostile]") {
    check_accepted(19);
}

TEST_CASE("slots: 20 data slots (19 after the first) are dropped: slots >= XEN_NETBK_LEGACY_SLOTS_MAX",
          "[ring][tx][hostile]") {
    check_dropped(20);
}

TEST_CASE("slots: 21 data slots (20 after the first, fatal_skb_slots) are dropped, not fatal",
          "[ring][tx][hostile]") {
    check_dropped(21);
}

TEST_CASE("slots: 22 data slots (21 after the first) are fatal: slots >= fatal_skb_slots",
          "[ring][tx][hostile]") {
    check_fatal(22);
}

TEST_CASE("slots: 23 data slots (22 after the first) are fatal", "[ring][tx][hostile]") { check_fatal(23); }

TEST_CASE("rule: the fatal slot threshold is a parameter", "[ring][tx][hostile]") {
    TxLimits lim;
    lim.fatal_slots = 30;
    Tx t(lim);
    put_chain(t, 31); // 30 after the first: dropped (above 18), not fatal
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::too_many_slots);
    put_chain(t, 32);
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::fatal_slot_count);
    // Fatal as soon as one more slot is wanted after 30, even before the chain is complete.
    Tx u(lim);
    for (int i = 0; i < 31; ++i) u.put(tx_req(1, 0, NETTXF_more_data, 0, 60));
    u.push();
    CHECK(u.tx.next(u.pkt).error == TxError::fatal_slot_count);
    // One fewer is only pending.
    Tx v(lim);
    for (int i = 0; i < 30; ++i) v.put(tx_req(1, 0, NETTXF_more_data, 0, 60));
    v.push();
    CHECK(v.tx.next(v.pkt).step == TxStep::pending);
}

TEST_CASE("a packet whose slots are not all published is left pending, then assembled", "[ring][tx]") {
    Tx t;
    t.put(tx_req(1, 0, NETTXF_more_data | NETTXF_extra_info, 1, 200));
    t.push();
    CHECK(t.tx.next(t.pkt).step == TxStep::pending);
    t.put(gso_extra(1448, XEN_NETIF_GSO_TYPE_TCPV4));
    t.push();
    CHECK(t.tx.next(t.pkt).step == TxStep::pending);
    CHECK(t.p.back.req_cons() == 0);
    t.put(tx_req(2, 0, 0, 2, 100));
    t.push();
    REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
    CHECK(t.pkt.nr_segments == 2);
    CHECK(t.pkt.gso);
    CHECK(t.p.back.req_cons() == 3);
}

TEST_CASE("rule: a packet that cannot complete in a full ring is fatal", "[ring][tx][hostile]") {
    TxLimits lim;
    lim.fatal_slots = 100000; // make the ring size the only bound
    Tx t(lim);
    for (RingIdx i = 0; i < TxRing::kSize; ++i) t.put(tx_req(1, 0, NETTXF_more_data, 0, 60));
    t.push();
    CHECK(t.tx.next(t.pkt).error == TxError::packet_exceeds_ring);
    // A chain of extras that never ends, likewise.
    Tx u;
    u.put(tx_req(1, 0, NETTXF_extra_info, 0, 60));
    for (RingIdx i = 1; i < TxRing::kSize; ++i)
        u.put(gso_extra(1448, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_EXTRA_FLAG_MORE));
    u.push();
    CHECK(u.tx.next(u.pkt).error == TxError::packet_exceeds_ring);
}

TEST_CASE("every consumed slot gets exactly one response, drops interleaved with deferred packets",
          "[ring][tx]") {
    Tx t;
    t.put(tx_req(1, 0, 0, 1, 60));                // packet, answered later
    t.put(tx_req(1, 0, NETTXF_extra_info, 2, 0)); // zero length with an extra: dropped
    t.put(gso_extra(1448, XEN_NETIF_GSO_TYPE_TCPV4));
    t.put(tx_req(1, 0, 0, 3, 60)); // packet
    t.push();
    TxPacket a, c;
    REQUIRE(t.tx.next(a).step == TxStep::packet);
    const TxResult b = t.tx.next(t.pkt);
    REQUIRE(b.step == TxStep::dropped);
    REQUIRE(t.tx.next(c).step == TxStep::packet);
    CHECK(t.p.back.unanswered() == 2);
    t.tx.respond(c, NETIF_RSP_OKAY);
    t.tx.respond(a, NETIF_RSP_DROPPED);
    CHECK(t.p.back.unanswered() == 0);
    const auto rsps = t.responses();
    REQUIRE(rsps.size() == 4);
    CHECK((rsps[0].id == 2 && rsps[0].status == NETIF_RSP_ERROR));
    CHECK(rsps[1].status == NETIF_RSP_NULL);
    CHECK((rsps[2].id == 3 && rsps[2].status == NETIF_RSP_OKAY));
    CHECK((rsps[3].id == 1 && rsps[3].status == NETIF_RSP_DROPPED));
}

TEST_CASE("assembly works across index wrap-around at 2^32", "[ring][tx]") {
    Tx t({}, 0xFFFFFFFFu - 5);
    std::uint16_t id = 0;
    for (int round = 0; round < 40; ++round) {
        const TxFrontSegment segs[] = {{1, 0, 100, id},
                                       {2, 0, 50, static_cast<std::uint16_t>(id + 1)},
                                       {3, 0, 25, static_cast<std::uint16_t>(id + 2)}};
        TxExtras x;
        x.gso = TxGso{1000, XEN_NETIF_GSO_TYPE_TCPV4, 0};
        REQUIRE(put_tx_packet(t.p.front, segs, x));
        t.push();
        REQUIRE(t.tx.next(t.pkt).step == TxStep::packet);
        CHECK(t.pkt.ids[0] == id);
        CHECK(t.pkt.ids[2] == id + 2);
        CHECK(t.pkt.length == 175);
        t.tx.respond(t.pkt, NETIF_RSP_OKAY);
        const auto rsps = t.responses();
        REQUIRE(rsps.size() == 4);
        CHECK(rsps[3].id == id + 2);
        id = static_cast<std::uint16_t>(id + 3);
    }
    CHECK(t.p.back.req_cons() < 1000); // wrapped
}

TEST_CASE("rule: requests are copied once; a frontend rewriting slots concurrently cannot break an "
          "accepted packet's invariants",
          "[ring][tx][hostile]") {
    // A hostile thread keeps scribbling over the slots being assembled. If the assembler validated
    // one read and used another, segment bounds or the size sum would eventually break.
    TxLimits lim;
    lim.fatal_slots = 1u << 30;
    Tx t(lim);
    std::atomic<bool> stop{false};
    SharedRing<TxRing> shared(t.p.page->bytes);
    std::thread scribbler([&] {
        std::minstd_rand rng(42);
        while (!stop.load(std::memory_order_relaxed)) {
            netif_tx_request_t r{};
            r.gref = rng();
            r.offset = static_cast<std::uint16_t>(rng() % 4200);
            r.flags = static_cast<std::uint16_t>((rng() % 16) & ~NETTXF_extra_info);
            r.size = static_cast<std::uint16_t>(rng() % 5000);
            r.id = static_cast<std::uint16_t>(rng());
            // Racy by design; the word-atomic slot access keeps it defined behaviour.
            shared.store(static_cast<RingIdx>(rng()), r);
        }
    });
    std::uint64_t packets = 0, drops = 0;
    RingIdx window = 8;
    for (int iter = 0; iter < 20000; ++iter) {
        // Publish a window of slots; whatever they hold when copied is what counts.
        t.p.shared().req_prod().store(t.p.back.req_cons() + window, std::memory_order_release);
        const TxResult r = t.tx.next(t.pkt);
        REQUIRE(r.step != TxStep::fatal);
        if (r.step == TxStep::pending) {
            window = std::min<RingIdx>(window * 2, TxRing::kSize);
            continue;
        }
        window = 8;
        if (r.step == TxStep::packet) {
            ++packets;
            std::uint32_t sum = 0;
            for (const auto& s : t.pkt.segments()) {
                REQUIRE(std::uint32_t{s.offset} + s.size <= kPageSize);
                sum += s.size;
            }
            REQUIRE(sum == t.pkt.length);
            REQUIRE(t.pkt.nr_segments <= kMaxTxPacketSlots);
            REQUIRE(t.pkt.length >= kEthHeaderLen);
            t.tx.respond(t.pkt, NETIF_RSP_OKAY);
        } else {
            REQUIRE(r.step == TxStep::dropped);
            ++drops;
        }
        REQUIRE(t.p.back.unanswered() == 0);
    }
    stop = true;
    scribbler.join();
    CHECK(packets > 0);
    CHECK(drops > 0);
}
