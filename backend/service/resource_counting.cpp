#include "backend/service/resource_counting.hpp"

namespace netbackd::service {
namespace {

class CountedMapping final : public platform::GrantMapping {
public:
    CountedMapping(std::unique_ptr<platform::GrantMapping> inner, std::shared_ptr<ResourceCounts> counts)
        : inner_(std::move(inner)), counts_(std::move(counts)) {
        counts_->mapped_pages.fetch_add(1, std::memory_order_relaxed);
    }
    ~CountedMapping() override {
        // The page must be gone before the count says so: unmap first.
        inner_.reset();
        counts_->mapped_pages.fetch_sub(1, std::memory_order_relaxed);
    }
    CountedMapping(const CountedMapping&) = delete;
    CountedMapping& operator=(const CountedMapping&) = delete;
    std::span<std::byte> page() override { return inner_->page(); }

private:
    std::unique_ptr<platform::GrantMapping> inner_;
    std::shared_ptr<ResourceCounts> counts_;
};

class CountingGrants final : public platform::Grants {
public:
    CountingGrants(std::unique_ptr<platform::Grants> inner, std::shared_ptr<ResourceCounts> counts)
        : inner_(std::move(inner)), counts_(std::move(counts)) {}
    std::unique_ptr<platform::GrantMapping> map(platform::DomId domid, platform::GrantRef ref,
                                                bool writable) override {
        return std::make_unique<CountedMapping>(inner_->map(domid, ref, writable), counts_);
    }
    void copy(std::span<platform::CopySegment> segments) override { inner_->copy(segments); }

private:
    std::unique_ptr<platform::Grants> inner_;
    std::shared_ptr<ResourceCounts> counts_;
};

class CountingEvents final : public platform::Events {
public:
    CountingEvents(std::unique_ptr<platform::Events> inner, std::shared_ptr<ResourceCounts> counts)
        : inner_(std::move(inner)), counts_(std::move(counts)) {}
    platform::EvtchnPort bind_interdomain(platform::DomId remote, platform::EvtchnPort remote_port) override {
        const auto port = inner_->bind_interdomain(remote, remote_port); // throws: nothing bound
        counts_->bound_ports.fetch_add(1, std::memory_order_relaxed);
        return port;
    }
    platform::EvtchnPort alloc_unbound(platform::DomId remote) override {
        const auto port = inner_->alloc_unbound(remote);
        counts_->bound_ports.fetch_add(1, std::memory_order_relaxed);
        return port;
    }
    void unbind(platform::EvtchnPort local) override {
        // Counted as released even when unbinding throws: the callers (BoundPort) drop the
        // port either way, and a port that fails to unbind is one whose remote end is gone.
        counts_->bound_ports.fetch_sub(1, std::memory_order_relaxed);
        inner_->unbind(local);
    }
    void notify(platform::EvtchnPort local) override { inner_->notify(local); }
    int fd() const override { return inner_->fd(); }
    std::optional<platform::EvtchnPort> pending() override { return inner_->pending(); }
    void unmask(platform::EvtchnPort local) override { inner_->unmask(local); }

private:
    std::unique_ptr<platform::Events> inner_;
    std::shared_ptr<ResourceCounts> counts_;
};

} // namespace

void count_platform(platform::Platform& platform, std::shared_ptr<ResourceCounts> counts) {
    platform.grants = std::make_unique<CountingGrants>(std::move(platform.grants), counts);
    if (platform.control_events)
        platform.control_events =
            std::make_unique<CountingEvents>(std::move(platform.control_events), counts);
    platform.events = std::make_unique<CountingEvents>(std::move(platform.events), std::move(counts));
}

void CountingSink::attach(std::unique_ptr<control::VifHandle> vif) {
    inner_.attach(std::move(vif));
    counts_->vifs.fetch_add(1, std::memory_order_relaxed);
}

std::unique_ptr<control::VifHandle> CountingSink::detach(control::VifId id) {
    auto vif = inner_.detach(id);
    if (vif) counts_->vifs.fetch_sub(1, std::memory_order_relaxed);
    return vif;
}

} // namespace netbackd::service
