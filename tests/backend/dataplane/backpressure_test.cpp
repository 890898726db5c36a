// Back-pressure between guests on one worker (held_frames.hpp): a frame for a vif whose backlog
// is full waits, and its sender's TX ring is not read meanwhile, instead of being dropped; a
// receiver that leaves it waiting rx_wait costs the sender that wait once, not per frame.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/support/dataplane_rig.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using netbackd::testing::eventually;

namespace {

constexpr platform::DomId kA = 11;
constexpr platform::DomId kB = 12;
const MacAddr kMacA = mac(0xa);
const MacAddr kMacB = mac(0xb);
const MacAddr kOutside = mac(0x99);
constexpr std::size_t kBacklog = 7; // frames B's backlog holds (rx_vif_mbufs, one buffer each)

WorkerConfig small_backlog(std::chrono::microseconds wait) {
    WorkerConfig cfg;
    cfg.rx_vif_mbufs = kBacklog;
    cfg.rx_wait = wait;
    return cfg;
}

// Frame i from A to B, told apart by its payload.
Bytes to_b(int i) { return frame(kMacB, kMacA, 1000, 4, static_cast<std::uint8_t>(i)); }

std::size_t okay_responses(Netfront& nf) {
    std::size_t n = 0;
    for (const auto& r : nf.tx_responses()) n += r.status == NETIF_RSP_OKAY ? 1 : 0;
    return n;
}

} // namespace

TEST_CASE("a guest sending to a guest whose backlog is full waits, and nothing is lost",
          "[dataplane][backpressure]") {
    // Long enough that no wait runs out on a loaded machine: only the receiver's buffers end it.
    Rig rig({kA, kB}, pmd::Offloads::none(), small_backlog(std::chrono::seconds(30)));
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    VifRuntime& va = rig.attach(a, kMacA);
    VifRuntime& vb = rig.attach(b, kMacB);
    constexpr int kFrames = 60;
    for (int i = 0; i < kFrames; ++i) a.send(to_b(i));
    a.push_tx();
    rig.poll(4);
    // One burst was read: what B's backlog holds went there, the rest of the burst waits, and
    // the requests behind it are not taken.
    CHECK(snapshot(va.counters()).tx_held == rig.tx_burst - kBacklog);
    std::size_t okay = okay_responses(a);
    CHECK(okay == rig.tx_burst);

    std::vector<Bytes> got;
    for (int round = 0; round < 100 && got.size() < kFrames; ++round) {
        b.post_rx_buffers(5);
        rig.poll(2);
        for (auto& r : b.receive()) got.push_back(std::move(r.frame));
    }
    REQUIRE(got.size() == kFrames);
    for (int i = 0; i < kFrames; ++i) CHECK(got[static_cast<std::size_t>(i)] == to_b(i)); // in order
    const VifStats sb = snapshot(vb.counters());
    CHECK(sb.dropped(Drop::rx_over_backlog) == 0);
    CHECK(sb.dropped(Drop::rx_no_buffer) == 0);
    CHECK(sb.rx_waits_over == 0);
    okay += okay_responses(a);
    CHECK(okay == kFrames);
}

TEST_CASE("a frame that waits rx_wait in vain is dropped, and the sender stops waiting for that "
          "guest until its backlog empties",
          "[dataplane][backpressure]") {
    Rig rig({kA, kB}, pmd::Offloads::none(), small_backlog(std::chrono::milliseconds(1)));
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    VifRuntime& va = rig.attach(a, kMacA);
    VifRuntime& vb = rig.attach(b, kMacB);
    // 20 frames for B, which posts nothing, then 5 for the wire behind them.
    for (int i = 0; i < 20; ++i) a.send(to_b(i));
    for (int i = 0; i < 5; ++i) a.send(frame(kOutside, kMacA, 60, 4, static_cast<std::uint8_t>(i)));
    a.push_tx();
    std::size_t on_wire = 0;
    REQUIRE(eventually([&] {
        rig.poll();
        on_wire += rig.up.sent().size();
        return on_wire == 5;
    }));
    const VifStats sb = snapshot(vb.counters());
    // One wait ran out; the frames behind it to B were dropped at once, not each after a wait.
    CHECK(sb.rx_waits_over == 1);
    CHECK(sb.dropped(Drop::rx_over_backlog) == 20 - kBacklog);
    CHECK(snapshot(va.counters()).tx_held == 20 - kBacklog + 5);
    CHECK(okay_responses(a) == 25);

    // B takes its backlog: senders wait for it again.
    b.post_rx_buffers(kBacklog);
    rig.poll(2);
    CHECK(b.receive().size() == kBacklog);
    for (int i = 0; i < 10; ++i) a.send(to_b(i));
    a.push_tx();
    rig.poll(2);
    CHECK(snapshot(va.counters()).tx_held == 20 - kBacklog + 5 + 10 - kBacklog);
}

