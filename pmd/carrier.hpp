// An uplink's link state, published as the "carrier" key of each vif bridged to it.
//
// Kept out of netbackd_pmd (in netbackd_pmd_carrier) so that the DPDK side does not depend on
// the Xen platform libraries.
#pragma once

#include <span>
#include <string>

#include "backend/platform/platform.hpp"
#include "pmd/offloads.hpp"

namespace netbackd::pmd {

// Writes "<dir>/carrier" = "1" or "0" for every backend directory (e.g.
// "backend/vif/5/0") in one transaction, so that a guest never sees half its vifs updated.
// A directory that no longer exists (its vif was torn down meanwhile) is skipped rather than
// brought back to life. Returns how many keys were written.
std::size_t publish_carrier(platform::Store& store, std::span<const std::string> backend_dirs,
                            const LinkStatus& link);

} // namespace netbackd::pmd
