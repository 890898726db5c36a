#include "xensim/xenstored/perms.hpp"

#include <charconv>

namespace netbackd::xensim::xs {

namespace {

unsigned bits_of(platform::PermKind kind) noexcept {
    switch (kind) {
    case platform::PermKind::read: return kRead;
    case platform::PermKind::write: return kWrite;
    case platform::PermKind::both: return kRead | kWrite;
    case platform::PermKind::none: break;
    }
    return 0;
}

bool matches(const Caller& caller, platform::DomId id) noexcept {
    return id == caller.domid || (caller.target && *caller.target == id);
}

} // namespace

std::optional<platform::Perm> parse_perm(std::string_view text) {
    if (text.size() < 2) return std::nullopt;
    platform::PermKind kind{};
    switch (text.front()) {
    case 'n': kind = platform::PermKind::none; break;
    case 'r': kind = platform::PermKind::read; break;
    case 'w': kind = platform::PermKind::write; break;
    case 'b': kind = platform::PermKind::both; break;
    default: return std::nullopt;
    }
    unsigned value = 0;
    auto digits = text.substr(1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || end != digits.data() + digits.size() || value > 0xffff) return std::nullopt;
    return platform::Perm{static_cast<platform::DomId>(value), kind};
}

std::string format_perm(const platform::Perm& perm) {
    return static_cast<char>(perm.kind) + std::to_string(perm.domid);
}

unsigned access_for(const Caller& caller, std::span<const platform::Perm> perms) noexcept {
    if (caller.privileged()) return kRead | kWrite | kOwner;
    if (perms.empty()) return 0;
    if (matches(caller, perms.front().domid)) return kRead | kWrite | kOwner;
    for (const auto& p : perms.subspan(1))
        if (matches(caller, p.domid)) return bits_of(p.kind);
    return bits_of(perms.front().kind);
}

} // namespace netbackd::xensim::xs
