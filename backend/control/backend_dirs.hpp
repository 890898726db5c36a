// The vif backend dirs under this driver domain's backend/vif in xenstore, as "<domid>/<devid>"
// relative names in the store's order: what the control plane scans, the doctor checks and a
// restart sizes its pools for.
#pragma once

#include <string>
#include <vector>

#include "backend/control/vif_id.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::control {

// Missing dirs list nothing; a store failure throws, as Store does.
inline std::vector<std::string> backend_vif_dirs(platform::Store& store, DomId self) {
    std::vector<std::string> out;
    const std::string base = backend_base(self);
    const auto fes = store.directory(0, base);
    if (!fes) return out;
    for (const auto& fe : *fes)
        if (const auto devs = store.directory(0, base + "/" + fe))
            for (const auto& dev : *devs) out.push_back(fe + "/" + dev);
    return out;
}

} // namespace netbackd::control
