// The DataPlane sink with its worker thread: handover, traffic, faults for the control plane,
// detach handing the vif back, idle sleep; and a worker over a real DPDK port (net_ring).
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <poll.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <rte_cycles.h>

#include "backend/dataplane/dataplane.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"

using netbackd::testing::eventually;

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;

namespace {

constexpr platform::DomId kA = 21;
constexpr platform::DomId kB = 22;
constexpr platform::DomId kC = 23;
const MacAddr kMacA = mac(0xa);
const MacAddr kMacB = mac(0xb);
const MacAddr kMacC = mac(0xc);

struct SinkRig {
    explicit SinkRig(std::vector<platform::DomId> guests, bool with_uplink = true, std::size_t max_vifs = 64,
                     std::chrono::milliseconds rx_stall_timeout = 60s)
        : world(std::move(guests)),
          pool(pmd::test::small_pool(8191)),
          indirect(pmd::test::small_pool(4095, 0)),
          up(pool) {
        DataPlaneConfig c;
        c.pool = &pool;
        c.indirect_pool = &indirect;
        if (with_uplink) c.uplinks.push_back(UplinkBinding{"up0", &up});
        c.worker.idle_before_sleep = 100us;
        c.worker.max_vifs = max_vifs;
        c.worker.rx_stall_timeout = rx_stall_timeout;
        dp = std::make_unique<DataPlane>(c, world.worker_grants(), world.events);
    }
    World world;
    pmd::Mempool pool;
    pmd::Mempool indirect;
    RingUplink up;
    std::unique_ptr<DataPlane> dp;
};

// Collects what `take` returns each time the data plane's report bell rings, until `done`:
// the control thread sleeps on that fd, so a report that does not ring it is never read.
template <typename Take, typename Done>
bool on_each_report(DataPlane& dp, Take&& take, Done&& done) {
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < end) {
        pollfd p{dp.reports_fd(), POLLIN, 0};
        if (::poll(&p, 1, 100) != 1) continue;
        platform::drain_eventfd(p.fd);
        take();
    }
    return done();
}

} // namespace

TEST_CASE("the sink states what the data plane implements", "[dataplane][sink]") {
    SinkRig rig({kA});
    const auto f = rig.dp->features();
    CHECK(f.sg);
    CHECK(f.gso_tcpv4);
    CHECK(f.gso_tcpv6);
    CHECK(f.ipv6_csum_offload);
    CHECK(f.split_event_channels);
    CHECK(f.max_queues == 4);
}

TEST_CASE("attached vifs carry traffic on the worker thread and detach hands the vif back",
          "[dataplane][sink]") {
    SinkRig rig({kA, kB});
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    rig.dp->attach(a.handle(kMacA));
    rig.dp->attach(b.handle(kMacB));
    b.post_rx_buffers(8);
    const Bytes f = frame(kMacB, kMacA, 500);
    a.send(f);
    a.push_tx();
    std::vector<Netfront::Received> got;
    REQUIRE(eventually([&] {
        auto r = b.receive();
        got.insert(got.end(), r.begin(), r.end());
        return !got.empty();
    }));
    CHECK(got[0].frame == f);
    REQUIRE(eventually([&] { return rig.dp->stats({kA, 0})->tx_packets == 1; }));
    CHECK(rig.dp->all_stats().size() == 2);

    auto back = rig.dp->detach({kA, 0});
    REQUIRE(back != nullptr);
    CHECK(back->id == control::VifId{kA, 0});
    CHECK(back->queues.size() == 1);
    CHECK(back->queues[0].tx_ring != nullptr);
    CHECK(rig.dp->detach({kA, 0}) == nullptr);
    CHECK_FALSE(rig.dp->stats({kA, 0}).has_value());

    // After detach the worker no longer answers that ring.
    a.send(frame(kMacB, kMacA, 500));
    a.push_tx();
    std::this_thread::sleep_for(50ms);
    CHECK(a.tx_responses().size() == 1); // only the first packet's
    CHECK(rig.dp->detach({kB, 0}) != nullptr);
}

TEST_CASE("faults reach the control thread once, with the text for the error node", "[dataplane][sink]") {
    SinkRig rig({kA, kB, kC});
    Netfront a(rig.world, kA);
    Netfront b(rig.world, kB);
    Netfront c(rig.world, kC);
    rig.dp->attach(a.handle(kMacA));
    auto hc = c.handle(kMacC);
    hc->policy.uplink = "nope";
    rig.dp->attach(std::move(hc));
    // Same MAC as a: refused.
    rig.dp->attach(b.handle(kMacA));

    ring::SharedRing<ring::TxRing> shared(ring::Page(a.tx_page().data(), ring::kPageSize));
    shared.req_prod().store(777, std::memory_order_release);
    // A sleeping worker looks at a vif's rings when its guest notifies, as netback does.
    a.notify();

    std::map<control::VifId, std::string> faults;
    REQUIRE(on_each_report(
        *rig.dp,
        [&] {
            for (auto& f : rig.dp->take_faults()) faults[f.id] = f.message;
        },
        [&] { return faults.size() == 3; }));
    CHECK(faults[{kA, 0}] == "tx ring: req_prod_overflow");
    CHECK(faults[{kB, 0}] == "MAC address already used by another vif on this uplink/VLAN");
    CHECK(faults[{kC, 0}] == "the configured uplink does not exist");
    CHECK(rig.dp->take_faults().empty());
    for (auto id : {kA, kB, kC}) CHECK(rig.dp->detach({id, 0}) != nullptr);
}

