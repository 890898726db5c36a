// RxMerge on its own: which wire segments are chained into one GSO frame, and what that frame
// looks like (lengths, gso_size, checksum convention, flags); everything else goes as it came,
// in arrival order, with its buffers intact.
#include <algorithm>
#include <cstring>

#include <catch2/catch.hpp>
#include <rte_mbuf.h>

#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/rx_merge.hpp"
#include "pmd/bytes.hpp"
#include "pmd/checksum.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/frames.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;

namespace {

using Bytes = std::vector<std::byte>;
constexpr std::size_t kMss = 1448;
constexpr std::uint8_t kAck = 0x10;
constexpr std::uint8_t kPsh = 0x08;

pmd::Mempool& pool() {
    pmd::test::dataplane_eal();
    static pmd::Mempool p = pmd::test::small_pool(4095);
    return p;
}

// The byte stream every test slices its segments from.
Bytes stream(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 13 + (i >> 9)) & 0xff);
    return b;
}

struct Seg {
    int ip = 4;
    std::uint32_t seq = 1000;
    std::size_t off = 0; // into the stream
    std::size_t len = kMss;
    std::uint8_t flags = kAck;
    std::uint16_t ip_id = 0x1234;
    bool df = true;
    std::uint16_t sport = 40000;
};

// A checksummed TCP segment carrying stream[off, off + len) at sequence number seq + off.
Bytes segment(const Bytes& data, const Seg& s) {
    pmd::test::FrameSpec f;
    f.ip_version = s.ip;
    f.payload = s.len;
    f.seq = s.seq + static_cast<std::uint32_t>(s.off);
    f.tcp_flags = s.flags;
    f.ip_id = s.ip_id;
    Bytes b = pmd::test::build_frame(f);
    const std::size_t l4 = 14 + (s.ip == 4 ? 20 : 40);
    pmd::store_be16(b, l4, s.sport);
    if (s.ip == 4 && !s.df) pmd::store_be16(b, 14 + 6, 0);
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(s.off), s.len,
                b.begin() + static_cast<std::ptrdiff_t>(l4 + 20));
    REQUIRE(pmd::fill_checksums(std::span<std::byte>(b)));
    return b;
}

rte_mbuf* to_mbuf(const Bytes& b) {
    pmd::MbufPtr m = pmd::mbuf_from_bytes(pool().get(), b);
    REQUIRE(m);
    REQUIRE(m->nb_segs == 1);
    return m.release();
}

Bytes bytes_of(const rte_mbuf* m) {
    Bytes out;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next) {
        const auto* p = rte_pktmbuf_mtod(s, const std::byte*);
        out.insert(out.end(), p, p + s->data_len);
    }
    return out;
}

std::uint16_t ones_sum(std::span<const std::byte> b, std::uint32_t acc = 0) {
    for (std::size_t i = 0; i + 1 < b.size(); i += 2)
        acc += (std::to_integer<std::uint32_t>(b[i]) << 8) | std::to_integer<std::uint32_t>(b[i + 1]);
    if (b.size() % 2 != 0) acc += std::to_integer<std::uint32_t>(b.back()) << 8;
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<std::uint16_t>(acc);
}

// What a guest (or its NIC) does with csum_blank: sums from the TCP header on, the field holding
// the pseudo-header sum, and stores the complement there. Independent of pmd/checksum.
Bytes complete_blank(Bytes b) {
    const std::size_t l4 = 14 + ((pmd::load_be16(b, 12) == 0x0800) ? 20 : 40);
    const std::uint16_t c = static_cast<std::uint16_t>(~ones_sum(std::span(b).subspan(l4)));
    pmd::store_be16(b, l4 + 16, c);
    return b;
}

// The merger with its output collected: (dest, frame) in delivery order.
struct Harness {
    Counter frames;
    Counter segments;
    RxMerge mg{frames, segments};
    std::vector<std::pair<std::uint32_t, pmd::MbufPtr>> out;
    std::uint64_t rx_flags = 0; // what the port said of every frame (kCsumGood: it checked them)

