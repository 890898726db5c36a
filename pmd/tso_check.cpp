#include "pmd/tso_check.hpp"

#include <rte_mbuf.h>

#include "pmd/mbuf.hpp"

namespace netbackd::pmd {

TsoFault tso_fault(const FrameLayout& l, std::uint32_t mss, std::uint32_t pkt_len) noexcept {
    if (l.fragment || !l.is_tcp()) return TsoFault::not_tcp;
    if (mss < kMinTsoMss) return TsoFault::mss_too_small;
    if (l.l2_len > kMaxTsoL2Len || l.l3_len > kMaxTsoL3Len || l.l4_len > kMaxTsoL4Len)
        return TsoFault::headers_too_long;
    const std::size_t headers = l.l2_len + l.l3_len + l.l4_len;
    const std::size_t payload = pkt_len > headers ? pkt_len - headers : 0;
    if ((payload + mss - 1) / mss > kMaxTsoSegments) return TsoFault::too_many_segments;
    return TsoFault::none;
}

TsoFault tso_fault(const rte_mbuf* m) noexcept {
    // The port reads the headers from the first buffer alone (XSA-423: headers past it are
    // what made NICs misbehave), so that is all that is parsed.
    const auto layout = parse_frame(segment_bytes(m));
    if (!layout) return TsoFault::not_tcp;
    if (layout->l2_len != m->l2_len || layout->l3_len != m->l3_len || layout->l4_len != m->l4_len ||
        layout->l2_len + layout->l3_len + layout->l4_len > m->data_len)
        return TsoFault::headers_mismatch;
    return tso_fault(*layout, m->tso_segsz, m->pkt_len);
}

} // namespace netbackd::pmd
