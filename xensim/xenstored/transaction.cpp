#include "xensim/xenstored/transaction.hpp"

namespace netbackd::xensim::xs {

void Transaction::note(const std::string& path) { seen_.try_emplace(path, tree_.generation_of(path)); }

const Node* Transaction::get(const std::string& path) {
    if (auto it = overlay_.find(path); it != overlay_.end()) return it->second ? &*it->second : nullptr;
    note(path);
    return tree_.find(path);
}

void Transaction::put(const std::string& path, Node node) {
    note(path);
    overlay_.insert_or_assign(path, std::move(node));
}

void Transaction::erase(const std::string& path) {
    note(path);
    overlay_.insert_or_assign(path, std::nullopt);
}

bool Transaction::commit(std::vector<Change>& fired) {
    for (const auto& [path, generation] : seen_)
        if (tree_.generation_of(path) != generation) return false;
    for (auto& [path, node] : overlay_) {
        if (node)
            tree_.put(path, std::move(*node));
        else
            tree_.erase(path);
    }
    overlay_.clear();
    fired.insert(fired.end(), std::make_move_iterator(pending_.begin()),
                 std::make_move_iterator(pending_.end()));
    pending_.clear();
    return true;
}

} // namespace netbackd::xensim::xs
