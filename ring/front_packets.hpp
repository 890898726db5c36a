// Frontend (netfront) side packet helpers over FrontRing: writing TX packets in the netif wire
// shape and reading back RX packets made of several response slots. Used by the simulated
// netfront, the self-check and the tests; the backend never includes this.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "ring/front_ring.hpp"
#include "ring/tx_packet.hpp"

namespace netbackd::ring {

struct TxFrontSegment {
    grant_ref_t gref;
    std::uint16_t offset;
    std::uint16_t size; // this segment's own bytes (the helper computes the first slot's total)
    std::uint16_t id;
};

struct TxExtras {
    std::optional<TxGso> gso;
    std::optional<MacAddr> mcast_add;
    std::optional<MacAddr> mcast_del;
    std::optional<TxHash> hash;

    std::uint32_t count() const noexcept {
        return (gso ? 1u : 0u) + (mcast_add ? 1u : 0u) + (mcast_del ? 1u : 0u) + (hash ? 1u : 0u);
    }
};

// NETTXF_csum_blank / NETTXF_data_validated for the first slot.
struct TxFrontFlags {
    bool csum_blank = false;
    bool data_validated = false;
};

inline std::uint32_t tx_slots_needed(std::size_t nr_segments, const TxExtras& extras) noexcept {
    return static_cast<std::uint32_t>(nr_segments) + extras.count();
}

// Queues one packet (not pushed). False, with nothing written, when the ring lacks room.
inline bool put_tx_packet(FrontRing<TxRing>& front, std::span<const TxFrontSegment> segs,
                          const TxExtras& extras = {}, TxFrontFlags fl = {}) noexcept {
    if (segs.empty() || front.free_requests() < tx_slots_needed(segs.size(), extras)) return false;
    std::uint32_t total = 0;
    for (const auto& s : segs) total += s.size;

    std::uint16_t flags = 0;
    if (fl.csum_blank) flags |= NETTXF_csum_blank;
    if (fl.data_validated) flags |= NETTXF_data_validated;
    if (segs.size() > 1) flags |= NETTXF_more_data;
    if (extras.count() != 0) flags |= NETTXF_extra_info;
    front.put_request(netif_tx_request_t{segs[0].gref, segs[0].offset, flags, segs[0].id,
                                         static_cast<std::uint16_t>(total)});

    std::array<netif_extra_info_t, 4> xs{};
    std::size_t nx = 0;
    if (extras.gso) {
        auto& x = xs[nx++];
        x.type = XEN_NETIF_EXTRA_TYPE_GSO;
        x.u.gso.size = extras.gso->size;
        x.u.gso.type = extras.gso->type;
        x.u.gso.features = extras.gso->features;
    }
    if (extras.mcast_add) {
        auto& x = xs[nx++];
        x.type = XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
        for (std::size_t i = 0; i < 6; ++i) x.u.mcast.addr[i] = (*extras.mcast_add)[i];
    }
    if (extras.mcast_del) {
        auto& x = xs[nx++];
        x.type = XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
        for (std::size_t i = 0; i < 6; ++i) x.u.mcast.addr[i] = (*extras.mcast_del)[i];
    }
    if (extras.hash) {
        auto& x = xs[nx++];
        x.type = XEN_NETIF_EXTRA_TYPE_HASH;
        x.u.hash.type = extras.hash->type;
        x.u.hash.algorithm = extras.hash->algorithm;
        for (std::size_t i = 0; i < 4; ++i)
            x.u.hash.value[i] = static_cast<std::uint8_t>(extras.hash->value >> (8 * i));
    }
    for (std::size_t i = 0; i < nx; ++i) {
        xs[i].flags = i + 1 < nx ? XEN_NETIF_EXTRA_FLAG_MORE : 0;
        // The extra overlays a 12-byte TX slot; pad it so the whole slot is written.
        std::array<std::byte, sizeof(netif_tx_request_t)> slot{};
        std::memcpy(slot.data(), &xs[i], sizeof(xs[i]));
        front.put_request(std::bit_cast<netif_tx_request_t>(slot));
    }

    for (std::size_t i = 1; i < segs.size(); ++i) {
        const std::uint16_t f = i + 1 < segs.size() ? NETTXF_more_data : 0;
        front.put_request(netif_tx_request_t{segs[i].gref, segs[i].offset, f, segs[i].id, segs[i].size});
    }
    return true;
}

// One received packet as netfront sees it.
struct RxFrontPacket {
    std::array<netif_rx_response_t, kMaxTxSegments> frag_storage;
    std::uint8_t nr_frags = 0;
    std::uint16_t flags = 0; // of the first response
    std::optional<netif_extra_info_t> gso;
    std::optional<netif_extra_info_t> hash; // XEN_NETIF_EXTRA_TYPE_HASH, when hashing is on
    std::uint32_t length = 0;               // sum of the statuses when all are non-negative
    bool error = false;                     // some status was negative

    std::span<const netif_rx_response_t> frags() const noexcept { return {frag_storage.data(), nr_frags}; }
};

enum class RxReadStep : std::uint8_t {
    empty,     // no response ready
    pending,   // a packet started but its continuation is not published yet
    packet,    // out holds a packet; its slots are consumed
    malformed, // the backend broke the wire format (too many slots, bad extra, bad rsp_prod)
};

// Reads one packet's responses (first, extras, continuations) and consumes them.
inline RxReadStep read_rx_packet(FrontRing<RxRing>& front, RxFrontPacket& out) noexcept {
    const Avail avail = front.poll();
    if (avail.error != ProdError::none) return RxReadStep::malformed;
    if (avail.count == 0) return RxReadStep::empty;
    out = RxFrontPacket{};
    RingIdx used = 0;
    netif_rx_response_t rsp = front.copy_response(used++);
    out.flags = rsp.flags;
    bool extra = (rsp.flags & NETRXF_extra_info) != 0;
    bool more = (rsp.flags & NETRXF_more_data) != 0;
    out.frag_storage[out.nr_frags++] = rsp;
    while (extra) {
        if (used >= avail.count) return RxReadStep::pending;
        const auto x = front.copy_response<netif_extra_info_t>(used++);
        if (x.type == XEN_NETIF_EXTRA_TYPE_GSO)
            out.gso = x;
        else if (x.type == XEN_NETIF_EXTRA_TYPE_HASH)
            out.hash = x;
        else
            return RxReadStep::malformed;
        extra = (x.flags & XEN_NETIF_EXTRA_FLAG_MORE) != 0;
    }
    while (more) {
        if (out.nr_frags >= kMaxTxSegments) return RxReadStep::malformed;
        if (used >= avail.count) return RxReadStep::pending;
        rsp = front.copy_response(used++);
        out.frag_storage[out.nr_frags++] = rsp;
        more = (rsp.flags & NETRXF_more_data) != 0;
    }
    for (const auto& f : out.frags()) {
        if (f.status < 0)
            out.error = true;
        else
            out.length += static_cast<std::uint32_t>(f.status);
    }
    front.consume(used);
    return RxReadStep::packet;
}

} // namespace netbackd::ring
