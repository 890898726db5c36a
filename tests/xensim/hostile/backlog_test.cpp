// XSA-392 class (issue 14 item 2): two guests stop taking RX while a third guest and the wire
// stream, and the third guest sends them 60 KiB GSO frames (30 buffers each, kept whole for a GSO
// guest). Without caps the two stalled vifs' backlogs (2 queues x 256 frames each) hold more
// buffers than the whole pool. Counted in frames and poll rounds only: never a rate or a time
// window, so a busy host cannot fail it. The last case lets the third guest's frames wait for
// room (back-pressure) and checks that the two cost it one wait each.
#include <thread>

#include <catch2/catch.hpp>
#include <rte_mempool.h>

#include "tests/support/eventually.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using netbackd::testing::eventually;

namespace {

constexpr platform::DomId kA = 51; // stalls
constexpr platform::DomId kB = 52; // stalls
constexpr platform::DomId kC = 53; // healthy
const MacAddr kMacA = mac(0xa);
const MacAddr kMacB = mac(0xb);
const MacAddr kMacC = mac(0xc);
const MacAddr kOutside = mac(0x99);
constexpr std::size_t kGsoPerVif = 6;   // per round, C -> A and C -> B
constexpr std::size_t kWireOut = 16;    // per round, C -> wire
constexpr std::size_t kWireIn = 8;      // per round, wire -> C
constexpr std::size_t kWireStalled = 2; // per round, wire -> A and -> B

// A guest with two queues (two netfronts of one domain).
struct TwoQueueGuest {
    TwoQueueGuest(Rig& rig, platform::DomId dom, MacAddr m) : q0(rig.world, dom), q1(rig.world, dom) {
        auto h = q0.handle(m);
        h->queues.push_back(q1.queue_rings());
        vif = &rig.attach(std::move(h));
        REQUIRE(vif->queues.size() == 2);
    }
    void post(std::size_t n) {
        q0.post_rx_buffers(n);
        q1.post_rx_buffers(n);
    }
    std::size_t receive() { return q0.receive().size() + q1.receive().size(); }
    Netfront q0, q1;
    VifRuntime* vif = nullptr;
};

// The healthy guest: GSO frames to the stalled guests and small frames to the wire, from a few
// pages it granted once (a guest reusing its buffers), so that its memory does not bound the run.
struct Healthy {
    Healthy(Rig& rig) : nf(rig.world, kC) {
        vif = &rig.attach(nf, kMacC);
        for (std::uint8_t flow = 0; flow < 8; ++flow) {
            for (const MacAddr& to : {kMacA, kMacB}) {
                Bytes f = frame(to, kMacC, 60000, 4, flow);
                f[34] = static_cast<std::byte>(flow); // source port: the flow, spread over queues
                gso_head[to == kMacA ? 0 : 1].push_back(nf.granted_page(f, true));
            }
        }
        gso_body = nf.granted_page(Bytes(4096, std::byte{0x5a}), true);
        const Bytes small = frame(kOutside, kMacC, 100);
        wire_page = nf.granted_page(small, true);
        wire_size = static_cast<std::uint16_t>(small.size());
    }
    // One 60,054-byte TCPv4 GSO frame to stalled guest `which` (0: A, 1: B): its header page,
    // then the same body page over and over.
    void send_gso(int which, std::size_t flow) {
        std::vector<ring::TxFrontSegment> segs;
        std::size_t left = 60054;
        segs.push_back({gso_head[which][flow % 8], 0, 4096, id++});
        left -= 4096;
        while (left != 0) {
            const auto take = static_cast<std::uint16_t>(std::min<std::size_t>(left, 4096));
            segs.push_back({gso_body, 0, take, id++});
            left -= take;
        }
        ring::TxExtras x;
        x.gso = ring::TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV4, 0};
        REQUIRE(ring::put_tx_packet(nf.tx(), segs, x, ring::TxFrontFlags{.csum_blank = true}));
    }
    void send_wire() {
        const ring::TxFrontSegment s{wire_page, 0, wire_size, id++};
        REQUIRE(ring::put_tx_packet(nf.tx(), std::span(&s, 1)));
    }
    Netfront nf;
    VifRuntime* vif = nullptr;
    std::array<std::vector<platform::GrantRef>, 2> gso_head;
    platform::GrantRef gso_body = 0;
    platform::GrantRef wire_page = 0;
    std::uint16_t wire_size = 0;
    std::uint16_t id = 0;
};

