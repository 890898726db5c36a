#include "xensim/xenstored/ops.hpp"

#include <cerrno>

#include "xensim/xenstored/errors.hpp"
#include "xensim/xenstored/paths.hpp"

namespace netbackd::xensim::xs {

namespace {

// Why a node cannot be found: a caller that may not read the nearest existing ancestor must
// not learn whether the node exists (EACCES rather than ENOENT).
[[noreturn]] void fail_missing(View& view, const Caller& caller, const std::string& path) {
    std::string p = path;
    while (p != "/") {
        p = parent_of(p);
        if (const Node* n = view.get(p)) {
            if (!(access_for(caller, n->perms) & kRead)) fail(EACCES);
            break;
        }
    }
    fail(ENOENT);
}

const Node& need(View& view, const Caller& caller, const std::string& path, unsigned access) {
    const Node* n = view.get(path);
    if (!n) fail_missing(view, caller, path);
    if ((access_for(caller, n->perms) & access) != access) fail(EACCES);
    return *n;
}

void not_special(const std::string& path) {
    if (is_special(path)) fail(EINVAL);
}

// Creates `path` and its missing ancestors, the way xenstored's construct_node does.
void create(View& view, const Caller& caller, const std::string& path, std::string_view value,
            const Limits& limits) {
    std::vector<std::string> missing{path};
    const Node* anchor = nullptr;
    for (std::string p = parent_of(path);; p = parent_of(p)) {
        if ((anchor = view.get(p))) break;
        missing.push_back(p);
    }
    if (!(access_for(caller, anchor->perms) & kWrite)) fail(EACCES);
    if (!caller.privileged() && view.owned_by(caller.domid) + missing.size() > limits.max_nodes_per_domain)
        fail(ENOSPC);

    Perms perms = anchor->perms;
    if (!caller.privileged() && !perms.empty()) perms.front().domid = caller.domid;

    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        Node parent = *view.get(parent_of(*it));
        parent.children.emplace(leaf_of(*it));
        view.put(parent_of(*it), std::move(parent));
        view.put(*it, Node{.value = *it == path ? std::string(value) : std::string{}, .perms = perms});
    }
}

void collect_subtree(View& view, const std::string& path, std::vector<std::string>& out) {
    const Node* n = view.get(path);
    if (!n) return;
    out.push_back(path);
    auto children = n->children; // get() pointers do not survive recursion into put/erase
    for (const auto& c : children) collect_subtree(view, child_of(path, c), out);
}

} // namespace

std::string read(View& view, const Caller& caller, const std::string& path) {
    not_special(path);
    return need(view, caller, path, kRead).value;
}

std::vector<std::string> directory(View& view, const Caller& caller, const std::string& path) {
    not_special(path);
    const Node& n = need(view, caller, path, kRead);
    return {n.children.begin(), n.children.end()};
}

Perms get_perms(View& view, const Caller& caller, const std::string& path) {
    return need(view, caller, path, kRead).perms;
}

void write(View& view, const Caller& caller, const std::string& path, std::string_view value,
           const Limits& limits, std::vector<Change>& changes) {
    not_special(path);
    if (value.size() > limits.max_value) fail(E2BIG);
    if (view.get(path)) {
        Node n = need(view, caller, path, kWrite);
        n.value = std::string(value);
        Perms perms = n.perms;
        view.put(path, std::move(n));
        changes.push_back({path, std::move(perms), false});
        return;
    }
    create(view, caller, path, value, limits);
    changes.push_back({path, view.get(path)->perms, false});
}

void mkdir(View& view, const Caller& caller, const std::string& path, const Limits& limits,
           std::vector<Change>& changes) {
    not_special(path);
    if (view.get(path)) {
        need(view, caller, path, kWrite);
        return;
    }
    create(view, caller, path, {}, limits);
    changes.push_back({path, view.get(path)->perms, false});
}

void rm(View& view, const Caller& caller, const std::string& path, std::vector<Change>& changes) {
    not_special(path);
    if (path == "/") fail(EINVAL);
    if (!view.get(path)) {
        if (view.get(parent_of(path))) {
            // Still report EACCES to a caller that may not see the parent.
            if (!(access_for(caller, view.get(parent_of(path))->perms) & kRead)) fail(EACCES);
            return;
        }
        fail_missing(view, caller, path);
    }
    need(view, caller, path, kWrite);

    std::vector<std::string> doomed;
    collect_subtree(view, path, doomed);
    for (const auto& p : doomed) {
        changes.push_back({p, view.get(p)->perms, p != path});
    }
    for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) view.erase(*it);

    Node parent = *view.get(parent_of(path));
    parent.children.erase(std::string(leaf_of(path)));
    view.put(parent_of(path), std::move(parent));
}

void set_perms(View& view, const Caller& caller, const std::string& path, Perms perms,
               std::vector<Change>& changes) {
    if (perms.empty()) fail(EINVAL);
    Node n = need(view, caller, path, kWrite | kOwner);
    n.perms = std::move(perms);
    Perms fired = n.perms;
    view.put(path, std::move(n));
    if (!is_special(path)) changes.push_back({path, std::move(fired), false});
}

} // namespace netbackd::xensim::xs
