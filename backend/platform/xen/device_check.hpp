// Turns "not running on Xen" into one readable line instead of libxen's stderr noise.
#pragma once

#include <string>

namespace netbackd::platform {

// Throws PlatformError("<path> is missing: not running on Xen (use --platform=sim)") when the
// device node is absent.
void require_xen_device(const std::string& path);

} // namespace netbackd::platform
