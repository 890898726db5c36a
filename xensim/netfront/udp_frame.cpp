#include "xensim/netfront/udp_frame.hpp"

#include <charconv>

namespace netbackd::xensim {

namespace {

void put16(std::span<std::byte> out, std::size_t at, std::uint16_t v) noexcept {
    out[at] = static_cast<std::byte>(v >> 8);
    out[at + 1] = static_cast<std::byte>(v & 0xff);
}

} // namespace

std::uint16_t ones_sum(std::span<const std::byte> data, std::uint32_t sum) noexcept {
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2)
        sum += (std::to_integer<std::uint32_t>(data[i]) << 8) | std::to_integer<std::uint32_t>(data[i + 1]);
    if (i < data.size()) sum += std::to_integer<std::uint32_t>(data[i]) << 8;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

bool build_udp_frame(const UdpFrameSpec& s, std::span<std::byte> out) noexcept {
    if (s.size < kUdpFrameHeaders || s.size - 14 > 0xffff || out.size() < s.size) return false;
    const auto f = out.first(s.size);
    for (std::size_t i = 0; i < 6; ++i) {
        f[i] = static_cast<std::byte>(s.dst[i]);
        f[6 + i] = static_cast<std::byte>(s.src[i]);
    }
    put16(f, 12, 0x0800);

    const auto ip = f.subspan(14, 20);
    const auto ip_len = static_cast<std::uint16_t>(s.size - 14);
    ip[0] = std::byte{0x45};
    ip[1] = std::byte{0};
    put16(ip, 2, ip_len);
    put16(ip, 4, 0);      // id
    put16(ip, 6, 0x4000); // DF: never fragmented on the way
    ip[8] = std::byte{64};
    ip[9] = std::byte{17};
    put16(ip, 10, 0);
    for (std::size_t i = 0; i < 4; ++i) {
        ip[12 + i] = static_cast<std::byte>(s.src_ip[i]);
        ip[16 + i] = static_cast<std::byte>(s.dst_ip[i]);
    }
    put16(ip, 10, static_cast<std::uint16_t>(~ones_sum(ip)));

    const auto udp = f.subspan(34);
    const auto udp_len = static_cast<std::uint16_t>(s.size - 34);
    put16(udp, 0, s.src_port);
    put16(udp, 2, s.dst_port);
    put16(udp, 4, udp_len);
    put16(udp, 6, 0);
    // A payload that changes byte by byte, so truncation or reordering shows in a compare.
    for (std::size_t i = 8; i < udp.size(); ++i) udp[i] = static_cast<std::byte>(i * 7 + 3);

    std::uint32_t pseudo = ones_sum(ip.subspan(12, 8));
    pseudo += 17u + udp_len;
    if (s.partial_csum) {
        put16(udp, 6, ones_sum({}, pseudo));
    } else {
        auto c = static_cast<std::uint16_t>(~ones_sum(udp, pseudo));
        put16(udp, 6, c == 0 ? 0xffff : c); // 0 would mean "no checksum"
    }
    return true;
}

std::optional<MacAddr> parse_mac(std::string_view text) noexcept {
    MacAddr m{};
    if (text.size() != 17) return std::nullopt;
    for (std::size_t i = 0; i < 6; ++i) {
        if (i > 0 && text[3 * i - 1] != ':') return std::nullopt;
        const char* b = text.data() + 3 * i;
        const auto r = std::from_chars(b, b + 2, m[i], 16);
        if (r.ec != std::errc{} || r.ptr != b + 2) return std::nullopt;
    }
    return m;
}

} // namespace netbackd::xensim
