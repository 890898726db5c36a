#include "backend/platform/xen/device_check.hpp"

#include <cerrno>
#include <cstring>

#include <sys/stat.h>

#include <fmt/format.h>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

void require_xen_device(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return;
    int err = errno;
    if (err == ENOENT)
        throw PlatformError(fmt::format("{} is missing: not running on Xen (use --platform=sim)", path), err);
    throw PlatformError(fmt::format("{}: {}", path, std::strerror(err)), err);
}

} // namespace netbackd::platform
