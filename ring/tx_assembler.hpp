// Backend TX packet assembly: turns the slots of one guest packet into a TxPacket, or drops it
// with error responses, or declares the ring broken.
//
// Wire shape (netif.h "Guest transmit"): a first data slot whose size is the whole packet, then,
// if it has NETTXF_extra_info, a chain of extra-info slots linked by XEN_NETIF_EXTRA_FLAG_MORE,
// then further data slots while the previous data slot has NETTXF_more_data.
//
// Hostile-input rules, as Linux netback's xenvif_tx_build_gops / xenvif_count_requests decide
// (slots counted after the first, as Linux does):
//   - every slot is copied out of the page exactly once and only the copy is inspected;
//   - req_prod out of range, an unknown extra type, a bad GSO extra, more than fatal_slots (20)
//     slots after the first, a slot with offset + size past its page (checked on every slot,
//     also in a packet already being dropped), or a packet that cannot complete because the
//     ring is full: fatal, the ring stops for good;
//   - more than 18 slots after the first, size mismatch, zero length, a first slot holding
//     less than an Ethernet header (runt), too large: the packet's slots are consumed and each answered
//     NETIF_RSP_ERROR (NETIF_RSP_NULL for extras);
//   - a packet whose slots are not all published yet is left alone (pending) until they are;
//     the next attempt copies its slots afresh and decides on that copy alone, so nothing
//     validated earlier is ever trusted again.
//
// Responses: a dropped packet is answered at once; an accepted one is answered by respond()
// once the caller has copied its data. TX responses are matched by id, so answering accepted
// packets later than a dropped successor is fine for netfront.
#pragma once

#include <array>
#include <cstdint>

#include "ring/back_ring.hpp"
#include "ring/tx_packet.hpp"

namespace netbackd::ring {

struct TxLimits {
    // More slots after the first than this are fatal (Linux fatal_skb_slots).
    std::uint32_t fatal_slots = kDefaultFatalSlots;
    std::uint32_t min_length = kEthHeaderLen;
    std::uint32_t max_length = XEN_NETIF_MAX_TX_SIZE;
};

enum class TxStep : std::uint8_t {
    empty,   // nothing to consume
    pending, // a packet has started but not all its slots are published
    packet,  // out holds a packet; answer it with respond()
    dropped, // a malformed packet was consumed and answered with errors; see error
    fatal,   // the ring is unusable; see error; every later call returns fatal again
};

struct TxResult {
    TxStep step;
    TxError error = TxError::none;
};

class TxAssembler {
public:
    explicit TxAssembler(BackRing<TxRing>& ring, TxLimits limits = {}) noexcept
        : ring_(ring), limits_(limits) {}

    TxResult next(TxPacket& out) noexcept {
        if (fatal_ != TxError::none) return {TxStep::fatal, fatal_};
        // req_prod shares its cache line with the indices the frontend keeps writing: read it
        // once per run of published requests, not once per packet, as Linux netback does. The
        // value was validated when read, and consuming up to it keeps it in range.
        const RingIdx ahead = seen_prod_ - ring_.req_cons();
        if (ahead != 0 && ahead <= TxRing::kSize) {
            const TxResult r = assemble(out, Avail{ahead, ProdError::none});
            if (r.step != TxStep::pending) return r;
        }
        const Avail avail = ring_.poll();
        if (avail.error == ProdError::overflow) return fail(TxError::req_prod_overflow);
        if (avail.error == ProdError::regressed) return fail(TxError::req_prod_regressed);
        seen_prod_ = ring_.req_cons() + avail.count;
        if (avail.count == 0) return {TxStep::empty};
        return assemble(out, avail);
    }

private:
    TxResult assemble(TxPacket& out, const Avail avail) noexcept {
        out.clear();
        RingIdx used = 0;
        std::uint32_t nr_data = 0;
        scratch_[nr_data++] = ring_.copy_request(used++);
        const netif_tx_request_t first = scratch_[0];

        if (first.flags & NETTXF_extra_info) {
            bool more = true;
            while (more) {
                if (used >= avail.count) return incomplete(avail);
                const auto extra = ring_.copy_request<netif_extra_info_t>(used++);
                ++out.nr_extra_slots;
                if (const TxError e = take_extra(extra, out); e != TxError::none) return fail(e);
                more = (extra.flags & XEN_NETIF_EXTRA_FLAG_MORE) != 0;
            }
        }

        bool more = (first.flags & NETTXF_more_data) != 0;
        while (more) {
            // xenvif_count_requests: one more slot after fatal_slots slots after the first is fatal.
            if (nr_data - 1 >= limits_.fatal_slots) return fail(TxError::fatal_slot_count);
            if (used >= avail.count) return incomplete(avail);
            const netif_tx_request_t req = ring_.copy_request(used++);
            // ... and so is any slot crossing its page, whatever else is wrong with the packet.
            if (std::uint32_t{req.offset} + req.size > kPageSize) return fail(TxError::page_cross);
            scratch_[nr_data++] = req;
            more = (req.flags & NETTXF_more_data) != 0;
        }

        if (const TxError e = validate(nr_data, out.is_mcast_control()); e != TxError::none) {
            if (is_fatal(e)) return fail(e);
            ring_.consume(used);
            answer(nr_data, out.nr_extra_slots, NETIF_RSP_ERROR);
            return {TxStep::dropped, e};
        }
        ring_.consume(used);

        std::uint32_t others = 0;
        for (std::uint32_t i = 1; i < nr_data; ++i) others += scratch_[i].size;
        out.nr_segments = static_cast<std::uint8_t>(nr_data);
        out.length = first.size;
        out.csum_blank = (first.flags & NETTXF_csum_blank) != 0;
        out.data_validated = (first.flags & NETTXF_data_validated) != 0;
        for (std::uint32_t i = 0; i < nr_data; ++i) {
            const netif_tx_request_t& r = scratch_[i];
            const auto size = i == 0 ? static_cast<std::uint16_t>(r.size - others) : r.size;
            out.seg_storage[i] = TxSegment{r.gref, r.offset, size};
            out.ids[i] = r.id;
        }
        return {TxStep::packet};
    }

public:
    // Answers every slot of an accepted packet: its first data slot, a NULL per extra slot, then
    // the remaining data slots, in slot order. status is NETIF_RSP_OKAY or a NETIF_RSP_* error.
    void respond(const TxPacket& pkt, std::int16_t status) noexcept {
        if (pkt.nr_segments == 0) return;
        ring_.put_response(netif_tx_response_t{pkt.ids[0], status});
        for (std::uint32_t i = 0; i < pkt.nr_extra_slots; ++i)
            ring_.put_response(netif_tx_response_t{0, NETIF_RSP_NULL});
        for (std::uint32_t i = 1; i < pkt.nr_segments; ++i)
            ring_.put_response(netif_tx_response_t{pkt.ids[i], status});
    }

