// Shared fixtures for the ring tests: page-aligned pages and a frontend/backend pair per ring.
#pragma once

#include <array>
#include <cstddef>
#include <memory>

#include "ring/netif_ring.hpp"

namespace netbackd::ring::test {

struct alignas(kPageSize) PageBuf {
    std::array<std::byte, kPageSize> bytes{};
};

// One shared ring page with both ends attached at start (so tests can sit right below 2^32).
template <class Traits>
struct RingPair {
    explicit RingPair(RingIdx start = 0)
        : page(std::make_unique<PageBuf>()),
          init((init_shared_ring<Traits>(page->bytes, start), true)),
          front(page->bytes, start),
          back(page->bytes, start) {}

    SharedRing<Traits> shared() const { return SharedRing<Traits>(page->bytes); }

    std::unique_ptr<PageBuf> page;
    bool init;
    FrontRing<Traits> front;
    BackRing<Traits> back;
};

using TxPair = RingPair<TxRing>;
using RxPair = RingPair<RxRing>;

inline netif_tx_request_t tx_req(grant_ref_t gref, std::uint16_t offset, std::uint16_t flags,
                                 std::uint16_t id, std::uint16_t size) {
    return netif_tx_request_t{gref, offset, flags, id, size};
}

// An extra-info slot padded to a full TX slot.
inline netif_tx_request_t tx_extra(std::uint8_t type, std::uint8_t flags,
                                   std::array<std::uint8_t, 6> payload = {}) {
    std::array<std::uint8_t, sizeof(netif_tx_request_t)> raw{};
    raw[0] = type;
    raw[1] = flags;
    for (std::size_t i = 0; i < payload.size(); ++i) raw[2 + i] = payload[i];
    return std::bit_cast<netif_tx_request_t>(raw);
}

inline netif_tx_request_t gso_extra(std::uint16_t mss, std::uint8_t type, std::uint8_t flags = 0) {
    netif_extra_info_t x{};
    x.type = XEN_NETIF_EXTRA_TYPE_GSO;
    x.flags = flags;
    x.u.gso.size = mss;
    x.u.gso.type = type;
    std::array<std::byte, sizeof(netif_tx_request_t)> raw{};
    std::memcpy(raw.data(), &x, sizeof(x));
    return std::bit_cast<netif_tx_request_t>(raw);
}

} // namespace netbackd::ring::test
