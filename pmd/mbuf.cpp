#include "pmd/mbuf.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "pmd/bytes.hpp"

namespace netbackd::pmd {

namespace {

template <typename Mbuf, typename Piece>
bool collect_pieces(Mbuf* m, std::array<Piece, kMaxPieces>& out, std::size_t& count) noexcept {
    count = 0;
    for (auto* seg = m; seg != nullptr; seg = seg->next) {
        if (count == out.size()) {
            return false;
        }
        out[count++] = segment_bytes(seg);
    }
    return true;
}

} // namespace

MbufPtr mbuf_from_bytes(rte_mempool* pool, std::span<const std::byte> bytes) {
    MbufPtr head(rte_pktmbuf_alloc(pool));
    if (!head) {
        return nullptr;
    }
    rte_mbuf* tail = head.get();
    std::size_t done = 0;
    for (;;) {
        const std::size_t take = std::min<std::size_t>(bytes.size() - done, rte_pktmbuf_tailroom(tail));
        if (take > 0) {
            std::ranges::copy(bytes.subspan(done, take), rte_pktmbuf_mtod(tail, std::byte*));
            tail->data_len = static_cast<std::uint16_t>(take);
            done += take;
        }
        if (done == bytes.size()) {
            break;
        }
        MbufPtr next(rte_pktmbuf_alloc(pool));
        if (!next || head->nb_segs == UINT16_MAX) {
            return nullptr;
        }
        tail->next = next.release();
        tail = tail->next;
        ++head->nb_segs;
    }
    head->pkt_len = static_cast<std::uint32_t>(bytes.size());
    return head;
}

std::vector<std::byte> mbuf_to_bytes(const rte_mbuf* m) {
    std::vector<std::byte> out;
    out.reserve(m->pkt_len);
    for (const auto* seg = m; seg != nullptr; seg = seg->next) {
        const auto b = segment_bytes(seg);
        out.insert(out.end(), b.begin(), b.end());
    }
    return out;
}

bool pull_up_headers(rte_mbuf* m) noexcept {
    const std::size_t want = std::min<std::size_t>(m->pkt_len, kHeaderPullBytes);
    while (m->data_len < want) {
        rte_mbuf* next = m->next;
        if (next == nullptr || rte_mbuf_refcnt_read(next) != 1 || rte_pktmbuf_tailroom(m) == 0) {
            return false;
        }
        const std::size_t take =
            std::min<std::size_t>({want - m->data_len, next->data_len, rte_pktmbuf_tailroom(m)});
        std::memcpy(rte_pktmbuf_mtod_offset(m, std::byte*, m->data_len),
                    rte_pktmbuf_mtod(next, const std::byte*), take);
        m->data_len = static_cast<std::uint16_t>(m->data_len + take);
        next->data_off = static_cast<std::uint16_t>(next->data_off + take);
        next->data_len = static_cast<std::uint16_t>(next->data_len - take);
        if (next->data_len == 0) {
            m->next = next->next;
            next->next = nullptr;
            --m->nb_segs;
            rte_pktmbuf_free_seg(next);
        }
    }
    return true;
}

bool fill_mbuf_checksums(rte_mbuf* m) noexcept {
    std::array<std::span<std::byte>, kMaxPieces> pieces;
    std::size_t n = 0;
    return collect_pieces(m, pieces, n) &&
           fill_checksums(std::span<const std::span<std::byte>>(pieces.data(), n));
}

ChecksumVerdict verify_mbuf_checksums(const rte_mbuf* m) noexcept {
    std::array<std::span<const std::byte>, kMaxPieces> pieces;
    std::size_t n = 0;
    if (!collect_pieces(m, pieces, n)) {
        return ChecksumVerdict::not_checkable;
    }
    return verify_checksums(std::span<const std::span<const std::byte>>(pieces.data(), n));
}

namespace {

// Sets what checksum or segmentation hardware needs: header lengths, ol_flags, a zero IPv4
// header checksum, and the pseudo-header sum (uncomplemented) in the L4 checksum field; for TSO
// that sum leaves out the length, which differs per segment.
void request_hardware(rte_mbuf* m, const FrameLayout& layout, bool tso) noexcept {
    const auto head = segment_bytes(m);
    m->l2_len = layout.l2_len & 0x7f;
    m->l3_len = layout.l3_len & 0x1ff;
    m->l4_len = layout.l4_len & 0xff;
    std::uint64_t flags = layout.is_tcp() ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM;
    if (tso) {
        flags |= RTE_MBUF_F_TX_TCP_SEG;
    }
    const auto ip = head.subspan(layout.l2_len, layout.l3_len);
    const auto length = tso ? 0u : static_cast<std::uint32_t>(layout.l4_total);
    ChecksumAccumulator seed;
    if (layout.ip_version == 4) {
        flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
        store_be16(ip, 10, 0);
        add_ipv4_pseudo_header(seed, ip.subspan(12).first<4>(), ip.subspan(16).first<4>(), layout.l4_proto,
                               length);
    } else {
        flags |= RTE_MBUF_F_TX_IPV6;
        add_ipv6_pseudo_header(seed, ip.subspan(8).first<16>(), ip.subspan(24).first<16>(), layout.l4_proto,
                               length);
    }
    store_be16(head, layout.l4_offset() + (layout.is_tcp() ? 16 : 6), seed.fold());
    m->ol_flags = (m->ol_flags & ~(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_IPV4 |
                                   RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_SEG)) |
                  flags;
}

} // namespace

bool prepare_tx_checksums(rte_mbuf* m, const Offloads& hw) noexcept {
    pull_up_headers(m);
    const auto layout = parse_frame(segment_bytes(m));
    if (!layout || layout->fragment || !(layout->is_tcp() || layout->is_udp())) {
        return false;
    }
    const bool l4_hw = layout->is_tcp() ? hw.tx_tcp_cksum : hw.tx_udp_cksum;
    const bool l3_hw = layout->ip_version == 6 || hw.tx_ipv4_cksum;
    if (!(l4_hw && l3_hw)) {
        return fill_mbuf_checksums(m);
    }
    request_hardware(m, *layout, false);
    return true;
}

bool prepare_tx_tso(rte_mbuf* m, std::uint16_t mss, std::uint16_t mtu) noexcept {
    pull_up_headers(m);
    const auto layout = parse_frame(segment_bytes(m));
    if (!layout || layout->fragment || !layout->is_tcp() || mtu <= layout->l3_len + layout->l4_len) {
        return false;
    }
    const auto fit =
        static_cast<std::uint16_t>(std::min<std::size_t>(mss, mtu - layout->l3_len - layout->l4_len));
    if (fit == 0) {
        return false;
    }
    request_hardware(m, *layout, true);
    m->tso_segsz = fit;
    return true;
}

bool rx_checksums_good(const rte_mbuf* m, const Offloads& hw) noexcept {
    if (hw.rx_l4_cksum()) {
        const auto ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
        const auto l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD || ip == RTE_MBUF_F_RX_IP_CKSUM_BAD) {
            return false;
        }
        if (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD && ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
            return true;
        }
        // The PMD did not look at one of them (IPv6 has no IP checksum, so its IP flag stays
        // UNKNOWN): software decides.
    }
    return verify_mbuf_checksums(m) == ChecksumVerdict::valid;
}

} // namespace netbackd::pmd