// The three guests on one stepped worker, and what C's stream brought so far.
struct Stream {
    // stall, wait: the workers' rx_stall_timeout and rx_wait (0: off).
    Stream(std::chrono::milliseconds stall, std::chrono::microseconds wait)
        : rig({kA, kB, kC}, pmd::Offloads::none(), config(stall, wait)),
          a(rig, kA, kMacA),
          b(rig, kB, kMacB),
          c(rig) {}
    static WorkerConfig config(std::chrono::milliseconds stall, std::chrono::microseconds wait) {
        WorkerConfig cfg;
        cfg.rx_stall_timeout = stall;
        cfg.rx_wait = wait;
        return cfg;
    }
    Rig rig;
    TwoQueueGuest a;
    TwoQueueGuest b;
    Healthy c;
    std::size_t rounds = 0;
    std::size_t wire_out = 0;       // C's frames that reached the wire
    std::size_t c_received = 0;     // wire frames C received
    std::size_t c_tx_okay = 0;      // C's request slots answered OKAY
    std::size_t c_tx_error = 0;     // and with an error
    unsigned min_free = UINT32_MAX; // the pool's free buffers, lowest seen after a round

    // One round: C posts RX buffers, sends GSO frames to A and B and small frames to the wire;
    // the wire sends to all three; the worker polls twice.
    void round() {
        c.nf.post_rx_buffers(kWireIn);
        for (std::size_t i = 0; i < kGsoPerVif; ++i) {
            c.send_gso(0, rounds * kGsoPerVif + i);
            c.send_gso(1, rounds * kGsoPerVif + i);
        }
        for (std::size_t i = 0; i < kWireOut; ++i) c.send_wire();
        c.nf.push_tx();
        for (std::size_t i = 0; i < kWireIn; ++i) rig.up.inject(frame(kMacC, kOutside, 1000, 4, 1));
        for (std::size_t i = 0; i < kWireStalled; ++i) {
            rig.up.inject(frame(kMacA, kOutside, 1000, 4, static_cast<std::uint8_t>(i)));
            rig.up.inject(frame(kMacB, kOutside, 1000, 4, static_cast<std::uint8_t>(i)));
        }
        rig.poll(2);
        collect();
        ++rounds;
    }
    // Once A and B post buffers again: four wire frames each reach them.
    void check_wire_reaches_a_and_b() {
        for (int i = 0; i < 4; ++i) {
            rig.up.inject(frame(kMacA, kOutside, 1000, 4, static_cast<std::uint8_t>(i)));
            rig.up.inject(frame(kMacB, kOutside, 1000, 4, static_cast<std::uint8_t>(i)));
        }
        rig.poll(2);
        CHECK(a.receive() == 4);
        CHECK(b.receive() == 4);
        rig.up.discard();
    }
    // One poll round more, and what it brought.
    void drain() {
        rig.poll();
        collect();
    }
    void collect() {
        min_free = std::min(min_free, rte_mempool_avail_count(rig.pool.get()));
        wire_out += rig.up.discard();
        c_received += c.nf.receive().size();
        for (const auto& r : c.nf.tx_responses()) {
            c_tx_okay += r.status == NETIF_RSP_OKAY ? 1 : 0;
            c_tx_error += r.status == NETIF_RSP_ERROR ? 1 : 0;
        }
    }
};

} // namespace