    void offer(const Bytes& b, std::uint32_t dest = 1, bool v4 = true, bool v6 = true,
               std::uint32_t limit = RxMerge::kMaxBytes) {
        rte_mbuf* m = to_mbuf(b);
        m->ol_flags |= rx_flags;
        mg.offer(dest, v4, v6, limit, m);
        drain();
    }
    void flush() {
        mg.flush();
        drain();
        CHECK(mg.idle());
    }
    void drain() {
        for (const RxMerge::Ready& r : mg.ready()) out.emplace_back(r.dest, pmd::MbufPtr(r.m));
        mg.clear_ready();
    }
    bool merged(std::size_t i) const { return (out[i].second->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0; }
};

// Every input came out unmerged, byte for byte, in the order offered.
void check_as_they_came(const Harness& h, const std::vector<Bytes>& in) {
    REQUIRE(h.out.size() == in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        CHECK_FALSE(h.merged(i));
        CHECK(h.out[i].second->nb_segs == 1);
        CHECK(bytes_of(h.out[i].second.get()) == in[i]);
    }
    CHECK(h.frames.get() == 0);
    CHECK(h.segments.get() == 0);
}

// Offers each frame of `in` (consecutive segments unless a test made them otherwise).
void offer_all(Harness& h, const std::vector<Bytes>& in) {
    for (const Bytes& b : in) h.offer(b);
    h.flush();
}

} // namespace

TEST_CASE("in-order segments of one flow become one GSO frame", "[dataplane][rx_merge]") {
    const int ip = GENERATE(4, 6);
    const Bytes data = stream(8 * kMss);
    Harness h;
    std::vector<Bytes> in;
    for (std::size_t i = 0; i < 8; ++i)
        in.push_back(segment(data, Seg{.ip = ip,
                                       .off = i * kMss,
                                       .flags = static_cast<std::uint8_t>(i == 7 ? kAck | kPsh : kAck),
                                       .ip_id = static_cast<std::uint16_t>(0x1234 + i)}));
    for (std::size_t i = 0; i < 7; ++i) h.offer(in[i]);
    CHECK(h.out.empty()); // held open
    h.offer(in[7]);
    REQUIRE(h.out.size() == 1); // PSH closed it at once
    CHECK(h.mg.idle());

    rte_mbuf* m = h.out[0].second.get();
    const std::size_t hdr = 14 + (ip == 4 ? 20 : 40) + 20;
    CHECK(h.out[0].first == 1);
    CHECK(m->nb_segs == 8);
    CHECK(m->pkt_len == hdr + 8 * kMss);
    CHECK(m->tso_segsz == kMss);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0);
    CHECK((m->ol_flags & (ip == 4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6)) != 0);
    CHECK((m->ol_flags & (ip == 4 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4)) == 0);
    CHECK((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD);
    CHECK(checksum_blank(m)); // the guest is told csum_blank + data_validated
    CHECK(m->l2_len == 14);
    CHECK(m->l3_len == (ip == 4 ? 20 : 40));
    CHECK(m->l4_len == 20);
    std::uint32_t sum = 0;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next) sum += s->data_len;
    CHECK(sum == m->pkt_len);
    CHECK(h.frames.get() == 1);
    CHECK(h.segments.get() == 8);

    // Once the guest completes the checksum, the frame is exactly the one segment a sender
    // would have sent: first segment's headers, all the data, PSH from the last one.
    Seg whole{.ip = ip, .off = 0, .len = 8 * kMss, .flags = kAck | kPsh, .ip_id = 0x1234};
    const Bytes want = segment(data, whole);
    const Bytes got = complete_blank(bytes_of(m));
    CHECK(got == want);
    CHECK(pmd::verify_checksums(got) == pmd::ChecksumVerdict::valid);
}

TEST_CASE("the open frame waits for the burst's end; a short segment closes it", "[dataplane][rx_merge]") {
    const Bytes data = stream(10 * kMss);
    Harness h;
    for (std::size_t i = 0; i < 3; ++i) h.offer(segment(data, Seg{.off = i * kMss}));
    CHECK(h.out.empty());
    h.flush();
    REQUIRE(h.out.size() == 1);
    CHECK(h.out[0].second->nb_segs == 3);

    h.offer(segment(data, Seg{.off = 3 * kMss}));
    h.offer(segment(data, Seg{.off = 4 * kMss, .len = 500})); // the end of a write
    REQUIRE(h.out.size() == 2);
    CHECK(h.out[1].second->nb_segs == 2);
    CHECK(h.out[1].second->pkt_len == 54 + kMss + 500);
    CHECK(h.out[1].second->tso_segsz == kMss);
    CHECK(h.mg.idle());
    CHECK(h.frames.get() == 2);
    CHECK(h.segments.get() == 5);
}

