// Wire -> guest: TCP segments of one flow that arrive in one uplink burst for a guest that takes
// GSO frames are merged into one frame marked for GSO (gso_size = the segments' MSS), as the
// kernel's GRO hands Linux netback large frames. The guest then spends one RX request per page
// instead of one per segment, and the backend one response and one notification per frame.
//
// Why not DPDK's librte_gro (22.11): it has no TCP over IPv6, refuses segments carrying PSH (the
// last of every sender's TSO burst), and returns the packets it did not process ahead of the
// merged ones, which reorders a flow's PSH segment before the data it follows. It also merges
// without looking at checksums, and runs before the switch, so frames for guests without GSO
// would be merged and then cut up again. This merger runs after the switch, per destination.
//
// Rules (those of Linux's tcp_gro_receive, stricter where simpler): single-buffer IPv4 (no
// options, not a fragment) or IPv6 (no extension header) TCP with payload, flags ACK or ACK|PSH,
// checksums verified (by the port or here); a segment continues an open frame when every header
// byte but the sequence number, IP length/ID/checksum, PSH, window and TCP checksum is the
// same, its sequence number follows, the IPv4 ID follows (unless DF), its payload is at most the
// first segment's, and the frame stays within 64 KiB (less with xdp-headroom: max_bytes) and kMaxSegments
// buffers. A segment shorter than the MSS, or with PSH, closes the frame. A frame that cannot be merged
// flushes the open frames of its destination before it goes, so each guest sees its frames in arrival order
// except that frames of different flows may pass each other (as with GRO).
//
// Nothing is allocated: the segments' own buffers are chained (headers of all but the first
// trimmed off). The merged frame's IP length and header checksum are rewritten, its TCP
// checksum holds the pseudo-header sum (what Linux's tcp_gro_complete leaves for
// CHECKSUM_PARTIAL) and its flags say so: RTE_MBUF_F_RX_L4_CKSUM_NONE ("the checksum field is
// not correct, the data is verified"), which the RX path answers with NETRXF_csum_blank |
// NETRXF_data_validated.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>

#include "backend/dataplane/counters.hpp"

struct rte_mbuf;

namespace netbackd::dataplane {

class RxMerge {
public:
    static constexpr std::size_t kMaxOpen = 8;        // flows merged at once (Linux: 8 per NAPI)
    static constexpr std::uint32_t kMaxBytes = 65535; // whole frame, Ethernet header included
    static constexpr std::uint16_t kMaxSegments = 45; // 64 KiB of 1448-byte segments
    static constexpr std::uint16_t kMinMss = 256;     // smaller segments are not worth merging

    struct Ready {
        std::uint32_t dest;
        rte_mbuf* m;
    };

    // The largest merged frame a guest can take: 64 KiB, and no more than the RX slots a
    // netfront accepts for one frame (XEN_NETIF_NR_SLOTS_MIN) hold when each of its buffers keeps
    // `headroom` bytes free (xdp-headroom; up to half a page, so as little as 36 KiB).
    static std::uint32_t max_bytes(std::uint16_t headroom) noexcept;

    // A frame for destination `dest` (a switch port whose guest takes GSO frames over IPv4
    // when v4, over IPv6 when v6, of at most `limit` bytes, see max_bytes). It is merged, held
    // open, or lined up in ready(). The caller delivers and clears ready() after every call
    // (it holds what one call can line up: kMaxOpen + 1 frames).
    void offer(std::uint32_t dest, bool v4, bool v6, std::uint32_t limit, rte_mbuf* m) noexcept;
    // A frame for `dest` that is not to be merged: dest's open frames go first.
    void pass(std::uint32_t dest, rte_mbuf* m) noexcept;
    // End of the burst: every open frame to ready().
    void flush() noexcept;

    // What must be delivered now, in this order; the caller delivers it and calls clear_ready().
    std::span<const Ready> ready() const noexcept { return std::span(ready_.data(), nready_); }
    void clear_ready() noexcept { nready_ = 0; }
    bool idle() const noexcept { return nopen_ == 0; }

    // frames: merged frames made (of several segments); segments: the segments they carry.
    RxMerge(Counter& frames, Counter& segments) noexcept : frames_(frames), segments_(segments) {}

private:
    struct Open {
        rte_mbuf* head;
        rte_mbuf* tail;
        std::uint32_t dest;
        std::uint32_t next_seq;
        std::uint32_t limit;   // bytes the whole frame may reach (max_bytes of dest's headroom)
        std::uint16_t next_id; // IPv4 without DF: the ID the next segment must carry
        std::uint16_t mss;
        std::uint16_t segs;
        std::uint16_t hdr_len; // Ethernet + IP + TCP
        std::uint8_t l3_len;
        bool v6;
        bool atomic; // IPv4 DF set (or IPv6): IDs are not compared
    };

    void emit(std::uint32_t dest, rte_mbuf* m) noexcept {
        assert(nready_ < ready_.size()); // the caller drains ready() after every call
        ready_[nready_++] = Ready{dest, m};
    }
    void close(std::size_t i) noexcept; // open frame i to ready(), removed from the table
    void close_dest(std::uint32_t dest) noexcept;
    void finish(Open& o) noexcept; // headers and flags of a merged frame

    std::array<Open, kMaxOpen> open_{};
    std::size_t nopen_ = 0;
    std::array<Ready, kMaxOpen + 1> ready_{};
    std::size_t nready_ = 0;
    Counter& frames_;
    Counter& segments_;
};

} // namespace netbackd::dataplane
