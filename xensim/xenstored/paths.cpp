#include "xensim/xenstored/paths.hpp"

#include <xen/io/xs_wire.h>

namespace netbackd::xensim::xs {

namespace {

bool valid_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '/' || c == '_' || c == '@';
}

bool valid_absolute(std::string_view p) noexcept {
    if (p.empty() || p.size() > XENSTORE_ABS_PATH_MAX) return false;
    if (p == "/") return true;
    if (p.front() != '/' || p.back() == '/') return false;
    if (p.find("//") != std::string_view::npos) return false;
    for (char c : p)
        if (!valid_char(c)) return false;
    return true;
}

bool valid_special(std::string_view p) noexcept {
    if (p.size() < 2 || p.size() > XENSTORE_ABS_PATH_MAX) return false;
    for (char c : p)
        if (!valid_char(c) || c == '/') return false;
    return true;
}

} // namespace

bool is_special(std::string_view path) noexcept { return !path.empty() && path.front() == '@'; }

std::string domain_home(platform::DomId id) { return "/local/domain/" + std::to_string(id); }

std::optional<std::string> resolve(std::string_view path, platform::DomId caller) {
    if (is_special(path)) {
        if (!valid_special(path)) return std::nullopt;
        return std::string(path);
    }
    if (!path.empty() && path.front() == '/') {
        if (!valid_absolute(path)) return std::nullopt;
        return std::string(path);
    }
    if (path.empty() || path.size() > XENSTORE_REL_PATH_MAX) return std::nullopt;
    std::string full = domain_home(caller) + "/" + std::string(path);
    if (!valid_absolute(full)) return std::nullopt;
    return full;
}

bool is_under(std::string_view path, std::string_view ancestor) noexcept {
    if (ancestor == "/") return !path.empty() && path.front() == '/';
    if (!path.starts_with(ancestor)) return false;
    return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

std::string parent_of(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == 0 || slash == std::string_view::npos) return "/";
    return std::string(path.substr(0, slash));
}

std::string_view leaf_of(std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string child_of(std::string_view parent, std::string_view name) {
    std::string out(parent);
    if (out != "/") out += '/';
    out += name;
    return out;
}

} // namespace netbackd::xensim::xs