TEST_CASE("out of order, duplicate and overlapping segments are not merged", "[dataplane][rx_merge]") {
    const Bytes data = stream(4 * kMss);
    const auto at = [&](std::size_t off, std::size_t len = kMss) {
        return segment(data, Seg{.off = off, .len = len});
    };
    std::vector<Bytes> in;
    SECTION("out of order") { in = {at(0), at(2 * kMss), at(kMss), at(3 * kMss)}; }
    SECTION("duplicate") { in = {at(0), at(0)}; }
    SECTION("overlapping") { in = {at(0), at(kMss / 2)}; }
    SECTION("longer than the first") { in = {at(0, 1000), at(1000, 1400)}; }
    Harness h;
    offer_all(h, in);
    // The last out-of-order pair (1, 3) does not follow either: nothing merged, order kept.
    check_as_they_came(h, in);
}

TEST_CASE("segments of other flows or other destinations are merged apart", "[dataplane][rx_merge]") {
    const Bytes data = stream(6 * kMss);
    Harness h;
    // Interleaved: flow A (port 40000) and flow B (port 40001) to dest 1, and A's bytes to dest 2.
    for (std::size_t i = 0; i < 3; ++i) {
        h.offer(segment(data, Seg{.off = i * kMss}), 1);
        h.offer(segment(data, Seg{.off = i * kMss, .sport = 40001}), 1);
        h.offer(segment(data, Seg{.off = i * kMss}), 2);
    }
    h.flush();
    REQUIRE(h.out.size() == 3);
    for (const auto& [dest, m] : h.out) {
        CHECK(m->nb_segs == 3);
        CHECK(m->pkt_len == 54 + 3 * kMss);
    }
    CHECK(h.out[0].first == 1);
    CHECK(h.out[1].first == 1);
    CHECK(h.out[2].first == 2);
    CHECK(h.frames.get() == 3);
    CHECK(h.segments.get() == 9);

    // IPv4 and IPv6 segments with the same ports are other flows too.
    Harness k;
    k.offer(segment(data, Seg{.ip = 4, .off = 0}));
    k.offer(segment(data, Seg{.ip = 6, .off = kMss}));
    k.flush();
    REQUIRE(k.out.size() == 2);
    CHECK_FALSE(k.merged(0));
    CHECK_FALSE(k.merged(1));
}

TEST_CASE("a segment with a bad checksum goes as it came, after the flow's merged data",
          "[dataplane][rx_merge]") {
    const int ip = GENERATE(4, 6);
    const Bytes data = stream(4 * kMss);
    std::vector<Bytes> in;
    for (std::size_t i = 0; i < 4; ++i) in.push_back(segment(data, Seg{.ip = ip, .off = i * kMss}));
    in[2][100] ^= std::byte{1}; // in the payload
    Harness h;
    offer_all(h, in);
    REQUIRE(h.out.size() == 3);
    CHECK(h.out[0].second->nb_segs == 2); // 0 and 1
    CHECK(bytes_of(h.out[1].second.get()) == in[2]);
    CHECK_FALSE(h.merged(1));
    CHECK((h.out[1].second->ol_flags & kCsumMask) != kCsumGood); // never vouched for
    CHECK_FALSE(checksum_blank(h.out[1].second.get()));
    CHECK_FALSE(h.merged(2)); // 3 alone: 2 is missing
    CHECK(bytes_of(h.out[2].second.get()) == in[3]);
    CHECK(h.segments.get() == 2);
}

TEST_CASE("SYN, FIN, RST, URG, ECE and CWR segments are not merged", "[dataplane][rx_merge]") {
    const std::uint8_t extra = GENERATE(0x01, 0x02, 0x04, 0x20, 0x40, 0x80);
    const Bytes data = stream(3 * kMss);
    std::vector<Bytes> in{segment(data, Seg{.off = 0}),
                          segment(data, Seg{.off = kMss, .flags = static_cast<std::uint8_t>(kAck | extra)}),
                          segment(data, Seg{.off = 2 * kMss})};
    Harness h;
    offer_all(h, in);
    check_as_they_came(h, in);

    // Without ACK either.
    Harness k;
    std::vector<Bytes> noack{segment(data, Seg{.off = 0, .flags = 0}),
                             segment(data, Seg{.off = kMss, .flags = 0})};
    offer_all(k, noack);
    check_as_they_came(k, noack);
}

