// Small per-frame helpers shared by the TX and RX paths: the drop path, Ethernet addresses,
// checksum knowledge carried in mbuf flags, reference counts over chains, and the RX flow hash.
#pragma once

#include <cstdint>
#include <span>

#include <rte_mbuf.h>

#include "backend/dataplane/counters.hpp"
#include "backend/dataplane/mac.hpp"
#include "pmd/checksum.hpp"
#include "pmd/mbuf.hpp"

namespace netbackd::dataplane {

inline constexpr std::uint64_t kCsumGood = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
inline constexpr std::uint64_t kCsumMask = RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK;

// The one way a frame is dropped (as DPDK's l2fwd does it): freed here and counted against its
// reason, a vif's Drop or one of the worker's own counters. Requests dropped before they have a
// buffer (tx_malformed, tx_no_mbuf) are only counted.
inline void drop(rte_mbuf* m, Counter& reason) noexcept {
    rte_pktmbuf_free(m);
    reason.add();
}
inline void drop(rte_mbuf* m, VifCounters& c, Drop why) noexcept { drop(m, c.drop(why)); }

inline MacAddr mac_at(const rte_mbuf* m, std::size_t off) noexcept {
    const auto* p = rte_pktmbuf_mtod_offset(m, const std::uint8_t*, off);
    return MacAddr::from_bytes(std::span<const std::uint8_t, 6>(p, 6));
}

// The checksums are known correct (we computed them, or a port or guest vouched for them).
inline void mark_checksums_good(rte_mbuf* m) noexcept {
    m->ol_flags = (m->ol_flags & ~kCsumMask) | kCsumGood;
}

// The L4 checksum field holds only the pseudo-header sum and the data is verified (DPDK's
// meaning of RX_L4_CKSUM_NONE; a merged frame, rx_merge.hpp): the guest's csum_blank.
inline bool checksum_blank(const rte_mbuf* m) noexcept {
    return (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_NONE;
}

// May a guest be told data_validated? Flags first; software when nobody looked yet.
inline bool checksums_validated(const rte_mbuf* m) noexcept {
    const std::uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    const std::uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD && l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD) return true;
    if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD) return false;
    return pmd::verify_mbuf_checksums(m) == pmd::ChecksumVerdict::valid;
}

// Every buffer of a chain carries its own count, and rte_pktmbuf_free drops each one.
inline void add_references(rte_mbuf* m, std::int16_t n) noexcept {
    for (rte_mbuf* s = m; s != nullptr; s = s->next) rte_mbuf_refcnt_update(s, n);
}

inline bool exclusively_owned(const rte_mbuf* m) noexcept {
    for (const rte_mbuf* s = m; s != nullptr; s = s->next)
        if (!RTE_MBUF_DIRECT(s) || rte_mbuf_refcnt_read(s) != 1) return false;
    return true;
}

// Picks a vif RX queue: the port's RSS hash when it gave one, else a hash of the IP addresses
// and L4 ports, so one flow always lands on one queue.
std::uint32_t flow_hash(const rte_mbuf* m) noexcept;

} // namespace netbackd::dataplane
