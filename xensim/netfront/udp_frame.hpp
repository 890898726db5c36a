// Fixed-size Ethernet/IPv4/UDP frames for the generator: built once, sent many times.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ring/tx_packet.hpp"

namespace netbackd::xensim {

using ring::MacAddr;

inline constexpr std::size_t kUdpFrameHeaders = 14 + 20 + 8;

struct UdpFrameSpec {
    MacAddr dst{0x02, 0, 0, 0, 0, 0x01};
    MacAddr src{};
    std::array<std::uint8_t, 4> src_ip{192, 0, 2, 1};    // TEST-NET-1
    std::array<std::uint8_t, 4> dst_ip{198, 51, 100, 1}; // TEST-NET-2
    std::uint16_t src_port = 5001;
    std::uint16_t dst_port = 9; // discard
    std::size_t size = 60;      // whole frame, without FCS
    // As a stack with checksum offload leaves it (CHECKSUM_PARTIAL): the UDP checksum field
    // holds only the folded pseudo-header sum, for the backend or NIC to finish.
    bool partial_csum = false;
};

// Writes the frame into out.first(spec.size); false when the size cannot hold the headers or
// does not fit an IPv4 datagram, or out is too small.
bool build_udp_frame(const UdpFrameSpec& spec, std::span<std::byte> out) noexcept;

// "aa:bb:cc:dd:ee:ff"
std::optional<MacAddr> parse_mac(std::string_view text) noexcept;

// RFC 1071 sum over data, folded but not inverted, starting from `sum`.
std::uint16_t ones_sum(std::span<const std::byte> data, std::uint32_t sum = 0) noexcept;

} // namespace netbackd::xensim