TEST_CASE("IP options, fragments, IPv6 extension headers are not merged", "[dataplane][rx_merge]") {
    const Bytes data = stream(3 * kMss);
    std::vector<Bytes> in;
    // A port that checks checksums vouches for these (software verification refuses fragments).
    const std::uint64_t rx_flags = GENERATE(std::uint64_t{0}, kCsumGood);
    SECTION("IPv4 options") {
        for (std::size_t i = 0; i < 3; ++i) {
            Bytes b = segment(data, Seg{.off = i * kMss});
            // Four NOP option bytes after the 20-byte header: IHL 6.
            b.insert(b.begin() + 34, 4, std::byte{1});
            b[14] = std::byte{0x46};
            pmd::store_be16(b, 16, static_cast<std::uint16_t>(b.size() - 14));
            REQUIRE(pmd::fill_checksums(std::span<std::byte>(b)));
            REQUIRE(pmd::verify_checksums(b) == pmd::ChecksumVerdict::valid);
            in.push_back(b);
        }
    }
    SECTION("IPv4 fragments") {
        const std::uint16_t frag =
            GENERATE(std::uint16_t{0x2000}, std::uint16_t{0x0001}, std::uint16_t{0x20b9});
        for (std::size_t i = 0; i < 3; ++i) {
            // IDs that follow, so that only the fragment bits stop a merge.
            Bytes b = segment(data, Seg{.off = i * kMss, .ip_id = static_cast<std::uint16_t>(0x1234 + i)});
            // The TCP checksum stays right; only the IP header's is redone.
            pmd::store_be16(b, 20, frag);
            pmd::store_be16(b, 24, 0);
            pmd::store_be16(b, 24, pmd::ipv4_header_checksum(std::span<const std::byte>(b).subspan(14, 20)));
            in.push_back(b);
        }
    }
    SECTION("IPv6 hop-by-hop") {
        for (std::size_t i = 0; i < 3; ++i) {
            pmd::test::FrameSpec f;
            f.ip_version = 6;
            f.payload = kMss;
            f.seq = static_cast<std::uint32_t>(1000 + i * kMss);
            f.tcp_flags = kAck;
            f.ipv6_hop_by_hop = true;
            Bytes b = pmd::test::build_frame(f);
            REQUIRE(pmd::fill_checksums(std::span<std::byte>(b)));
            in.push_back(b);
        }
    }
    SECTION("UDP") {
        for (std::size_t i = 0; i < 3; ++i) {
            pmd::test::FrameSpec f;
            f.proto = 17;
            f.payload = kMss;
            Bytes b = pmd::test::build_frame(f);
            REQUIRE(pmd::fill_checksums(std::span<std::byte>(b)));
            in.push_back(b);
        }
    }
    Harness h;
    h.rx_flags = rx_flags;
    offer_all(h, in);
    check_as_they_came(h, in);
}

