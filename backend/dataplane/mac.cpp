#include "backend/dataplane/mac.hpp"

#include <fmt/format.h>

namespace netbackd::dataplane {

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
} // namespace

std::optional<MacAddr> MacAddr::parse(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 6; ++i) {
        const std::size_t at = i * 3;
        const int hi = hex_value(text[at]);
        const int lo = hex_value(text[at + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        if (i < 5 && text[at + 2] != ':') return std::nullopt;
        v = (v << 8) | static_cast<std::uint64_t>(hi * 16 + lo);
    }
    return MacAddr{v};
}

std::string MacAddr::to_string() const {
    const auto b = bytes();
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

} // namespace netbackd::dataplane
