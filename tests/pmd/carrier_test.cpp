#include <map>

#include <catch2/catch.hpp>

#include "pmd/carrier.hpp"

using namespace netbackd;
using namespace netbackd::pmd;

namespace {

// Just enough xenstore: a flat map of committed nodes, transactions that buffer their writes and
// can be told to conflict.
class MapStore : public platform::Store {
public:
    std::map<std::string, std::string> nodes;
    int conflicts_to_report = 0;
    int transactions = 0;

    // (Assigning a literal through operator[] trips gcc 12's -Wrestrict false positive at -O3.)
    void put(std::string path, std::string value) {
        nodes.insert_or_assign(std::move(path), std::move(value));
    }

    std::optional<std::string> read(platform::TxId tx, std::string_view path) override {
        const std::string p(path);
        if (tx != 0 && pending_.count(p) != 0) {
            return pending_[p];
        }
        const auto it = nodes.find(p);
        return it == nodes.end() ? std::nullopt : std::optional(it->second);
    }
    void write(platform::TxId tx, std::string_view path, std::string_view value) override {
        (tx != 0 ? pending_ : nodes)[std::string(path)] = std::string(value);
    }
    void mkdir(platform::TxId, std::string_view) override {}
    void rm(platform::TxId, std::string_view path) override { nodes.erase(std::string(path)); }
    std::optional<std::vector<std::string>> directory(platform::TxId, std::string_view) override {
        return std::nullopt;
    }
    std::vector<platform::Perm> get_perms(platform::TxId, std::string_view) override { return {}; }
    void set_perms(platform::TxId, std::string_view, std::span<const platform::Perm>) override {}
    platform::TxId transaction_start() override {
        ++transactions;
        pending_.clear();
        return 7;
    }
    bool transaction_end(platform::TxId, bool commit) override {
        if (commit && conflicts_to_report > 0) {
            --conflicts_to_report;
            pending_.clear();
            return false;
        }
        if (commit) {
            for (const auto& [path, value] : pending_) {
                nodes[path] = value;
            }
        }
        pending_.clear();
        return true;
    }
    void watch(std::string_view, std::string_view) override {}
    void unwatch(std::string_view, std::string_view) override {}
    int watch_fd() const override { return -1; }
    std::vector<platform::WatchEvent> read_watches() override { return {}; }
    platform::DomId self_domid() override { return 0; }

private:
    std::map<std::string, std::string> pending_;
};

} // namespace

TEST_CASE("carrier is written under every live vif in one transaction", "[carrier]") {
    MapStore store;
    store.put("backend/vif/5/0/state", "4");
    store.put("backend/vif/6/1/state", "4");
    const std::vector<std::string> dirs{"backend/vif/5/0", "backend/vif/6/1"};

    CHECK(publish_carrier(store, dirs, LinkStatus{.up = true}) == 2);
    CHECK(store.transactions == 1);
    CHECK(store.nodes["backend/vif/5/0/carrier"] == "1");
    CHECK(store.nodes["backend/vif/6/1/carrier"] == "1");

    CHECK(publish_carrier(store, dirs, LinkStatus{}) == 2);
    CHECK(store.nodes["backend/vif/5/0/carrier"] == "0");
    CHECK(store.nodes["backend/vif/6/1/carrier"] == "0");
}

TEST_CASE("a vif torn down meanwhile is not brought back", "[carrier]") {
    MapStore store;
    store.put("backend/vif/5/0/state", "4");
    const std::vector<std::string> dirs{"backend/vif/5/0", "backend/vif/9/0"};
    CHECK(publish_carrier(store, dirs, LinkStatus{.up = true}) == 1);
    CHECK(store.nodes.count("backend/vif/9/0/carrier") == 0);
}

TEST_CASE("a conflicting transaction is retried and counted once", "[carrier]") {
    MapStore store;
    store.put("backend/vif/5/0/state", "4");
    store.conflicts_to_report = 2;
    const std::vector<std::string> dirs{"backend/vif/5/0"};
    CHECK(publish_carrier(store, dirs, LinkStatus{.up = true}) == 1);
    CHECK(store.transactions == 3);
    CHECK(store.nodes["backend/vif/5/0/carrier"] == "1");
}
