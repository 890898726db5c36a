#include "backend/control/keys.hpp"

#include <charconv>

#include <fmt/format.h>

namespace netbackd::control {

Parsed<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max) {
    if (text.empty()) return Parsed<std::uint64_t>::fail("empty, expected a decimal number");
    // from_chars alone would accept a prefix; every character must be a digit.
    for (char c : text)
        if (c < '0' || c > '9') return Parsed<std::uint64_t>::fail("not a decimal number");
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v > max)
        return Parsed<std::uint64_t>::fail(fmt::format("out of range (max {})", max));
    return Parsed<std::uint64_t>::ok(v);
}

Parsed<XenbusState> parse_state(std::string_view text) {
    auto v = parse_unsigned(text, 8);
    if (!v) return Parsed<XenbusState>::fail("not a xenbus state (0..8): " + v.error());
    return Parsed<XenbusState>::ok(static_cast<XenbusState>(*v));
}

Parsed<bool> parse_flag(std::string_view text) {
    auto v = parse_unsigned(text, UINT32_MAX);
    if (!v) return Parsed<bool>::fail(v.error());
    return Parsed<bool>::ok(*v != 0);
}

Parsed<std::uint16_t> parse_domid(std::string_view text) {
    auto v = parse_unsigned(text, 0x7FEF);
    if (!v) return Parsed<std::uint16_t>::fail("not a domain id: " + v.error());
    return Parsed<std::uint16_t>::ok(static_cast<std::uint16_t>(*v));
}

Parsed<std::uint32_t> parse_grant_ref(std::string_view text) {
    auto v = parse_unsigned(text, UINT32_MAX);
    if (!v) return Parsed<std::uint32_t>::fail("not a grant reference: " + v.error());
    return Parsed<std::uint32_t>::ok(static_cast<std::uint32_t>(*v));
}

Parsed<std::uint32_t> parse_port(std::string_view text) {
    auto v = parse_unsigned(text, UINT32_MAX);
    if (!v) return Parsed<std::uint32_t>::fail("not an event channel port: " + v.error());
    if (*v == 0) return Parsed<std::uint32_t>::fail("event channel port 0 is reserved");
    return Parsed<std::uint32_t>::ok(static_cast<std::uint32_t>(*v));
}

namespace {
int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
} // namespace

Parsed<Mac> parse_mac(std::string_view text) {
    if (text.size() != 17) return Parsed<Mac>::fail("not a MAC address (want xx:xx:xx:xx:xx:xx)");
    Mac mac{};
    for (std::size_t i = 0; i < 6; ++i) {
        const int hi = hex_digit(text[i * 3]);
        const int lo = hex_digit(text[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
            return Parsed<Mac>::fail("not a MAC address (want xx:xx:xx:xx:xx:xx)");
        mac[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    if (mac[0] & 0x01) return Parsed<Mac>::fail("multicast MAC address cannot be a guest's address");
    return Parsed<Mac>::ok(mac);
}

std::string format_mac(const Mac& m) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

Parsed<Rate> parse_rate(std::string_view text) {
    const auto comma = text.find(',');
    if (comma == std::string_view::npos) return Parsed<Rate>::fail("not a rate (want <bytes>,<usec>)");
    auto bytes = parse_unsigned(text.substr(0, comma), UINT64_MAX);
    auto usec = parse_unsigned(text.substr(comma + 1), UINT32_MAX);
    if (!bytes || !usec)
        return Parsed<Rate>::fail("not a rate (want <bytes>,<usec>): " + (bytes ? usec : bytes).error());
    if (*usec == 0) return Parsed<Rate>::fail("rate interval of 0 usec");
    if (*bytes > kMaxRateBytes)
        return Parsed<Rate>::fail(
            fmt::format("{} bytes per interval above the maximum {}", *bytes, kMaxRateBytes));
    return Parsed<Rate>::ok(Rate{*bytes, static_cast<std::uint32_t>(*usec)});
}

Parsed<unsigned> parse_queue_count(std::string_view text, unsigned max) {
    auto v = parse_unsigned(text, UINT32_MAX);
    if (!v) return Parsed<unsigned>::fail(v.error());
    if (*v == 0 || *v > max)
        return Parsed<unsigned>::fail(fmt::format("queue count {} outside 1..{}", *v, max));
    return Parsed<unsigned>::ok(static_cast<unsigned>(*v));
}

Parsed<unsigned> parse_mtu(std::string_view text) {
    auto v = parse_unsigned(text, 65535);
    if (!v) return Parsed<unsigned>::fail(v.error());
    if (*v < 68) return Parsed<unsigned>::fail(fmt::format("MTU {} below 68", *v));
    return Parsed<unsigned>::ok(static_cast<unsigned>(*v));
}

} // namespace netbackd::control
