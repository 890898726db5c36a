#include "backend/dataplane/frame_util.hpp"

namespace netbackd::dataplane {

std::uint32_t flow_hash(const rte_mbuf* m) noexcept {
    if ((m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) != 0) return m->hash.rss;
    const auto head = pmd::segment_bytes(m);
    const auto layout = pmd::parse_frame(head);
    // FNV-1a over whatever identifies the flow, then a finaliser: FNV's low bits alone are a
    // parity of the input bits, and the queue is picked by the low bits.
    std::uint32_t h = 2166136261u;
    auto finish = [&] {
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        return h;
    };
    auto mix = [&](std::span<const std::byte> b) {
        for (std::byte x : b) h = (h ^ std::to_integer<std::uint32_t>(x)) * 16777619u;
    };
    if (!layout) {
        mix(head.first(std::min<std::size_t>(head.size(), 12)));
        return finish();
    }
    const std::size_t ip = layout->l2_len;
    if (layout->ip_version == 4)
        mix(head.subspan(ip + 12, 8));
    else
        mix(head.subspan(ip + 8, 32));
    if ((layout->is_tcp() || layout->is_udp()) && !layout->fragment && head.size() >= layout->l4_offset() + 4)
        mix(head.subspan(layout->l4_offset(), 4));
    return finish();
}

} // namespace netbackd::dataplane
