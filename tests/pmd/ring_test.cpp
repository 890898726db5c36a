// net_ring without arguments is a loopback: what a port sends it receives.
#include <array>
#include <vector>

#include <catch2/catch.hpp>

#include "pmd/mbuf.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/frames.hpp"

using namespace netbackd::pmd;
using namespace netbackd::pmd::test;

namespace {

struct Loopback {
    Loopback() : dev(unique_name("net_ring_t"), ""), pool(small_pool()), port(dev.name(), {}, pool) {}
    VirtualDevice dev;
    Mempool pool;
    Port port;

    // Sends the packets (taking them) and returns what comes back, in order.
    std::vector<MbufPtr> round_trip(std::vector<MbufPtr>& pkts) {
        std::vector<rte_mbuf*> raw;
        for (auto& p : pkts) {
            raw.push_back(p.release());
        }
        pkts.clear();
        const auto sent = port.tx_burst(0, raw);
        for (std::size_t i = sent; i < raw.size(); ++i) {
            rte_pktmbuf_free(raw[i]);
        }
        REQUIRE(sent == raw.size());
        std::vector<MbufPtr> back;
        std::array<rte_mbuf*, 32> burst{};
        for (int empty = 0; back.size() < sent && empty < 3;) {
            const auto n = port.rx_burst(0, burst);
            empty = n == 0 ? empty + 1 : 0;
            for (std::size_t i = 0; i < n; ++i) {
                back.emplace_back(burst[i]);
            }
        }
        return back;
    }
};

} // namespace

TEST_CASE("net_ring loops frames back byte for byte", "[dataplane][ring]") {
    dataplane_eal();
    Loopback lo;
    std::vector<std::vector<std::byte>> frames;
    std::vector<MbufPtr> pkts;
    for (std::size_t i = 0; i < 24; ++i) {
        FrameSpec s;
        s.ip_version = (i % 2) != 0 ? 6 : 4;
        s.proto = (i % 3) != 0 ? 6 : 17;
        // Up to 5000 bytes: the larger ones are chains of several buffers.
        s.payload = (i * 211) % 5000;
        s.payload_seed = static_cast<std::uint8_t>(i);
        frames.push_back(build_frame(s));
        pkts.push_back(mbuf_from_bytes(lo.pool.get(), frames.back()));
        REQUIRE(pkts.back());
    }
    const auto back = lo.round_trip(pkts);
    REQUIRE(back.size() == frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
        INFO("frame " << i);
        CHECK(back[i]->pkt_len == frames[i].size());
        CHECK(mbuf_to_bytes(back[i].get()) == frames[i]);
    }
    const auto st = lo.port.stats();
    CHECK(st.tx_packets == frames.size());
    CHECK(st.rx_packets == frames.size());
}

TEST_CASE("net_ring offers multi-segment frames but no checksum offload", "[dataplane][ring]") {
    dataplane_eal();
    Loopback lo;
    CHECK(lo.port.driver() == "net_ring");
    CHECK(lo.port.hardware().tx_multi_segs);
    CHECK_FALSE(lo.port.hardware().tx_l4_cksum());
    CHECK_FALSE(lo.port.hardware().tx_tcp_tso);
    CHECK_FALSE(lo.port.has_link_interrupt());
    CHECK(lo.port.link_event_fd() == -1);
    CHECK(lo.port.link().up);
}

