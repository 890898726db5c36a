// Packet buffers: ownership, byte views of segments, and the checksum work a port may not do
// in hardware.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include <rte_mbuf.h>

#include "pmd/checksum.hpp"
#include "pmd/offloads.hpp"

namespace netbackd::pmd {

struct MbufFree {
    void operator()(rte_mbuf* m) const noexcept { rte_pktmbuf_free(m); }
};
// One owned packet (a whole segment chain). The fast path passes raw pointers in bursts; this
// is for slow paths and tests.
using MbufPtr = std::unique_ptr<rte_mbuf, MbufFree>;

inline std::span<std::byte> segment_bytes(rte_mbuf* seg) noexcept {
    return {rte_pktmbuf_mtod(seg, std::byte*), seg->data_len};
}
inline std::span<const std::byte> segment_bytes(const rte_mbuf* seg) noexcept {
    return {rte_pktmbuf_mtod(seg, const std::byte*), seg->data_len};
}

// A packet holding a copy of `bytes`, chained over as many buffers as the pool's data room
// needs; nullptr when the pool runs dry.
MbufPtr mbuf_from_bytes(rte_mempool* pool, std::span<const std::byte> bytes);

// The packet's bytes in one vector (slow path only).
std::vector<std::byte> mbuf_to_bytes(const rte_mbuf* m);

// Moves bytes from the following segments into the first, so that the first holds
// min(pkt_len, kHeaderPullBytes) bytes: every header the offload code parses must sit in one
// segment, and a guest may spread its headers over several slots. False (packet unchanged or
// still valid, only less pulled up) when the first segment lacks tailroom or a following
// segment is shared with another packet.
// Enough for two VLAN tags with a maximal IPv4 and TCP header (142 bytes), or with IPv6 and 70
// bytes of extension headers before a maximal TCP header.
inline constexpr std::size_t kHeaderPullBytes = 192;
bool pull_up_headers(rte_mbuf* m) noexcept;

// Fills IPv4/TCP/UDP checksums in software over the whole segment chain (headers must sit in
// the first segment). False when the frame is not checksummable (see fill_checksums).
bool fill_mbuf_checksums(rte_mbuf* m) noexcept;

// Software verdict over a segment chain.
ChecksumVerdict verify_mbuf_checksums(const rte_mbuf* m) noexcept;

// For a frame whose checksums are blank (netif csum_blank) and which leaves through a port with
// `hw` offloads: asks the hardware to fill them (ol_flags, header lengths, pseudo-header seed)
// when it can, otherwise fills them in software. Headers are pulled up first. False when the
// frame is not TCP/UDP over IP and so has nothing to fill.
bool prepare_tx_checksums(rte_mbuf* m, const Offloads& hw) noexcept;

// For a guest's GSO frame leaving through a port with TSO (check hw.tx_tcp_tso first): marks it
// for segmentation by the hardware (ol_flags, header lengths, tso_segsz, and the length-less
// pseudo-header seed TSO hardware expects) into payloads of `mss` bytes, or fewer if segments
// would otherwise exceed `mtu`. False when the frame is not unfragmented TCP over IP.
// net_tap 22.11 refuses (tx_burst takes nothing) an MSS whose segments, counting the Ethernet
// header, exceed the MTU: give it mtu - 14 there.
bool prepare_tx_tso(rte_mbuf* m, std::uint16_t mss, std::uint16_t mtu) noexcept;

// For a received frame: may the guest be told "data_validated"? Uses the PMD's RX flags when
// the port checks in hardware and has an opinion, software otherwise.
bool rx_checksums_good(const rte_mbuf* m, const Offloads& hw) noexcept;

} // namespace netbackd::pmd
