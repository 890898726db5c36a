// `netbackd capture <vif> [-w file|-] [-c count] [-s snaplen] [filter]`: asks the running
// netbackd (capture_server.hpp, found like `netbackd stats` finds its telemetry socket) for a
// pcapng capture of one vif, both directions, and writes the stream to the file or stdout
// until Ctrl-C, SIGTERM, `count` frames, or the vif going away.
#pragma once

#include <cstdint>
#include <string>

#include "backend/service/stats.hpp"

namespace netbackd::service {

struct CaptureCliOptions {
    StatsOptions instance; // --file-prefix, --runtime-dir
    std::string vif;       // "11.0" or "vif11.0"
    std::string output = "-";
    std::uint64_t count = 0; // 0: until interrupted
    std::uint32_t snaplen = 9216;
    std::string filter;
};

// Returns the process exit code; errors are explained on stderr.
int run_capture(const CaptureCliOptions& options);

} // namespace netbackd::service