TEST_CASE("blank checksums are filled in software for a port without offload", "[dataplane][ring]") {
    dataplane_eal();
    Loopback lo;
    std::vector<std::vector<std::byte>> expected;
    std::vector<MbufPtr> pkts;
    for (int i = 0; i < 8; ++i) {
        FrameSpec s;
        s.ip_version = i < 4 ? 4 : 6;
        s.proto = (i % 2) != 0 ? 17 : 6;
        s.payload = 100 + static_cast<std::size_t>(i) * 700; // chained from 2 KiB on
        auto blank = build_frame(s);
        auto full = blank;
        REQUIRE(fill_checksums(full));
        expected.push_back(full);
        pkts.push_back(mbuf_from_bytes(lo.pool.get(), blank));
        REQUIRE(pkts.back());
        CHECK(verify_mbuf_checksums(pkts.back().get()) == ChecksumVerdict::invalid);
        REQUIRE(prepare_tx_checksums(pkts.back().get(), lo.port.hardware()));
        // Done in software: no offload flag asks the (absent) hardware for it.
        CHECK((pkts.back()->ol_flags & (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM)) == 0);
    }
    const auto back = lo.round_trip(pkts);
    REQUIRE(back.size() == expected.size());
    for (std::size_t i = 0; i < back.size(); ++i) {
        INFO("frame " << i);
        CHECK(mbuf_to_bytes(back[i].get()) == expected[i]);
        CHECK(rx_checksums_good(back[i].get(), lo.port.hardware()));
    }
    // A corrupted frame is not passed as validated.
    auto bad = expected[0];
    bad.back() ^= std::byte{1};
    const auto m = mbuf_from_bytes(lo.pool.get(), bad);
    CHECK_FALSE(rx_checksums_good(m.get(), lo.port.hardware()));
}

TEST_CASE("with checksum offload the hardware is asked, with a pseudo-header seed", "[dataplane][ring]") {
    dataplane_eal();
    auto pool = small_pool();
    Offloads hw;
    hw.tx_ipv4_cksum = hw.tx_tcp_cksum = hw.tx_udp_cksum = true;
    auto frame = build_frame({.payload = 50, .vlan_tags = 1});
    const auto m = mbuf_from_bytes(pool.get(), frame);
    REQUIRE(prepare_tx_checksums(m.get(), hw));
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0);
    CHECK(m->l2_len == 18);
    CHECK(m->l3_len == 20);
    CHECK(m->l4_len == 20);
    // Finishing the sum as hardware does (over the L4 bytes, seed included) gives a valid frame.
    auto out = mbuf_to_bytes(m.get());
    ChecksumAccumulator acc;
    acc.add(std::span(out).subspan(18 + 20));
    const auto sum = acc.checksum();
    out[18 + 20 + 16] = static_cast<std::byte>(sum >> 8);
    out[18 + 20 + 17] = static_cast<std::byte>(sum & 0xff);
    auto ip_ok = out;
    const auto ip_sum = ipv4_header_checksum(std::span(ip_ok).subspan(18, 20));
    ip_ok[18 + 10] = static_cast<std::byte>(ip_sum >> 8);
    ip_ok[18 + 11] = static_cast<std::byte>(ip_sum & 0xff);
    CHECK(verify_checksums(ip_ok) == ChecksumVerdict::valid);
}

TEST_CASE("9000-byte frames loop back, chained or in one big buffer", "[dataplane][ring]") {
    dataplane_eal();
    const auto frame = build_frame({.payload = 9000 - 40});
    REQUIRE(frame.size() == 9014);
    for (const bool big_buffers : {false, true}) {
        INFO("big buffers: " << big_buffers);
        VirtualDevice dev(unique_name("net_ring_t"), "");
        auto pool = small_pool(1023, big_buffers ? data_room_for_mtu(9000) : kDefaultDataRoom);
        PortConfig cfg;
        cfg.mtu = 9000;
        Port port(dev.name(), cfg, pool);
        CHECK(port.mtu() == 9000);
        CHECK(port.warnings().empty());
        // Small buffers need the device's RX scatter, which net_ring offers.
        CHECK(port.hardware().rx_scatter == !big_buffers);

        auto m = mbuf_from_bytes(pool.get(), frame);
        REQUIRE(m);
        CHECK(m->nb_segs == (big_buffers ? 1 : 5));
        std::array<rte_mbuf*, 1> out{m.release()};
        REQUIRE(port.tx_burst(0, out) == 1);
        std::array<rte_mbuf*, 1> in{};
        REQUIRE(port.rx_burst(0, in) == 1);
        MbufPtr back(in[0]);
        CHECK(mbuf_to_bytes(back.get()) == frame);
    }
}