TEST_CASE("truncated and lying headers are passed untouched", "[dataplane][rx_merge][hostile]") {
    const Bytes data = stream(3 * kMss);
    const int ip = GENERATE(4, 6);
    const std::size_t l3 = 14;
    const std::size_t l4 = 14 + (ip == 4 ? 20 : 40);
    // Each mutation is applied to three consecutive segments (checksums left as the mutation
    // leaves them, then refilled where the frame can still be parsed).
    using Mutate = void (*)(Bytes&, std::size_t, std::size_t);
    const Mutate mutate = GENERATE(
        // cut inside the TCP header
        +[](Bytes& b, std::size_t, std::size_t p4) { b.resize(p4 + 10); },
        // cut inside the IP header
        +[](Bytes& b, std::size_t p3, std::size_t) { b.resize(p3 + 12); },
        // IP length beyond the frame
        +[](Bytes& b, std::size_t p3, std::size_t) {
            if (b[p3] == std::byte{0x45})
                pmd::store_be16(b, p3 + 2, static_cast<std::uint16_t>(b.size()));
            else
                pmd::store_be16(b, p3 + 4, static_cast<std::uint16_t>(b.size()));
        },
        // IP length short of the frame (trailing bytes)
        +[](Bytes& b, std::size_t, std::size_t) { b.resize(b.size() + 6); },
        // IHL below 5 (IPv6: a next header that is not TCP)
        +[](Bytes& b, std::size_t p3, std::size_t) {
            if (b[p3] == std::byte{0x45})
                b[p3] = std::byte{0x44};
            else
                b[p3 + 6] = std::byte{0};
        },
        // TCP data offset below 5
        +[](Bytes& b, std::size_t, std::size_t p4) { b[p4 + 12] = std::byte{0x40}; },
        // TCP data offset beyond the frame
        +[](Bytes& b, std::size_t p3, std::size_t p4) {
            b.resize(p4 + 40);
            b[p4 + 12] = std::byte{0xf0};
            if (b[p3] == std::byte{0x45})
                pmd::store_be16(b, p3 + 2, static_cast<std::uint16_t>(b.size() - 14));
            else
                pmd::store_be16(b, p3 + 4, static_cast<std::uint16_t>(b.size() - 54));
        },
        // no payload (a pure ACK)
        +[](Bytes& b, std::size_t p3, std::size_t p4) {
            b.resize(p4 + 20);
            if (b[p3] == std::byte{0x45})
                pmd::store_be16(b, p3 + 2, static_cast<std::uint16_t>(b.size() - 14));
            else
                pmd::store_be16(b, p3 + 4, 20);
            (void)pmd::fill_checksums(std::span<std::byte>(b));
        },
        // wrong IP version for the EtherType
        +[](Bytes& b, std::size_t p3, std::size_t) { b[p3] = (b[p3] & std::byte{0x0f}) | std::byte{0x50}; });
    static std::size_t case_no = 0;
    INFO("mutation " << case_no++ % 9 << " IPv" << ip);
    std::vector<Bytes> in;
    for (std::size_t i = 0; i < 3; ++i) {
        Bytes b = segment(data, Seg{.ip = ip, .off = i * kMss});
        mutate(b, l3, l4);
        in.push_back(b);
    }
    Harness h;
    offer_all(h, in);
    check_as_they_came(h, in);
}

TEST_CASE("IPv4 IDs must follow unless DF is set", "[dataplane][rx_merge]") {
    const Bytes data = stream(3 * kMss);
    SECTION("without DF, consecutive IDs merge") {
        Harness h;
        for (std::size_t i = 0; i < 3; ++i)
            h.offer(
                segment(data, Seg{.off = i * kMss, .ip_id = static_cast<std::uint16_t>(7 + i), .df = false}));
        h.flush();
        REQUIRE(h.out.size() == 1);
        CHECK(h.out[0].second->nb_segs == 3);
    }
    SECTION("without DF, other IDs do not") {
        std::vector<Bytes> in;
        for (std::size_t i = 0; i < 3; ++i)
            in.push_back(segment(data, Seg{.off = i * kMss, .ip_id = 7, .df = false}));
        Harness h;
        offer_all(h, in);
        check_as_they_came(h, in);
    }
    SECTION("DF on one segment only") {
        std::vector<Bytes> in{segment(data, Seg{.off = 0, .ip_id = 7, .df = true}),
                              segment(data, Seg{.off = kMss, .ip_id = 8, .df = false})};
        Harness h;
        offer_all(h, in);
        check_as_they_came(h, in);
    }
}

TEST_CASE("a merged frame stays within 64 KiB and the guest's slots", "[dataplane][rx_merge]") {
    CHECK(RxMerge::max_bytes(0) == 65535);
    CHECK(RxMerge::max_bytes(256) == 65535); // 18 slots of 3840 bytes
    CHECK(RxMerge::max_bytes(2048) == 18 * 2048);

    const std::size_t mss = GENERATE(std::size_t{1460}, std::size_t{1000});
    const std::uint16_t headroom = GENERATE(std::uint16_t{0}, std::uint16_t{2048});
    const std::uint32_t limit = RxMerge::max_bytes(headroom);
    constexpr std::size_t kSegs = 100;
    const Bytes data = stream(kSegs * mss);
    Harness h;
    for (std::size_t i = 0; i < kSegs; ++i)
        h.offer(segment(data, Seg{.off = i * mss, .len = mss}), 1, true, true, limit);
    h.flush();
    REQUIRE(h.out.size() > 1);
    Bytes all;
    std::uint32_t seq = 1000;
    for (const auto& [dest, m] : h.out) {
        CHECK(m->pkt_len <= limit);
        CHECK(m->nb_segs <= RxMerge::kMaxSegments);
        const Bytes b = bytes_of(m.get());
        CHECK(pmd::load_be32(b, 34 + 4) == seq);
        seq += static_cast<std::uint32_t>(b.size() - 54);
        all.insert(all.end(), b.begin() + 54, b.end());
        if (m.get() != h.out.back().second.get()) {
            // Full: one more segment would not have fitted.
            CHECK((m->pkt_len + mss > limit || m->nb_segs == RxMerge::kMaxSegments));
        }
    }
    CHECK(all == data);
    CHECK(h.segments.get() == kSegs);
}

