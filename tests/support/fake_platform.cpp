#include "tests/support/fake_platform.hpp"

#include <algorithm>
#include <cerrno>

#include <xen/grant_table.h>

namespace netbackd::testing {

namespace {
std::string parent_of(const std::string& p) {
    const auto s = p.rfind('/');
    return s == 0 || s == std::string::npos ? "/" : p.substr(0, s);
}
bool under(const std::string& path, const std::string& dir) {
    return path == dir ||
           (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}
} // namespace

void FakeXenstore::write(const std::string& path, const std::string& value) {
    for (std::string p = parent_of(path); p != "/"; p = parent_of(p)) nodes.emplace(p, "");
    nodes[path] = value;
    fire(path);
}

void FakeXenstore::rm(const std::string& path) {
    bool any = false;
    for (auto it = nodes.begin(); it != nodes.end();) {
        if (under(it->first, path)) {
            it = nodes.erase(it);
            any = true;
        } else {
            ++it;
        }
    }
    if (any) fire(path);
}

std::optional<std::string> FakeXenstore::get(const std::string& path) const {
    auto it = nodes.find(path);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> FakeXenstore::children(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& [p, v] : nodes)
        if (parent_of(p) == path && p != path) out.push_back(p.substr(path.size() + 1));
    return out;
}

void FakeXenstore::fire(const std::string& path) {
    for (FakeStore* s : conns) {
        for (const auto& w : s->watches_) {
            // xenstored fires a watch for changes at or below it, and for the removal of an
            // ancestor of it.
            const bool special = path[0] == '@';
            if ((special && w.path == path) || (!special && (under(path, w.path) || under(w.path, path)))) {
                s->queued_.push_back({special ? path : (under(path, w.path) ? path : w.path), w.token});
                signal_eventfd(s->efd_.get());
            }
        }
    }
}

FakeStore::FakeStore(std::shared_ptr<FakeXenstore> xs, DomId self)
    : xs_(std::move(xs)), self_(self), efd_(make_eventfd()) {
    xs_->conns.push_back(this);
}

FakeStore::~FakeStore() {
    auto& v = xs_->conns;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

std::optional<std::string> FakeStore::read(TxId, std::string_view path) {
    return xs_->get(std::string(path));
}
void FakeStore::write(TxId, std::string_view path, std::string_view value) {
    xs_->write(std::string(path), std::string(value));
}
void FakeStore::mkdir(TxId, std::string_view path) {
    if (!xs_->exists(std::string(path))) xs_->write(std::string(path), "");
}
void FakeStore::rm(TxId, std::string_view path) { xs_->rm(std::string(path)); }
std::optional<std::vector<std::string>> FakeStore::directory(TxId, std::string_view path) {
    if (!xs_->exists(std::string(path))) return std::nullopt;
    return xs_->children(std::string(path));
}
void FakeStore::watch(std::string_view path, std::string_view token) {
    watches_.push_back({std::string(path), std::string(token)});
    queued_.push_back({std::string(path), std::string(token)}); // the initial event
    signal_eventfd(efd_.get());
}
void FakeStore::unwatch(std::string_view path, std::string_view token) {
    auto it = std::find_if(watches_.begin(), watches_.end(),
                           [&](const WatchEvent& w) { return w.path == path && w.token == token; });
    if (it == watches_.end()) throw PlatformError("unwatch: no such watch", ENOENT);
    watches_.erase(it);
}
std::vector<WatchEvent> FakeStore::read_watches() {
    drain_eventfd(efd_.get());
    return std::exchange(queued_, {});
}

namespace {
class FakeMapping final : public GrantMapping {
public:
    explicit FakeMapping(int& live) : live_(live) { ++live_; }
    ~FakeMapping() override { --live_; }
    std::span<std::byte> page() override { return page_; }

private:
    int& live_;
    std::byte page_[4096]{};
};
} // namespace

std::unique_ptr<GrantMapping> FakeGrants::map(DomId, GrantRef ref, bool) {
    if (refused.count(ref))
        throw PlatformError("grant " + std::to_string(ref) + " refused", GNTST_bad_gntref);
    ++total;
    return std::make_unique<FakeMapping>(live);
}

EvtchnPort FakeEvents::bind_interdomain(DomId, EvtchnPort remote_port) {
    if (refused.count(remote_port))
        throw PlatformError("port " + std::to_string(remote_port) + " not unbound", EINVAL);
    const EvtchnPort p = next_++;
    bound.insert(p);
    return p;
}

void FakeEvents::unbind(EvtchnPort local) {
    if (!bound.erase(local)) throw PlatformError("unbind of unknown port", EINVAL);
}

} // namespace netbackd::testing
