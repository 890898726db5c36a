#include "pmd/gso.hpp"

#include "pmd/tso_check.hpp"
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "pmd/bytes.hpp"
#include "pmd/checksum.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/mempool.hpp"
#include "pmd/tso_check.hpp"

namespace netbackd::pmd {

namespace {

constexpr std::uint8_t kTcpFin = 0x01;
constexpr std::uint8_t kTcpPsh = 0x08;
constexpr std::uint8_t kTcpCwr = 0x80;

void free_all(std::span<rte_mbuf*> segs) noexcept {
    for (auto*& m : segs) {
        rte_pktmbuf_free(m);
        m = nullptr;
    }
}

// Appends bytes to a chain, taking more buffers from the pool as each fills up.
class ChainWriter {
public:
    ChainWriter(rte_mbuf* head, rte_mempool* pool) noexcept : head_(head), tail_(head), pool_(pool) {}

    bool append(std::span<const std::byte> bytes) noexcept {
        while (!bytes.empty()) {
            if (rte_pktmbuf_tailroom(tail_) == 0) {
                rte_mbuf* next = rte_pktmbuf_alloc(pool_);
                if (next == nullptr || head_->nb_segs == UINT16_MAX) {
                    rte_pktmbuf_free(next);
                    return false;
                }
                tail_->next = next;
                tail_ = next;
                ++head_->nb_segs;
            }
            const std::size_t take = std::min<std::size_t>(bytes.size(), rte_pktmbuf_tailroom(tail_));
            std::memcpy(rte_pktmbuf_mtod_offset(tail_, std::byte*, tail_->data_len), bytes.data(), take);
            tail_->data_len = static_cast<std::uint16_t>(tail_->data_len + take);
            head_->pkt_len += static_cast<std::uint32_t>(take);
            bytes = bytes.subspan(take);
        }
        return true;
    }

