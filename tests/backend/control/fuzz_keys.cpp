// libFuzzer: every xenstore value parser of the control plane over guest-written bytes. Whatever
// parses must survive a round trip through its canonical text; nothing may crash or throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backend/control/keys.hpp"

using namespace netbackd::control;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto v = parse_unsigned(text, 0xffffffffffffffffULL)) {
        auto again = parse_unsigned(std::to_string(*v), 0xffffffffffffffffULL);
        require(again && *again == *v);
    }
    if (auto v = parse_unsigned(text, 1000)) require(*v <= 1000);
    if (auto v = parse_domid(text))
        require(parse_domid(std::to_string(*v)) && *parse_domid(std::to_string(*v)) == *v);
    if (auto v = parse_grant_ref(text)) require(*parse_grant_ref(std::to_string(*v)) == *v);
    if (auto v = parse_port(text)) require(*parse_port(std::to_string(*v)) == *v);
    if (auto v = parse_mac(text)) {
        auto again = parse_mac(format_mac(*v));
        require(again && *again == *v);
    }
    if (auto v = parse_queue_count(text, 8)) require(*v >= 1 && *v <= 8);
    (void)parse_state(text);
    (void)parse_flag(text);
    (void)parse_rate(text);
    (void)parse_mtu(text);
    return 0;
}
