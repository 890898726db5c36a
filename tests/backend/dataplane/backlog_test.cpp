// The guest RX backlog: its caps in bytes and buffers (per queue, per vif, the vif's share of the
// pool) and the stall timeout that purges it and turns the vif's carrier off (issue 14 item 2).
#include <thread>

#include <catch2/catch.hpp>

#include "backend/dataplane/backlog_limit.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;

namespace {

constexpr platform::DomId kA = 11;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);
constexpr std::size_t kFrameBytes = 1054; // frame(.., 1000): Ethernet + IPv4 + TCP + 1000

// A frame of flow `flow` (source address and port), so that flows spread over the queues.
Bytes flow_frame(int flow, std::uint8_t seed) {
    Bytes f = frame(kMacA, kOutside, 1000, 4, seed);
    f[14 + 12 + 3] = static_cast<std::byte>(flow);
    f[34] = static_cast<std::byte>(flow);
    return f;
}

} // namespace

TEST_CASE("the pool rule gives every vif of every worker a share of half the pool", "[dataplane][backlog]") {
    CHECK(vif_backlog_mbufs(65535, 1, 3, 512) == 512);               // few vifs: the configured cap
    CHECK(vif_backlog_mbufs(65535, 1, 256, 512) == 65535 / 2 / 256); // 127 each
    CHECK(vif_backlog_mbufs(65535, 2, 256, 512) == kMinVifBacklogMbufs);
    CHECK(vif_backlog_mbufs(65535, 1, 0, 512) == 512);
    CHECK(vif_backlog_mbufs(65535, 1, 3, 40) == 40);                     // never above the configured cap
    CHECK(vif_backlog_mbufs(65535, 1, 497, 512) == kMinVifBacklogMbufs); // the floor binds from here
    CHECK(std::uint64_t{kMinVifBacklogMbufs} * 992 < 65535);
    // The sum of the caps fits half the pool as long as the floor does not bind.
    for (std::size_t vifs : {1u, 7u, 64u, 300u, 496u})
        CHECK(std::uint64_t{vif_backlog_mbufs(65535, 1, vifs, 512)} * vifs <= 65535 / 2);
}

TEST_CASE("a guest's RX backlog is capped in bytes and buffers per queue and per vif",
          "[dataplane][backlog]") {
    WorkerConfig cfg;
    std::size_t held = 0;
    SECTION("bytes per queue") {
        cfg.rx_queue_bytes = 18 * kFrameBytes;
        held = 18;
    }
    SECTION("bytes per vif") {
        cfg.rx_vif_bytes = 13 * kFrameBytes;
        held = 13;
    }
    SECTION("buffers per queue") {
        cfg.rx_queue_mbufs = 10;
        held = 10;
    }
    SECTION("buffers per vif") {
        cfg.rx_vif_mbufs = 7;
        held = 7;
    }
    Rig rig({kA}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);
    for (int i = 0; i < 60; ++i) rig.up.inject(flow_frame(0, static_cast<std::uint8_t>(i)));
    rig.poll(2);
    const VifStats s = snapshot(va.counters());
    CHECK(s.dropped(Drop::rx_over_backlog) == 60 - held);
    CHECK(s.dropped(Drop::rx_no_buffer) == 0);
    a.post_rx_buffers(100);
    rig.poll(2);
    CHECK(a.receive().size() == held);
    // Taken frames give their room back.
    for (int i = 0; i < 5; ++i) rig.up.inject(flow_frame(0, static_cast<std::uint8_t>(i)));
    rig.poll(2);
    CHECK(a.receive().size() == 5);
}

TEST_CASE("with several queues the vif's cap bounds them together", "[dataplane][backlog]") {
    WorkerConfig cfg;
    cfg.rx_queue_bytes = 8 * kFrameBytes;
    cfg.rx_vif_bytes = 12 * kFrameBytes;
    Rig rig({kA}, pmd::Offloads::none(), cfg);
    Netfront q0(rig.world, kA);
    Netfront q1(rig.world, kA);
    auto h = q0.handle(kMacA);
    h->queues.push_back(q1.queue_rings());
    VifRuntime& va = rig.attach(std::move(h));
    REQUIRE(va.queues.size() == 2);
    // 64 flows, so that each queue gets more than its cap.
    for (int flow = 0; flow < 64; ++flow) rig.up.inject(flow_frame(flow, 1));
    rig.poll(2);
    q0.post_rx_buffers(64);
    q1.post_rx_buffers(64);
    rig.poll(2);
    const auto at0 = q0.receive();
    const auto at1 = q1.receive();
    CHECK(at0.size() <= 8);
    CHECK(at1.size() <= 8);
    CHECK(at0.size() + at1.size() == 12);
    CHECK(snapshot(va.counters()).dropped(Drop::rx_over_backlog) == 64 - 12);
}

TEST_CASE("a guest that posts no RX buffers for rx_stall_timeout loses its backlog and carrier "
          "until it posts again",
          "[dataplane][backlog]") {
    WorkerConfig cfg;
    cfg.rx_stall_timeout = std::chrono::milliseconds(1);
    Rig rig({kA}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);

    // Idle for longer than the timeout, then a frame and no buffers: the clock starts with the
    // frame, so this round does not stall it.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int i = 0; i < 10; ++i) rig.up.inject(flow_frame(0, static_cast<std::uint8_t>(i)));
    rig.poll();
    CHECK(snapshot(va.counters()).rx_stalls == 0);
    CHECK(va.carrier());

    // The timeout passes with the frames still waiting (a lower bound: a busy host only waits
    // longer).
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rig.poll();
    VifStats s = snapshot(va.counters());
    CHECK(s.rx_stalls == 1);
    CHECK(s.dropped(Drop::rx_stalled) == 10);
    CHECK_FALSE(va.carrier());
    // Carrier off: nothing queues for it.
    for (int i = 0; i < 5; ++i) rig.up.inject(flow_frame(0, static_cast<std::uint8_t>(i)));
    rig.poll(3);
    s = snapshot(va.counters());
    CHECK(s.dropped(Drop::rx_stalled) == 15);
    CHECK(s.rx_stalls == 1);
    CHECK(va.queues[0]->backlog.empty());
    CHECK(rig.worker->prepare_sleep()); // nothing to do, and the ring asks to be told of buffers

    // Buffers back: carrier on, frames flow again.
    a.post_rx_buffers(16);
    rig.poll();
    CHECK(va.carrier());
    for (int i = 0; i < 3; ++i) rig.up.inject(flow_frame(0, static_cast<std::uint8_t>(i)));
    rig.poll(2);
    CHECK(a.receive().size() == 3);
    s = snapshot(va.counters());
    CHECK(s.rx_packets == 3);
    CHECK(s.rx_stalls == 1);
}

TEST_CASE("a stalled guest's posted buffer wakes the worker from its sleep", "[dataplane][backlog]") {
    WorkerConfig cfg;
    cfg.rx_stall_timeout = std::chrono::milliseconds(1);
    Rig rig({kA}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);
    rig.up.inject(flow_frame(0, 1));
    rig.poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rig.poll();
    REQUIRE_FALSE(va.carrier());
    REQUIRE(rig.worker->prepare_sleep());
    // prepare_sleep set the RX ring's req_event: the guest's next buffer notifies the worker.
    a.post_rx_buffers(1);
    CHECK(rig.world.events.pending().has_value());
    rig.poll();
    CHECK(va.carrier());
}