TEST_CASE("frames for a guest without GSO over that IP version go as they came", "[dataplane][rx_merge]") {
    const int ip = GENERATE(4, 6);
    const Bytes data = stream(3 * kMss);
    std::vector<Bytes> in;
    for (std::size_t i = 0; i < 3; ++i) in.push_back(segment(data, Seg{.ip = ip, .off = i * kMss}));
    Harness h;
    for (const Bytes& b : in) h.offer(b, 1, ip == 6, ip == 4);
    h.flush();
    check_as_they_came(h, in);
}

TEST_CASE("a frame that is not merged goes after its destination's open frames", "[dataplane][rx_merge]") {
    const Bytes data = stream(3 * kMss);
    Harness h;
    h.offer(segment(data, Seg{.off = 0}), 1);
    h.offer(segment(data, Seg{.off = kMss}), 1);
    h.offer(segment(data, Seg{.off = 0, .sport = 1}), 2); // open for dest 2
    pmd::test::FrameSpec udp;
    udp.proto = 17;
    udp.payload = 100;
    Bytes u = pmd::test::build_frame(udp);
    REQUIRE(pmd::fill_checksums(std::span<std::byte>(u)));
    h.offer(u, 1);
    REQUIRE(h.out.size() == 2);
    CHECK(h.out[0].first == 1);
    CHECK(h.out[0].second->nb_segs == 2);
    CHECK(h.out[1].first == 1);
    CHECK(bytes_of(h.out[1].second.get()) == u);
    CHECK_FALSE(h.mg.idle()); // dest 2's frame is still open
    h.flush();
    REQUIRE(h.out.size() == 3);
    CHECK(h.out[2].first == 2);
}

TEST_CASE("as many flows as the table holds merge; more evict the oldest, nothing lost",
          "[dataplane][rx_merge]") {
    const Bytes data = stream(2 * kMss);
    const std::size_t flows = GENERATE(std::size_t{8}, std::size_t{12});
    static_assert(RxMerge::kMaxOpen == 8);
    INFO("flows " << flows);
    Harness h;
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t f = 0; f < flows; ++f)
            h.offer(segment(data, Seg{.off = r * kMss, .sport = static_cast<std::uint16_t>(1000 + f)}));
    h.flush();
    std::size_t segs = 0;
    for (const auto& [dest, m] : h.out) {
        segs += m->nb_segs;
        const Bytes b = bytes_of(m.get());
        const std::size_t at = pmd::load_be32(b, 38) - 1000;
        REQUIRE(at + b.size() - 54 <= data.size());
        CHECK(std::equal(b.begin() + 54, b.end(), data.begin() + static_cast<std::ptrdiff_t>(at)));
    }
    CHECK(segs == 2 * flows);
    if (flows == RxMerge::kMaxOpen) CHECK(h.out.size() == flows);
}

TEST_CASE("shared, chained or small segments are not merged; buffers survive", "[dataplane][rx_merge]") {
    const Bytes data = stream(3 * kMss);
    SECTION("a second reference") {
        Harness h;
        h.offer(segment(data, Seg{.off = 0}));
        rte_mbuf* shared = to_mbuf(segment(data, Seg{.off = kMss}));
        rte_mbuf_refcnt_update(shared, 1);
        h.mg.offer(1, true, true, RxMerge::kMaxBytes, shared);
        h.drain();
        h.flush();
        REQUIRE(h.out.size() == 2);
        CHECK(h.out[1].second.get() == shared);
        CHECK(rte_mbuf_refcnt_read(shared) == 2);
        CHECK(bytes_of(shared) == segment(data, Seg{.off = kMss}));
        rte_pktmbuf_free(shared); // ours; the harness frees the other
    }
    SECTION("a chained segment") {
        Harness h;
        h.offer(segment(data, Seg{.off = 0}));
        const Bytes b = segment(data, Seg{.off = kMss});
        pmd::MbufPtr chain = pmd::test::mbuf_chain(pool().get(), b, {100});
        REQUIRE(chain->nb_segs == 2);
        h.mg.offer(1, true, true, RxMerge::kMaxBytes, chain.release());
        h.drain();
        h.flush();
        REQUIRE(h.out.size() == 2);
        CHECK(bytes_of(h.out[1].second.get()) == b);
        CHECK(h.out[1].second->nb_segs == 2);
    }
    SECTION("segments below the minimum MSS") {
        std::vector<Bytes> in;
        for (std::size_t i = 0; i < 3; ++i) in.push_back(segment(data, Seg{.off = i * 200, .len = 200}));
        Harness h;
        offer_all(h, in);
        check_as_they_came(h, in);
    }
}

