// Counts what netbackd holds of other domains' resources (mapped grant pages, bound event
// channels, vifs handed to the data plane) by wrapping the platform and the data-plane sink.
// Wrapping instead of asking each implementation keeps the counts identical on real Xen and
// xensim, and lets `netbackd stats` prove that a churn run gave everything back.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "backend/control/data_plane_sink.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::service {

struct ResourceCounts {
    // Signed: a bug that releases twice shows up as a negative count instead of a huge one.
    std::atomic<std::int64_t> mapped_pages{0};
    std::atomic<std::int64_t> bound_ports{0};
    std::atomic<std::int64_t> vifs{0};
};

// Replaces platform.grants and platform.events with counting wrappers around them. Call before
// anything takes references to them. Mappings and channels made through the wrappers keep
// `counts` alive, so they may outlive the platform object's members.
void count_platform(platform::Platform& platform, std::shared_ptr<ResourceCounts> counts);

// The data plane as the control plane sees it, counting vifs between attach and detach.
class CountingSink final : public control::DataPlaneSink {
public:
    CountingSink(control::DataPlaneSink& inner, std::shared_ptr<ResourceCounts> counts)
        : inner_(inner), counts_(std::move(counts)) {}

    control::DataPlaneFeatures features() const override { return inner_.features(); }
    std::optional<control::Refusal> refusal(control::VifId id,
                                            const control::VifPolicy& policy) const override {
        return inner_.refusal(id, policy);
    }
    void attach(std::unique_ptr<control::VifHandle> vif) override;
    std::unique_ptr<control::VifHandle> detach(control::VifId id) override;
    void set_hash(control::VifId id, std::shared_ptr<const ring::HashConfig> hash) override {
        inner_.set_hash(id, std::move(hash));
    }
    void set_multicast_control(control::VifId id, bool on) override { inner_.set_multicast_control(id, on); }
    bool set_staging(control::VifId id, std::shared_ptr<const control::StagedPages> pages, unsigned queue,
                     std::span<const platform::GrantRef> removed) override {
        return inner_.set_staging(id, std::move(pages), queue, removed);
    }
    void update_policy(control::VifId id, const control::VifPolicy& policy) override {
        inner_.update_policy(id, policy);
    }

private:
    control::DataPlaneSink& inner_;
    std::shared_ptr<ResourceCounts> counts_;
};

} // namespace netbackd::service
