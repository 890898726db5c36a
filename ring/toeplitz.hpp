// The Toeplitz hash of netif.h's "Hash algorithms" section, and the header fields it runs over
// for each XEN_NETIF_CTRL_HASH_TYPE_* (netif.h "Hash types"): what the backend computes for a
// frame to the guest when the guest enabled hashing on its control ring.
//
// Pure code: no I/O, no allocation. Frames are read only within the bytes given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <xen/io/netif.h>

namespace netbackd::ring {

// The 32-bit window of the key starting at each bit of the input: netif.h's shift-register
// definition, one input byte at a time. Key bytes past the key's end are zero.
constexpr std::uint32_t toeplitz_hash(std::span<const std::uint8_t> key,
                                      std::span<const std::uint8_t> data) noexcept {
    auto key_at = [&](std::size_t i) -> std::uint64_t { return i < key.size() ? key[i] : 0; };
    std::uint64_t window = 0; // key bits [bit, bit + 64) in the top of the word
    for (std::size_t i = 0; i < 8; ++i) window = (window << 8) | key_at(i);
    std::uint64_t hash = 0;
    std::size_t next = 8;
    for (const std::uint8_t byte : data) {
        for (int bit = 7; bit >= 0; --bit) {
            if ((byte >> bit) & 1u) hash ^= window;
            window <<= 1;
        }
        window |= key_at(next++);
    }
    return static_cast<std::uint32_t>(hash >> 32);
}

// Which bytes of a frame were hashed and how: the type is the bit number
// (_XEN_NETIF_CTRL_HASH_TYPE_*) that goes into XEN_NETIF_EXTRA_TYPE_HASH's htype.
struct FrameHash {
    std::uint32_t value = 0;
    std::uint8_t type = 0;
};

// The hash input of an Ethernet frame (one 802.1Q tag allowed) for the enabled hash types,
// choosing the maximal type as netif.h says: IPv4/IPv6 + TCP ports for a TCP segment (not a
// non-first fragment) when the TCP type is enabled, else the addresses alone when the plain
// type is enabled. nullopt when no enabled type applies (or the headers are not all in `frame`).
struct HashInput {
    std::array<std::uint8_t, 36> bytes{};
    std::uint8_t len = 0;
    std::uint8_t type = 0;
    std::span<const std::uint8_t> view() const noexcept { return {bytes.data(), len}; }
};

inline std::optional<HashInput> hash_input(std::uint32_t flags,
                                           std::span<const std::uint8_t> frame) noexcept {
    auto be16 = [&](std::size_t at) { return static_cast<std::uint16_t>(frame[at] << 8 | frame[at + 1]); };
    std::size_t l3 = 14;
    if (frame.size() < l3) return std::nullopt;
    std::uint16_t ethertype = be16(12);
    if (ethertype == 0x8100) {
        l3 += 4;
        if (frame.size() < l3) return std::nullopt;
        ethertype = be16(16);
    }
    HashInput in;
    auto put = [&](std::size_t at, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) in.bytes[in.len++] = frame[at + i];
    };
    constexpr std::uint8_t kTcp = 6;
    if (ethertype == 0x0800) {
        if (frame.size() < l3 + 20 || (frame[l3] >> 4) != 4) return std::nullopt;
        const std::size_t ihl = std::size_t{frame[l3] & 0x0fu} * 4;
        const bool later_fragment = (be16(l3 + 6) & 0x1fff) != 0;
        const bool tcp =
            ihl >= 20 && frame[l3 + 9] == kTcp && !later_fragment && frame.size() >= l3 + ihl + 4;
        if (tcp && (flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP) != 0) {
            put(l3 + 12, 8);
            put(l3 + ihl, 4);
            in.type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
            return in;
        }
        if ((flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4) == 0) return std::nullopt;
        put(l3 + 12, 8);
        in.type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4;
        return in;
    }
    if (ethertype == 0x86dd) {
        if (frame.size() < l3 + 40 || (frame[l3] >> 4) != 6) return std::nullopt;
        // Only a TCP header right after the fixed header counts (no extension headers walked).
        const bool tcp = frame[l3 + 6] == kTcp && frame.size() >= l3 + 44;
        if (tcp && (flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP) != 0) {
            put(l3 + 8, 32);
            put(l3 + 40, 4);
            in.type = _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
            return in;
        }
        if ((flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6) == 0) return std::nullopt;
        put(l3 + 8, 32);
        in.type = _XEN_NETIF_CTRL_HASH_TYPE_IPV6;
        return in;
    }
    return std::nullopt;
}

} // namespace netbackd::ring