// ---- Through the worker: uplink -> switch -> merge -> guest RX ring ----

namespace {

using test::Netfront;
using test::Rig;
constexpr platform::DomId kA = 11;
const MacAddr kMacA = test::mac(0xa);
const MacAddr kOutside = test::mac(0x99);

Bytes to_guest(Bytes b) {
    const auto d = kMacA.bytes();
    const auto s = kOutside.bytes();
    for (std::size_t i = 0; i < 6; ++i) {
        b[i] = static_cast<std::byte>(d[i]);
        b[6 + i] = static_cast<std::byte>(s[i]);
    }
    return b;
}

// n segments of the stream for guest A, the last with PSH, injected into the uplink.
Bytes inject_stream(Rig& rig, std::size_t n, int ip = 4) {
    const Bytes data = stream(n * kMss);
    for (std::size_t i = 0; i < n; ++i)
        rig.up.inject(to_guest(
            segment(data, Seg{.ip = ip,
                              .off = i * kMss,
                              .flags = static_cast<std::uint8_t>(i + 1 == n ? kAck | kPsh : kAck)})));
    return data;
}

std::uint64_t drops(const VifRuntime& v) {
    const VifStats s = snapshot(v.counters());
    std::uint64_t n = 0;
    for (const std::uint64_t d : s.drops) n += d;
    return n;
}

struct Reassembled {
    Bytes data;
    std::size_t gso_frames = 0;
    std::size_t frames = 0;
};

// The guest's view: every frame's checksums complete and right, sequence numbers following, the
// TCP payloads concatenated.
Reassembled reassemble(const std::vector<Netfront::Received>& got, int ip, std::uint32_t max_frame) {
    Reassembled r;
    const std::size_t hdr = 14 + (ip == 4 ? 20 : 40) + 20;
    std::uint32_t seq = 1000;
    for (const auto& g : got) {
        ++r.frames;
        REQUIRE_FALSE(g.error);
        REQUIRE(g.frame.size() > hdr);
        CHECK(g.frame.size() <= max_frame);
        Bytes f = g.frame;
        if (g.gso) {
            ++r.gso_frames;
            CHECK(g.gso->u.gso.size == kMss);
            CHECK(g.gso->u.gso.type == (ip == 4 ? XEN_NETIF_GSO_TYPE_TCPV4 : XEN_NETIF_GSO_TYPE_TCPV6));
            CHECK((g.flags & NETRXF_csum_blank) != 0);
            f = complete_blank(f);
        } else {
            CHECK((g.flags & NETRXF_csum_blank) == 0);
        }
        CHECK((g.flags & NETRXF_data_validated) != 0);
        CHECK(pmd::verify_checksums(f) == pmd::ChecksumVerdict::valid);
        CHECK(pmd::load_be32(f, hdr - 20 + 4) == seq);
        seq += static_cast<std::uint32_t>(f.size() - hdr);
        r.data.insert(r.data.end(), f.begin() + static_cast<std::ptrdiff_t>(hdr), f.end());
    }
    return r;
}

} // namespace

