// Strict parsers for the xenstore values a vif's handshake reads. Anything a guest or a
// toolstack may write is treated as hostile: no whitespace, no signs, no trailing junk,
// no silent truncation. Errors say what was expected, so callers can name key and value.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "backend/control/xenbus_state.hpp"

namespace netbackd::control {

template <class T>
class Parsed {
public:
    static Parsed ok(T value) { return Parsed(std::move(value), {}); }
    static Parsed fail(std::string why) { return Parsed(std::nullopt, std::move(why)); }

    explicit operator bool() const noexcept { return value_.has_value(); }
    const T& value() const { return value_.value(); }
    const T& operator*() const { return value_.value(); }
    // Why parsing failed ("not a decimal number", "above 8", ...).
    const std::string& error() const noexcept { return error_; }

private:
    Parsed(std::optional<T> v, std::string e) : value_(std::move(v)), error_(std::move(e)) {}
    std::optional<T> value_;
    std::string error_;
};

using Mac = std::array<std::uint8_t, 6>;

// Credit-based rate limit as libxl writes it: `bytes` per `usec` microseconds.
struct Rate {
    std::uint64_t bytes = 0;
    std::uint32_t usec = 0;
    bool operator==(const Rate&) const = default;
};

Parsed<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max);
Parsed<XenbusState> parse_state(std::string_view text);
// Feature flags: a decimal number, non-zero meaning on (as xenbus_read_unsigned() reads them).
Parsed<bool> parse_flag(std::string_view text);
// 0 ..< DOMID_FIRST_RESERVED (0x7FF0).
Parsed<std::uint16_t> parse_domid(std::string_view text);
Parsed<std::uint32_t> parse_grant_ref(std::string_view text);
// A port number; 0 is never a valid event channel.
Parsed<std::uint32_t> parse_port(std::string_view text);
// Six colon-separated two-digit hex bytes; multicast addresses are refused (not a station).
Parsed<Mac> parse_mac(std::string_view text);
std::string format_mac(const Mac& mac);
// At most 2^40 bytes (1 TiB) of credit per interval, 8.8 Tbit/s even at a 1 s interval: the
// token bucket holds up to two intervals' worth in 64 bits, which then cannot wrap.
inline constexpr std::uint64_t kMaxRateBytes = std::uint64_t{1} << 40;
// "<bytes>,<usec>" with bytes <= kMaxRateBytes and usec > 0.
Parsed<Rate> parse_rate(std::string_view text);
// 1 ..= max.
Parsed<unsigned> parse_queue_count(std::string_view text, unsigned max);
// 68 (IPv4 minimum) ..= 65535.
Parsed<unsigned> parse_mtu(std::string_view text);

} // namespace netbackd::control
