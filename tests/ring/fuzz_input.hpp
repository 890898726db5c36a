// What the ring fuzz targets share: a page-aligned ring page, a check that crashes the run (so
// libFuzzer records the input), and little-endian reads of the input header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ring/netif_ring.hpp"

namespace netbackd::ring::fuzz {

struct alignas(kPageSize) PageBuf {
    std::array<std::byte, kPageSize> bytes{};
};

inline void require(bool ok) {
    if (!ok) std::abort();
}

inline std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
           std::uint32_t{p[3]} << 24;
}

} // namespace netbackd::ring::fuzz
