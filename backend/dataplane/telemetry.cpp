// DPDK telemetry commands for the data plane, so that dpdk-telemetry.py (or anything speaking
// the telemetry socket) reads the per-vif and worker counters:
//   /netbackd/vifs    every vif ("vif<domid>_<devid>": telemetry names allow no dots): state,
//                     counters, drops by reason
//   /netbackd/vif     one vif, params "<domid>.<devid>" (or "<domid>_<devid>")
//   /netbackd/worker  the worker's loop and uplink counters
//
// Telemetry runs on its own thread and its callbacks take no user data, hence one registered
// DataPlane per process behind a mutex. Only the control side ever takes these locks.
#include <cstdio>
#include <mutex>
#include <string>

#include <fmt/format.h>
#include <rte_telemetry.h>

#include "backend/dataplane/dataplane.hpp"

namespace netbackd::dataplane {

namespace {

std::mutex g_mutex;
const DataPlane* g_instance = nullptr;

std::string_view state_name(VifState s) {
    switch (s) {
    case VifState::attaching: return "attaching";
    case VifState::running: return "running";
    case VifState::disabled: return "disabled";
    }
    return "?";
}

void fill_vif(rte_tel_data* d, VifState state, const VifStats& s) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "state", std::string(state_name(state)).c_str());
    rte_tel_data_add_dict_u64(d, "tx_packets", s.tx_packets);
    rte_tel_data_add_dict_u64(d, "tx_bytes", s.tx_bytes);
    rte_tel_data_add_dict_u64(d, "rx_packets", s.rx_packets);
    rte_tel_data_add_dict_u64(d, "rx_bytes", s.rx_bytes);
    rte_tel_data_add_dict_u64(d, "notifications", s.notifications);
    rte_tel_data_add_dict_u64(d, "copy_batches", s.copy_batches);
    rte_tel_data_add_dict_u64(d, "copy_segments", s.copy_segments);
    rte_tel_data_add_dict_u64(d, "tx_throttled", s.tx_throttled);
    rte_tel_data_add_dict_u64(d, "rx_throttled", s.rx_throttled);
    for (std::size_t i = 0; i < kDropReasons; ++i)
        rte_tel_data_add_dict_u64(d, fmt::format("drop_{}", to_string(static_cast<Drop>(i))).c_str(), s.drops[i]);
}

int cmd_vifs(const char*, const char*, rte_tel_data* d) {
    std::lock_guard lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (g_instance == nullptr) return 0;
    for (const auto& v : g_instance->telemetry_view()) {
        rte_tel_data* c = rte_tel_data_alloc();
        if (c == nullptr) return -ENOMEM;
        fill_vif(c, v.state, v.stats);
        rte_tel_data_add_dict_container(d, fmt::format("vif{}_{}", v.id.frontend, v.id.devid).c_str(), c, 0);
    }
    return 0;
}

int cmd_vif(const char*, const char* params, rte_tel_data* d) {
    unsigned dom = 0;
    unsigned dev = 0;
    if (params == nullptr || std::sscanf(params, "%u%*1[._]%u", &dom, &dev) != 2) return -EINVAL;
    std::lock_guard lock(g_mutex);
    if (g_instance == nullptr) return -ENODEV;
    for (const auto& v : g_instance->telemetry_view()) {
        if (v.id.frontend == dom && v.id.devid == dev) {
            fill_vif(d, v.state, v.stats);
            return 0;
        }
    }
    return -ENODEV;
}

int cmd_worker(const char*, const char*, rte_tel_data* d) {
    std::lock_guard lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (g_instance == nullptr) return 0;
    const WorkerCounters& w = g_instance->worker_counters();
    rte_tel_data_add_dict_u64(d, "iterations", w.iterations.get());
    rte_tel_data_add_dict_u64(d, "sleeps", w.sleeps.get());
    rte_tel_data_add_dict_u64(d, "uplink_rx", w.uplink_rx.get());
    rte_tel_data_add_dict_u64(d, "uplink_tx", w.uplink_tx.get());
    rte_tel_data_add_dict_u64(d, "uplink_tx_dropped", w.uplink_tx_dropped.get());
    rte_tel_data_add_dict_u64(d, "uplink_unrouted", w.uplink_unrouted.get());
    return 0;
}

} // namespace

void publish_telemetry(const DataPlane* dp) {
    std::lock_guard lock(g_mutex);
    static bool registered = false;
    if (!registered && dp != nullptr) {
        registered = true;
        rte_telemetry_register_cmd("/netbackd/vifs", cmd_vifs, "Every vif's state and counters. No parameters");
        rte_telemetry_register_cmd("/netbackd/vif", cmd_vif, "One vif's state and counters. Parameters: <domid>.<devid>");
        rte_telemetry_register_cmd("/netbackd/worker", cmd_worker, "The data-plane worker's counters. No parameters");
    }
    g_instance = dp;
}

void withdraw_telemetry(const DataPlane* dp) {
    std::lock_guard lock(g_mutex);
    if (g_instance == dp) g_instance = nullptr;
}

} // namespace netbackd::dataplane
