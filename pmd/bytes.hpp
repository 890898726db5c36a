// Big-endian loads and stores on byte spans: wire headers are read field by field so that no
// packed struct or misaligned pointer cast is ever needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace netbackd::pmd {

inline std::uint8_t load_u8(std::span<const std::byte> b, std::size_t off) noexcept {
    return std::to_integer<std::uint8_t>(b[off]);
}

inline std::uint16_t load_be16(std::span<const std::byte> b, std::size_t off) noexcept {
    return static_cast<std::uint16_t>((load_u8(b, off) << 8) | load_u8(b, off + 1));
}

inline std::uint32_t load_be32(std::span<const std::byte> b, std::size_t off) noexcept {
    return (std::uint32_t{load_be16(b, off)} << 16) | load_be16(b, off + 2);
}

inline void store_be16(std::span<std::byte> b, std::size_t off, std::uint16_t v) noexcept {
    b[off] = static_cast<std::byte>(v >> 8);
    b[off + 1] = static_cast<std::byte>(v & 0xff);
}

inline void store_be32(std::span<std::byte> b, std::size_t off, std::uint32_t v) noexcept {
    store_be16(b, off, static_cast<std::uint16_t>(v >> 16));
    store_be16(b, off + 2, static_cast<std::uint16_t>(v & 0xffff));
}

} // namespace netbackd::pmd