    // Copies [offset, offset+length) of another chain.
    bool append_from(const rte_mbuf* src, std::size_t offset, std::size_t length) noexcept {
        for (const auto* seg = src; seg != nullptr && length > 0; seg = seg->next) {
            if (offset >= seg->data_len) {
                offset -= seg->data_len;
                continue;
            }
            const std::size_t take = std::min<std::size_t>(seg->data_len - offset, length);
            if (!append(segment_bytes(seg).subspan(offset, take))) {
                return false;
            }
            length -= take;
            offset = 0;
        }
        return length == 0;
    }

private:
    rte_mbuf* head_;
    rte_mbuf* tail_;
    rte_mempool* pool_;
};

// Usable bytes per buffer of `pool` (0 for none).
std::uint32_t data_room_of(rte_mempool* pool) noexcept {
    if (pool == nullptr) return 0;
    const std::uint32_t room = rte_pktmbuf_data_room_size(pool);
    return room > RTE_PKTMBUF_HEADROOM ? room - RTE_PKTMBUF_HEADROOM : 0;
}

// One buffer per segment: in place when the first buffer has the room, else a copy into a
// buffer of `big` (the segment's own buffers go back).
bool make_contiguous(rte_mbuf*& seg, rte_mempool* big) noexcept {
    if (rte_pktmbuf_tailroom(seg) >= seg->pkt_len - seg->data_len) return rte_pktmbuf_linearize(seg) == 0;
    if (big == nullptr || data_room_of(big) < seg->pkt_len) return false;
    rte_mbuf* copy = rte_pktmbuf_copy(seg, big, 0, UINT32_MAX);
    if (copy == nullptr) return false; // rte_pktmbuf_copy keeps ol_flags and lengths
    rte_pktmbuf_free(seg);
    seg = copy;
    return true;
}

} // namespace

SoftwareGso::SoftwareGso(const Mempool& direct, const Mempool& indirect, bool fixed_ip_id) {
    ctx_.direct_pool = direct.get();
    ctx_.indirect_pool = indirect.get();
    ctx_.flag = fixed_ip_id ? RTE_GSO_FLAG_IPID_FIXED : 0;
    ctx_.gso_types = RTE_ETH_TX_OFFLOAD_TCP_TSO;
    ctx_.gso_size = RTE_ETHER_MAX_LEN; // replaced per packet
}

bool SoftwareGso::mark_tso(rte_mbuf* pkt, std::uint16_t mss) noexcept {
    pull_up_headers(pkt);
    const auto layout = parse_frame(segment_bytes(pkt));
    // Checked, never truncated into the bit fields: see tso_check.hpp.
    if (!layout || tso_fault(*layout, mss, pkt->pkt_len) != TsoFault::none) {
        return false;
    }
    pkt->l2_len = layout->l2_len;
    pkt->l3_len = layout->l3_len;
    pkt->l4_len = layout->l4_len;
    pkt->tso_segsz = mss;
    pkt->ol_flags &= ~(RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_L4_MASK);
    pkt->ol_flags |=
        RTE_MBUF_F_TX_TCP_SEG | (layout->ip_version == 4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6);
    return true;
}

int SoftwareGso::segment(rte_mbuf* pkt, std::span<rte_mbuf*> out, std::uint16_t mtu, const Offloads& hw,
                         rte_mempool* contiguous) noexcept {
    if ((pkt->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0 || pkt->tso_segsz == 0 || out.empty()) {
        rte_pktmbuf_free(pkt);
        return -EINVAL;
    }
    const std::uint32_t headers = pkt->l2_len + pkt->l3_len + pkt->l4_len;
    const std::uint32_t l3_headers = pkt->l3_len + pkt->l4_len;
    if (mtu <= l3_headers) {
        rte_pktmbuf_free(pkt);
        return -EINVAL;
    }
    // The guest's MSS, unless the port's MTU is smaller still.
    std::uint32_t max_mss = std::min<std::uint32_t>(pkt->tso_segsz, mtu - l3_headers);
    if (!hw.tx_multi_segs) {
        // Each segment goes out as one buffer: a jumbo MSS larger than any buffer would fail
        // to linearize and drop the whole frame, so the MSS gives way to the buffer instead.
        const std::uint32_t room = std::max(data_room_of(ctx_.direct_pool), data_room_of(contiguous));
        if (room <= headers) {
            rte_pktmbuf_free(pkt);
            return -EINVAL;
        }
        max_mss = std::min(max_mss, room - headers);
    }
    const auto mss = static_cast<std::uint16_t>(max_mss);
    if (pkt->pkt_len <= headers + mss) {
        pkt->ol_flags &= ~RTE_MBUF_F_TX_TCP_SEG;
        out[0] = pkt;
        return finish(out.first(1), hw, contiguous);
    }

    const std::size_t needed = (pkt->pkt_len - headers + mss - 1) / mss;
    if (needed > out.size()) {
        rte_pktmbuf_free(pkt);
        return -ENOSPC;
    }
    int n = 0;
    if ((pkt->ol_flags & RTE_MBUF_F_TX_IPV4) != 0) {
        rte_gso_ctx ctx = ctx_;
        ctx.gso_size = static_cast<std::uint16_t>(std::min<std::uint32_t>(headers + mss, UINT16_MAX));
        n = rte_gso_segment(pkt, &ctx, out.data(),
                            static_cast<std::uint16_t>(std::min<std::size_t>(out.size(), UINT16_MAX)));
        // The segments hold references to the payload; this drops ours.
        rte_pktmbuf_free(pkt);
    } else {
        n = segment_by_copy(pkt, out, mss);
        rte_pktmbuf_free(pkt);
    }
    if (n <= 0) {
        return n == 0 ? -EINVAL : n;
    }
    return finish(out.first(static_cast<std::size_t>(n)), hw, contiguous);
}

int SoftwareGso::segment_by_copy(rte_mbuf* pkt, std::span<rte_mbuf*> out, std::uint16_t mss) noexcept {
    const std::size_t headers = pkt->l2_len + pkt->l3_len + pkt->l4_len;
    if (segment_bytes(pkt).size() < headers) {
        return -EINVAL;
    }
    const std::size_t payload = pkt->pkt_len - headers;
    const std::size_t count = (payload + mss - 1) / mss;
    if (count > out.size()) {
        return -ENOSPC;
    }
    const auto src_head = segment_bytes(pkt).first(headers);
    const std::size_t ip = pkt->l2_len;
    const std::size_t tcp = ip + pkt->l3_len;
    const std::uint32_t seq0 = load_be32(src_head, tcp + 4);
    const std::uint8_t flags0 = load_u8(src_head, tcp + 13);
    const bool v4 = (pkt->ol_flags & RTE_MBUF_F_TX_IPV4) != 0;
    const std::uint16_t id0 = v4 ? load_be16(src_head, ip + 4) : 0;

    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t offset = i * mss;
        const std::size_t len = std::min<std::size_t>(mss, payload - offset);
        rte_mbuf* seg = rte_pktmbuf_alloc(ctx_.direct_pool);
        out[i] = seg;
        ChainWriter writer(seg, ctx_.direct_pool);
        if (seg == nullptr || !writer.append(src_head) || !writer.append_from(pkt, headers + offset, len)) {
            free_all(out.first(i + 1));
            return -ENOMEM;
        }
        const auto h = segment_bytes(seg);
        if (h.size() < headers) {
            free_all(out.first(i + 1));
            return -ENOMEM;
        }
        const auto l3_payload = static_cast<std::uint16_t>(pkt->l3_len + pkt->l4_len + len);
        if (v4) {
            store_be16(h, ip + 2, l3_payload);
            if (ctx_.flag != RTE_GSO_FLAG_IPID_FIXED) {
                store_be16(h, ip + 4, static_cast<std::uint16_t>(id0 + i));
            }
        } else {
            store_be16(h, ip + 4, static_cast<std::uint16_t>(l3_payload - 40));
        }
        store_be32(h, tcp + 4, static_cast<std::uint32_t>(seq0 + offset));
        std::uint8_t flags = flags0;
        // FIN and PSH belong to the end of the data, CWR to its start (RFC 3168 section 6.1.2).
        if (i + 1 < count) {
            flags &= static_cast<std::uint8_t>(~(kTcpFin | kTcpPsh));
        }
        if (i > 0) {
            flags &= static_cast<std::uint8_t>(~kTcpCwr);
        }
        h[tcp + 13] = static_cast<std::byte>(flags);
        seg->ol_flags = pkt->ol_flags & ~RTE_MBUF_F_TX_TCP_SEG;
        seg->l2_len = pkt->l2_len;
        seg->l3_len = pkt->l3_len;
        seg->l4_len = pkt->l4_len;
    }
    return static_cast<int>(count);
}

int SoftwareGso::finish(std::span<rte_mbuf*> segs, const Offloads& hw, rte_mempool* contiguous) noexcept {
    for (auto*& seg : segs) {
        if (!hw.tx_multi_segs && seg->nb_segs > 1 && !make_contiguous(seg, contiguous)) {
            free_all(segs);
            return -ENOMEM;
        }
        prepare_tx_checksums(seg, hw);
    }
    return static_cast<int>(segs.size());
}

} // namespace netbackd::pmd
