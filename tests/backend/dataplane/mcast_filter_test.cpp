// A vif's multicast filter (mcast_filter.hpp): Linux netback's list semantics in a fixed array,
// the switch flooding multicast (not broadcast) only to vifs that subscribed while they filter,
// and the one piece of switch state that crosses workers, read while its owner changes it.
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/dataplane/l2_switch.hpp"
#include "backend/dataplane/mcast_filter.hpp"

using namespace netbackd::dataplane;

namespace {
MacAddr mac(const char* s) { return *MacAddr::parse(s); }
MacAddr group(unsigned i) { return MacAddr{0x0100'5e00'0000ULL + i}; } // 01:00:5e:00:00:i
} // namespace

TEST_CASE("mcast filter: add, del, duplicates and the 64-address limit, as Linux netback",
          "[dataplane][ctrl]") {
    McastFilter f;
    const MacAddr m1 = mac("01:00:5e:00:00:01");
    CHECK_FALSE(f.contains(m1));
    REQUIRE(f.add(m1));
    CHECK(f.contains(m1));
    // No duplicate check: two ADDs need two DELs.
    REQUIRE(f.add(m1));
    CHECK(f.size() == 2);
    f.del(m1);
    CHECK(f.contains(m1));
    f.del(m1);
    CHECK_FALSE(f.contains(m1));
    f.del(m1); // a DEL of nothing changes nothing
    CHECK(f.size() == 0);
    // Any address may be subscribed, 00:00:00:00:00:00 too; it matches nothing else.
    REQUIRE(f.add(MacAddr{0}));
    CHECK(f.contains(MacAddr{0}));
    CHECK_FALSE(f.contains(m1));
    f.clear();

    for (unsigned i = 0; i < McastFilter::kCapacity; ++i) REQUIRE(f.add(group(i)));
    CHECK_FALSE(f.add(group(100))); // XEN_NETBK_MCAST_MAX reached: refused, nothing changes
    CHECK_FALSE(f.contains(group(100)));
    CHECK(f.size() == McastFilter::kCapacity);
    CHECK(f.subscribed() == McastFilter::kCapacity);
    for (unsigned i = 0; i < McastFilter::kCapacity; ++i) CHECK(f.contains(group(i)));
    // A freed slot in the middle is taken again.
    f.del(group(10));
    REQUIRE(f.add(group(100)));
    CHECK(f.contains(group(100)));
    CHECK_FALSE(f.contains(group(10)));
}

TEST_CASE("mcast filter: accepts everything while off, only subscriptions while on", "[dataplane][ctrl]") {
    McastFilter f;
    REQUIRE(f.add(group(1)));
    CHECK(f.accepts(group(2))); // off: the list is kept but not applied (netif.h)
    f.set_enabled(true);
    CHECK(f.accepts(group(1)));
    CHECK_FALSE(f.accepts(group(2)));
    CHECK(f.filtered() == 1);
    f.set_enabled(false);
    CHECK(f.accepts(group(2)));
}

TEST_CASE("switch: multicast floods only to subscribed vifs that filter, broadcast to all",
          "[dataplane][ctrl]") {
    L2Switch sw{16, 64};
    std::array<SwitchPortId, 16> flood{};
    McastFilter fa, fb, fc;
    fa.set_enabled(true); // subscribed to group 1
    REQUIRE(fa.add(group(1)));
    fb.set_enabled(true); // filters, subscribed to nothing
    // fc: not filtering
    const SwitchPortId up = sw.add_port({PortKind::uplink, 0, 0, {}});
    const SwitchPortId s = sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:01")});
    SwitchPort pa{PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")};
    pa.mcast = &fa;
    SwitchPort pb{PortKind::vif, 0, 0, mac("00:16:3e:00:00:0b")};
    pb.mcast = &fb;
    SwitchPort pc{PortKind::vif, 0, 0, mac("00:16:3e:00:00:0c")};
    pc.mcast = &fc;
    const SwitchPortId a = sw.add_port(pa), b = sw.add_port(pb), c = sw.add_port(pc);
    auto dests = [&](MacAddr dst) {
        const Decision d = sw.forward(s, dst, mac("00:16:3e:00:00:01"), 0, 0, flood);
        REQUIRE(d.verdict == Verdict::flood);
        return std::vector<SwitchPortId>(flood.begin(), flood.begin() + d.flood_count);
    };
    CHECK(dests(group(1)) == std::vector<SwitchPortId>{up, a, c});
    CHECK(dests(group(2)) == std::vector<SwitchPortId>{up, c});
    CHECK(dests(mac("ff:ff:ff:ff:ff:ff")) == std::vector<SwitchPortId>{up, a, b, c});
    CHECK(fb.filtered() == 2);
    CHECK(fa.filtered() == 1);
    // From the wire, the same.
    const Decision d = sw.forward(up, group(2), mac("00:16:3e:99:00:01"), 0, 0, flood);
    CHECK(std::vector<SwitchPortId>(flood.begin(), flood.begin() + d.flood_count) ==
          std::vector<SwitchPortId>{s, c});
}

// The owner worker adds and deletes while another worker's switch floods: a subscription that is
// never touched must never be missed, and nothing is torn (run under TSan by `make check-tsan`).
TEST_CASE("mcast filter: read by other workers while its owner changes it", "[dataplane][ctrl][threads]") {
    McastFilter f;
    f.set_enabled(true);
    const MacAddr stable = group(200);
    REQUIRE(f.add(stable));
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> missed{0}, reads{0};
    std::atomic<int> started{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            if (!f.accepts(stable)) missed.fetch_add(1);
            std::uint64_t n = 1;
            started.fetch_add(1);
            while (!stop.load(std::memory_order_relaxed)) {
                if (!f.accepts(stable)) missed.fetch_add(1);
                (void)f.accepts(group(n % 80));
                ++n;
            }
            reads.fetch_add(n);
        });
    // On a loaded machine a reader may start late: churn only once both read.
    for (int i = 0; started.load() < 2 && i < 60000; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(started.load() == 2);
    // Churn: fill to the limit around the stable entry, empty again, many times.
    for (int round = 0; round < 2000; ++round) {
        for (unsigned i = 0; i + 1 < McastFilter::kCapacity; ++i) f.add(group(i));
        CHECK_FALSE(f.add(group(99)));
        for (unsigned i = 0; i + 1 < McastFilter::kCapacity; ++i) f.del(group(i));
    }
    stop = true;
    for (auto& t : readers) t.join();
    CHECK(missed.load() == 0);
    CHECK(reads.load() > 0);
    CHECK(f.size() == 1);
}