    bool stopped() const noexcept { return fatal_ != TxError::none; }
    TxError fatal_error() const noexcept { return fatal_; }
    BackRing<TxRing>& ring() noexcept { return ring_; }
    const TxLimits& limits() const noexcept { return limits_; }

private:
    TxResult fail(TxError e) noexcept {
        fatal_ = e;
        return {TxStep::fatal, e};
    }

    TxResult incomplete(const Avail& avail) noexcept {
        // With the whole ring published and still no end of packet, no later push can finish it.
        if (avail.count >= TxRing::kSize) return fail(TxError::packet_exceeds_ring);
        return {TxStep::pending};
    }

    static TxError take_extra(const netif_extra_info_t& x, TxPacket& out) noexcept {
        // Repeats of one type overwrite the earlier value, as Linux does.
        switch (x.type) {
        case XEN_NETIF_EXTRA_TYPE_GSO:
            if (x.u.gso.size == 0 ||
                (x.u.gso.type != XEN_NETIF_GSO_TYPE_TCPV4 && x.u.gso.type != XEN_NETIF_GSO_TYPE_TCPV6))
                return TxError::bad_gso;
            out.gso = TxGso{x.u.gso.size, x.u.gso.type, x.u.gso.features};
            return TxError::none;
        case XEN_NETIF_EXTRA_TYPE_MCAST_ADD:
            out.mcast_add = std::to_array(x.u.mcast.addr);
            return TxError::none;
        case XEN_NETIF_EXTRA_TYPE_MCAST_DEL:
            out.mcast_del = std::to_array(x.u.mcast.addr);
            return TxError::none;
        case XEN_NETIF_EXTRA_TYPE_HASH: {
            const auto& v = x.u.hash.value;
            // The value is little-endian on the wire whatever the host order.
            const std::uint32_t value = std::uint32_t{v[0]} | std::uint32_t{v[1]} << 8 |
                                        std::uint32_t{v[2]} << 16 | std::uint32_t{v[3]} << 24;
            out.hash = TxHash{x.u.hash.type, x.u.hash.algorithm, value};
            return TxError::none;
        }
        default: return TxError::unknown_extra;
        }
    }

    // In xenvif_tx_build_gops' order: the drops xenvif_count_requests finds, then the length
    // checks, then the first slot's own page crossing (fatal).
    TxError validate(std::uint32_t nr_data, bool mcast_control) const noexcept {
        if (nr_data - 1 > kMaxTxFollowSlots) return TxError::too_many_slots;
        const netif_tx_request_t& first = scratch_[0];
        std::uint32_t others = 0;
        for (std::uint32_t i = 1; i < nr_data; ++i) others += scratch_[i].size;
        if (others > first.size) return TxError::size_mismatch;
        const std::uint32_t own = first.size - others;
        if (!mcast_control) {
            if (first.size == 0) return TxError::zero_length;
            // Linux checks the first slot's own share against ETH_HLEN: the header must be in it.
            if (own < limits_.min_length) return TxError::runt;
            if (first.size > limits_.max_length) return TxError::too_large;
        }
        if (std::uint32_t{first.offset} + own > kPageSize) return TxError::page_cross;
        return TxError::none;
    }

    void answer(std::uint32_t nr_data, std::uint32_t nr_extra, std::int16_t status) noexcept {
        ring_.put_response(netif_tx_response_t{scratch_[0].id, status});
        for (std::uint32_t i = 0; i < nr_extra; ++i)
            ring_.put_response(netif_tx_response_t{0, NETIF_RSP_NULL});
        for (std::uint32_t i = 1; i < nr_data; ++i)
            ring_.put_response(netif_tx_response_t{scratch_[i].id, status});
    }

    BackRing<TxRing>& ring_;
    TxLimits limits_;
    RingIdx seen_prod_ = ring_.req_cons(); // the last req_prod read, validated
    TxError fatal_ = TxError::none;
    // Copies of the current packet's data slots; a ring's worth, so over-long chains fit too.
    std::array<netif_tx_request_t, TxRing::kSize> scratch_;
};

} // namespace netbackd::ring
