// Xenstore path rules: validation, resolution of domain-relative paths, ancestry.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim::xs {

// Special watch paths ("@introduceDomain", "@releaseDomain") live outside the tree.
bool is_special(std::string_view path) noexcept;

// "/local/domain/<id>": where a domain's relative paths resolve.
std::string domain_home(platform::DomId id);

// Makes a client-supplied path absolute and validates it as xenstored does (character set, no
// empty components, length limits). std::nullopt means EINVAL.
std::optional<std::string> resolve(std::string_view path, platform::DomId caller);

// True when `path` is `ancestor` itself or lies beneath it.
bool is_under(std::string_view path, std::string_view ancestor) noexcept;

// Parent of an absolute, non-root path ("/a" -> "/").
std::string parent_of(std::string_view path);
std::string_view leaf_of(std::string_view path);
std::string child_of(std::string_view parent, std::string_view name);

} // namespace netbackd::xensim::xs
