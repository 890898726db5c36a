#include "backend/service/resource_telemetry.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <mutex>

#include <dirent.h>
#include <unistd.h>

#include <rte_mempool.h>
#include <rte_telemetry.h>

namespace netbackd::service {
namespace {

std::int64_t count_open_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    std::int64_t n = 0;
    while (const dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1; // the directory stream's own descriptor
}

std::uint64_t rss_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    if (!(statm >> size >> resident)) return 0;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

void add_pool(rte_mempool* mp, void* arg) {
    auto& pools = *static_cast<std::vector<PoolUsage>*>(arg);
    pools.push_back(PoolUsage{mp->name, rte_mempool_in_use_count(mp), mp->size});
}

// Telemetry callbacks take no user data: one served instance per process.
std::mutex g_mutex;
const ResourceCounts* g_counts = nullptr;

std::uint64_t non_negative(std::int64_t v) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0));
}

// Telemetry refuses keys outside [A-Za-z0-9_/] ("nb-frames" included): "nb_frames".
std::string telemetry_name(std::string name) {
    for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '/') c = '_';
    return name;
}

int cmd_resources(const char*, const char*, rte_tel_data* d) {
    std::lock_guard lock(g_mutex);
    if (g_counts == nullptr) return -ENODEV;
    const ResourceSnapshot s = take_snapshot(*g_counts);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "mapped_pages", non_negative(s.mapped_pages));
    rte_tel_data_add_dict_u64(d, "bound_ports", non_negative(s.bound_ports));
    rte_tel_data_add_dict_u64(d, "vifs", non_negative(s.vifs));
    rte_tel_data_add_dict_u64(d, "open_fds", non_negative(s.open_fds));
    rte_tel_data_add_dict_u64(d, "rss_bytes", s.rss_bytes);
    // A negative count is a double release: say so instead of hiding it behind the clamp.
    rte_tel_data_add_dict_u64(
        d, "negative_counts",
        static_cast<std::uint64_t>((s.mapped_pages < 0) + (s.bound_ports < 0) + (s.vifs < 0)));
    // Telemetry serialises one level of nesting: two flat dicts keyed by pool name.
    rte_tel_data* in_use = rte_tel_data_alloc();
    rte_tel_data* total = rte_tel_data_alloc();
    if (in_use == nullptr || total == nullptr) {
        rte_tel_data_free(in_use);
        rte_tel_data_free(total);
        return -ENOMEM;
    }
    rte_tel_data_start_dict(in_use);
    rte_tel_data_start_dict(total);
    for (const auto& p : s.mempools) {
        const std::string key = telemetry_name(p.name);
        rte_tel_data_add_dict_u64(in_use, key.c_str(), p.in_use);
        rte_tel_data_add_dict_u64(total, key.c_str(), p.size);
    }
    rte_tel_data_add_dict_container(d, "mbufs_in_use", in_use, 0);
    rte_tel_data_add_dict_container(d, "mbufs_total", total, 0);
    return 0;
}

} // namespace

ResourceSnapshot take_snapshot(const ResourceCounts& counts) {
    ResourceSnapshot s;
    s.mapped_pages = counts.mapped_pages.load(std::memory_order_relaxed);
    s.bound_ports = counts.bound_ports.load(std::memory_order_relaxed);
    s.vifs = counts.vifs.load(std::memory_order_relaxed);
    s.open_fds = count_open_fds();
    s.rss_bytes = rss_bytes();
    rte_mempool_walk(add_pool, &s.mempools);
    return s;
}

ResourceTelemetry::ResourceTelemetry(std::shared_ptr<const ResourceCounts> counts)
    : counts_(std::move(counts)) {
    std::lock_guard lock(g_mutex);
    static bool registered = false;
    if (!registered) {
        registered = true;
        rte_telemetry_register_cmd("/netbackd/resources", cmd_resources,
                                   "What netbackd holds: mapped grant pages, bound channels, vifs, fds, RSS, "
                                   "mbufs in use per mempool. No parameters");
    }
    g_counts = counts_.get();
}

ResourceTelemetry::~ResourceTelemetry() {
    std::lock_guard lock(g_mutex);
    if (g_counts == counts_.get()) g_counts = nullptr;
}

} // namespace netbackd::service
