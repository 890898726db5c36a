#include "tests/support/frames.hpp"

#include "pmd/bytes.hpp"

namespace netbackd::pmd::test {

std::byte payload_byte(std::size_t i, std::uint8_t seed) {
    return static_cast<std::byte>((i * 7 + seed + (i >> 8)) & 0xff);
}

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (int v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

std::vector<std::byte> build_frame(const FrameSpec& s) {
    const std::size_t l4_hdr = s.proto == 6 ? 20 : 8;
    const std::size_t ext = s.ip_version == 6 && s.ipv6_hop_by_hop ? 8 : 0;
    const std::size_t l3_hdr = (s.ip_version == 4 ? 20 : 40) + ext;
    const std::size_t l2 = 14 + 4 * static_cast<std::size_t>(s.vlan_tags);
    std::vector<std::byte> f(l2 + l3_hdr + l4_hdr + s.payload);
    const std::span<std::byte> b(f);

    // Locally administered MACs.
    for (std::size_t i = 0; i < 6; ++i) {
        b[i] = static_cast<std::byte>(i == 0 ? 0x02 : 0x10 + i);
        b[6 + i] = static_cast<std::byte>(i == 0 ? 0x02 : 0x20 + i);
    }
    std::size_t off = 12;
    for (int t = 0; t < s.vlan_tags; ++t) {
        store_be16(b, off, t == 0 && s.vlan_tags == 2 ? 0x88a8 : 0x8100);
        store_be16(b, off + 2, static_cast<std::uint16_t>(100 + t));
        off += 4;
    }
    store_be16(b, off, s.ip_version == 4 ? 0x0800 : 0x86dd);

    const std::size_t ip = l2;
    const std::size_t l4 = ip + l3_hdr;
    const std::size_t l4_total = l4_hdr + s.payload;
    if (s.ip_version == 4) {
        b[ip] = std::byte{0x45};
        store_be16(b, ip + 2, static_cast<std::uint16_t>(20 + l4_total));
        store_be16(b, ip + 4, s.ip_id);
        store_be16(b, ip + 6, 0x4000); // DF
        b[ip + 8] = std::byte{64};
        b[ip + 9] = static_cast<std::byte>(s.proto);
        store_be32(b, ip + 12, 0x0a000001); // 10.0.0.1
        store_be32(b, ip + 16, 0x0a000002); // 10.0.0.2
    } else {
        b[ip] = std::byte{0x60};
        store_be16(b, ip + 4, static_cast<std::uint16_t>(ext + l4_total));
        b[ip + 6] = static_cast<std::byte>(ext != 0 ? 0 : s.proto);
        b[ip + 7] = std::byte{64};
        store_be32(b, ip + 8, 0xfd000000); // fd00::1
        store_be32(b, ip + 20, 1);
        store_be32(b, ip + 24, 0xfd000000); // fd00::2
        store_be32(b, ip + 36, 2);
        if (ext != 0) {
            b[ip + 40] = static_cast<std::byte>(s.proto);
            b[ip + 41] = std::byte{0}; // (0 + 1) * 8 bytes; the rest is Pad options
            b[ip + 42] = std::byte{1}; // PadN, 4 bytes of padding
            b[ip + 43] = std::byte{4};
        }
    }
    if (s.proto == 6) {
        store_be16(b, l4, 40000);
        store_be16(b, l4 + 2, 5001);
        store_be32(b, l4 + 4, s.seq);
        store_be32(b, l4 + 8, 77);
        b[l4 + 12] = std::byte{0x50};
        b[l4 + 13] = static_cast<std::byte>(s.tcp_flags);
        store_be16(b, l4 + 14, 0xffff);
    } else {
        store_be16(b, l4, 40000);
        store_be16(b, l4 + 2, 5001);
        store_be16(b, l4 + 4, static_cast<std::uint16_t>(l4_total));
    }
    for (std::size_t i = 0; i < s.payload; ++i) {
        b[l4 + l4_hdr + i] = payload_byte(i, s.payload_seed);
    }
    return f;
}

} // namespace netbackd::pmd::test
