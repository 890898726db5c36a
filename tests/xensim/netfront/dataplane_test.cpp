// The generator and sink against netbackd's real data plane: DataPlane with its worker thread,
// an uplink over rte_rings (dataplane_world's RingUplink), the simulated hypervisor in between.
#include <catch2/catch.hpp>

#include <thread>

#include "backend/dataplane/dataplane.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/netfront_loopback.hpp"
#include "xensim/netfront/traffic.hpp"

using netbackd::testing::eventually;

using namespace netbackd;
using namespace netbackd::xensim;
namespace dpt = netbackd::dataplane::test;

namespace {

constexpr platform::DomId kA = 21;

} // namespace

TEST_CASE("generator -> DataPlane -> uplink, and uplink -> DataPlane -> sink",
          "[xensim][netfront][gen][dataplane]") {
    dpt::World world({kA});
    pmd::Mempool pool = pmd::test::small_pool(8191);
    pmd::Mempool indirect = pmd::test::small_pool(4095, 0);
    dpt::RingUplink up(pool);
    dataplane::DataPlaneConfig c;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.uplinks.push_back(dataplane::UplinkBinding{"up0", &up});
    dataplane::DataPlane dp(c, world.worker_grants(), world.events);

    auto guest_hv = HvClient::connect(world.host.dir(), kA);
    GuestMemory memory(guest_hv);
    SimEvents events(guest_hv);
    const test::GuestQueue q = test::make_guest_queue(memory, events, dpt::kBackDom);

    const ring::MacAddr guest_mac{0x00, 0x16, 0x3e, 0x00, 0x00, 0x21};
    const ring::MacAddr outside{0x02, 0x00, 0x00, 0x00, 0x00, 0x99};
    auto h = std::make_unique<control::VifHandle>();
    h->id = control::VifId{kA, 0};
    control::QueueRings rings;
    rings.tx_ring = world.grants.map(kA, q.tx_ref, true);
    rings.rx_ring = world.grants.map(kA, q.rx_ref, true);
    rings.tx_port = control::BoundPort(world.events, world.events.bind_interdomain(kA, q.spec.tx_port));
    rings.rx_port = control::BoundPort(world.events, world.events.bind_interdomain(kA, q.spec.rx_port));
    rings.tx_ref = q.tx_ref;
    rings.rx_ref = q.rx_ref;
    h->queues.push_back(std::move(rings));
    h->features = dpt::Netfront::default_features();
    h->policy.guest_mac = guest_mac;

    NetfrontIo io(memory, events);
    io.attach(dpt::kBackDom, std::span(&q.spec, 1), BackendFeatures{true, true, true, true});
    dp.attach(std::move(h));

    constexpr std::uint64_t kCount = 2000;
    TrafficOptions o;
    o.generate = true;
    o.frame.size = 1514;
    o.frame.src = guest_mac;
    o.frame.dst = outside;
    o.count = kCount;
    o.sink = true;
    Traffic t(io, o);
    for (int i = 0; i < 600 && !t.finished(); ++i) t.run_for(std::chrono::milliseconds(100));
    REQUIRE(t.finished());
    CHECK(t.stats().tx_pkts == kCount);
    CHECK(t.stats().tx_errors == 0);

    std::vector<dpt::Bytes> wire;
    CHECK(eventually([&] {
        for (auto& b : up.sent()) wire.push_back(std::move(b));
        return wire.size() >= kCount;
    }));
    REQUIRE(wire.size() == kCount);
    for (const auto& f : wire) REQUIRE(std::equal(f.begin(), f.end(), t.frame().begin(), t.frame().end()));

    // The other way: frames for the guest's MAC from the wire land in the sink's buffers.
    UdpFrameSpec in;
    in.size = 800;
    in.src = outside;
    in.dst = guest_mac;
    std::vector<std::byte> f(in.size);
    REQUIRE(build_udp_frame(in, f));
    for (int i = 0; i < 100; ++i) up.inject(f);
    for (int i = 0; i < 600 && t.stats().rx_pkts < 100; ++i) t.run_for(std::chrono::milliseconds(100));
    const auto st = dp.stats(control::VifId{kA, 0});
    REQUIRE(st);
    INFO("data plane rx_packets " << st->rx_packets << ", drops " <<
         [&] {
             std::string d;
             for (auto n : st->drops) d += std::to_string(n) + " ";
             return d;
         }() << ", io events " << io.counters().events
                                  << ", rx posted " << io.rx_posted(0) << ", iterations "
                                  << dp.worker_counters().iterations.get() << ", sleeps "
                                  << dp.worker_counters().sleeps.get() << ", uplink_rx "
                                  << dp.worker_counters().uplink_rx.get() << ", unrouted "
                                  << dp.worker_counters().uplink_unrouted.get());
    CHECK(t.stats().rx_pkts == 100);
    CHECK(t.stats().rx_bytes == 100 * 800);
    dp.detach(control::VifId{kA, 0});
    io.detach();
}
