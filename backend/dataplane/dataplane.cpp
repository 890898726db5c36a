#include "backend/dataplane/dataplane.hpp"

#include <chrono>
#include <stdexcept>

#include <rte_cycles.h>
#include <rte_lcore.h>

namespace netbackd::dataplane {

namespace {

WorkerContext context_of(const DataPlaneConfig& c, platform::Grants& grants, platform::Events& events) {
    if (c.pool == nullptr || c.indirect_pool == nullptr)
        throw std::invalid_argument("dataplane: pool and indirect_pool are required");
    std::vector<Uplink*> ups;
    for (const auto& u : c.uplinks) ups.push_back(u.uplink);
    return WorkerContext{grants, events, *c.pool, *c.indirect_pool, std::move(ups)};
}

} // namespace

DataPlane::DataPlane(const DataPlaneConfig& config, platform::Grants& grants, platform::Events& events)
    : config_(config), worker_(std::make_unique<Worker>(config.worker, context_of(config, grants, events))) {
    thread_ = std::thread([this] {
        // An lcore id gives the worker a mempool cache; without one it still works, slower.
        (void)rte_thread_register();
        worker_->run(stop_);
        rte_thread_unregister();
    });
    publish_telemetry(this);
}

DataPlane::~DataPlane() {
    withdraw_telemetry(this);
    stop_.store(true, std::memory_order_relaxed);
    worker_->wake();
    thread_.join();
    // The worker still points at the vifs it runs: it goes first.
    worker_.reset();
}

control::DataPlaneFeatures DataPlane::features() const {
    control::DataPlaneFeatures f;
    f.sg = true;
    f.gso_tcpv4 = true;
    f.gso_tcpv6 = true;
    f.ipv6_csum_offload = true;
    f.split_event_channels = true;
    f.max_queues = config_.max_queues;
    return f;
}

void DataPlane::post(const WorkerMsg& msg) {
    using namespace std::chrono_literals;
    for (int i = 0; !worker_->post(msg); ++i) {
        if (i > 100000) throw std::runtime_error("dataplane: worker mailbox stuck");
        std::this_thread::sleep_for(50us);
    }
}

void DataPlane::attach(std::unique_ptr<control::VifHandle> vif) {
    if (!vif || vif->queues.empty()) throw std::invalid_argument("dataplane: vif without queues");
    if (vifs_.contains(vif->id)) throw std::invalid_argument("dataplane: " + vif->id.name() + " attached twice");
    std::optional<std::uint16_t> uplink = 0;
    if (vif->policy.uplink) {
        uplink.reset();
        for (std::size_t i = 0; i < config_.uplinks.size(); ++i)
            if (config_.uplinks[i].name == *vif->policy.uplink) uplink = static_cast<std::uint16_t>(i);
    }
    const control::VifId id = vif->id;
    auto runtime = std::make_unique<VifRuntime>(std::move(vif), uplink, rte_get_tsc_hz());
    VifRuntime* raw = runtime.get();
    {
        std::lock_guard lock(mutex_);
        vifs_.emplace(id, Entry{std::move(runtime), false});
    }
    post(WorkerMsg{WorkerMsgKind::attach, raw, std::nullopt});
}

std::unique_ptr<control::VifHandle> DataPlane::detach(control::VifId id) {
    using namespace std::chrono_literals;
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return nullptr;
    VifRuntime* raw = it->second.runtime.get();
    post(WorkerMsg{WorkerMsgKind::detach, raw, std::nullopt});
    // The rings stay mapped until the worker says it let go; it answers within one iteration.
    for (;;) {
        if (auto done = worker_->take_detached()) {
            if (*done == raw) break;
        }
        std::this_thread::sleep_for(20us);
    }
    auto handle = raw->release_handle();
    std::lock_guard lock(mutex_);
    vifs_.erase(it);
    return handle;
}

void DataPlane::set_rate(control::VifId id, std::optional<control::Rate> rate) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return;
    post(WorkerMsg{WorkerMsgKind::set_rate, it->second.runtime.get(), rate});
}

void DataPlane::update_policy(control::VifId id, const control::VifPolicy& policy) {
    set_rate(id, policy.rate);
}

std::vector<VifFaultReport> DataPlane::take_faults() {
    std::vector<VifFaultReport> out;
    for (auto& [id, e] : vifs_) {
        if (e.fault_reported || e.runtime->state() != VifState::disabled) continue;
        e.fault_reported = true;
        out.push_back(VifFaultReport{id, e.runtime->fault_message()});
    }
    return out;
}

std::optional<VifStats> DataPlane::stats(control::VifId id) const {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return std::nullopt;
    return snapshot(it->second.runtime->counters());
}

std::vector<std::pair<control::VifId, VifStats>> DataPlane::all_stats() const {
    std::vector<std::pair<control::VifId, VifStats>> out;
    for (const auto& [id, e] : vifs_) out.emplace_back(id, snapshot(e.runtime->counters()));
    return out;
}

std::vector<VifTelemetry> DataPlane::telemetry_view() const {
    std::lock_guard lock(mutex_);
    std::vector<VifTelemetry> out;
    for (const auto& [id, e] : vifs_) out.push_back(VifTelemetry{id, e.runtime->state(), snapshot(e.runtime->counters())});
    return out;
}

std::unique_ptr<DataPlane> make_dataplane(const DataPlaneConfig& config, platform::Platform& platform) {
    return std::make_unique<DataPlane>(config, *platform.grants, *platform.events);
}

} // namespace netbackd::dataplane
