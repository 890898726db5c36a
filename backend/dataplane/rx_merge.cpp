#include "backend/dataplane/rx_merge.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "backend/dataplane/frame_util.hpp"
#include "pmd/checksum.hpp"
#include "ring/rx_responder.hpp"
#include "ring/sring.hpp"

namespace netbackd::dataplane {

namespace {

constexpr std::size_t kEth = RTE_ETHER_HDR_LEN;
constexpr std::uint8_t kTcpAck = 0x10;
constexpr std::uint8_t kTcpPsh = 0x08;

std::uint16_t be16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t be32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
void put16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

// What a segment that may be merged looks like; std::nullopt for any other frame.
struct Seg {
    std::uint32_t seq;
    std::uint16_t payload;
    std::uint16_t hdr_len;
    std::uint16_t ip_id;
    std::uint8_t l3_len;
    bool v6;
    bool atomic;
    bool psh;
};

std::optional<Seg> candidate(rte_mbuf* m, bool v4ok, bool v6ok) noexcept {
    // Its buffer is rewritten (head) or chained (tail): it must be ours alone and in one piece.
    if (m->nb_segs != 1 || !RTE_MBUF_DIRECT(m) || rte_mbuf_refcnt_read(m) != 1) return std::nullopt;
    const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
    const std::uint32_t len = m->data_len;
    if (len < kEth + 20 + 20) return std::nullopt;
    const std::uint16_t type = be16(p + 12);
    Seg s{};
    const std::uint8_t* ip = p + kEth;
    std::uint32_t ip_total = 0;
    if (type == RTE_ETHER_TYPE_IPV4 && v4ok) {
        if (ip[0] != 0x45 || ip[9] != pmd::kIpProtoTcp) return std::nullopt; // options, not TCP
        const std::uint16_t frag = be16(ip + 6);
        if ((frag & 0x3fff) != 0) return std::nullopt; // MF or an offset: a fragment
        s.atomic = (frag & 0x4000) != 0;
        s.ip_id = be16(ip + 4);
        s.l3_len = 20;
        ip_total = be16(ip + 2);
    } else if (type == RTE_ETHER_TYPE_IPV6 && v6ok) {
        if (len < kEth + 40 + 20 || (ip[0] >> 4) != 6 || ip[6] != pmd::kIpProtoTcp) return std::nullopt;
        s.v6 = true;
        s.atomic = true;
        s.l3_len = 40;
        ip_total = 40u + be16(ip + 4);
    } else {
        return std::nullopt;
    }
    // Exactly the frame: no Ethernet padding, nothing missing.
    if (kEth + ip_total != len) return std::nullopt;
    const std::uint8_t* tcp = ip + s.l3_len;
    const std::uint32_t l4_len = (tcp[12] >> 4) * 4u;
    const std::uint8_t flags = tcp[13];
    if (l4_len < 20 || (tcp[12] & 0x0f) != 0 || kEth + s.l3_len + l4_len >= len) return std::nullopt;
    if ((flags & ~kTcpPsh) != kTcpAck) return std::nullopt; // SYN, FIN, RST, URG, ECE, CWR: as is
    s.hdr_len = static_cast<std::uint16_t>(kEth + s.l3_len + l4_len);
    s.payload = static_cast<std::uint16_t>(len - s.hdr_len);
    s.seq = be32(tcp + 4);
    s.psh = (flags & kTcpPsh) != 0;
    // A merged frame is handed over as verified: only verified segments go into one.
    if (!checksums_validated(m)) return std::nullopt;
    mark_checksums_good(m);
    return s;
}

// Same addresses, VLAN and ports: one flow.
bool same_flow(const rte_mbuf* a, const rte_mbuf* b, const Seg& s) noexcept {
    const auto* x = rte_pktmbuf_mtod(a, const std::uint8_t*);
    const auto* y = rte_pktmbuf_mtod(b, const std::uint8_t*);
    if (a->vlan_tci != b->vlan_tci || ((a->ol_flags ^ b->ol_flags) & RTE_MBUF_F_RX_VLAN_STRIPPED) != 0)
        return false;
    if (std::memcmp(x, y, kEth) != 0) return false;
    const std::size_t addr = s.v6 ? 8 : 12;
    const std::size_t addr_len = s.v6 ? 32 : 8;
    if (std::memcmp(x + kEth + addr, y + kEth + addr, addr_len) != 0) return false;
    return std::memcmp(x + kEth + s.l3_len, y + kEth + s.l3_len, 4) == 0;
}

// Of one flow, may b's payload follow a's? Every header byte must match except those a merge
// rewrites or Linux's GRO ignores too (sequence, IP length/ID/checksum, PSH, window, checksum).
bool same_headers(const rte_mbuf* a, const rte_mbuf* b, const Seg& s, std::uint16_t a_hdr_len) noexcept {
    if (s.hdr_len != a_hdr_len) return false;
    const auto* x = rte_pktmbuf_mtod(a, const std::uint8_t*) + kEth;
    const auto* y = rte_pktmbuf_mtod(b, const std::uint8_t*) + kEth;
    if (s.v6) {
        if (std::memcmp(x, y, 4) != 0 || x[7] != y[7]) return false; // class, flow label, hop limit
    } else {
        // TOS, DF, TTL (the protocol and addresses were compared).
        if (x[1] != y[1] || x[6] != y[6] || x[8] != y[8]) return false;
    }
    x += s.l3_len;
    y += s.l3_len;
    return std::memcmp(x + 8, y + 8, 4) == 0 &&                                // acknowledgement
           x[12] == y[12] && ((x[13] ^ y[13]) & ~kTcpPsh) == 0 &&              // offset, flags
           std::memcmp(x + 18, y + 18, s.hdr_len - kEth - s.l3_len - 18) == 0; // urgent, options
}

} // namespace

std::uint32_t RxMerge::max_bytes(std::uint16_t headroom) noexcept {
    const std::uint32_t room = headroom < ring::kPageSize ? ring::kPageSize - headroom : 0;
    return std::min<std::uint32_t>(kMaxBytes, static_cast<std::uint32_t>(ring::kMaxRxSegments) * room);
}

void RxMerge::offer(std::uint32_t dest, bool v4, bool v6, std::uint32_t limit, rte_mbuf* m) noexcept {
    const std::optional<Seg> s = candidate(m, v4, v6);
    if (!s) {
        pass(dest, m);
        return;
    }
    for (std::size_t i = 0; i < nopen_; ++i) {
        Open& o = open_[i];
        if (o.dest != dest || o.v6 != s->v6 || !same_flow(o.head, m, *s)) continue;
        const bool follows = s->seq == o.next_seq && s->payload <= o.mss && o.segs < kMaxSegments &&
                             o.head->pkt_len + s->payload <= o.limit && (o.atomic || s->ip_id == o.next_id) &&
                             o.atomic == s->atomic && same_headers(o.head, m, *s, o.hdr_len);
        if (!follows) {
            close(i); // the flow's earlier data goes first; this segment may start a new frame
            break;
        }
        rte_pktmbuf_adj(m, s->hdr_len);
        o.tail->next = m;
        o.tail = m;
        o.head->nb_segs = static_cast<std::uint16_t>(o.head->nb_segs + 1);
        o.head->pkt_len += s->payload;
        ++o.segs;
        o.next_seq += s->payload;
        o.next_id = static_cast<std::uint16_t>(o.next_id + 1);
        if (s->psh) {
            auto* tcp = rte_pktmbuf_mtod_offset(o.head, std::uint8_t*, kEth + o.l3_len);
            tcp[13] = static_cast<std::uint8_t>(tcp[13] | kTcpPsh);
        }
        // Linux's GRO flushes on a short segment or PSH: the sender ended a write there.
        if (s->payload < o.mss || s->psh) close(i);
        return;
    }
    if (s->psh || s->payload < kMinMss || m->pkt_len + s->payload > limit) {
        emit(dest, m); // nothing can follow it: as it came
        return;
    }
    if (nopen_ == kMaxOpen) close(0); // the oldest
    open_[nopen_++] =
        Open{m,          m, dest,       s->seq + s->payload, limit, static_cast<std::uint16_t>(s->ip_id + 1),
             s->payload, 1, s->hdr_len, s->l3_len,           s->v6, s->atomic};
}

void RxMerge::pass(std::uint32_t dest, rte_mbuf* m) noexcept {
    close_dest(dest);
    emit(dest, m);
}

void RxMerge::flush() noexcept {
    while (nopen_ != 0) close(0);
}

void RxMerge::close_dest(std::uint32_t dest) noexcept {
    for (std::size_t i = 0; i < nopen_;) {
        if (open_[i].dest == dest)
            close(i);
        else
            ++i;
    }
}

void RxMerge::close(std::size_t i) noexcept {
    Open& o = open_[i];
    if (o.segs > 1) finish(o);
    emit(o.dest, o.head);
    for (std::size_t j = i + 1; j < nopen_; ++j) open_[j - 1] = open_[j];
    --nopen_;
}

void RxMerge::finish(Open& o) noexcept {
    rte_mbuf* m = o.head;
    auto* ip = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEth);
    auto* tcp = ip + o.l3_len;
    const std::uint32_t l4_len = m->pkt_len - kEth - o.l3_len;
    pmd::ChecksumAccumulator pseudo;
    if (o.v6) {
        put16(ip + 4, static_cast<std::uint16_t>(l4_len));
        pmd::add_ipv6_pseudo_header(
            pseudo, std::span<const std::byte, 16>(reinterpret_cast<const std::byte*>(ip + 8), 16),
            std::span<const std::byte, 16>(reinterpret_cast<const std::byte*>(ip + 24), 16), pmd::kIpProtoTcp,
            l4_len);
    } else {
        put16(ip + 2, static_cast<std::uint16_t>(m->pkt_len - kEth));
        put16(ip + 10, 0);
        put16(ip + 10, pmd::ipv4_header_checksum(std::span(reinterpret_cast<const std::byte*>(ip), 20)));
        pmd::add_ipv4_pseudo_header(
            pseudo, std::span<const std::byte, 4>(reinterpret_cast<const std::byte*>(ip + 12), 4),
            std::span<const std::byte, 4>(reinterpret_cast<const std::byte*>(ip + 16), 4), pmd::kIpProtoTcp,
            l4_len);
    }
    // CHECKSUM_PARTIAL's convention: the field holds the pseudo-header sum, the guest (or its
    // NIC, when it forwards the frame) completes it.
    put16(tcp + 16, pseudo.fold());
    m->l2_len = kEth;
    m->l3_len = o.l3_len;
    m->l4_len = o.hdr_len - kEth - o.l3_len;
    m->tso_segsz = o.mss;
    m->ol_flags =
        (m->ol_flags & ~(kCsumMask | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_L4_MASK)) |
        RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_NONE | RTE_MBUF_F_TX_TCP_SEG |
        (o.v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4);
    frames_.add();
    segments_.add(o.segs);
}

} // namespace netbackd::dataplane
