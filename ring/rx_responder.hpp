// Backend RX side: take the frontend's posted buffers (id, gref) and answer them with one packet's
// responses: a first slot, optional extra-info slots (GSO, then the hash when the guest enabled
// hashing on its control ring), then NETRXF_more_data continuation slots (netif.h "Guest receive").
//
// Linux netfront ignores the response id and expects each response in the slot of the request it
// answers; the extra-info slot also uses up a request. So the flow is two steps, strictly in
// order: reserve() copies out the requests a packet needs (one fetch each) and consumes them;
// after the caller has grant-copied the data, complete() (or fail()) writes exactly one response
// per reserved slot, at that slot's index. Reservations must be answered in the order taken.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "ring/back_ring.hpp"
#include "ring/toeplitz.hpp"
#include "ring/tx_packet.hpp"

namespace netbackd::ring {

// Data slots per received packet that every netfront accepts.
inline constexpr std::size_t kMaxRxSegments = XEN_NETIF_NR_SLOTS_MIN;

struct RxBuffer {
    std::uint16_t id;
    grant_ref_t gref;
    bool operator==(const RxBuffer&) const = default;
};

struct RxReservation {
    // Buffers for the data, in packet order; the extra slots' requests are not listed.
    std::array<RxBuffer, kMaxRxSegments> buf_storage;
    std::uint8_t nr_data = 0;
    bool has_extra = false; // GSO extra
    bool has_hash = false;  // hash extra
    RingIdx first_index = 0;

    std::span<const RxBuffer> buffers() const noexcept { return {buf_storage.data(), nr_data}; }
    std::uint32_t extras() const noexcept { return (has_extra ? 1u : 0u) + (has_hash ? 1u : 0u); }
    std::uint32_t slots() const noexcept { return std::uint32_t{nr_data} + extras(); }
};

// Where one chunk of the packet landed inside its buffer page.
struct RxChunk {
    std::uint16_t offset;
    std::uint16_t length;
};

struct RxMeta {
    bool data_validated = false;
    bool csum_blank = false;
    std::optional<TxGso> gso;                     // same fields on both directions
    std::optional<FrameHash> hash = std::nullopt; // XEN_NETIF_EXTRA_TYPE_HASH when set
};

enum class RxStep : std::uint8_t {
    ok,       // reservation filled
    short_of, // the frontend has not posted enough buffers yet; nothing taken
    fatal,    // req_prod out of range; every later call returns fatal again
};

class RxResponder {
public:
    explicit RxResponder(BackRing<RxRing>& ring) noexcept : ring_(ring) {}

    // Takes data_slots buffers (plus one for the GSO extra when gso) if all are posted.
    RxStep reserve(std::uint32_t data_slots, bool gso, RxReservation& out) noexcept {
        return reserve(data_slots, gso, false, out);
    }

    // The same, plus one more for the hash extra when hash.
    RxStep reserve(std::uint32_t data_slots, bool gso, bool hash, RxReservation& out) noexcept {
        assert(data_slots >= 1 && data_slots <= kMaxRxSegments);
        if (fatal_ != ProdError::none) return RxStep::fatal;
        const Avail avail = ring_.poll();
        if (avail.error != ProdError::none) {
            fatal_ = avail.error;
            return RxStep::fatal;
        }
        const std::uint32_t extras = (gso ? 1u : 0u) + (hash ? 1u : 0u);
        const std::uint32_t need = data_slots + extras;
        if (avail.count < need) return RxStep::short_of;
        out.nr_data = static_cast<std::uint8_t>(data_slots);
        out.has_extra = gso;
        out.has_hash = hash;
        out.first_index = ring_.req_cons();
        RingIdx slot = 0;
        for (std::uint32_t i = 0; i < data_slots; ++i) {
            const netif_rx_request_t req = ring_.copy_request(slot++);
            out.buf_storage[i] = RxBuffer{req.id, req.gref};
            if (i == 0) slot += extras; // extra slots' buffers carry no data; only their position matters
        }
        ring_.consume(need);
        return RxStep::ok;
    }

    // Answers a reservation with the packet: chunks[i] is what landed in buffers()[i].
    void complete(const RxReservation& r, std::span<const RxChunk> chunks, const RxMeta& meta) noexcept {
        assert(chunks.size() == r.nr_data);
        assert(r.first_index == ring_.rsp_prod_pvt() && "reservations answered out of order");
        assert(r.has_extra == meta.gso.has_value());
        assert(r.has_hash == meta.hash.has_value());
        for (std::uint32_t i = 0; i < r.nr_data; ++i) {
            assert(std::uint32_t{chunks[i].offset} + chunks[i].length <= kPageSize);
            std::uint16_t flags = i + 1 < r.nr_data ? NETRXF_more_data : 0;
            if (i == 0) {
                if (meta.data_validated) flags |= NETRXF_data_validated;
                if (meta.csum_blank) flags |= NETRXF_csum_blank;
                if (r.extras() != 0) flags |= NETRXF_extra_info;
            }
            ring_.put_response(netif_rx_response_t{r.buf_storage[i].id, chunks[i].offset, flags,
                                                   static_cast<std::int16_t>(chunks[i].length)});
            if (i == 0 && r.has_extra) ring_.put_response(gso_extra(*meta.gso, r.has_hash));
            if (i == 0 && r.has_hash) ring_.put_response(hash_extra(*meta.hash));
        }
    }

    // Answers every reserved slot with an error status (e.g. the grant copy failed), so the
    // frontend gets each buffer back and drops the packet.
    void fail(const RxReservation& r, std::int16_t status) noexcept {
        assert(r.first_index == ring_.rsp_prod_pvt() && "reservations answered out of order");
        for (std::uint32_t i = 0; i < r.nr_data; ++i) {
            ring_.put_response(netif_rx_response_t{r.buf_storage[i].id, 0, 0, status});
            // The extra slot's request id was not kept; netfront ignores ids on RX anyway.
            for (std::uint32_t x = 0; i == 0 && x < r.extras(); ++x)
                ring_.put_response(netif_rx_response_t{0, 0, 0, status});
        }
    }

    bool stopped() const noexcept { return fatal_ != ProdError::none; }
    ProdError fatal_error() const noexcept { return fatal_; }
    BackRing<RxRing>& ring() noexcept { return ring_; }

private:
    static netif_extra_info_t gso_extra(const TxGso& g, bool more) noexcept {
        netif_extra_info_t x{};
        x.type = XEN_NETIF_EXTRA_TYPE_GSO;
        x.flags = more ? XEN_NETIF_EXTRA_FLAG_MORE : 0;
        x.u.gso.size = g.size;
        x.u.gso.type = g.type;
        x.u.gso.pad = 0;
        x.u.gso.features = g.features;
        return x;
    }
    static netif_extra_info_t hash_extra(const FrameHash& h) noexcept {
        netif_extra_info_t x{};
        x.type = XEN_NETIF_EXTRA_TYPE_HASH;
        x.flags = 0;
        x.u.hash.type = h.type;
        x.u.hash.algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
        std::memcpy(x.u.hash.value, &h.value, sizeof h.value); // little-endian on the wire (x86)
        return x;
    }

    BackRing<RxRing>& ring_;
    ProdError fatal_ = ProdError::none;
};

} // namespace netbackd::ring
