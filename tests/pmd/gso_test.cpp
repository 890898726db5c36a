// Software TCP segmentation for ports without TSO.
#include <array>
#include <vector>

#include <catch2/catch.hpp>

#include "pmd/bytes.hpp"
#include "pmd/gso.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/port.hpp"
#include "pmd/vdev.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/frames.hpp"

using namespace netbackd::pmd;
using namespace netbackd::pmd::test;

namespace {

struct Pools {
    Mempool direct = small_pool(8191);
    Mempool indirect = small_pool(8191, 0);
};

struct Segments {
    std::array<rte_mbuf*, 128> raw{};
    int count = 0;
    ~Segments() {
        for (int i = 0; i < count; ++i) {
            rte_pktmbuf_free(raw[static_cast<std::size_t>(i)]);
        }
    }
    std::span<rte_mbuf*> span() { return std::span(raw).first(static_cast<std::size_t>(count)); }
};

// Checks every segment against the original frame and returns the reassembled payload.
std::vector<std::byte> check_segments(std::span<rte_mbuf*> segs, const FrameSpec& spec, std::uint16_t mtu,
                                      std::uint16_t mss) {
    std::vector<std::byte> payload;
    const std::size_t l2 = 14;
    const std::size_t l3 = spec.ip_version == 4 ? 20 : 40;
    for (std::size_t i = 0; i < segs.size(); ++i) {
        INFO("segment " << i << " of " << segs.size());
        const auto f = mbuf_to_bytes(segs[i]);
        REQUIRE(f.size() > l2 + l3 + 20);
        const std::size_t len = f.size() - l2 - l3 - 20;
        CHECK(f.size() - l2 <= mtu);
        CHECK(len <= mss);
        if (i + 1 < segs.size()) {
            CHECK(len == mss);
        }
        if (spec.ip_version == 4) {
            CHECK(load_be16(f, l2 + 2) == l3 + 20 + len);
            CHECK(load_be16(f, l2 + 4) == static_cast<std::uint16_t>(spec.ip_id + i));
        } else {
            CHECK(load_be16(f, l2 + 4) == 20 + len);
        }
        CHECK(load_be32(f, l2 + l3 + 4) == spec.seq + i * mss);
        const auto flags = load_u8(f, l2 + l3 + 13);
        const bool last = i + 1 == segs.size();
        CHECK(((flags & 0x08) != 0) == last); // PSH only at the end
        CHECK((flags & 0x10) != 0);           // ACK everywhere
        CHECK(verify_checksums(f) == ChecksumVerdict::valid);
        CHECK(segs[i]->pkt_len == f.size());
        CHECK((segs[i]->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0);
        payload.insert(payload.end(), f.begin() + static_cast<std::ptrdiff_t>(l2 + l3 + 20), f.end());
    }
    return payload;
}

std::vector<std::byte> expected_payload(const FrameSpec& spec) {
    std::vector<std::byte> p(spec.payload);
    for (std::size_t i = 0; i < p.size(); ++i) {
        p[i] = payload_byte(i, spec.payload_seed);
    }
    return p;
}

} // namespace

TEST_CASE("software GSO cuts a 64 KiB TCP/IPv4 frame into MTU-sized segments", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    FrameSpec spec;
    spec.payload = 65535 - 40; // the largest IPv4 datagram
    const auto frame = build_frame(spec);
    const auto free_before = pools.direct.available();

    const bool multi_segs = GENERATE(false, true);
    INFO("port has MULTI_SEGS: " << multi_segs);
    Offloads hw;
    hw.tx_multi_segs = multi_segs;

    auto pkt = mbuf_from_bytes(pools.direct.get(), frame);
    REQUIRE(pkt);
    CHECK(pkt->nb_segs > 1); // a chain of 2 KiB buffers
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1460));
    {
        Segments out;
        out.count = gso.segment(pkt.release(), out.raw, 1500, hw);
        REQUIRE(out.count == 45); // ceil(65495 / 1460)
        if (!multi_segs) {
            for (auto* m : out.span()) {
                CHECK(m->nb_segs == 1);
            }
        }
        CHECK(check_segments(out.span(), spec, 1500, 1460) == expected_payload(spec));
    }
    // Headers, payload references and the original chain are all back in their pools.
    CHECK(pools.direct.available() == free_before);
    CHECK(pools.indirect.available() == pools.indirect.capacity());
}

TEST_CASE("software GSO cuts a large TCP/IPv6 frame (by copying)", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    FrameSpec spec;
    spec.ip_version = 6;
    spec.payload = 65535 - 20;
    spec.tcp_flags = 0x18 | 0x80; // CWR only on the first segment
    const auto frame = build_frame(spec);
    auto pkt = mbuf_from_bytes(pools.direct.get(), frame);
    REQUIRE(pkt);
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1440));
    Segments out;
    out.count = gso.segment(pkt.release(), out.raw, 1500, Offloads{});
    REQUIRE(out.count == 46); // ceil(65515 / 1440)
    CHECK((load_u8(mbuf_to_bytes(out.raw[0]), 14 + 40 + 13) & 0x80) != 0);
    CHECK((load_u8(mbuf_to_bytes(out.raw[1]), 14 + 40 + 13) & 0x80) == 0);
    CHECK(check_segments(out.span(), spec, 1500, 1440) == expected_payload(spec));
}