TEST_CASE("a GSO guest receives the wire's TCP segments as fewer, larger frames, stream intact",
          "[dataplane][rx_merge][fastpath]") {
    const int ip = GENERATE(4, 6);
    Rig rig({kA});
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);
    a.post_rx_buffers(200);
    constexpr std::size_t kSegs = 60; // two uplink bursts (32 a burst)
    const Bytes data = inject_stream(rig, kSegs, ip);
    rig.poll(4);

    const auto got = a.receive();
    const Reassembled r = reassemble(got, ip, RxMerge::kMaxBytes);
    CHECK(r.data == data);
    CHECK(r.frames >= 2);
    CHECK(r.frames < kSegs / 10);
    CHECK(r.gso_frames == r.frames);
    CHECK(rig.worker->counters().rx_merged.get() == r.gso_frames);
    CHECK(rig.worker->counters().rx_merged_segments.get() == kSegs);
    const VifStats s = snapshot(va.counters());
    CHECK(s.rx_packets == r.frames);
    CHECK(s.rx_bytes == kSegs * kMss + r.frames * (14 + (ip == 4 ? 20 : 40) + 20));
    CHECK(drops(va) == 0);
}

TEST_CASE("frames go as they came to a guest without GSO or SG, or with rx_merge off",
          "[dataplane][rx_merge][fastpath]") {
    WorkerConfig cfg;
    auto f = Netfront::default_features();
    SECTION("no GSO") {
        f.gso_tcpv4 = false;
        f.gso_tcpv6 = false;
    }
    SECTION("no SG") { f.sg = false; }
    SECTION("no checksum offload") { f.ip_csum = false; }
    SECTION("rx_merge = false") { cfg.rx_merge = false; }
    Rig rig({kA}, pmd::Offloads::none(), cfg);
    Netfront a(rig.world, kA);
    rig.attach(a, kMacA, f);
    a.post_rx_buffers(200);
    constexpr std::size_t kSegs = 40;
    const Bytes data = inject_stream(rig, kSegs);
    rig.poll(4);
    const auto got = a.receive();
    const Reassembled r = reassemble(got, 4, 1514);
    CHECK(r.data == data);
    CHECK(r.frames == kSegs);
    CHECK(r.gso_frames == 0);
    CHECK(rig.worker->counters().rx_merged.get() == 0);
    CHECK(rig.worker->counters().rx_merged_segments.get() == 0);
}

TEST_CASE("merged frames fit a guest's RX slots with XDP headroom", "[dataplane][rx_merge][fastpath]") {
    const std::uint16_t headroom = GENERATE(std::uint16_t{256}, std::uint16_t{2048});
    Rig rig({kA});
    Netfront a(rig.world, kA);
    auto f = Netfront::default_features();
    f.xdp_headroom = headroom;
    VifRuntime& va = rig.attach(a, kMacA, f);
    a.post_rx_buffers(200);
    constexpr std::size_t kSegs = 60;
    const Bytes data = inject_stream(rig, kSegs);
    rig.poll(6);
    const auto got = a.receive();
    const Reassembled r = reassemble(got, 4, RxMerge::max_bytes(headroom));
    CHECK(r.data == data);
    CHECK(r.frames < kSegs / 5);
    CHECK(drops(va) == 0);
    CHECK(rig.worker->counters().rx_merged_segments.get() == kSegs);
}

TEST_CASE("a broadcast in the middle of a flow arrives between the data before and after it",
          "[dataplane][rx_merge][fastpath]") {
    Rig rig({kA});
    Netfront a(rig.world, kA);
    rig.attach(a, kMacA);
    a.post_rx_buffers(64);
    const Bytes data = stream(6 * kMss);
    for (std::size_t i = 0; i < 3; ++i) rig.up.inject(to_guest(segment(data, Seg{.off = i * kMss})));
    Bytes bcast = to_guest(segment(data, Seg{.off = 0, .len = 300, .sport = 1}));
    std::fill_n(bcast.begin(), 6, std::byte{0xff});
    rig.up.inject(bcast);
    for (std::size_t i = 3; i < 6; ++i)
        rig.up.inject(to_guest(segment(
            data, Seg{.off = i * kMss, .flags = static_cast<std::uint8_t>(i == 5 ? kAck | kPsh : kAck)})));
    rig.poll(2);
    const auto got = a.receive();
    REQUIRE(got.size() == 3);
    CHECK(got[0].gso.has_value());
    CHECK(got[0].frame.size() == 54 + 3 * kMss);
    CHECK(got[1].frame == bcast);
    CHECK(got[2].gso.has_value());
    CHECK(got[2].frame.size() == 54 + 3 * kMss);
    CHECK(rig.worker->counters().rx_merged.get() == 2);
    CHECK(rig.worker->counters().rx_merged_segments.get() == 6);
}
