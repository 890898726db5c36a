#include <array>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <rte_ip.h>

#include "pmd/bytes.hpp"
#include "pmd/checksum.hpp"
#include "tests/support/frames.hpp"

using namespace netbackd::pmd;
using netbackd::pmd::test::build_frame;
using netbackd::pmd::test::bytes_of;
using netbackd::pmd::test::FrameSpec;

namespace {

std::uint16_t l4_field(std::span<const std::byte> frame) {
    const auto l = parse_frame(frame);
    REQUIRE(l);
    return load_be16(frame, l->l4_offset() + (l->is_tcp() ? 16 : 6));
}

// DPDK's own implementation, as an independent oracle (inline functions, no EAL needed).
std::uint16_t dpdk_l4_checksum(std::vector<std::byte> frame) {
    const auto l = parse_frame(frame);
    REQUIRE(l);
    std::byte* ip = frame.data() + l->l2_len;
    std::byte* l4 = ip + l->l3_len;
    store_be16(frame, l->l4_offset() + (l->is_tcp() ? 16 : 6), 0);
    std::uint16_t c = 0;
    if (l->ip_version == 4) {
        c = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip), l4);
    } else {
        c = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), l4);
    }
    return rte_be_to_cpu_16(c);
}

} // namespace

TEST_CASE("IPv4 header checksum of a textbook header", "[checksum]") {
    // 192.168.0.1 -> 192.168.0.199, UDP, total length 115: the checksum is 0xb861.
    const auto h = bytes_of({0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                             0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7});
    CHECK(ipv4_header_checksum(h) == 0xb861);
    // Whatever the field holds is ignored.
    auto h2 = h;
    h2[10] = std::byte{0x12};
    h2[11] = std::byte{0x34};
    CHECK(ipv4_header_checksum(h2) == 0xb861);
    h2[10] = std::byte{0xb8};
    h2[11] = std::byte{0x61};
    CHECK(internet_checksum(h2) == 0);
}

TEST_CASE("UDP over IPv4: a hand-computed checksum", "[checksum]") {
    // 10.0.0.1:1234 -> 10.0.0.2:5678, payload "abcd".
    // pseudo 0a00+0001+0a00+0002+0011+000c = 1420; header 04d2+162e+000c = 1b0c;
    // data 6162+6364 = c4c6; sum f3f2; checksum ~f3f2 = 0c0d.
    auto f = bytes_of({0x02, 0x11, 0x12, 0x13, 0x14, 0x15, 0x02, 0x21, 0x22, 0x23, 0x24, 0x25,
                       0x08, 0x00, 0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11,
                       0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x04, 0xd2,
                       0x16, 0x2e, 0x00, 0x0c, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64});
    REQUIRE(fill_checksums(f));
    CHECK(l4_field(f) == 0x0c0d);
    CHECK(load_be16(f, 14 + 10) == ipv4_header_checksum(std::span(f).subspan(14, 20)));
    CHECK(verify_checksums(f) == ChecksumVerdict::valid);
}

TEST_CASE("TCP over IPv6: a hand-computed checksum", "[checksum]") {
    // ::1 port 80 -> ::2 port 8080, SYN, seq 1, window ffff, no payload.
    // pseudo 1+2+0014+0006 = 1d; header 0050+1f90+0001+5002+ffff = 16fe2 -> 6fe3;
    // 6fe3+1d = 7000; checksum 8fff.
    std::vector<std::byte> f(14 + 40 + 20);
    store_be16(f, 12, 0x86dd);
    f[14] = std::byte{0x60};
    store_be16(f, 14 + 4, 20);
    f[14 + 6] = std::byte{6};
    f[14 + 7] = std::byte{64};
    f[14 + 8 + 15] = std::byte{1};
    f[14 + 24 + 15] = std::byte{2};
    const std::size_t t = 54;
    store_be16(f, t, 0x0050);
    store_be16(f, t + 2, 0x1f90);
    store_be32(f, t + 4, 1);
    store_be16(f, t + 12, 0x5002);
    store_be16(f, t + 14, 0xffff);
    REQUIRE(fill_checksums(f));
    CHECK(l4_field(f) == 0x8fff);
    CHECK(verify_checksums(f) == ChecksumVerdict::valid);
}

TEST_CASE("checksums agree with DPDK's implementation on many frames", "[checksum]") {
    std::mt19937 rng(12345);
    for (int i = 0; i < 200; ++i) {
        FrameSpec s;
        s.ip_version = (i % 2) != 0 ? 6 : 4;
        s.proto = (i % 3) != 0 ? 6 : 17;
        s.payload = rng() % 1500;
        s.vlan_tags = i % 3;
        s.payload_seed = static_cast<std::uint8_t>(rng());
        auto f = build_frame(s);
        REQUIRE(fill_checksums(f));
        INFO("frame " << i << " payload " << s.payload);
        std::uint16_t expected = dpdk_l4_checksum(f);
        if (s.proto == 17 && expected == 0) {
            expected = 0xffff;
        }
        CHECK(l4_field(f) == expected);
        CHECK(verify_checksums(f) == ChecksumVerdict::valid);
    }
}

