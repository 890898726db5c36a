// A transaction: a private overlay on the tree plus the generation of every node it looked at.
// Commit fails (EAGAIN) when any of those nodes changed meanwhile, as in xenstored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xensim/xenstored/tree.hpp"

namespace netbackd::xensim::xs {

class Transaction : public View {
public:
    explicit Transaction(Tree& tree) : tree_(tree) {}

    const Node* get(const std::string& path) override;
    void put(const std::string& path, Node node) override;
    void erase(const std::string& path) override;
    std::size_t owned_by(platform::DomId domid) const override { return tree_.owned_by(domid); }

    // Watch events are held back until the commit makes the changes visible.
    std::vector<Change>& pending() noexcept { return pending_; }

    // Applies the overlay and hands back its changes; false (and no effect) on conflict.
    bool commit(std::vector<Change>& fired);

private:
    void note(const std::string& path);

    Tree& tree_;
    std::map<std::string, std::optional<Node>> overlay_;
    std::map<std::string, std::uint64_t> seen_;
    std::vector<Change> pending_;
};

} // namespace netbackd::xensim::xs
