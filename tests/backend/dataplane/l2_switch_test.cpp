#include <array>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/dataplane/l2_switch.hpp"

using namespace netbackd::dataplane;

namespace {
MacAddr mac(const char* s) { return *MacAddr::parse(s); }

struct World {
    L2Switch sw{16, 64};
    std::array<SwitchPortId, 16> flood{};
    SwitchPortId up = sw.add_port({PortKind::uplink, 0, 0, {}});
    SwitchPortId a = sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")});
    SwitchPortId b = sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0b")});

    Decision send(SwitchPortId in, const char* dst, const char* src, std::uint16_t vlan = 0,
                  std::uint64_t now = 0) {
        return sw.forward(in, mac(dst), mac(src), vlan, now, flood);
    }
    std::vector<SwitchPortId> flooded(const Decision& d) const {
        return {flood.begin(), flood.begin() + d.flood_count};
    }
};
} // namespace

TEST_CASE("MAC parsing accepts only colon-separated hex", "[dataplane]") {
    REQUIRE(MacAddr::parse("00:16:3E:aa:bb:cc")->to_string() == "00:16:3e:aa:bb:cc");
    REQUIRE_FALSE(MacAddr::parse("00:16:3e:aa:bb"));
    REQUIRE_FALSE(MacAddr::parse("00-16-3e-aa-bb-cc"));
    REQUIRE_FALSE(MacAddr::parse("00:16:3e:aa:bb:cg"));
    REQUIRE(mac("ff:ff:ff:ff:ff:ff").is_broadcast());
    REQUIRE(mac("01:00:5e:00:00:01").is_group());
    REQUIRE_FALSE(mac("00:16:3e:00:00:01").is_group());
}

TEST_CASE("guest to guest stays local, unknown unicast goes to the uplink", "[dataplane]") {
    World w;
    auto d = w.send(w.a, "00:16:3e:00:00:0b", "00:16:3e:00:00:0a");
    REQUIRE(d.verdict == Verdict::unicast);
    REQUIRE(d.port == w.b);
    d = w.send(w.a, "52:54:00:12:34:56", "00:16:3e:00:00:0a");
    REQUIRE(d.verdict == Verdict::unicast);
    REQUIRE(d.port == w.up);
}

TEST_CASE("a vif sending from a MAC it does not own is dropped", "[dataplane]") {
    World w;
    REQUIRE(w.send(w.a, "00:16:3e:00:00:0b", "00:16:3e:00:00:0b").verdict == Verdict::drop_spoofed);
    REQUIRE(w.send(w.a, "ff:ff:ff:ff:ff:ff", "00:16:3e:00:00:99").verdict == Verdict::drop_spoofed);
}

TEST_CASE("broadcast floods the uplink domain except the sender", "[dataplane]") {
    World w;
    auto d = w.send(w.a, "ff:ff:ff:ff:ff:ff", "00:16:3e:00:00:0a");
    REQUIRE(d.verdict == Verdict::flood);
    REQUIRE(w.flooded(d) == std::vector<SwitchPortId>{w.up, w.b});
    d = w.send(w.up, "01:00:5e:00:00:01", "52:54:00:12:34:56");
    REQUIRE(w.flooded(d) == std::vector<SwitchPortId>{w.a, w.b});
}

TEST_CASE("learning on the uplink, and the wire cannot steal a vif's MAC", "[dataplane]") {
    World w;
    // Unknown destination from the wire belongs to nobody here.
    REQUIRE(w.send(w.up, "52:54:00:00:00:01", "52:54:00:00:00:02").verdict == Verdict::drop_local);
    // Traffic to a MAC learned behind the uplink, arriving on the uplink, is not hairpinned.
    REQUIRE(w.send(w.up, "52:54:00:00:00:02", "52:54:00:00:00:03").verdict == Verdict::drop_local);
    REQUIRE(w.sw.entries() == 4); // two vifs + two learned
    // A frame on the wire claiming vif a's MAC must not redirect a's traffic.
    w.send(w.up, "00:16:3e:00:00:0b", "00:16:3e:00:00:0a");
    auto d = w.send(w.b, "00:16:3e:00:00:0a", "00:16:3e:00:00:0b");
    REQUIRE(d.verdict == Verdict::unicast);
    REQUIRE(d.port == w.a);
}

