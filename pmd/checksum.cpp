#include "pmd/checksum.hpp"

#include <array>

#include "pmd/bytes.hpp"

namespace netbackd::pmd {

namespace {

constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr std::uint16_t kEtherTypeVlan = 0x8100;
constexpr std::uint16_t kEtherTypeQinQ = 0x88a8;
constexpr std::size_t kMaxVlanTags = 2;

constexpr std::uint8_t kIpv6HopByHop = 0;
constexpr std::uint8_t kIpv6Routing = 43;
constexpr std::uint8_t kIpv6Fragment = 44;
constexpr std::uint8_t kIpv6Auth = 51;
constexpr std::uint8_t kIpv6DestOpts = 60;

constexpr std::size_t kTcpChecksumOffset = 16;
constexpr std::size_t kUdpChecksumOffset = 6;
constexpr std::size_t kIpv4ChecksumOffset = 10;

std::size_t l4_checksum_offset(const FrameLayout& l) noexcept {
    return l.l4_offset() + (l.is_tcp() ? kTcpChecksumOffset : kUdpChecksumOffset);
}

// Adds bytes [offset, offset+length) of the concatenated pieces; false if the pieces are short.
template <typename Piece>
bool add_range(ChecksumAccumulator& acc, std::span<const Piece> pieces, std::size_t offset,
               std::size_t length) noexcept {
    for (const auto& piece : pieces) {
        if (length == 0) {
            break;
        }
        if (offset >= piece.size()) {
            offset -= piece.size();
            continue;
        }
        const std::size_t take = std::min(piece.size() - offset, length);
        acc.add(std::span<const std::byte>(piece).subspan(offset, take));
        length -= take;
        offset = 0;
    }
    return length == 0;
}

void add_pseudo_header(ChecksumAccumulator& acc, std::span<const std::byte> head, const FrameLayout& l) {
    const auto l4_total = static_cast<std::uint32_t>(l.l4_total);
    if (l.ip_version == 4) {
        add_ipv4_pseudo_header(acc, head.subspan(l.l2_len + 12).first<4>(),
                               head.subspan(l.l2_len + 16).first<4>(), l.l4_proto, l4_total);
    } else {
        add_ipv6_pseudo_header(acc, head.subspan(l.l2_len + 8).first<16>(),
                               head.subspan(l.l2_len + 24).first<16>(), l.l4_proto, l4_total);
    }
}

template <typename Piece>
std::size_t total_size(std::span<const Piece> pieces) noexcept {
    std::size_t n = 0;
    for (const auto& p : pieces) {
        n += p.size();
    }
    return n;
}

// The layout, if the frame is TCP/UDP over IP, unfragmented and as long as its IP header says.
template <typename Piece>
std::optional<FrameLayout> checkable_layout(std::span<const Piece> pieces) noexcept {
    if (pieces.empty() || pieces.size() > kMaxPieces) {
        return std::nullopt;
    }
    auto layout = parse_frame(pieces.front());
    if (!layout || layout->fragment || !(layout->is_tcp() || layout->is_udp()) ||
        total_size(pieces) < layout->l4_offset() + layout->l4_total) {
        return std::nullopt;
    }
    return layout;
}

} // namespace

void ChecksumAccumulator::add(std::span<const std::byte> bytes) noexcept {
    std::size_t i = 0;
    const std::size_t n = bytes.size();
    if (odd_ && n > 0) {
        sum_ += load_u8(bytes, 0);
        odd_ = false;
        i = 1;
    }
    for (; i + 1 < n; i += 2) {
        sum_ += load_be16(bytes, i);
    }
    if (i < n) {
        sum_ += std::uint64_t{load_u8(bytes, i)} << 8;
        odd_ = true;
    }
}

// Pseudo-header words are a block of their own: they are summed on the word grid whatever the
// alignment of the data stream is.
void ChecksumAccumulator::add_word(std::uint16_t word) noexcept { sum_ += word; }

std::uint16_t ChecksumAccumulator::fold() const noexcept {
    std::uint64_t s = sum_;
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return static_cast<std::uint16_t>(s);
}

std::uint16_t internet_checksum(std::span<const std::byte> bytes) noexcept {
    ChecksumAccumulator acc;
    acc.add(bytes);
    return acc.checksum();
}

std::uint16_t ipv4_header_checksum(std::span<const std::byte> header) noexcept {
    ChecksumAccumulator acc;
    acc.add(header.first(kIpv4ChecksumOffset));
    acc.add(header.subspan(kIpv4ChecksumOffset + 2));
    return acc.checksum();
}

void add_ipv4_pseudo_header(ChecksumAccumulator& acc, std::span<const std::byte, 4> src,
                            std::span<const std::byte, 4> dst, std::uint8_t protocol,
                            std::uint32_t l4_length) noexcept {
    acc.add(src);
    acc.add(dst);
    acc.add_word(protocol);
    acc.add_word(static_cast<std::uint16_t>(l4_length));
}

void add_ipv6_pseudo_header(ChecksumAccumulator& acc, std::span<const std::byte, 16> src,
                            std::span<const std::byte, 16> dst, std::uint8_t next_header,
                            std::uint32_t l4_length) noexcept {
    acc.add(src);
    acc.add(dst);
    acc.add_word(static_cast<std::uint16_t>(l4_length >> 16));
    acc.add_word(static_cast<std::uint16_t>(l4_length & 0xffff));
    acc.add_word(next_header);
}

std::optional<FrameLayout> parse_frame(std::span<const std::byte> b) noexcept {
    FrameLayout l;
    if (b.size() < 14) {
        return std::nullopt;
    }
    std::uint16_t type = load_be16(b, 12);
    l.l2_len = 14;
    for (std::size_t tags = 0; tags < kMaxVlanTags && (type == kEtherTypeVlan || type == kEtherTypeQinQ);
         ++tags) {
        if (b.size() < l.l2_len + 4) {
            return std::nullopt;
        }
        type = load_be16(b, l.l2_len + 2);
        l.l2_len += 4;
    }

    const std::size_t l3 = l.l2_len;
    if (type == kEtherTypeIpv4) {
        if (b.size() < l3 + 20 || (load_u8(b, l3) >> 4) != 4) {
            return std::nullopt;
        }
        const std::size_t ihl = std::size_t{load_u8(b, l3) & 0x0fu} * 4;
        const std::size_t total = load_be16(b, l3 + 2);
        if (ihl < 20 || b.size() < l3 + ihl || total < ihl) {
            return std::nullopt;
        }
        l.ip_version = 4;
        l.l3_len = ihl;
        l.l4_total = total - ihl;
        l.l4_proto = load_u8(b, l3 + 9);
        // MF set or a non-zero offset: this is a piece of a datagram.
        l.fragment = (load_be16(b, l3 + 6) & 0x3fff) != 0;
    } else if (type == kEtherTypeIpv6) {
        if (b.size() < l3 + 40 || (load_u8(b, l3) >> 4) != 6) {
            return std::nullopt;
        }
        const std::size_t payload = load_be16(b, l3 + 4);
        std::uint8_t next = load_u8(b, l3 + 6);
        std::size_t off = l3 + 40;
        for (;;) {
            if (next == kIpv6Fragment) {
                if (b.size() < off + 8) {
                    return std::nullopt;
                }
                l.fragment = true;
                next = load_u8(b, off);
                off += 8;
            } else if (next == kIpv6HopByHop || next == kIpv6Routing || next == kIpv6DestOpts ||
                       next == kIpv6Auth) {
                if (b.size() < off + 2) {
                    return std::nullopt;
                }
                const std::size_t len = next == kIpv6Auth ? (std::size_t{load_u8(b, off + 1)} + 2) * 4
                                                          : (std::size_t{load_u8(b, off + 1)} + 1) * 8;
                next = load_u8(b, off);
                off += len;
            } else {
                break;
            }
            if (b.size() < off) {
                return std::nullopt;
            }
        }
        l.ip_version = 6;
        l.l3_len = off - l3;
        if (payload < l.l3_len - 40) {
            return std::nullopt;
        }
        l.l4_total = payload - (l.l3_len - 40);
        l.l4_proto = next;
    } else {
        return std::nullopt;
    }

    if (l.fragment) {
        return l;
    }
    const std::size_t l4 = l.l4_offset();
    if (l.is_tcp()) {
        if (b.size() < l4 + 20 || l.l4_total < 20) {
            return std::nullopt;
        }
        const std::size_t doff = std::size_t{load_u8(b, l4 + 12)} / 16 * 4;
        if (doff < 20 || b.size() < l4 + doff || l.l4_total < doff) {
            return std::nullopt;
        }
        l.l4_len = doff;
    } else if (l.is_udp()) {
        if (b.size() < l4 + 8 || l.l4_total < 8) {
            return std::nullopt;
        }
        l.l4_len = 8;
    }
    return l;
}

bool fill_checksums(std::span<const std::span<std::byte>> pieces) noexcept {
    const auto layout = checkable_layout(pieces);
    if (!layout) {
        return false;
    }
    const std::span<std::byte> head = pieces.front();
    if (layout->ip_version == 4) {
        const auto ip = head.subspan(layout->l2_len, layout->l3_len);
        store_be16(ip, kIpv4ChecksumOffset, ipv4_header_checksum(ip));
    }
    const std::size_t field = l4_checksum_offset(*layout);
    store_be16(head, field, 0);
    ChecksumAccumulator acc;
    add_pseudo_header(acc, head, *layout);
    add_range(acc, pieces, layout->l4_offset(), layout->l4_total);
    std::uint16_t sum = acc.checksum();
    // In UDP a zero field means "no checksum", so a computed zero is sent as its other form.
    if (layout->is_udp() && sum == 0) {
        sum = 0xffff;
    }
    store_be16(head, field, sum);
    return true;
}

ChecksumVerdict verify_checksums(std::span<const std::span<const std::byte>> pieces) noexcept {
    const auto layout = checkable_layout(pieces);
    if (!layout) {
        return ChecksumVerdict::not_checkable;
    }
    const std::span<const std::byte> head = pieces.front();
    if (layout->ip_version == 4 && internet_checksum(head.subspan(layout->l2_len, layout->l3_len)) != 0) {
        return ChecksumVerdict::invalid;
    }
    const std::size_t field = l4_checksum_offset(*layout);
    if (layout->is_udp() && load_be16(head, field) == 0) {
        // IPv4 UDP may go without a checksum; IPv6 UDP may not (RFC 8200 section 8.1).
        return layout->ip_version == 4 ? ChecksumVerdict::valid : ChecksumVerdict::invalid;
    }
    ChecksumAccumulator acc;
    add_pseudo_header(acc, head, *layout);
    add_range(acc, pieces, layout->l4_offset(), layout->l4_total);
    return acc.checksum() == 0 ? ChecksumVerdict::valid : ChecksumVerdict::invalid;
}

bool fill_checksums(std::span<std::byte> frame) noexcept {
    const std::array<std::span<std::byte>, 1> one{frame};
    return fill_checksums(std::span<const std::span<std::byte>>(one));
}

ChecksumVerdict verify_checksums(std::span<const std::byte> frame) noexcept {
    const std::array<std::span<const std::byte>, 1> one{frame};
    return verify_checksums(std::span<const std::span<const std::byte>>(one));
}

} // namespace netbackd::pmd
