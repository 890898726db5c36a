// What a running netbackd reports through `netbackd stats --json`, read by running the binary
// (so the tests cover the command an operator types, not only the telemetry behind it).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "backend/platform/platform.hpp"

namespace netbackd::testing {

struct Held {
    std::int64_t vifs = -1;
    std::int64_t mapped_pages = -1;
    std::int64_t bound_ports = -1;
    std::int64_t open_fds = -1;
    std::int64_t rss_bytes = -1;
    std::int64_t negative_counts = -1;
    std::map<std::string, std::int64_t> mbufs_in_use;
    nlohmann::json vifs_json; // the per-vif counters, keyed "vif<domid>_<devid>"
    std::string raw;          // the whole reply, for failure messages
};

// Runs `netbackd stats --json` against the netbackd with pid `pid` (default EAL prefix
// netbackd-<pid>); logs to `log`. Fails the test when the command fails.
Held netbackd_stats(pid_t pid, const std::string& log);
// The same for the instance with EAL --file-prefix `prefix`.
Held netbackd_stats(const std::string& prefix, const std::string& log);
// Whether `now` holds the buffers `before` did: each pool of both the same in use, and each pool
// made since (the frame pools grow as vifs attach) none.
bool same_mbufs_held(const Held& before, const Held& now);
// Sum of every drop_* counter of one vif ("vif<domid>_<devid>") in a stats reply; 0 if absent.
std::uint64_t vif_drops(const Held& h, platform::DomId domid, std::uint32_t devid = 0);

} // namespace netbackd::testing