TEST_CASE("learned entries age out, configured ones stay", "[dataplane]") {
    World w;
    w.send(w.up, "00:16:3e:00:00:0a", "52:54:00:00:00:01", 0, 100);
    w.send(w.up, "00:16:3e:00:00:0a", "52:54:00:00:00:02", 0, 500);
    REQUIRE(w.sw.entries() == 4);
    REQUIRE(w.sw.age(600, 300) == 1);
    REQUIRE(w.sw.entries() == 3);
    REQUIRE(w.sw.age(10'000, 300) == 1);
    REQUIRE(w.sw.entries() == 2);
    REQUIRE(w.send(w.a, "00:16:3e:00:00:0b", "00:16:3e:00:00:0a").port == w.b);
}

TEST_CASE("VLANs separate vifs and flooding", "[dataplane]") {
    L2Switch sw{8, 32};
    std::array<SwitchPortId, 8> out{};
    const auto up = sw.add_port({PortKind::uplink, 0, 0, {}});
    const auto a = sw.add_port({PortKind::vif, 0, 10, mac("00:16:3e:00:00:0a")});
    const auto b = sw.add_port({PortKind::vif, 0, 20, mac("00:16:3e:00:00:0b")});
    const auto c = sw.add_port({PortKind::vif, 0, 10, mac("00:16:3e:00:00:0c")});
    // a and b are in different VLANs: b's MAC is unknown in VLAN 10, so it goes to the uplink.
    auto d = sw.forward(a, mac("00:16:3e:00:00:0b"), mac("00:16:3e:00:00:0a"), 0, 0, out);
    REQUIRE(d.port == up);
    d = sw.forward(a, mac("ff:ff:ff:ff:ff:ff"), mac("00:16:3e:00:00:0a"), 0, 0, out);
    REQUIRE(std::vector<SwitchPortId>(out.begin(), out.begin() + d.flood_count) ==
            std::vector<SwitchPortId>{up, c});
    d = sw.forward(up, mac("00:16:3e:00:00:0b"), mac("52:54:00:00:00:01"), 20, 0, out);
    REQUIRE(d.port == b);
    d = sw.forward(up, mac("00:16:3e:00:00:0b"), mac("52:54:00:00:00:01"), 10, 0, out);
    REQUIRE(d.verdict == Verdict::drop_local);
}

TEST_CASE("separate uplinks are separate domains", "[dataplane]") {
    L2Switch sw{8, 32};
    std::array<SwitchPortId, 8> out{};
    const auto up0 = sw.add_port({PortKind::uplink, 0, 0, {}});
    const auto up1 = sw.add_port({PortKind::uplink, 1, 0, {}});
    const auto a = sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")});
    const auto b = sw.add_port({PortKind::vif, 1, 0, mac("00:16:3e:00:00:0b")});
    auto d = sw.forward(a, mac("00:16:3e:00:00:0b"), mac("00:16:3e:00:00:0a"), 0, 0, out);
    REQUIRE(d.verdict == Verdict::drop_local);
    d = sw.forward(b, mac("ff:ff:ff:ff:ff:ff"), mac("00:16:3e:00:00:0b"), 0, 0, out);
    REQUIRE(d.flood_count == 1);
    REQUIRE(out[0] == up1);
    d = sw.forward(a, mac("52:54:00:00:00:01"), mac("00:16:3e:00:00:0a"), 0, 0, out);
    REQUIRE(d.port == up0);
}

TEST_CASE("port removal forgets its MACs; duplicate MACs are refused", "[dataplane]") {
    World w;
    REQUIRE(w.sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")}) == kNoPort);
    REQUIRE(w.sw.add_port({PortKind::uplink, 0, 0, {}}) == kNoPort);
    w.sw.remove_port(w.b);
    auto d = w.send(w.a, "00:16:3e:00:00:0b", "00:16:3e:00:00:0a");
    REQUIRE(d.port == w.up);
    REQUIRE(w.send(w.b, "00:16:3e:00:00:0a", "00:16:3e:00:00:0b").verdict == Verdict::drop_local);
    const auto b2 = w.sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0b")});
    REQUIRE(b2 != kNoPort);
    REQUIRE(w.send(w.a, "00:16:3e:00:00:0b", "00:16:3e:00:00:0a").port == b2);
}

TEST_CASE("the table survives heavy churn with deletions in probe chains", "[dataplane]") {
    L2Switch sw{4, 256}; // holds 192
    std::array<SwitchPortId, 4> out{};
    const auto up = sw.add_port({PortKind::uplink, 0, 0, {}});
    sw.add_port({PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")});
    auto learned = [](std::uint64_t round, std::uint64_t i) {
        return MacAddr{0x525400000000ULL + round * 1000 + i * 7};
    };
    std::uint64_t now = 0;
    for (std::uint64_t round = 0; round < 50; ++round) {
        for (std::uint64_t i = 0; i < 120; ++i) {
            sw.forward(up, mac("00:16:3e:00:00:0a"), learned(round, i), 0, ++now, out);
        }
        // Every learned MAC must still be found: a broken deletion loses some in its chain.
        for (std::uint64_t i = 0; i < 120; ++i) REQUIRE(sw.lookup(0, learned(round, i)) == up);
        for (std::uint64_t i = 60; i < 120 && round > 0; ++i) {
            REQUIRE(sw.lookup(0, learned(round - 1, i)) == up);
        }
        REQUIRE(sw.age(now, 59) == (round == 0 ? 60 : 120));
        for (std::uint64_t i = 0; i < 60; ++i) REQUIRE(sw.lookup(0, learned(round, i)) == kNoPort);
        REQUIRE(sw.lookup(0, mac("00:16:3e:00:00:0a")) == 1);
        REQUIRE(sw.entries() == 61);
    }
    REQUIRE(sw.learned_dropped() == 0);
}

TEST_CASE("an all-zero destination MAC is nobody's, not an empty table slot", "[dataplane]") {
    World w;
    // From the wire (e.g. a PMD delivering zeroed frames): dropped, not looked up in a free slot.
    auto d = w.send(w.up, "00:00:00:00:00:00", "00:00:00:00:00:00");
    REQUIRE(d.verdict == Verdict::drop_local);
    d = w.send(w.a, "00:00:00:00:00:00", "00:16:3e:00:00:0a");
    REQUIRE(d.verdict == Verdict::unicast);
    REQUIRE(d.port == w.up);
    REQUIRE(w.sw.lookup(0, MacAddr{}) == kNoPort);
}

TEST_CASE("a vif port's MTU bounds the frames it takes, an uplink port takes any", "[dataplane]") {
    L2Switch sw{8, 64};
    const auto up = sw.add_port({PortKind::uplink, 0, 0, {}});
    SwitchPort p{PortKind::vif, 0, 0, mac("00:16:3e:00:00:0a")};
    p.mtu = 1500;
    const auto a = sw.add_port(p);
    CHECK(sw.fits_mtu(a, 1514));
    CHECK_FALSE(sw.fits_mtu(a, 1515));
    CHECK(sw.fits_mtu(up, 65535));
}

TEST_CASE("flooding reaches every port after removals in the middle and re-adds", "[dataplane]") {
    L2Switch sw{1100, 4096};
    std::vector<SwitchPortId> out(1100);
    const auto up = sw.add_port({PortKind::uplink, 0, 0, {}});
    std::vector<SwitchPortId> vifs;
    for (std::uint64_t i = 0; i < 1024; ++i)
        vifs.push_back(sw.add_port({PortKind::vif, 0, 0, MacAddr{0x00163e000000ULL + i + 1}}));
    REQUIRE(vifs.back() != kNoPort);
    auto flood_from_wire = [&] {
        return sw.forward(up, MacAddr{0xffffffffffffULL}, MacAddr{0x525400000001ULL}, 0, 0, out).flood_count;
    };
    CHECK(flood_from_wire() == 1024);
    sw.remove_port(vifs.back()); // the highest port: the scan shrinks
    sw.remove_port(vifs[10]);
    CHECK(flood_from_wire() == 1022);
    const auto again = sw.add_port({PortKind::vif, 0, 0, MacAddr{0x00163e100000ULL}});
    CHECK(again == vifs[10]); // the lowest free port is reused
    CHECK(flood_from_wire() == 1023);
    const auto last = sw.add_port({PortKind::vif, 0, 0, MacAddr{0x00163e100001ULL}});
    CHECK(last == vifs.back());
    CHECK(flood_from_wire() == 1024);
}
