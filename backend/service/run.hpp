// `netbackd run`: the service's event loop.
#pragma once

#include <string>

#include "backend/platform/platform.hpp"

namespace netbackd::service {

struct RunOptions {
    std::string config_path;
    platform::PlatformOptions platform;
    bool platform_given = false; // --platform (or its env var) overrides the config file
    std::string log_level;       // empty: from the config file
};

// Returns the process exit code.
int run(const RunOptions& options);

} // namespace netbackd::service