TEST_CASE("an idle data plane without uplinks sleeps until an event", "[dataplane][sink]") {
    SinkRig rig({kA}, false);
    Netfront a(rig.world, kA);
    rig.dp->attach(a.handle(kMacA));
    REQUIRE(eventually([&] { return rig.dp->worker_counters().sleeps.get() >= 1; }));
    std::this_thread::sleep_for(20ms);
    const auto before = rig.dp->worker_counters().iterations.get();
    std::this_thread::sleep_for(200ms);
    // Nothing happened, so nothing woke it: no timer ticks, no spinning.
    CHECK(rig.dp->worker_counters().iterations.get() - before <= 2);
    // A guest's notification still wakes it.
    a.send(frame(mac(0x99), kMacA, 100));
    CHECK(a.push_tx());
    REQUIRE(eventually([&] { return a.tx_responses().size() == 1; }));
}

TEST_CASE("a guest broadcast goes out of a real net_ring port and comes back in", "[dataplane][port]") {
    World world({kA, kB});
    pmd::Mempool pool = pmd::test::small_pool(8191);
    pmd::Mempool indirect = pmd::test::small_pool(4095, 0);
    // net_ring without arguments loops what it sends back to its own RX queue.
    pmd::VirtualDevice dev(pmd::test::unique_name("net_ring_dp"), "");
    pmd::Port port(dev.name(), {}, pool);
    PortUplink up(port);
    std::vector<std::unique_ptr<VifRuntime>> vifs;
    FramePools pools(pool, indirect);
    Worker w({}, WorkerContext{world.grants, world.events, pools, {&up}});
    Netfront a(world, kA);
    Netfront b(world, kB);
    for (auto [nf, m] : {std::pair{&a, kMacA}, std::pair{&b, kMacB}}) {
        vifs.push_back(std::make_unique<VifRuntime>(nf->handle(m), 0, rte_get_tsc_hz()));
        REQUIRE(w.post(WorkerMsg{WorkerMsgKind::attach, vifs.back().get(), std::nullopt}));
    }
    a.post_rx_buffers(8);
    b.post_rx_buffers(8);
    const Bytes f = with_checksums(frame(MacAddr{0xffff'ffff'ffffULL}, kMacA, 300));
    a.send(f);
    a.push_tx();
    for (int i = 0; i < 4; ++i) w.poll_once();
    // b: once straight from a, once back from the wire; a: once back from the wire.
    const auto at_b = b.receive();
    const auto at_a = a.receive();
    REQUIRE(at_b.size() == 2);
    REQUIRE(at_a.size() == 1);
    for (const auto& r : at_b) CHECK(r.frame == f);
    CHECK(at_a[0].frame == f);
    const auto st = port.stats();
    CHECK(st.tx_packets == 1);
    CHECK(st.rx_packets == 1);
    CHECK(w.counters().uplink_tx.get() == 1);
}

// Not run by ctest (hidden): prints the process CPU use of an idle data plane, for the record.
//   dataplane_sink_test "[measure]"   (NETBACKD_IDLE_SECONDS, default 10)
TEST_CASE("idle CPU of the data plane", "[.][measure]") {
    const char* env = std::getenv("NETBACKD_IDLE_SECONDS");
    const int seconds = env != nullptr ? std::atoi(env) : 10;
    for (const bool with_uplink : {true, false}) {
        SinkRig rig({kA, kB}, with_uplink);
        Netfront a(rig.world, kA);
        Netfront b(rig.world, kB);
        rig.dp->attach(a.handle(kMacA));
        rig.dp->attach(b.handle(kMacB));
        a.post_rx_buffers(64);
        std::this_thread::sleep_for(100ms);
        auto cpu = [] {
            rusage ru{};
            getrusage(RUSAGE_SELF, &ru);
            return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        };
        const double c0 = cpu();
        const auto it0 = rig.dp->worker_counters().iterations.get();
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        const double used = cpu() - c0;
        WARN((with_uplink ? "with an uplink (polled, 0.5-8 ms sleeps)" : "without uplinks")
             << ": " << 100.0 * used / seconds << "% CPU over " << seconds << " s, "
             << rig.dp->worker_counters().iterations.get() - it0 << " iterations, "
             << rig.dp->worker_counters().sleeps.get() << " sleeps");
        CHECK(rig.dp->detach({kA, 0}) != nullptr);
        CHECK(rig.dp->detach({kB, 0}) != nullptr);
    }
}