TEST_CASE("a frame in odd-sized pieces sums as the contiguous frame", "[checksum]") {
    FrameSpec s;
    s.payload = 999;
    auto whole = build_frame(s);
    REQUIRE(fill_checksums(whole));

    auto split = build_frame(s);
    const std::size_t headers = 14 + 20 + 20;
    std::span<std::byte> b(split);
    std::array<std::span<std::byte>, 5> pieces{b.first(headers), b.subspan(headers, 1),
                                               b.subspan(headers + 1, 333), b.subspan(headers + 334, 0),
                                               b.subspan(headers + 334)};
    REQUIRE(fill_checksums(std::span<const std::span<std::byte>>(pieces)));
    CHECK(split == whole);
    std::array<std::span<const std::byte>, 5> cpieces;
    std::copy(pieces.begin(), pieces.end(), cpieces.begin());
    CHECK(verify_checksums(std::span<const std::span<const std::byte>>(cpieces)) == ChecksumVerdict::valid);
}

TEST_CASE("a pseudo-header seed in the field (as netfront sends) is overwritten", "[checksum]") {
    FrameSpec s;
    s.payload = 100;
    auto clean = build_frame(s);
    auto seeded = clean;
    store_be16(seeded, 14 + 20 + 16, 0xabcd);
    REQUIRE(fill_checksums(clean));
    REQUIRE(fill_checksums(seeded));
    CHECK(seeded == clean);
}

TEST_CASE("verification catches corruption", "[checksum]") {
    for (int version : {4, 6}) {
        for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}}) {
            FrameSpec s;
            s.ip_version = version;
            s.proto = proto;
            s.payload = 300;
            auto f = build_frame(s);
            REQUIRE(fill_checksums(f));
            REQUIRE(verify_checksums(f) == ChecksumVerdict::valid);
            f[f.size() - 17] ^= std::byte{0x40};
            CHECK(verify_checksums(f) == ChecksumVerdict::invalid);
        }
    }
    // A bad IPv4 header checksum alone is enough.
    auto f = build_frame({});
    REQUIRE(fill_checksums(f));
    f[14 + 8] = std::byte{63}; // TTL
    CHECK(verify_checksums(f) == ChecksumVerdict::invalid);
}

TEST_CASE("UDP without a checksum: allowed over IPv4, not over IPv6", "[checksum]") {
    FrameSpec s;
    s.proto = 17;
    s.payload = 40;
    auto v4 = build_frame(s);
    REQUIRE(fill_checksums(v4));
    store_be16(v4, 14 + 20 + 6, 0);
    CHECK(verify_checksums(v4) == ChecksumVerdict::valid);

    s.ip_version = 6;
    auto v6 = build_frame(s);
    REQUIRE(fill_checksums(v6));
    store_be16(v6, 14 + 40 + 6, 0);
    CHECK(verify_checksums(v6) == ChecksumVerdict::invalid);
}

TEST_CASE("frame parsing: VLAN tags, IPv6 extension headers, padding", "[checksum]") {
    FrameSpec s;
    s.vlan_tags = 2;
    s.payload = 10;
    auto qinq = build_frame(s);
    auto l = parse_frame(qinq);
    REQUIRE(l);
    CHECK(l->l2_len == 22);
    CHECK(l->l3_len == 20);
    CHECK(l->l4_len == 20);
    CHECK(l->l4_total == 30);

    s = {};
    s.ip_version = 6;
    s.proto = 17;
    s.ipv6_hop_by_hop = true;
    s.payload = 5;
    auto v6 = build_frame(s);
    l = parse_frame(v6);
    REQUIRE(l);
    CHECK(l->l3_len == 48);
    CHECK(l->is_udp());
    CHECK(l->l4_total == 13);
    REQUIRE(fill_checksums(v6));
    CHECK(verify_checksums(v6) == ChecksumVerdict::valid);

    // Ethernet pads short frames to 60 bytes; the IP length says where the data ends.
    s = {};
    s.proto = 17;
    s.payload = 2;
    auto padded = build_frame(s);
    auto unpadded = padded;
    padded.resize(60, std::byte{0xee});
    REQUIRE(fill_checksums(padded));
    REQUIRE(fill_checksums(unpadded));
    CHECK(std::equal(unpadded.begin(), unpadded.end(), padded.begin()));
}

TEST_CASE("what cannot be checksummed is left alone", "[checksum]") {
    // ARP
    std::vector<std::byte> arp(60);
    store_be16(arp, 12, 0x0806);
    CHECK_FALSE(fill_checksums(arp));
    CHECK(verify_checksums(arp) == ChecksumVerdict::not_checkable);

    // A fragment (MF set).
    auto frag = build_frame({.payload = 64});
    store_be16(frag, 14 + 6, 0x2000);
    const auto before = frag;
    CHECK_FALSE(fill_checksums(frag));
    CHECK(frag == before);

    // Shorter than the IP header claims.
    auto cut = build_frame({.payload = 64});
    cut.resize(cut.size() - 1);
    CHECK_FALSE(fill_checksums(cut));
    CHECK(verify_checksums(cut) == ChecksumVerdict::not_checkable);

    // ICMP: IP but not TCP/UDP.
    auto icmp = build_frame({.proto = 1, .payload = 8});
    CHECK_FALSE(fill_checksums(icmp));

    // Truncated headers.
    for (std::size_t n : {0u, 13u, 20u, 33u, 40u}) {
        auto f = build_frame({});
        f.resize(n);
        CHECK_FALSE(parse_frame(f).has_value());
    }
}
