// DPDK telemetry commands for the data plane, so that dpdk-telemetry.py (or anything speaking
// the telemetry socket) reads the per-vif and worker counters:
//   /netbackd/vifs    vifs in (domid, devid) order ("vif<domid>_<devid>": telemetry names allow
//                     no dots): state, counters, drops by reason. A reply holds at most 16
//                     (kVifsPerPage): DPDK cuts every reply at 16 KiB, about 36 vifs, silently.
//                     Param "<first>": the page starting at that index; ask again from
//                     first + 16 while a page comes back full.
//   /netbackd/vif     one vif, params "<domid>.<devid>" (or "<domid>_<devid>")
//   /netbackd/worker  loop, uplink, hand-over and wake-up counters summed over the workers
//   /netbackd/workers the same per worker ("worker<i>"), with its vif count and sleep mode
//
// Telemetry runs on its own thread and its callbacks take no user data, hence one registered
// DataPlane per process behind a mutex. Only the control side ever takes these locks.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <rte_cycles.h>
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

void fill_vif(rte_tel_data* d, VifState state, const VifStats& s, unsigned worker) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "state", std::string(state_name(state)).c_str());
    rte_tel_data_add_dict_u64(d, "worker", worker);
    rte_tel_data_add_dict_u64(d, "tx_packets", s.tx_packets);
    rte_tel_data_add_dict_u64(d, "tx_bytes", s.tx_bytes);
    rte_tel_data_add_dict_u64(d, "rx_packets", s.rx_packets);
    rte_tel_data_add_dict_u64(d, "rx_bytes", s.rx_bytes);
    rte_tel_data_add_dict_u64(d, "notifications", s.notifications);
    rte_tel_data_add_dict_u64(d, "copy_batches", s.copy_batches);
    rte_tel_data_add_dict_u64(d, "copy_segments", s.copy_segments);
    rte_tel_data_add_dict_u64(d, "staged_copies", s.staged_copies);
    rte_tel_data_add_dict_u64(d, "staged_pages", s.staged_pages);
    rte_tel_data_add_dict_u64(d, "tx_throttled", s.tx_throttled);
    rte_tel_data_add_dict_u64(d, "rx_throttled", s.rx_throttled);
    rte_tel_data_add_dict_u64(d, "rx_stalls", s.rx_stalls);
    rte_tel_data_add_dict_u64(d, "tx_held", s.tx_held);
    rte_tel_data_add_dict_u64(d, "rx_waits_over", s.rx_waits_over);
    rte_tel_data_add_dict_u64(d, "mcast_filter", s.mcast_filter ? 1 : 0);
    rte_tel_data_add_dict_u64(d, "mcast_subscribed", s.mcast_subscribed);
    rte_tel_data_add_dict_u64(d, "mcast_added", s.mcast_added);
    rte_tel_data_add_dict_u64(d, "mcast_deleted", s.mcast_deleted);
    rte_tel_data_add_dict_u64(d, "mcast_refused", s.mcast_refused);
    rte_tel_data_add_dict_u64(d, "mcast_filtered", s.mcast_filtered);
    for (std::size_t i = 0; i < kDropReasons; ++i)
        rte_tel_data_add_dict_u64(d, fmt::format("drop_{}", to_string(static_cast<Drop>(i))).c_str(),
                                  s.drops[i]);
}

int cmd_vifs(const char*, const char* params, rte_tel_data* d) {
    unsigned first = 0;
    if (params != nullptr && *params != '\0' && std::sscanf(params, "%u", &first) != 1) return -EINVAL;
    std::lock_guard lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (g_instance == nullptr) return 0;
    auto view = g_instance->telemetry_view();
    std::sort(view.begin(), view.end(), [](const auto& a, const auto& b) {
        return std::pair(a.id.frontend, a.id.devid) < std::pair(b.id.frontend, b.id.devid);
    });
    const std::size_t end = std::min(view.size(), std::size_t{first} + kVifsPerPage);
    for (std::size_t i = first; i < end; ++i) {
        const auto& v = view[i];
        rte_tel_data* c = rte_tel_data_alloc();
        if (c == nullptr) return -ENOMEM;
        fill_vif(c, v.state, v.stats, v.worker);
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
            fill_vif(d, v.state, v.stats, v.worker);
            return 0;
        }
    }
    return -ENODEV;
}

struct WorkerSums {
    std::uint64_t v[19] = {};
};

