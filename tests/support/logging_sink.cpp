#include "tests/support/logging_sink.hpp"

#include <spdlog/spdlog.h>

namespace netbackd::control {

void LoggingSink::attach(std::unique_ptr<VifHandle> vif) {
    const VifId id = vif->id;
    spdlog::info("{}: handed to the data plane (stub: no packets move): {} queue(s), mac {}{}{}", id.name(),
                 vif->queues.size(), format_mac(vif->policy.guest_mac),
                 vif->policy.vlan ? fmt::format(", vlan {}", *vif->policy.vlan) : "",
                 vif->policy.uplink ? ", uplink " + *vif->policy.uplink : "");
    vifs_[id] = std::move(vif);
}

std::unique_ptr<VifHandle> LoggingSink::detach(VifId id) {
    auto it = vifs_.find(id);
    if (it == vifs_.end()) return nullptr;
    auto vif = std::move(it->second);
    vifs_.erase(it);
    spdlog::info("{}: taken back from the data plane", id.name());
    return vif;
}

void LoggingSink::update_policy(VifId id, const VifPolicy& policy) {
    auto it = vifs_.find(id);
    if (it == vifs_.end()) return;
    it->second->policy = policy;
    spdlog::info("{}: policy updated: rate {}", id.name(),
                 policy.rate ? fmt::format("{} bytes per {} us", policy.rate->bytes, policy.rate->usec)
                             : "unlimited");
}

const VifHandle* LoggingSink::find(VifId id) const {
    auto it = vifs_.find(id);
    return it == vifs_.end() ? nullptr : it->second.get();
}

} // namespace netbackd::control
