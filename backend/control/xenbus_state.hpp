// XenbusState as written in the "state" nodes (xen/io/xenbus.h values, stable ABI).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace netbackd::control {

enum class XenbusState : std::uint8_t {
    unknown = 0,
    initialising = 1,
    init_wait = 2,
    initialised = 3,
    connected = 4,
    closing = 5,
    closed = 6,
    reconfiguring = 7,
    reconfigured = 8,
};

constexpr std::string_view to_string(XenbusState s) noexcept {
    switch (s) {
    case XenbusState::unknown: return "Unknown";
    case XenbusState::initialising: return "Initialising";
    case XenbusState::init_wait: return "InitWait";
    case XenbusState::initialised: return "Initialised";
    case XenbusState::connected: return "Connected";
    case XenbusState::closing: return "Closing";
    case XenbusState::closed: return "Closed";
    case XenbusState::reconfiguring: return "Reconfiguring";
    case XenbusState::reconfigured: return "Reconfigured";
    }
    return "?";
}

constexpr int to_int(XenbusState s) noexcept { return static_cast<int>(s); }

} // namespace netbackd::control
