// TCP segmentation in software, for ports without TSO: a guest's 64 KiB GSO frame becomes
// MTU-sized TCP segments with correct IP lengths, IDs, sequence numbers, flags and checksums.
//
// TCP over IPv4 goes through DPDK's GSO library (headers copied, payload referenced through
// indirect mbufs, no payload copy). DPDK 22.11's GSO has no TCP over IPv6, so that is done
// here by copying.
#pragma once

#include <cstdint>
#include <span>

#include <rte_gso.h>

#include "pmd/offloads.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace netbackd::pmd {

class Mempool;

class SoftwareGso {
public:
    // direct: buffers for the copied headers (and for IPv6, the payload); indirect: payload
    // references (a pool with data room 0 is enough). Both must outlive every segment.
    SoftwareGso(const Mempool& direct, const Mempool& indirect, bool fixed_ip_id = false);

    // Pulls the headers up into the first segment, parses them and marks the frame for
    // segmentation into `mss`-byte payloads (sets l2/l3/l4 lengths, tso_segsz and TX_TCP_SEG
    // with TX_IPV4 or TX_IPV6). False if it is not unfragmented TCP over IP, or if the MSS,
    // header lengths or segment count are out of bounds (tso_check.hpp).
    static bool mark_tso(rte_mbuf* pkt, std::uint16_t mss) noexcept;

    // Cuts a packet marked by mark_tso into segments whose L3 length is at most `mtu`, writes
    // them to `out` and returns how many; the checksums are filled by the hardware if `hw`
    // allows, else in software, and multi-buffer segments are made contiguous when `hw` has no
    // MULTI_SEGS. A packet that needs no cutting comes back as the only segment.
    // Without MULTI_SEGS a segment must fit one buffer: `contiguous` (optional, e.g. a jumbo
    // port's own pool) gives buffers large enough for the port's MTU; without it, or when its
    // buffers are smaller, the MSS is lowered until a segment fits the larger data room.
    // The input is always consumed: on failure (negative errno: ENOSPC when `out` is too short,
    // ENOMEM when a pool runs dry, EINVAL for an unmarked packet) it has been freed.
    int segment(rte_mbuf* pkt, std::span<rte_mbuf*> out, std::uint16_t mtu, const Offloads& hw,
                rte_mempool* contiguous = nullptr) noexcept;

private:
    int segment_by_copy(rte_mbuf* pkt, std::span<rte_mbuf*> out, std::uint16_t mss) noexcept;
    int finish(std::span<rte_mbuf*> segs, const Offloads& hw, rte_mempool* contiguous) noexcept;

    rte_gso_ctx ctx_{};
};

} // namespace netbackd::pmd
