// One exception type for the slow-path DPDK calls (EAL start, pools, port set-up), carrying the
// errno DPDK reported so that callers can tell "busy" from "absent" from "refused".
#pragma once

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace netbackd::pmd {

class DpdkError : public std::runtime_error {
public:
    DpdkError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

// The MTU asked of a port is outside what the device takes; the caller names its config key.
class MtuError : public DpdkError {
public:
    MtuError(const std::string& what, std::uint16_t min_mtu, std::uint16_t max_mtu)
        : DpdkError(what, EINVAL), min_mtu(min_mtu), max_mtu(max_mtu) {}
    std::uint16_t min_mtu;
    std::uint16_t max_mtu;
};

} // namespace netbackd::pmd