TEST_CASE("a frame for hardware TSO carries flags, lengths and a length-less seed", "[dataplane][ring]") {
    dataplane_eal();
    auto pool = small_pool();
    for (int version : {4, 6}) {
        INFO("IPv" << version);
        FrameSpec spec;
        spec.ip_version = version;
        spec.payload = 30000;
        const auto frame = build_frame(spec);
        const std::size_t l3 = version == 4 ? 20 : 40;
        auto m = mbuf_from_bytes(pool.get(), frame);
        REQUIRE(prepare_tx_tso(m.get(), 8960, 1500));
        CHECK(m->tso_segsz == 1500 - l3 - 20); // clamped to the MTU
        CHECK((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0);
        CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
        CHECK(((m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0) == (version == 4));
        CHECK(((m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0) == (version == 6));
        CHECK(m->l2_len == 14);
        CHECK(m->l3_len == l3);
        CHECK(m->l4_len == 20);
        // The seed: addresses and protocol, no length.
        ChecksumAccumulator seed;
        const auto ip = std::span(frame).subspan(14);
        if (version == 4) {
            add_ipv4_pseudo_header(seed, ip.subspan(12).first<4>(), ip.subspan(16).first<4>(), 6, 0);
        } else {
            add_ipv6_pseudo_header(seed, ip.subspan(8).first<16>(), ip.subspan(24).first<16>(), 6, 0);
        }
        const auto out = mbuf_to_bytes(m.get());
        CHECK(((std::to_integer<unsigned>(out[14 + l3 + 16]) << 8) |
               std::to_integer<unsigned>(out[14 + l3 + 17])) == seed.fold());
    }
    // Only TCP can be segmented.
    auto udp = mbuf_from_bytes(pool.get(), build_frame({.proto = 17, .payload = 3000}));
    CHECK_FALSE(prepare_tx_tso(udp.get(), 1400, 1500));
}

TEST_CASE("an administrative link down is seen by link_change", "[dataplane][ring]") {
    dataplane_eal();
    Loopback lo;
    REQUIRE(lo.port.link_change());
    REQUIRE(lo.port.set_link(false));
    const auto down = lo.port.link_change();
    REQUIRE(down);
    CHECK_FALSE(down->up);
    CHECK(std::string(carrier_value(*down)) == "0");
    REQUIRE(lo.port.set_link(true));
    const auto up = lo.port.link_change();
    REQUIRE(up);
    CHECK(up->up);
}

TEST_CASE("headers spread over several segments are pulled up before offload work", "[dataplane][ring]") {
    dataplane_eal();
    auto pool = small_pool();
    FrameSpec spec;
    spec.ip_version = 6;
    spec.payload = 3000;
    spec.ipv6_hop_by_hop = true;
    const auto blank = build_frame(spec);
    auto full = blank;
    REQUIRE(fill_checksums(full));

    // Ethernet header split, IPv6 header split, TCP header split, as odd guest slots might be.
    auto m = mbuf_chain(pool.get(), blank, {10, 30, 25, 5});
    REQUIRE(m);
    REQUIRE(m->nb_segs >= 5);
    REQUIRE(mbuf_to_bytes(m.get()) == blank);
    REQUIRE(prepare_tx_checksums(m.get(), Offloads{}));
    CHECK(m->data_len >= 14 + 48 + 20);
    CHECK(m->pkt_len == blank.size());
    CHECK(mbuf_to_bytes(m.get()) == full);

    // A short packet ends up in one segment.
    auto small = build_frame({.proto = 17, .payload = 20});
    auto s = mbuf_chain(pool.get(), small, {7, 7, 7});
    REQUIRE(pull_up_headers(s.get()));
    CHECK(s->nb_segs == 1);
    CHECK(mbuf_to_bytes(s.get()) == small);
}
