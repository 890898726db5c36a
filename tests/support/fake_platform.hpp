// An in-process platform for driving the control plane deterministically: a xenstore tree
// shared by several connections (each with its own watches), and grants/events that count
// what is held and refuse what a test marks as bad.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backend/platform/fd.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::testing {

using namespace netbackd::platform;

class FakeStore;

class FakeXenstore {
public:
    std::map<std::string, std::string> nodes; // path -> value; every ancestor exists as a node
    std::vector<FakeStore*> conns;

    void write(const std::string& path, const std::string& value);
    void rm(const std::string& path);
    bool exists(const std::string& path) const { return nodes.count(path) != 0; }
    std::optional<std::string> get(const std::string& path) const;
    std::vector<std::string> children(const std::string& path) const;
    void fire(const std::string& path);
    void release_domain() { fire("@releaseDomain"); }
};

class FakeStore final : public Store {
public:
    FakeStore(std::shared_ptr<FakeXenstore> xs, DomId self);
    ~FakeStore() override;

    std::optional<std::string> read(TxId, std::string_view path) override;
    void write(TxId, std::string_view path, std::string_view value) override;
    void mkdir(TxId, std::string_view path) override;
    void rm(TxId, std::string_view path) override;
    std::optional<std::vector<std::string>> directory(TxId, std::string_view path) override;
    std::vector<Perm> get_perms(TxId, std::string_view) override { return {}; }
    void set_perms(TxId, std::string_view, std::span<const Perm>) override {}
    TxId transaction_start() override { return ++tx_; }
    bool transaction_end(TxId, bool) override { return true; }
    void watch(std::string_view path, std::string_view token) override;
    void unwatch(std::string_view path, std::string_view token) override;
    int watch_fd() const override { return efd_.get(); }
    std::vector<WatchEvent> read_watches() override;
    DomId self_domid() override { return self_; }

    std::size_t watch_count() const { return watches_.size(); }

private:
    friend class FakeXenstore;
    std::shared_ptr<FakeXenstore> xs_;
    DomId self_;
    TxId tx_ = 0;
    std::vector<WatchEvent> watches_;
    std::vector<WatchEvent> queued_;
    Fd efd_;
};

class FakeGrants final : public Grants {
public:
    std::unique_ptr<GrantMapping> map(DomId domid, GrantRef ref, bool writable) override;
    void copy(std::span<CopySegment>) override {}

    std::set<GrantRef> refused;
    int live = 0;
    int total = 0;
};

class FakeEvents final : public Events {
public:
    EvtchnPort bind_interdomain(DomId remote, EvtchnPort remote_port) override;
    EvtchnPort alloc_unbound(DomId) override { return next_++; }
    void unbind(EvtchnPort local) override;
    void notify(EvtchnPort) override {}
    int fd() const override { return -1; }
    std::optional<EvtchnPort> pending() override { return std::nullopt; }
    void unmask(EvtchnPort) override {}

    std::set<EvtchnPort> refused; // remote ports that cannot be bound
    std::set<EvtchnPort> bound;   // local ports
private:
    EvtchnPort next_ = 100;
};

} // namespace netbackd::testing