TEST_CASE("software GSO keeps within a port MTU smaller than the guest's MSS", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    FrameSpec spec;
    spec.payload = 20000;
    auto pkt = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), 8960));
    Segments out;
    out.count = gso.segment(pkt.release(), out.raw, 1500, Offloads{});
    REQUIRE(out.count == 14); // ceil(20000 / 1460)
    CHECK(check_segments(out.span(), spec, 1500, 1460) == expected_payload(spec));
}

TEST_CASE("a frame within one MSS comes back whole, with checksums", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    FrameSpec spec;
    spec.payload = 1000;
    auto pkt = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1460));
    Segments out;
    out.count = gso.segment(pkt.release(), out.raw, 1500, Offloads{});
    REQUIRE(out.count == 1);
    CHECK(check_segments(out.span(), spec, 1500, 1460) == expected_payload(spec));
}

TEST_CASE("software GSO failures consume the input and say why", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    const auto free_before = pools.direct.available();
    FrameSpec spec;
    spec.payload = 30000;
    for (int version : {4, 6}) {
        INFO("IPv" << version);
        spec.ip_version = version;
        auto pkt = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
        REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1000));
        std::array<rte_mbuf*, 4> few{};
        CHECK(gso.segment(pkt.release(), few, 1500, Offloads{}) == -ENOSPC);
        CHECK(pools.direct.available() == free_before);
    }
    // Not marked for TSO.
    auto plain = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
    std::array<rte_mbuf*, 4> out{};
    CHECK(gso.segment(plain.release(), out, 1500, Offloads{}) == -EINVAL);
    CHECK(pools.direct.available() == free_before);
    // UDP is not segmented by TSO.
    auto udp = mbuf_from_bytes(pools.direct.get(), build_frame({.proto = 17, .payload = 3000}));
    CHECK_FALSE(SoftwareGso::mark_tso(udp.get(), 1000));
}

TEST_CASE("GSO segments cross a port and arrive intact", "[dataplane][gso]") {
    Pools pools;
    VirtualDevice dev(unique_name("net_ring_g"), "");
    Port port(dev.name(), {}, pools.direct);
    SoftwareGso gso(pools.direct, pools.indirect);
    FrameSpec spec;
    spec.payload = 10000;
    auto pkt = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1460));
    std::array<rte_mbuf*, 16> segs{};
    const int n = gso.segment(pkt.release(), segs, port.mtu(), port.hardware());
    REQUIRE(n == 7);
    const auto sent = port.tx_burst(0, std::span(segs).first(static_cast<std::size_t>(n)));
    REQUIRE(sent == static_cast<std::size_t>(n));
    Segments back;
    back.count = port.rx_burst(0, back.raw);
    REQUIRE(back.count == n);
    for (auto* m : back.span()) {
        CHECK(rx_checksums_good(m, port.hardware()));
    }
    CHECK(check_segments(back.span(), spec, 1500, 1460) == expected_payload(spec));
}

TEST_CASE("software GSO copes with headers spread over segments", "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    for (int version : {4, 6}) {
        INFO("IPv" << version);
        FrameSpec spec;
        spec.ip_version = version;
        spec.payload = 9000;
        auto pkt = mbuf_chain(pools.direct.get(), build_frame(spec), {6, 20, 30});
        REQUIRE(pkt);
        REQUIRE(SoftwareGso::mark_tso(pkt.get(), 1000));
        Segments out;
        out.count = gso.segment(pkt.release(), out.raw, 1500, Offloads{});
        REQUIRE(out.count == 9);
        CHECK(check_segments(out.span(), spec, 1500, 1000) == expected_payload(spec));
    }
}

// Issue 19: a guest at MTU 9000 sends GSO frames with a jumbo MSS. On a port without
// MULTI_SEGS, each segment must become one buffer; a segment larger than the frame pool's
// buffers used to fail to linearize, dropping the whole frame (TCP then crawled on retransmits).
TEST_CASE("software GSO with a jumbo MSS on a port without MULTI_SEGS delivers every byte",
          "[dataplane][gso]") {
    Pools pools;
    SoftwareGso gso(pools.direct, pools.indirect);
    const int ip_version = GENERATE(4, 6);
    const bool jumbo_pool = GENERATE(false, true);
    INFO("IPv" << ip_version << ", jumbo buffers given: " << jumbo_pool);
    Mempool jumbo = small_pool(511, data_room_for_mtu(9000));
    FrameSpec spec;
    spec.ip_version = ip_version;
    spec.payload = 60000;
    const std::uint16_t l3_tcp = ip_version == 4 ? 40 : 60;
    const auto mss = static_cast<std::uint16_t>(9000 - l3_tcp);
    auto pkt = mbuf_from_bytes(pools.direct.get(), build_frame(spec));
    REQUIRE(pkt);
    REQUIRE(SoftwareGso::mark_tso(pkt.get(), mss));
    Offloads hw; // no MULTI_SEGS, no checksum offload
    Segments out;
    out.count = gso.segment(pkt.release(), out.raw, 9000, hw, jumbo_pool ? jumbo.get() : nullptr);
    // With jumbo buffers the guest's MSS stays; without, it shrinks to fit a 2 KiB buffer.
    const std::uint16_t expect_mss =
        jumbo_pool ? mss : static_cast<std::uint16_t>(kDefaultDataRoom - RTE_PKTMBUF_HEADROOM - 14 - l3_tcp);
    REQUIRE(out.count == static_cast<int>((spec.payload + expect_mss - 1) / expect_mss));
    for (auto* m : out.span()) CHECK(m->nb_segs == 1);
    CHECK(check_segments(out.span(), spec, 9000, expect_mss) == expected_payload(spec));
}
