// The store's data: nodes keyed by absolute path, each with a generation count that transactions
// use to detect conflicting commits.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "xensim/xenstored/perms.hpp"

namespace netbackd::xensim::xs {

struct Node {
    std::string value{};
    Perms perms{};
    std::set<std::string> children{};
    // Bumped on every change to the node, its value, perms or child list; 0 means "absent".
    std::uint64_t generation = 0;
};

// Something watches may hear about.
struct Change {
    std::string path;
    // Perms of the node when it changed: only connections that could read it hear the event.
    Perms perms;
    // Fires watches on exactly this path only (the descendants of a removed node).
    bool exact = false;
};

// Where operations read and write nodes: the live tree, or a transaction's private view of it.
class View {
public:
    virtual ~View() = default;
    // The node or nullptr. The pointer is valid until the next put/erase.
    virtual const Node* get(const std::string& path) = 0;
    virtual void put(const std::string& path, Node node) = 0;
    virtual void erase(const std::string& path) = 0;
    // Nodes owned by `domid`, for the per-domain quota.
    virtual std::size_t owned_by(platform::DomId domid) const = 0;
};

class Tree : public View {
public:
    // Starts with "/", "/local/domain" and the special watch nodes, all owned by dom0.
    Tree();

    const Node* get(const std::string& path) override;
    void put(const std::string& path, Node node) override;
    void erase(const std::string& path) override;

    const Node* find(const std::string& path) const;
    std::uint64_t generation_of(const std::string& path) const;
    std::size_t owned_by(platform::DomId domid) const override;
    // The same by walking every node: what owned_by() must always agree with.
    std::size_t count_owned_by(platform::DomId domid) const;
    std::size_t size() const noexcept { return nodes_.size(); }
    // Every node but the root and the special ones is listed by an existing parent, and every
    // listed child exists: what no sequence of requests may break.
    bool consistent() const;

private:
    void count_owner(const Node& node, int delta);

    std::map<std::string, Node> nodes_;
    // Nodes per owner (the first permission's domain), kept as nodes come and go: the quota is
    // checked on every write by a guest, and counting the whole tree each time made a host's
    // attach quadratic in its guests. C xenstored keeps the same count per domain.
    std::map<platform::DomId, std::size_t> owned_;
    std::uint64_t generation_ = 0;
};

} // namespace netbackd::xensim::xs
