// A stand-in data plane for the control plane's tests: it keeps handed-over vifs and logs
// them, moving no packets, so a test can count live vifs.
#pragma once

#include <map>

#include "backend/control/data_plane_sink.hpp"

namespace netbackd::control {

class LoggingSink final : public DataPlaneSink {
public:
    explicit LoggingSink(DataPlaneFeatures features) : features_(features) {}

    DataPlaneFeatures features() const override { return features_; }
    void attach(std::unique_ptr<VifHandle> vif) override;
    std::unique_ptr<VifHandle> detach(VifId id) override;
    void update_policy(VifId id, const VifPolicy& policy) override;

    std::size_t size() const noexcept { return vifs_.size(); }
    const VifHandle* find(VifId id) const;

private:
    DataPlaneFeatures features_;
    std::map<VifId, std::unique_ptr<VifHandle>> vifs_;
};

} // namespace netbackd::control
