// A vif's identity and the xenstore paths derived from it.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "backend/platform/platform.hpp"

namespace netbackd::control {

using platform::DomId;

struct VifId {
    DomId frontend = 0;
    std::uint32_t devid = 0;
    auto operator<=>(const VifId&) const = default;

    // "vif 7.0": how every log line names the vif (as Linux names its netdev vif7.0).
    std::string name() const { return fmt::format("vif {}.{}", frontend, devid); }
};

inline std::string domain_path(DomId domid) { return fmt::format("/local/domain/{}", domid); }

inline std::string backend_base(DomId self) { return domain_path(self) + "/backend/vif"; }

inline std::string backend_path(DomId self, VifId id) {
    return fmt::format("{}/{}/{}", backend_base(self), id.frontend, id.devid);
}

// Where xenbus_dev_fatal() puts a backend device's error: error/<nodename> under our home.
inline std::string error_path(DomId self, VifId id) {
    return fmt::format("{}/error/backend/vif/{}/{}", domain_path(self), id.frontend, id.devid);
}

inline std::string frontend_path(VifId id) {
    return fmt::format("{}/device/vif/{}", domain_path(id.frontend), id.devid);
}

} // namespace netbackd::control
