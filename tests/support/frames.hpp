// Builders for test frames: Ethernet (optionally VLAN-tagged) + IPv4/IPv6 + TCP/UDP, with a
// deterministic payload and the checksum fields left zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace netbackd::pmd::test {

struct FrameSpec {
    int ip_version = 4;
    std::uint8_t proto = 6; // 6 TCP, 17 UDP
    std::size_t payload = 0;
    int vlan_tags = 0;
    std::uint32_t seq = 1000;
    std::uint8_t tcp_flags = 0x18; // PSH|ACK
    std::uint16_t ip_id = 0x1234;
    bool ipv6_hop_by_hop = false; // put an 8-byte hop-by-hop header before TCP/UDP
    std::uint8_t payload_seed = 3;
};

std::vector<std::byte> build_frame(const FrameSpec& spec);

// Byte i of a payload built with `seed`.
std::byte payload_byte(std::size_t i, std::uint8_t seed);

std::vector<std::byte> bytes_of(std::initializer_list<int> values);

} // namespace netbackd::pmd::test
