// The store operations with xenstored's semantics, independent of sockets and framing. Paths
// are already absolute; failures throw XsError with the errno the client should see.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "xensim/xenstored/tree.hpp"

namespace netbackd::xensim::xs {

struct Limits {
    std::size_t max_value = 4096;            // E2BIG beyond this
    std::size_t max_nodes_per_domain = 1000; // ENOSPC beyond this (unprivileged owners only)
};

std::string read(View& view, const Caller& caller, const std::string& path);
std::vector<std::string> directory(View& view, const Caller& caller, const std::string& path);
Perms get_perms(View& view, const Caller& caller, const std::string& path);

// Creates missing parents; new nodes inherit their parent's perms, owned by an unprivileged
// creator. Needs write access on the node, or on the nearest existing ancestor when creating.
void write(View& view, const Caller& caller, const std::string& path, std::string_view value,
           const Limits& limits, std::vector<Change>& changes);
// Like write without touching an existing node's value.
void mkdir(View& view, const Caller& caller, const std::string& path, const Limits& limits,
           std::vector<Change>& changes);
// Removes the node and everything beneath it. Succeeds when the node is missing but its parent
// exists, ENOENT when the parent is missing too (xenstored's rule).
void rm(View& view, const Caller& caller, const std::string& path, std::vector<Change>& changes);
// Only the owner (or a privileged caller) may change perms.
void set_perms(View& view, const Caller& caller, const std::string& path, Perms perms,
               std::vector<Change>& changes);

} // namespace netbackd::xensim::xs
