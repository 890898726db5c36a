#include "xensim/xenstored/errors.hpp"

#include <cerrno>

#include <xen/io/xs_wire.h>

namespace netbackd::xensim::xs {

XsError::XsError(int code) : std::runtime_error(std::string(errno_name(code))), code_(code) {}

void fail(int code) { throw XsError(code); }

std::string_view errno_name(int code) noexcept {
    for (const auto& e : xsd_errors)
        if (e.errnum == code) return e.errstring;
    return "EINVAL";
}

} // namespace netbackd::xensim::xs
