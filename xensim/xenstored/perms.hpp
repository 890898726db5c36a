// Node permissions: the wire spelling ("r5") and the access rule xenstored applies.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim::xs {

using Perms = std::vector<platform::Perm>;

enum Access : unsigned { kRead = 1, kWrite = 2, kOwner = 4 };

std::optional<platform::Perm> parse_perm(std::string_view text);
std::string format_perm(const platform::Perm& perm);

// Who is asking: dom0 is privileged; a domain with a target (a device model) acts for it too.
struct Caller {
    platform::DomId domid = 0;
    std::optional<platform::DomId> target;
    bool privileged() const noexcept { return domid == 0; }
};

// Access bits `caller` holds on a node with `perms`: the owner (first entry) and privileged
// callers hold everything; otherwise the first matching entry applies, else the owner's entry
// acts as the default for everybody else.
unsigned access_for(const Caller& caller, std::span<const platform::Perm> perms) noexcept;

} // namespace netbackd::xensim::xs
