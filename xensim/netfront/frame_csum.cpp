#include "xensim/netfront/frame_csum.hpp"

#include <cstdint>

#include "xensim/netfront/udp_frame.hpp"

namespace netbackd::xensim {

namespace {

unsigned u8(std::span<const std::byte> f, std::size_t i) noexcept { return std::to_integer<unsigned>(f[i]); }
unsigned u16(std::span<const std::byte> f, std::size_t i) noexcept { return u8(f, i) << 8 | u8(f, i + 1); }

} // namespace

bool fill_l4_checksum(std::span<std::byte> f) noexcept {
    if (f.size() < 14 + 20) return false;
    const unsigned ethertype = u16(f, 12);
    std::size_t l4 = 0;
    std::size_t l4_len = 0;
    unsigned proto = 0;
    std::uint32_t pseudo = 0;
    if (ethertype == 0x0800) {
        const std::size_t ihl = (u8(f, 14) & 0x0f) * 4u;
        const std::size_t total = u16(f, 16);
        const bool fragment = (u16(f, 20) & 0x3fff) != 0; // MF or an offset
        if ((u8(f, 14) >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > f.size() || fragment)
            return false;
        l4 = 14 + ihl;
        l4_len = total - ihl;
        proto = u8(f, 23);
        pseudo = ones_sum(f.subspan(26, 8));
    } else if (ethertype == 0x86dd) {
        if (f.size() < 14 + 40 || (u8(f, 14) >> 4) != 6) return false;
        l4 = 14 + 40;
        l4_len = u16(f, 18);
        proto = u8(f, 20);
        if (l4 + l4_len > f.size()) return false;
        pseudo = ones_sum(f.subspan(22, 32));
    } else {
        return false;
    }
    const std::size_t field = proto == 6 ? 16 : proto == 17 ? 6 : 0;
    if (field == 0 || l4_len < field + 2) return false;
    pseudo += proto + static_cast<std::uint32_t>(l4_len >> 16) + static_cast<std::uint32_t>(l4_len & 0xffff);
    const auto seg = f.subspan(l4, l4_len);
    seg[field] = std::byte{0};
    seg[field + 1] = std::byte{0};
    auto c = static_cast<std::uint16_t>(~ones_sum(seg, pseudo));
    if (proto == 17 && c == 0) c = 0xffff; // 0 means "no checksum" for UDP
    seg[field] = static_cast<std::byte>(c >> 8);
    seg[field + 1] = static_cast<std::byte>(c & 0xff);
    return true;
}

} // namespace netbackd::xensim
