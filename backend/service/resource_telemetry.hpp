// The /netbackd/resources telemetry command: what this process holds right now, for leak checks
// after churn (`netbackd stats` shows it):
//   mapped_pages   grant pages mapped (ring pages of every connected queue)
//   bound_ports    event channels bound
//   vifs           vifs handed to the data plane
//   open_fds       this process's open descriptors
//   rss_bytes      resident set size
//   mbufs_in_use   per DPDK mempool (by name): mbufs taken out of it
//   mbufs_total    per DPDK mempool: its size
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/service/resource_counting.hpp"

namespace netbackd::service {

struct PoolUsage {
    std::string name;
    std::uint32_t in_use = 0;
    std::uint32_t size = 0;
};

struct ResourceSnapshot {
    std::int64_t mapped_pages = 0;
    std::int64_t bound_ports = 0;
    std::int64_t vifs = 0;
    std::int64_t open_fds = 0;
    std::uint64_t rss_bytes = 0;
    std::vector<PoolUsage> mempools;
};

ResourceSnapshot take_snapshot(const ResourceCounts& counts);

// Registers the command (once per process) and serves `counts` until destroyed.
class ResourceTelemetry {
public:
    explicit ResourceTelemetry(std::shared_ptr<const ResourceCounts> counts);
    ~ResourceTelemetry();
    ResourceTelemetry(const ResourceTelemetry&) = delete;
    ResourceTelemetry& operator=(const ResourceTelemetry&) = delete;

private:
    std::shared_ptr<const ResourceCounts> counts_;
};

} // namespace netbackd::service
