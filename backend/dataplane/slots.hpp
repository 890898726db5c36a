// Page and slot arithmetic of the fast path, in one place: how many mbufs a guest TX packet
// fills, and how many RX ring requests a frame takes from the guest. The page is the ring's
// (ring::kPageSize), the only page size there is.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "ring/sring.hpp"

namespace netbackd::dataplane {

// Buffers of `room` data bytes that `len` bytes fill.
constexpr std::uint32_t buffers_per_packet(std::uint32_t len, std::uint32_t room) noexcept {
    return (len + room - 1) / room;
}

// Worst case of one guest TX packet: its 16-bit length over buffers of `room` bytes.
constexpr std::uint32_t max_buffers_per_packet(std::uint32_t room) noexcept {
    return buffers_per_packet(0xffffu, room);
}

// What a frame takes from a guest's RX ring: one request per page of data (each guest buffer is
// filled from `headroom` bytes into its page: the guest's xdp-headroom, usually 0), and one
// more for the GSO extra-info slot.
struct RxSlots {
    std::uint32_t data;
    bool gso_extra;
    std::uint32_t total() const noexcept { return data + (gso_extra ? 1u : 0u); }
};

inline RxSlots rx_slots(const rte_mbuf* m, std::uint32_t headroom = 0) noexcept {
    const std::uint32_t room = static_cast<std::uint32_t>(ring::kPageSize) - headroom;
    return RxSlots{(m->pkt_len + room - 1) / room, (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0};
}

} // namespace netbackd::dataplane
