// Runs an operator's per-client hook (the `script` of a client file) in place of the vif
// scripts `xl devd` would run, and hands its output to the log.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace netbackd::control {

struct HookResult {
    int exit_code = -1; // -1: killed (timeout) or could not start
    std::string output; // stdout and stderr, interleaved
    std::string error;  // why it could not run, if it could not
};

HookResult run_hook(const std::filesystem::path& script, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout);

} // namespace netbackd::control
