// What a TCP segmentation request must satisfy before any port sees it (issue 14 item 4, the
// XSA-423 class): a guest chooses the MSS and the headers, and a NIC given an MSS or header
// lengths outside what its descriptors hold may take its TX queue down (Intel's malicious
// driver detection resets it), for every guest at once.
//
// Facts behind the limits: Linux netback refuses an MSS of 0 and leaves the rest to the stack,
// which computes the segment count and falls back to software GSO past the device's
// gso_max_segs; the Intel drivers' ndo_features_check take hardware TSO away below a 64-byte
// MSS. Here a request below 64 is dropped outright (one floor for hardware and software keeps
// a 64 KiB frame at 1,024 segments or fewer), and the lengths must fit rte_mbuf's bit fields
// instead of being truncated into them.
#pragma once

#include <cstdint>

#include "pmd/checksum.hpp"

struct rte_mbuf;

namespace netbackd::pmd {

inline constexpr std::uint16_t kMinTsoMss = 64;
inline constexpr std::uint32_t kMaxTsoSegments = 1024;
// rte_mbuf's tx_offload bit fields: l2_len 7 bits, l3_len 9, l4_len 8.
inline constexpr std::size_t kMaxTsoL2Len = 127;
inline constexpr std::size_t kMaxTsoL3Len = 511;
inline constexpr std::size_t kMaxTsoL4Len = 255;

enum class TsoFault : std::uint8_t {
    none,
    not_tcp,           // not unfragmented TCP over IP, or headers that do not parse
    mss_too_small,     // below kMinTsoMss
    headers_too_long,  // a header length that does not fit its rte_mbuf field
    too_many_segments, // more than kMaxTsoSegments
    headers_mismatch,  // the mbuf's lengths are not the headers' (or not in the first segment)
};

// For a frame about to be marked: its parsed layout, the MSS asked for and its total length.
TsoFault tso_fault(const FrameLayout& layout, std::uint32_t mss, std::uint32_t pkt_len) noexcept;

// For an mbuf marked RTE_MBUF_F_TX_TCP_SEG, as a port is about to take it: re-parses the
// headers in its first segment, which must match l2/l3/l4_len, then checks as above.
TsoFault tso_fault(const rte_mbuf* m) noexcept;

} // namespace netbackd::pmd
