// One exception type for the slow-path DPDK calls (EAL start, pools, port set-up), carrying the
// errno DPDK reported so that callers can tell "busy" from "absent" from "refused".
#pragma once

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

} // namespace netbackd::pmd