constexpr const char* kWorkerFields[19] = {
    "iterations",    "empty_polls",        "empty_poll_cycles", "sleeps",          "uplink_rx",
    "uplink_tx",     "uplink_tx_dropped",  "uplink_unrouted",   "cross_out",       "cross_in",
    "cross_dropped", "wakeups_event",      "wakeups_rx_intr",   "wakeups_timer",   "wakeups_peer",
    "rx_merged",     "rx_merged_segments", "quiet_polls",       "cross_waits_over"};

WorkerSums read_worker(const WorkerCounters& w) {
    return WorkerSums{{w.iterations.get(), w.empty_polls.get(), w.empty_poll_cycles.get(), w.sleeps.get(),
                       w.uplink_rx.get(), w.uplink_tx.get(), w.uplink_tx_dropped.get(),
                       w.uplink_unrouted.get(), w.cross_out.get(), w.cross_in.get(), w.cross_dropped.get(),
                       w.wakeups_event.get(), w.wakeups_rx_intr.get(), w.wakeups_timer.get(),
                       w.wakeups_peer.get(), w.rx_merged.get(), w.rx_merged_segments.get(),
                       w.quiet_polls.get(), w.cross_waits_over.get()}};
}

void fill_worker(rte_tel_data* d, const WorkerSums& s) {
    for (std::size_t i = 0; i < std::size(kWorkerFields); ++i)
        rte_tel_data_add_dict_u64(d, kWorkerFields[i], s.v[i]);
}

int cmd_worker(const char*, const char*, rte_tel_data* d) {
    std::lock_guard lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (g_instance == nullptr) return 0;
    WorkerSums total;
    for (std::size_t w = 0; w < g_instance->worker_count(); ++w) {
        const WorkerSums one = read_worker(g_instance->worker_counters(w));
        for (std::size_t i = 0; i < std::size(total.v); ++i) total.v[i] += one.v[i];
    }
    fill_worker(d, total);
    rte_tel_data_add_dict_u64(d, "workers", g_instance->worker_count());
    rte_tel_data_add_dict_u64(d, "tsc_hz", rte_get_tsc_hz());
    return 0;
}

int cmd_workers(const char*, const char*, rte_tel_data* d) {
    std::lock_guard lock(g_mutex);
    rte_tel_data_start_dict(d);
    if (g_instance == nullptr) return 0;
    std::vector<std::size_t> load(g_instance->worker_count(), 0);
    for (const auto& v : g_instance->telemetry_view())
        if (v.worker < load.size()) ++load[v.worker];
    for (std::size_t w = 0; w < g_instance->worker_count(); ++w) {
        rte_tel_data* c = rte_tel_data_alloc();
        if (c == nullptr) return -ENOMEM;
        rte_tel_data_start_dict(c);
        fill_worker(c, read_worker(g_instance->worker_counters(w)));
        rte_tel_data_add_dict_u64(c, "vifs", load[w]);
        rte_tel_data_add_dict_u64(c, "rx_interrupt_sleep",
                                  g_instance->worker_sleeps_on_rx_interrupts(w) ? 1 : 0);
        rte_tel_data_add_dict_u64(c, "idle_timer", g_instance->worker_idle_timer(w) ? 1 : 0);
        rte_tel_data_add_dict_container(d, fmt::format("worker{}", w).c_str(), c, 0);
    }
    return 0;
}

} // namespace

void publish_telemetry(const DataPlane* dp) {
    std::lock_guard lock(g_mutex);
    static bool registered = false;
    if (!registered && dp != nullptr) {
        registered = true;
        rte_telemetry_register_cmd("/netbackd/vifs", cmd_vifs,
                                   "State and counters of up to 16 vifs. Parameters: <first> (default 0)");
        rte_telemetry_register_cmd("/netbackd/vif", cmd_vif,
                                   "One vif's state and counters. Parameters: <domid>.<devid>");
        rte_telemetry_register_cmd("/netbackd/worker", cmd_worker,
                                   "Data-plane worker counters, summed. No parameters");
        rte_telemetry_register_cmd("/netbackd/workers", cmd_workers,
                                   "Each data-plane worker's counters. No parameters");
    }
    g_instance = dp;
}

void withdraw_telemetry(const DataPlane* dp) {
    std::lock_guard lock(g_mutex);
    if (g_instance == dp) g_instance = nullptr;
}

} // namespace netbackd::dataplane
