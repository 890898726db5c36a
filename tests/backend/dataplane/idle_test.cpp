// An idle worker's timer wake-ups (ports without RX interrupts): a round that finds the ports
// empty leaves the vifs alone, since their rings stay armed and a guest's request fires its
// event; the cost of idling does not grow with the vifs attached.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/support/eventually.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using netbackd::testing::eventually;

namespace {

constexpr platform::DomId kA = 11;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);

} // namespace

TEST_CASE("timer wake-ups that find the ports empty leave the vifs alone, and frames from either "
          "side still get through",
          "[dataplane][fastpath]") {
    WorkerConfig cfg;
    cfg.idle_before_sleep = std::chrono::microseconds(0);
    cfg.poll_interval = std::chrono::microseconds(500);
    cfg.max_poll_interval = std::chrono::microseconds(1000);
    Rig rig({kA}, pmd::Offloads::none(), cfg); // the ring uplink has no RX interrupts: a timer
    Netfront a(rig.world, kA);
    rig.attach(a, kMacA);
    a.post_rx_buffers(8);
    std::atomic<bool> stop{false};
    std::thread t([&] { rig.worker->run(stop); });
    const WorkerCounters& wc = rig.worker->counters();
    const bool quiet = eventually([&] { return wc.quiet_polls.get() >= 3; });
    // A guest's request wakes it through its event, whatever the timer did meanwhile.
    const Bytes out = frame(kOutside, kMacA, 100);
    a.send(out);
    const bool notified = a.push_tx();
    std::vector<Bytes> sent;
    const bool left = eventually([&] {
        for (auto& f : rig.up.sent()) sent.push_back(std::move(f));
        return !sent.empty();
    });
    // A wire frame found by a quiet round still reaches the guest.
    const std::uint64_t quiet_before = wc.quiet_polls.get();
    REQUIRE(eventually([&] { return wc.quiet_polls.get() > quiet_before; }));
    const Bytes in = frame(kMacA, kOutside, 100);
    rig.up.inject(in);
    std::vector<Netfront::Received> got;
    const bool arrived = eventually([&] {
        for (auto& r : a.receive()) got.push_back(std::move(r));
        return !got.empty();
    });
    stop = true;
    rig.worker->wake();
    t.join();
    CHECK(quiet);
    CHECK(notified);
    REQUIRE(left);
    CHECK(sent[0] == out);
    REQUIRE(arrived);
    CHECK(got[0].frame == in);
}
