// The backend's view of one guest-transmitted packet, as assembled from TX ring slots, and the
// reasons an assembly can fail. Fixed-size value types: nothing here allocates.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ring/sring.hpp"

namespace netbackd::ring {

// Backends must accept this many data slots per packet (XEN_NETIF_NR_SLOTS_MIN); what a
// frontend here sends at most.
inline constexpr std::size_t kMaxTxSegments = XEN_NETIF_NR_SLOTS_MIN;
// Linux netback counts the slots *after the first* (xenvif_count_requests): it accepts up to
// XEN_NETBK_LEGACY_SLOTS_MAX (= XEN_NETIF_NR_SLOTS_MIN, 18) of them, so a packet it takes has up
// to 19 data slots; more are dropped (answered with errors).
inline constexpr std::size_t kMaxTxFollowSlots = XEN_NETIF_NR_SLOTS_MIN;
inline constexpr std::size_t kMaxTxPacketSlots = kMaxTxFollowSlots + 1;
// Linux netback's fatal_skb_slots default: a frontend chaining more than this many slots after
// the first is hostile (the vif is disabled).
inline constexpr std::uint32_t kDefaultFatalSlots = 20;
inline constexpr std::uint16_t kEthHeaderLen = 14;

struct TxSegment {
    grant_ref_t gref;
    std::uint16_t offset;
    std::uint16_t size;
    bool operator==(const TxSegment&) const = default;
};

struct TxGso {
    std::uint16_t size;     // MSS
    std::uint8_t type;      // XEN_NETIF_GSO_TYPE_TCPV4 / _TCPV6
    std::uint16_t features; // XEN_NETIF_GSO_FEAT_*
    bool operator==(const TxGso&) const = default;
};

struct TxHash {
    std::uint8_t type;      // _XEN_NETIF_CTRL_HASH_TYPE_*
    std::uint8_t algorithm; // XEN_NETIF_CTRL_HASH_ALGORITHM_*
    std::uint32_t value;
    bool operator==(const TxHash&) const = default;
};

using MacAddr = std::array<std::uint8_t, 6>;

struct TxPacket {
    // Segment i came from the data slot whose request id is ids[i]. Segment 0's size is the first
    // slot's own share (the first slot's size field minus the other segments).
    std::array<TxSegment, kMaxTxPacketSlots> seg_storage;
    std::array<std::uint16_t, kMaxTxPacketSlots> ids;
    std::uint8_t nr_segments = 0;
    // Extra-info slots sitting between the first and second data slot; each is answered with
    // NETIF_RSP_NULL right after the first slot's response.
    std::uint8_t nr_extra_slots = 0;
    std::uint16_t length = 0; // whole packet, the first slot's size field
    bool csum_blank = false;
    bool data_validated = false;
    std::optional<TxGso> gso;
    std::optional<TxHash> hash;
    // A packet carrying a multicast extra is a control message: the caller applies it and answers
    // OKAY or ERROR; its data, if any, is not a frame (length checks are skipped, as in Linux).
    std::optional<MacAddr> mcast_add;
    std::optional<MacAddr> mcast_del;

    // Resets everything but the segment and id arrays, which only [0, nr_segments) of is read:
    // zeroing ~200 bytes per packet showed in the fast path's profile.
    void clear() noexcept {
        nr_segments = 0;
        nr_extra_slots = 0;
        length = 0;
        csum_blank = false;
        data_validated = false;
        gso.reset();
        hash.reset();
        mcast_add.reset();
        mcast_del.reset();
    }

    std::span<const TxSegment> segments() const noexcept { return {seg_storage.data(), nr_segments}; }
    bool is_mcast_control() const noexcept { return mcast_add.has_value() || mcast_del.has_value(); }
    // Ring slots this packet used, each owed exactly one response.
    std::uint32_t slots() const noexcept { return std::uint32_t{nr_segments} + nr_extra_slots; }
};

enum class TxError : std::uint8_t {
    none,
    // Dropped: every slot answered NETIF_RSP_ERROR, the ring keeps going.
    zero_length,    // first slot size 0
    runt,           // shorter than an Ethernet header
    too_large,      // first slot size above the configured maximum
    size_mismatch,  // first slot size smaller than the sum of the other slots
    too_many_slots, // more than 18 slots after the first (XEN_NETBK_LEGACY_SLOTS_MAX)
    // Fatal: the ring stops; the vif must be disabled.
    req_prod_overflow,   // req_prod more than a ring ahead of our responses
    req_prod_regressed,  // req_prod moved behind req_cons
    unknown_extra,       // extra type NONE or >= XEN_NETIF_EXTRA_TYPE_MAX
    bad_gso,             // GSO extra with unknown type or zero size (fatal in Linux too)
    fatal_slot_count,    // more than fatal_slots slots after the first (fatal_skb_slots)
    packet_exceeds_ring, // the ring is full and the packet still is not complete
    page_cross,          // a slot with offset + size > 4096 ("Cross page boundary" in Linux)
};

inline constexpr std::size_t kTxErrorCount = static_cast<std::size_t>(TxError::page_cross) + 1;

constexpr bool is_fatal(TxError e) noexcept { return e >= TxError::req_prod_overflow; }

constexpr std::string_view to_string(TxError e) noexcept {
    switch (e) {
    case TxError::none: return "none";
    case TxError::zero_length: return "zero_length";
    case TxError::runt: return "runt";
    case TxError::too_large: return "too_large";
    case TxError::size_mismatch: return "size_mismatch";
    case TxError::page_cross: return "page_cross";
    case TxError::too_many_slots: return "too_many_slots";
    case TxError::req_prod_overflow: return "req_prod_overflow";
    case TxError::req_prod_regressed: return "req_prod_regressed";
    case TxError::unknown_extra: return "unknown_extra";
    case TxError::bad_gso: return "bad_gso";
    case TxError::fatal_slot_count: return "fatal_slot_count";
    case TxError::packet_exceeds_ring: return "packet_exceeds_ring";
    }
    return "?";
}

} // namespace netbackd::ring