TEST_CASE("a policy update from the control plane changes the rate at run time", "[dataplane][sink]") {
    SinkRig rig({kA});
    Netfront a(rig.world, kA);
    // 2000 bytes a second: two 1000-byte frames now, the rest much later.
    rig.dp->attach(a.handle(kMacA, Netfront::default_features(), control::Rate{2000, 1'000'000}));
    for (int i = 0; i < 6; ++i) a.send(frame(mac(0x99), kMacA, 1000 - 54));
    a.push_tx();
    REQUIRE(eventually([&] { return rig.dp->stats({kA, 0})->tx_packets == 2; }));
    std::this_thread::sleep_for(50ms);
    CHECK(rig.dp->stats({kA, 0})->tx_packets == 2);
    control::VifPolicy p;
    p.guest_mac = kMacA.bytes();
    rig.dp->update_policy({kA, 0}, p); // no rate: unlimited
    CHECK(eventually([&] { return rig.dp->stats({kA, 0})->tx_packets == 6; }));
    CHECK(rig.dp->detach({kA, 0}) != nullptr);
}

TEST_CASE("the sink refuses, naming the cause, what the workers could not run", "[dataplane][sink]") {
    SinkRig rig({kA, kB}, true, 2);
    Netfront a(rig.world, kA);
    auto ha = a.handle(kMacA);
    ha->policy.vlan = 5;
    const auto pa = ha->policy;
    REQUIRE_FALSE(rig.dp->refusal(ha->id, pa));
    rig.dp->attach(std::move(ha));
    const control::VifId b{kB, 0};

    // Another vif with a's MAC on the same uplink and VLAN: the MAC and its owner are named.
    auto r = rig.dp->refusal(b, pa);
    REQUIRE(r);
    CHECK(r->err == EADDRINUSE);
    CHECK(r->message == "MAC " + kMacA.to_string() + " is already in use by vif 21.0 on uplink 'up0' VLAN 5");
    CHECK_FALSE(rig.dp->refusal(control::VifId{kA, 0}, pa)); // a itself, asked again
    auto other_vlan = pa;
    other_vlan.vlan = 6;
    CHECK_FALSE(rig.dp->refusal(b, other_vlan));

    // An uplink nobody configured: its name, the client file:line, and what exists.
    auto bad_uplink = other_vlan;
    bad_uplink.uplink = "nosuch";
    bad_uplink.client_source = "clients/b.toml:1";
    r = rig.dp->refusal(b, bad_uplink);
    REQUIRE(r);
    CHECK(r->err == ENODEV);
    CHECK(r->message == "uplink 'nosuch' (from clients/b.toml:1) does not exist; configured uplinks: up0");

    // The limit, stated.
    Netfront c(rig.world, kB);
    rig.dp->attach(c.handle(kMacB));
    r = rig.dp->refusal(control::VifId{kB, 1}, other_vlan);
    REQUIRE(r);
    CHECK(r->err == ENOSPC);
    CHECK(r->message == "netbackd already runs 2 vifs, its limit ([vif] max_vifs = 2)");
    rig.dp->detach(control::VifId{kA, 0});
    CHECK_FALSE(rig.dp->refusal(control::VifId{kB, 1}, other_vlan));
    rig.dp->detach(control::VifId{kB, 0});
}

TEST_CASE("a guest's RX stall and recovery reach the control thread once each",
          "[dataplane][sink][backlog]") {
    SinkRig rig({kA}, true, 64, 20ms);
    Netfront a(rig.world, kA);
    rig.dp->attach(a.handle(kMacA));
    REQUIRE(eventually([&] { return rig.dp->worker_load(0) == 1; }));
    CHECK(rig.dp->take_carrier_changes().empty());
    // Frames and no buffers: the worker sleeps with them and purges them at the deadline.
    for (int i = 0; i < 4; ++i) rig.up.inject(frame(kMacA, mac(0x99), 100));
    std::vector<CarrierChange> changes;
    const auto take_changes = [&] {
        for (const auto& c : rig.dp->take_carrier_changes()) changes.push_back(c);
    };
    REQUIRE(on_each_report(*rig.dp, take_changes, [&] { return !changes.empty(); }));
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].id == control::VifId{kA, 0});
    CHECK_FALSE(changes[0].on);
    CHECK(changes[0].stalls == 1);
    CHECK(rig.dp->stats({kA, 0})->dropped(Drop::rx_stalled) == 4);
    CHECK(rig.dp->take_carrier_changes().empty()); // reported once
    // A buffer posted: the guest's notification wakes the worker, carrier on.
    a.post_rx_buffers(8);
    changes.clear();
    REQUIRE(on_each_report(*rig.dp, take_changes, [&] { return !changes.empty(); }));
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].on);
    CHECK(changes[0].stalls == 1);
    rig.up.inject(frame(kMacA, mac(0x99), 100));
    REQUIRE(eventually([&] { return rig.dp->stats({kA, 0})->rx_packets == 1; }));
    CHECK(a.receive().size() == 1);
    (void)rig.dp->detach({kA, 0});
}