TEST_CASE("frames from the wire never wait for a guest's backlog", "[dataplane][backpressure]") {
    Rig rig({kA, kB}, pmd::Offloads::none(), small_backlog(std::chrono::seconds(30)));
    Netfront b(rig.world, kB);
    VifRuntime& vb = rig.attach(b, kMacB);
    for (int i = 0; i < 20; ++i) rig.up.inject(frame(kMacB, kOutside, 1000, 4, static_cast<std::uint8_t>(i)));
    rig.poll(2);
    CHECK(snapshot(vb.counters()).dropped(Drop::rx_over_backlog) == 20 - kBacklog);
}

TEST_CASE("a stalled guest makes nobody wait", "[dataplane][backpressure]") {
    WorkerConfig cfg = small_backlog(std::chrono::seconds(30));
    cfg.rx_stall_timeout = std::chrono::milliseconds(1);
    Rig rig({kA, kB}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    VifRuntime& va = rig.attach(a, kMacA);
    VifRuntime& vb = rig.attach(b, kMacB);
    for (int i = 0; i < 3; ++i) rig.up.inject(frame(kMacB, kOutside, 60));
    REQUIRE(eventually([&] {
        rig.poll();
        return snapshot(vb.counters()).rx_stalls == 1;
    }));
    for (int i = 0; i < 20; ++i) a.send(to_b(i));
    a.push_tx();
    rig.poll(2);
    CHECK(okay_responses(a) == 20);
    CHECK(snapshot(va.counters()).tx_held == 0);
    CHECK(snapshot(vb.counters()).dropped(Drop::rx_stalled) == 3 + 20);
}

TEST_CASE("a worker whose guest waits sleeps, and the receiver's buffers wake it",
          "[dataplane][backpressure]") {
    WorkerConfig cfg = small_backlog(std::chrono::seconds(30));
    cfg.idle_before_sleep = std::chrono::microseconds(0);
    Rig rig({kA, kB}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    VifRuntime& va = rig.attach(a, kMacA);
    rig.attach(b, kMacB);
    constexpr int kFrames = 40;
    for (int i = 0; i < kFrames; ++i) a.send(to_b(i));
    a.push_tx();
    std::atomic<bool> stop{false};
    std::thread t([&] { rig.worker->run(stop); });
    // A's unread requests must not keep the worker polling: each round ends in a sleep (on the
    // timer here, for the test uplink has no RX interrupts).
    const bool held = eventually([&] { return snapshot(va.counters()).tx_held != 0; });
    const WorkerCounters& wc = rig.worker->counters();
    const bool sleeping = eventually([&] {
        const std::uint64_t iterations = wc.iterations.get();
        const std::uint64_t sleeps = wc.sleeps.get();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::uint64_t slept = wc.sleeps.get() - sleeps;
        return slept != 0 && wc.iterations.get() - iterations <= slept + 1;
    });
    std::size_t posted = 0;
    std::size_t got = 0;
    const bool all = eventually([&] {
        if (posted - got < 16) {
            b.post_rx_buffers(8);
            posted += 8;
        }
        got += b.receive().size();
        return got == kFrames;
    });
    stop = true;
    rig.worker->wake();
    t.join();
    CHECK(held);
    CHECK(sleeping);
    CHECK(all);
    CHECK(okay_responses(a) == kFrames);
}

// Across workers the sender cannot read the receiver's backlog: it waits on the room the owner
// publishes (cross_room.hpp), and the owner's publication wakes it.
namespace {

// A on worker 0 sends, B on worker 1 (backlog kBacklog) receives.
struct AcrossWorkers {
    explicit AcrossWorkers(std::chrono::microseconds wait)
        : rig({kA, kB}, 2, {},
              [wait](WorkerConfig& c) {
                  c.rx_vif_mbufs = kBacklog;
                  c.rx_wait = wait;
              }),
          a(rig.world, kA),
          b(rig.world, kB) {
        rig.dp->attach(a.handle(kMacA));
        rig.dp->attach(b.handle(kMacB));
        REQUIRE(rig.dp->worker_of({kA, 0}) == 0u);
        REQUIRE(rig.dp->worker_of({kB, 0}) == 1u);
    }
    DataPlaneRig rig;
    Netfront a;
    Netfront b;
};

VifStats stats_of(const DataPlaneRig& rig, platform::DomId dom) {
    const auto s = rig.dp->stats({dom, 0});
    REQUIRE(s);
    return *s;
}

} // namespace

TEST_CASE("a guest sending to a guest on another worker whose backlog is full waits, and nothing "
          "is lost",
          "[dataplane][backpressure][workers]") {
    AcrossWorkers w(std::chrono::seconds(30));
    // Plain references: clang 14 cannot capture a structured binding in a lambda.
    DataPlaneRig& rig = w.rig;
    Netfront& a = w.a;
    Netfront& b = w.b;
    constexpr int kFrames = 60;
    for (int i = 0; i < kFrames; ++i) a.send(to_b(i));
    a.push_tx();
    CHECK(eventually([&] { return stats_of(rig, kA).tx_held != 0; }));

    std::vector<Bytes> got;
    std::size_t posted = 0;
    const bool all = eventually([&] {
        if (posted - got.size() < 10) {
            b.post_rx_buffers(5);
            posted += 5;
        }
        for (auto& r : b.receive()) got.push_back(std::move(r.frame));
        return got.size() == kFrames;
    });
    CHECK(all);
    REQUIRE(got.size() == kFrames);
    for (int i = 0; i < kFrames; ++i) CHECK(got[static_cast<std::size_t>(i)] == to_b(i)); // in order
    const VifStats sb = stats_of(rig, kB);
    CHECK(sb.dropped(Drop::rx_over_backlog) == 0);
    CHECK(sb.dropped(Drop::rx_no_buffer) == 0);
    CHECK(rig.dp->worker_counters(0).cross_dropped.get() == 0);
    CHECK(rig.dp->worker_counters(0).cross_waits_over.get() == 0);
    CHECK(okay_responses(a) == kFrames);
}

TEST_CASE("a frame for a guest on another worker that waits rx_wait in vain is dropped, and the "
          "sender stops waiting for that guest",
          "[dataplane][backpressure][workers]") {
    AcrossWorkers w(std::chrono::milliseconds(1));
    for (int i = 0; i < 20; ++i) w.a.send(to_b(i));
    for (int i = 0; i < 5; ++i) w.a.send(frame(kOutside, kMacA, 60, 4, static_cast<std::uint8_t>(i)));
    w.a.push_tx();
    std::size_t on_wire = 0;
    CHECK(eventually([&] {
        on_wire += w.rig.up.sent().size();
        return on_wire == 5 && stats_of(w.rig, kB).dropped(Drop::rx_over_backlog) == 20 - kBacklog;
    }));
    // One wait ran out; the frames behind it were handed over at once and dropped by the owner.
    CHECK(w.rig.dp->worker_counters(0).cross_waits_over.get() == 1);
    CHECK(stats_of(w.rig, kA).tx_held == 20 - kBacklog + 5);
    CHECK(okay_responses(w.a) == 25);
}
