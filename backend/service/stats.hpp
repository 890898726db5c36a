// `netbackd stats`: reads a running netbackd's per-vif counters over its DPDK telemetry socket
// (the /netbackd/vifs command the data plane registers) and what the process holds
// (/netbackd/resources: mapped pages, bound channels, vifs, fds, RSS, mbufs per pool), and
// prints a table, JSON ({"vifs": {...}, "resources": {...}, "workers": {...}}) or the same in
// the Prometheus text format.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>

namespace netbackd::service {

struct StatsOptions {
    // EAL --file-prefix of the netbackd to ask; empty: the only netbackd* under the runtime dir.
    std::string file_prefix;
    std::string runtime_dir = "/var/run/dpdk";
    bool json = false;
    bool prometheus = false; // the Prometheus text format instead (stats_prometheus.hpp)
};

// The telemetry socket of the instance `options` name (the only live netbackd* when no prefix
// is given); its directory is the instance's EAL runtime directory. Throws std::runtime_error
// saying what is missing or ambiguous.
std::filesystem::path telemetry_socket(const StatsOptions& options);

// Returns the process exit code; errors are explained on stderr.
int print_stats(const StatsOptions& options, std::FILE* out);

} // namespace netbackd::service
