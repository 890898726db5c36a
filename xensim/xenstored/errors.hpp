// The errors xenstored reports: an errno value travelling as its name in an XS_ERROR reply.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace netbackd::xensim::xs {

// Thrown by the store operations; the dispatcher turns it into an XS_ERROR reply.
class XsError : public std::runtime_error {
public:
    explicit XsError(int code);
    int code() const noexcept { return code_; }

private:
    int code_;
};

[[noreturn]] void fail(int code);

// "ENOENT" for ENOENT; unknown codes map to "EINVAL", as libxenstore would decode them anyway.
std::string_view errno_name(int code) noexcept;

} // namespace netbackd::xensim::xs
