// Software checksums for ports that offer no checksum offload, and for frames whose checksum a
// guest left blank (netif csum_blank) or whose checksum we must confirm (data_validated).
// Pure functions over bytes: no DPDK, no EAL, so they are testable on their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace netbackd::pmd {

// Ones' complement sum that can be fed in pieces of any length: a piece that ends on an odd
// byte leaves the next piece starting in the middle of a 16-bit word, as happens when a packet
// spans several mbuf segments.
class ChecksumAccumulator {
public:
    void add(std::span<const std::byte> bytes) noexcept;
    // A 16-bit word in host order, counted as if it were stored big-endian on the wire.
    void add_word(std::uint16_t word) noexcept;
    // Folded sum (not complemented). ~fold() is what goes into a header.
    std::uint16_t fold() const noexcept;
    // What to store in a checksum field (host order, to be written big-endian).
    std::uint16_t checksum() const noexcept { return static_cast<std::uint16_t>(~fold()); }

private:
    std::uint64_t sum_ = 0;
    bool odd_ = false;
};

// RFC 1071 checksum of a contiguous block, ready to be stored big-endian.
std::uint16_t internet_checksum(std::span<const std::byte> bytes) noexcept;

// IPv4 header checksum; the header's own checksum field (bytes 10-11) is treated as zero.
// header.size() must be the IHL length (20..60).
std::uint16_t ipv4_header_checksum(std::span<const std::byte> header) noexcept;

// Pseudo-header sums (RFC 793/768 for IPv4, RFC 8200 section 8.1 for IPv6).
void add_ipv4_pseudo_header(ChecksumAccumulator& acc, std::span<const std::byte, 4> src,
                            std::span<const std::byte, 4> dst, std::uint8_t protocol,
                            std::uint32_t l4_length) noexcept;
void add_ipv6_pseudo_header(ChecksumAccumulator& acc, std::span<const std::byte, 16> src,
                            std::span<const std::byte, 16> dst, std::uint8_t next_header,
                            std::uint32_t l4_length) noexcept;

inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;

// Where the headers of an Ethernet frame sit. Lengths are in bytes.
struct FrameLayout {
    std::size_t l2_len = 0;      // Ethernet header plus any 802.1Q/802.1ad tags
    std::size_t l3_len = 0;      // IPv4 header with options, or IPv6 header with extension headers
    std::size_t l4_len = 0;      // TCP header with options, or 8 for UDP; 0 for other protocols
    std::size_t l4_total = 0;    // L4 header plus payload, from the IP length fields
    std::uint8_t ip_version = 0; // 4 or 6
    std::uint8_t l4_proto = 0;   // IPPROTO_* of the transport header
    bool fragment = false;       // non-first or first fragment: no L4 checksum can be done

    std::size_t l4_offset() const noexcept { return l2_len + l3_len; }
    bool is_tcp() const noexcept { return l4_proto == kIpProtoTcp; }
    bool is_udp() const noexcept { return l4_proto == kIpProtoUdp; }
};

// Parses Ethernet (up to two VLAN tags), IPv4/IPv6 (with the common IPv6 extension headers) and
// TCP/UDP. std::nullopt for anything that is not IP or is truncated. `headers` needs to hold the
// headers only; the payload may live elsewhere (another mbuf segment).
std::optional<FrameLayout> parse_frame(std::span<const std::byte> headers) noexcept;

// Fills the IPv4 header checksum and the TCP/UDP checksum of a contiguous frame, ignoring
// whatever the checksum fields held (a full sum or a pseudo-header seed). Returns false, and
// leaves the frame untouched, when the frame is not TCP/UDP over IP, is a fragment or is shorter
// than its IP length says.
bool fill_checksums(std::span<std::byte> frame) noexcept;

enum class ChecksumVerdict {
    valid,         // IPv4 header (if any) and the TCP/UDP checksum are correct
    invalid,       // some checksum is wrong
    not_checkable, // not TCP/UDP over IP, a fragment, or truncated
};

// Checks a received frame before telling a guest "data_validated".
ChecksumVerdict verify_checksums(std::span<const std::byte> frame) noexcept;

// The same over a frame split into pieces (mbuf segments); the headers must all sit in the first
// piece. At most kMaxPieces pieces are accepted, so that no allocation happens per packet.
inline constexpr std::size_t kMaxPieces = 64;
bool fill_checksums(std::span<const std::span<std::byte>> pieces) noexcept;
ChecksumVerdict verify_checksums(std::span<const std::span<const std::byte>> pieces) noexcept;

} // namespace netbackd::pmd