TEST_CASE("two guests that take no RX cannot drain the pool while a third streams on and they recover",
          "[hostile][backlog]") {
    // The caps alone (stalls: next case); drop at once (back-pressure: the last case).
    Stream s(std::chrono::milliseconds(0), std::chrono::microseconds(0));
    const unsigned pool = s.rig.pool.capacity();

    // 96 rounds: 576 GSO frames (17,280 buffers) to each stalled guest, more than the pool.
    for (int i = 0; i < 96; ++i) s.round();
    const std::size_t rounds = s.rounds;
    CHECK(s.wire_out == rounds * kWireOut);
    // One OKAY per data slot: 15 per GSO frame (its extra slot is answered NULL).
    CHECK(s.c_tx_okay == rounds * (kWireOut + 2 * kGsoPerVif * 15));
    CHECK(s.c_tx_error == 0);
    CHECK(s.c_received == rounds * kWireIn);
    CHECK(s.min_free > pool / 4);
    for (VifRuntime* v : {s.a.vif, s.b.vif, s.c.vif}) {
        const VifStats st = snapshot(v->counters());
        CHECK(st.dropped(Drop::tx_no_mbuf) == 0);
        CHECK(v->backlog_mbufs <= 512);
    }
    CHECK(snapshot(s.a.vif->counters()).dropped(Drop::rx_over_backlog) > 0);
    CHECK(snapshot(s.b.vif->counters()).dropped(Drop::rx_over_backlog) > 0);
    CHECK(snapshot(s.c.vif->counters()).rx_packets == rounds * kWireIn);

    // A and B post buffers: what they held arrives, and new frames follow.
    s.a.post(200);
    s.b.post(200);
    s.rig.poll(4);
    CHECK(s.a.receive() > 0);
    CHECK(s.b.receive() > 0);
    s.a.post(16);
    s.b.post(16);
    s.check_wire_reaches_a_and_b();
}

TEST_CASE("two guests whose RX stalls lose their backlog and carrier while a third streams on and they "
          "recover when they post buffers",
          "[hostile][backlog]") {
    // Drop at once (back-pressure: the last case).
    Stream s(std::chrono::milliseconds(1), std::chrono::microseconds(0));

    for (int i = 0; i < 16; ++i) s.round();
    // Past the stall timeout (a lower bound: a busy host only waits longer), then on.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int i = 0; i < 16; ++i) s.round();
    const std::size_t rounds = s.rounds;
    CHECK(s.wire_out == rounds * kWireOut);
    CHECK(s.c_received == rounds * kWireIn);
    CHECK(s.c_tx_error == 0);
    CHECK(s.min_free > 0);
    for (TwoQueueGuest* g : {&s.a, &s.b}) {
        const VifStats st = snapshot(g->vif->counters());
        CHECK(st.rx_stalls >= 1);
        CHECK(st.dropped(Drop::rx_stalled) > 0);
        CHECK(st.dropped(Drop::tx_no_mbuf) == 0);
        CHECK_FALSE(g->vif->carrier());
        CHECK(g->vif->backlog_mbufs == 0);
    }
    CHECK(snapshot(s.c.vif->counters()).rx_stalls == 0);

    // Buffers back: carrier on, frames flow.
    s.a.post(64);
    s.b.post(64);
    s.rig.poll();
    CHECK(s.a.vif->carrier());
    CHECK(s.b.vif->carrier());
    s.check_wire_reaches_a_and_b();
}

TEST_CASE("two guests that take no RX hold up a guest sending to them once each, then it streams on",
          "[hostile][backlog]") {
    Stream s(std::chrono::milliseconds(0), std::chrono::milliseconds(1));
    const unsigned pool = s.rig.pool.capacity();
    constexpr std::size_t kSlotsPerRound = 2 * kGsoPerVif * 16 + kWireOut;
    for (int i = 0; i < 32; ++i) {
        // C's frames wait while A's or B's backlog is full, and C's ring with them: C sends a
        // round only once its ring has room for it (the wait's bound is a lower bound in time,
        // so a busy host only takes longer).
        REQUIRE(eventually([&] {
            s.drain();
            return s.c.nf.tx().free_requests() >= kSlotsPerRound;
        }));
        s.round();
    }
    REQUIRE(eventually([&] {
        s.drain();
        return s.wire_out == s.rounds * kWireOut;
    }));
    CHECK(s.c_tx_error == 0);
    CHECK(s.c_received == s.rounds * kWireIn);
    CHECK(s.min_free > pool / 4);
    CHECK(snapshot(s.c.vif->counters()).tx_held > 0);
    // Each let one wait run out, and nobody waited for it again while its backlog stayed full.
    CHECK(snapshot(s.a.vif->counters()).rx_waits_over == 1);
    CHECK(snapshot(s.b.vif->counters()).rx_waits_over == 1);
    for (VifRuntime* v : {s.a.vif, s.b.vif}) CHECK(v->backlog_mbufs <= 512);
}
