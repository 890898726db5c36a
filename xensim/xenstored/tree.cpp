#include "xensim/xenstored/tree.hpp"

#include "xensim/xenstored/paths.hpp"

namespace netbackd::xensim::xs {

Tree::Tree() {
    const Perms dom0_only{{0, platform::PermKind::none}};
    put("/", Node{.value = {}, .perms = dom0_only, .children = {"local"}});
    put("/local", Node{.value = {}, .perms = dom0_only, .children = {"domain"}});
    put("/local/domain", Node{.value = {}, .perms = dom0_only});
    put("@introduceDomain", Node{.value = {}, .perms = dom0_only});
    put("@releaseDomain", Node{.value = {}, .perms = dom0_only});
}

const Node* Tree::get(const std::string& path) { return find(path); }

const Node* Tree::find(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
}

void Tree::count_owner(const Node& node, int delta) {
    if (node.perms.empty()) return;
    auto& n = owned_[node.perms.front().domid];
    n = delta > 0 ? n + 1 : n - 1;
    if (n == 0) owned_.erase(node.perms.front().domid);
}

void Tree::put(const std::string& path, Node node) {
    node.generation = ++generation_;
    count_owner(node, +1);
    auto [it, fresh] = nodes_.try_emplace(path);
    if (!fresh) count_owner(it->second, -1);
    it->second = std::move(node);
}

void Tree::erase(const std::string& path) {
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return;
    count_owner(it->second, -1);
    nodes_.erase(it);
}

std::uint64_t Tree::generation_of(const std::string& path) const {
    const Node* n = find(path);
    return n ? n->generation : 0;
}

std::size_t Tree::owned_by(platform::DomId domid) const {
    auto it = owned_.find(domid);
    return it == owned_.end() ? 0 : it->second;
}

std::size_t Tree::count_owned_by(platform::DomId domid) const {
    std::size_t count = 0;
    for (const auto& [path, node] : nodes_)
        if (!node.perms.empty() && node.perms.front().domid == domid) ++count;
    return count;
}

bool Tree::consistent() const {
    for (const auto& [path, node] : nodes_) {
        for (const auto& child : node.children)
            if (!nodes_.contains(child_of(path, child))) return false;
        if (path == "/" || is_special(path)) continue;
        const Node* parent = find(parent_of(path));
        if (!parent || !parent->children.contains(std::string(leaf_of(path)))) return false;
    }
    return find("/") != nullptr;
}

} // namespace netbackd::xensim::xs
