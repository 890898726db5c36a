// Ethernet addresses as one 48-bit integer: compare and hash in one instruction on the fast path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace netbackd::dataplane {

struct MacAddr {
    std::uint64_t bits = 0; // network byte order folded big-endian into the low 48 bits

    static constexpr MacAddr from_bytes(std::span<const std::uint8_t, 6> b) {
        std::uint64_t v = 0;
        for (auto byte : b) v = (v << 8) | byte;
        return MacAddr{v};
    }
    constexpr std::array<std::uint8_t, 6> bytes() const {
        std::array<std::uint8_t, 6> out{};
        for (int i = 5; i >= 0; --i)
            out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * (5 - i)));
        return out;
    }
    // I/G bit: set for broadcast and multicast.
    constexpr bool is_group() const { return (bits >> 40) & 1; }
    constexpr bool is_broadcast() const { return bits == 0xffff'ffff'ffffULL; }
    constexpr bool is_zero() const { return bits == 0; }
    constexpr bool operator==(const MacAddr&) const = default;

    // Accepts "aa:bb:cc:dd:ee:ff" (case-insensitive); nothing else.
    static std::optional<MacAddr> parse(std::string_view text);
    std::string to_string() const;
};

} // namespace netbackd::dataplane
