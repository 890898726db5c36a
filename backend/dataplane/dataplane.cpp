#include "backend/dataplane/dataplane.hpp"

#include <cerrno>
#include <chrono>
#include <stdexcept>

#include <fmt/format.h>
#include <pthread.h>
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <sched.h>
#include <spdlog/spdlog.h>

namespace netbackd::dataplane {

namespace {

WorkerContext context_of(const DataPlaneConfig& c, platform::Grants& grants, platform::Events& events,
                         std::uint16_t index, WorkerMesh* mesh) {
    std::vector<Uplink*> ups;
    for (const auto& u : c.uplinks) {
        // Two workers on one TX queue would race inside the PMD.
        if (u.uplink->tx_queues() < c.workers)
            throw std::invalid_argument(fmt::format("dataplane: uplink {} has {} TX queue(s) for {} workers",
                                                    u.name, u.uplink->tx_queues(), c.workers));
        ups.push_back(u.uplink);
    }
    return WorkerContext{grants, events, *c.pools, std::move(ups), index, mesh};
}

void pin_to(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    // Best effort: a CPU outside our cgroup leaves the thread floating, which still works.
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

} // namespace

DataPlane::DataPlane(const DataPlaneConfig& config, const platform::GrantsFactory& open_grants,
                     platform::Events& events)
    : config_(config) {
    if (config_.workers == 0) config_.workers = 1;
    if (config_.workers > 64) throw std::invalid_argument("dataplane: at most 64 workers");
    if (config_.worker.max_vifs + config_.uplinks.size() + 1 >= kNoPort)
        throw std::invalid_argument("dataplane: max_vifs too large for 16-bit switch ports");
    if (config_.pools == nullptr) {
        if (config_.pool == nullptr || config_.indirect_pool == nullptr)
            throw std::invalid_argument("dataplane: pool and indirect_pool are required");
        own_pools_ = std::make_unique<FramePools>(*config_.pool, *config_.indirect_pool);
        config_.pools = own_pools_.get();
    }
    if (config_.workers > 1) mesh_ = std::make_unique<WorkerMesh>(config_.workers);
    for (unsigned i = 0; i < config_.workers; ++i) {
        WorkerConfig wc = config_.worker;
        wc.uplink_queue = static_cast<std::uint16_t>(i);
        worker_grants_.push_back(open_grants());
        workers_.push_back(
            std::make_unique<Worker>(wc, context_of(config_, *worker_grants_.back(), events,
                                                    static_cast<std::uint16_t>(i), mesh_.get())));
    }
    held_.store(config_.start_held, std::memory_order_relaxed);
    for (unsigned i = 0; i < config_.workers; ++i) {
        const std::optional<unsigned> cpu =
            i < config_.worker_cpus.size() ? std::optional(config_.worker_cpus[i]) : std::nullopt;
        threads_.emplace_back([this, i, cpu] {
            if (cpu) pin_to(*cpu);
            // An lcore id gives the worker a mempool cache; without one it still works, slower.
            (void)rte_thread_register();
            workers_[i]->serve_messages_while(held_, stop_);
            workers_[i]->run(stop_);
            rte_thread_unregister();
        });
    }
    publish_telemetry(this);
}

void DataPlane::release() {
    held_.store(false, std::memory_order_release);
    for (auto& w : workers_) w->wake();
}

DataPlane::~DataPlane() {
    withdraw_telemetry(this);
    stop_.store(true, std::memory_order_relaxed);
    for (auto& w : workers_) w->wake();
    for (auto& t : threads_) t.join();
    // Workers still point at the vifs they run (and at the mesh): they go first.
    workers_.clear();
    quarantine_.clear(); // every worker is gone: nothing touches them any more
    worker_grants_.clear();
    mesh_.reset();
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

void DataPlane::post(Worker& w, const WorkerMsg& msg, const VifRuntime& vif) {
    using namespace std::chrono_literals;
    const auto deadline = std::chrono::steady_clock::now() + config_.control_wait;
    while (!w.post(msg)) {
        if (std::chrono::steady_clock::now() > deadline) {
            spdlog::error("dataplane: worker {}'s mailbox stayed full for {} ms (a message for {}); "
                          "giving up on it",
                          w.index(), config_.control_wait.count(), vif.id().name());
            throw std::runtime_error(fmt::format("dataplane: worker {} mailbox stuck", w.index()));
        }
        std::this_thread::sleep_for(50us);
    }
}

bool DataPlane::take_answers(unsigned w, const VifRuntime* want) {
    bool found = false;
    while (auto done = workers_[w]->take_detached()) {
        if (*done == want) {
            found = true;
            continue;
        }
        for (Quarantined& qv : quarantine_) {
            if (qv.runtime.get() != *done || std::erase(qv.awaiting, w) == 0) continue;
            spdlog::warn("dataplane: worker {} answered late for {}", w, qv.id.name());
            break;
        }
    }
    settle_quarantine();
    return found;
}

void DataPlane::settle_quarantine() {
    std::erase_if(quarantine_, [this](Quarantined& qv) {
        if (!qv.awaiting.empty()) return false;
        if (qv.fence) {
            // A late non-owner may have handed frames for the vif over before it answered; the
            // owner drains them in a second detach (idempotent there) before the vif can go.
            if (!workers_[qv.owner]->post(
                    WorkerMsg{WorkerMsgKind::detach, qv.runtime.get(), std::nullopt, 0}))
                return false; // mailbox full: the next call tries again
            qv.fence = false;
            qv.awaiting.push_back(qv.owner);
            return false;
        }
        spdlog::warn("dataplane: {}: every worker let go; its rings are released now", qv.id.name());
        return true; // unmaps the rings, unbinds the channels
    });
}

void DataPlane::reap_quarantine() {
    if (quarantine_.empty()) return;
    for (unsigned w = 0; w < workers_.size(); ++w) (void)take_answers(w, nullptr);
}

bool DataPlane::await_detached(unsigned w, const VifRuntime* vif, const char* what) {
    using namespace std::chrono_literals;
    // A worker answers within one iteration, and an iteration is bounded (every queue's burst
    // by its budget), so a missing answer means a stuck worker: give up after control_wait.
    const auto start = std::chrono::steady_clock::now();
    while (!take_answers(w, vif)) {
        if (std::chrono::steady_clock::now() - start > config_.control_wait) {
            spdlog::error("dataplane: {}: worker {} did not answer '{}' within {} ms; the vif is "
                          "quarantined (rings stay mapped, nothing is freed) until it does",
                          vif->id().name(), w, what, config_.control_wait.count());
            return false;
        }
        std::this_thread::sleep_for(20us);
    }
    return true;
}

std::size_t DataPlane::worker_load(std::size_t i) const {
    std::size_t n = 0;
    for (const auto& [id, e] : vifs_) n += e.worker == i ? 1 : 0;
    return n;
}

std::optional<unsigned> DataPlane::worker_of(control::VifId id) const {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return std::nullopt;
    return it->second.worker;
}

std::optional<std::uint16_t> DataPlane::uplink_of(const control::VifPolicy& policy) const {
    if (!policy.uplink) return 0;
    for (std::size_t i = 0; i < config_.uplinks.size(); ++i)
        if (config_.uplinks[i].name == *policy.uplink) return static_cast<std::uint16_t>(i);
    return std::nullopt;
}

std::string DataPlane::uplink_name(std::uint16_t uplink) const {
    return uplink < config_.uplinks.size() ? fmt::format("uplink '{}'", config_.uplinks[uplink].name)
                                           : std::string("the guest-only switch (no uplink)");
}

std::optional<control::Refusal> DataPlane::refusal(control::VifId id,
                                                   const control::VifPolicy& policy) const {
    const auto uplink = uplink_of(policy);
    if (!uplink) {
        std::string have;
        for (const auto& u : config_.uplinks) have += (have.empty() ? "" : ", ") + u.name;
        return control::Refusal{
            ENODEV,
            fmt::format("uplink '{}' (from {}) does not exist; configured uplinks: {}", *policy.uplink,
                        policy.client_source.empty() ? "the vif's policy" : policy.client_source,
                        have.empty() ? "none" : have)};
    }
    const std::size_t others = vifs_.size() - (vifs_.contains(id) ? 1 : 0);
    if (others >= config_.worker.max_vifs)
        return control::Refusal{ENOSPC,
                                fmt::format("netbackd already runs {} vifs, its limit ([vif] max_vifs = {})",
                                            others, config_.worker.max_vifs)};
    const MacAddr mac = MacAddr::from_bytes(std::span<const std::uint8_t, 6>(policy.guest_mac));
    const std::uint16_t vlan = policy.vlan.value_or(0);
    for (const auto& [other, e] : vifs_) {
        const VifRuntime& v = *e.runtime;
        if (other == id || v.mac != mac || v.vlan != vlan || v.uplink != uplink) continue;
        return control::Refusal{EADDRINUSE,
                                fmt::format("MAC {} is already in use by {} on {}{}",
                                            control::format_mac(policy.guest_mac), other.name(),
                                            uplink_name(*uplink),
                                            vlan != 0 ? fmt::format(" VLAN {}", vlan) : std::string()),
                                other};
    }
    return std::nullopt;
}

BacklogRoom DataPlane::first_room() const noexcept {
    const WorkerConfig& c = config_.worker;
    BacklogRoom room;
    room.waits = c.rx_wait.count() != 0;
    room.empty = true;
    room.mbufs = std::min<std::uint64_t>({c.rx_vif_mbufs, c.rx_queue_mbufs, kRxBacklog});
    room.bytes = std::min(c.rx_vif_bytes, c.rx_queue_bytes);
    return room;
}

void DataPlane::attach(std::unique_ptr<control::VifHandle> vif) {
    if (!vif || vif->queues.empty()) throw std::invalid_argument("dataplane: vif without queues");
    reap_quarantine();
    if (vifs_.contains(vif->id))
        throw std::invalid_argument("dataplane: " + vif->id.name() + " attached twice");
    const std::optional<std::uint16_t> uplink = uplink_of(vif->policy);
    const control::VifId id = vif->id;
    // Before the workers hear of the vif: they take up new pools as they attach it.
    if (config_.grow_pools) config_.grow_pools(vifs_.size() + 1);
    auto runtime = std::make_unique<VifRuntime>(std::move(vif), uplink, rte_get_tsc_hz());
    runtime->held.reserve(config_.worker.tx_burst);
    if (workers_.size() > 1) runtime->cross_room.reserve(workers_.size(), first_room());
    runtime->reports = &reports_;
    runtime->reports_fd = reports_bell_.get();
    VifRuntime* raw = runtime.get();
    // Least loaded by vif count: traffic per vif is unknown at attach time.
    unsigned owner = 0;
    for (unsigned w = 1; w < workers_.size(); ++w)
        if (worker_load(w) < worker_load(owner)) owner = w;
    {
        std::lock_guard lock(mutex_);
        Entry entry;
        entry.runtime = std::move(runtime);
        entry.worker = owner;
        vifs_.emplace(id, std::move(entry));
    }
    // The owner first: a frame another worker hands over before the owner took the vif is
    // dropped (the vif is not running yet), never delivered to a vif nobody runs.
    post(*workers_[owner], WorkerMsg{WorkerMsgKind::attach, raw, std::nullopt, 0}, *raw);
    for (unsigned w = 0; w < workers_.size(); ++w)
        if (w != owner)
            post(
                *workers_[w],
                WorkerMsg{WorkerMsgKind::attach_remote, raw, std::nullopt, static_cast<std::uint16_t>(owner)},
                *raw);
}

std::unique_ptr<control::VifHandle> DataPlane::detach(control::VifId id) {
    reap_quarantine();
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return nullptr;
    VifRuntime* raw = it->second.runtime.get();
    const unsigned owner = it->second.worker;
    std::vector<unsigned> late;
    // The others first, so that once the owner lets go, nothing can name the vif any more: what
    // they handed over before is already in the owner's rings, which it drains as it detaches.
    for (unsigned w = 0; w < workers_.size(); ++w)
        if (w != owner)
            post(*workers_[w], WorkerMsg{WorkerMsgKind::detach_remote, raw, std::nullopt, 0}, *raw);
    for (unsigned w = 0; w < workers_.size(); ++w)
        if (w != owner && !await_detached(w, raw, "detach_remote")) late.push_back(w);
    // The rings stay mapped until the owner says it let go. Asked even when another worker is
    // late, so that the guest is no longer served; what the late one hands over meanwhile is
    // drained by a second detach before the vif is freed (settle_quarantine).
    post(*workers_[owner], WorkerMsg{WorkerMsgKind::detach, raw, std::nullopt, 0}, *raw);
    if (!await_detached(owner, raw, "detach")) late.push_back(owner);
    // No worker runs the vif any more (or a late one is fenced off by the quarantine): a capture
    // on it ends here. A late worker may still hold the tap inside a burst, so the quarantine
    // keeps it alive with the vif.
    std::shared_ptr<CaptureTap> tap = std::move(it->second.capture);
    if (tap) {
        raw->capture.store(nullptr, std::memory_order_seq_cst);
        tap->end();
    }
    std::lock_guard lock(mutex_);
    if (!late.empty()) {
        // Freeing what a worker may still touch would be a use-after-free in the fast path; a
        // leaked vif is the lesser harm, and late answers still release it.
        const bool fence = late.front() != owner;
        quarantine_.push_back(
            Quarantined{id, std::move(it->second.runtime), std::move(late), owner, fence, std::move(tap)});
        vifs_.erase(it);
        return nullptr;
    }
    auto handle = raw->release_handle();
    vifs_.erase(it);
    return handle;
}

std::optional<std::string> DataPlane::start_capture(control::VifId id, std::shared_ptr<CaptureTap> tap) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return fmt::format("{} is not connected here", id.name());
    if (it->second.capture) return fmt::format("a capture already runs on {}", id.name());
    it->second.runtime->capture.store(tap.get(), std::memory_order_seq_cst);
    it->second.capture = std::move(tap);
    return std::nullopt;
}

void DataPlane::stop_capture(control::VifId id, const CaptureTap* tap) {
    using namespace std::chrono_literals;
    const auto it = vifs_.find(id);
    if (it == vifs_.end() || it->second.capture.get() != tap) return;
    VifRuntime& vif = *it->second.runtime;
    vif.capture.store(nullptr, std::memory_order_seq_cst);
    // The worker is inside one burst's copies at most: short.
    while (vif.capture_busy.load(std::memory_order_seq_cst) == tap) std::this_thread::sleep_for(10us);
    it->second.capture.reset();
}

void DataPlane::set_rate(control::VifId id, std::optional<control::Rate> rate) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return;
    post(*workers_[it->second.worker], WorkerMsg{WorkerMsgKind::set_rate, it->second.runtime.get(), rate, 0},
         *it->second.runtime);
}

void DataPlane::set_hash(control::VifId id, std::shared_ptr<const ring::HashConfig> hash) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return;
    using namespace std::chrono_literals;
    Entry& e = it->second;
    const std::uint64_t seq = ++e.hash_seq;
    post(*workers_[e.worker],
         WorkerMsg{WorkerMsgKind::set_hash, e.runtime.get(), std::nullopt, 0, std::move(hash), seq},
         *e.runtime);
    // The guest is answered after this returns: let the worker take it first (one iteration;
    // a wedged worker is reported by the detach path, here the answer just goes out).
    for (int i = 0; e.runtime->hash_seq.load(std::memory_order_acquire) < seq && i < 20000; ++i)
        std::this_thread::sleep_for(50us);
}

void DataPlane::set_multicast_control(control::VifId id, bool on) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return;
    it->second.runtime->mcast.set_enabled(on);
}

bool DataPlane::set_staging(control::VifId id, std::shared_ptr<const control::StagedPages> pages,
                            unsigned queue, std::span<const platform::GrantRef> removed) {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return true; // no worker holds the vif: nobody uses the pages
    using namespace std::chrono_literals;
    Entry& e = it->second;
    const std::uint64_t seq = ++e.staging_seq;
    try {
        auto update = std::make_shared<const StagingUpdate>(StagingUpdate{
            std::move(pages), queue, std::vector<platform::GrantRef>(removed.begin(), removed.end())});
        WorkerMsg msg{WorkerMsgKind::set_staging, e.runtime.get(), std::nullopt, 0, nullptr, seq};
        msg.staging = std::move(update);
        post(*workers_[e.worker], msg, *e.runtime);
    } catch (const std::exception& ex) {
        spdlog::error("{}: staging grants not handed to the data plane: {}", id.name(), ex.what());
        return false;
    }
    // Unmapping waits for this answer, so wait as long as for any control message.
    const auto deadline = std::chrono::steady_clock::now() + config_.control_wait;
    while (e.runtime->staging_seq.load(std::memory_order_acquire) < seq) {
        if (std::chrono::steady_clock::now() > deadline) {
            spdlog::error("{}: worker {} did not take the staging grants in {} ms", id.name(), e.worker,
                          config_.control_wait.count());
            return false;
        }
        std::this_thread::sleep_for(50us);
    }
    return e.runtime->staging_ok.load(std::memory_order_relaxed);
}

void DataPlane::update_policy(control::VifId id, const control::VifPolicy& policy) {
    set_rate(id, policy.rate);
}

std::vector<VifFaultReport> DataPlane::take_faults() {
    reap_quarantine(); // the control loop's tick: late answers release quarantined vifs
    std::vector<VifFaultReport> out;
    // acquire: pairs with the worker's bump, which follows its state store.
    const std::uint64_t reports = reports_.load(std::memory_order_acquire);
    if (reports == faults_walked_) return out;
    faults_walked_ = reports;
    for (auto& [id, e] : vifs_) {
        if (e.fault_reported || e.runtime->state() != VifState::disabled) continue;
        e.fault_reported = true;
        out.push_back(VifFaultReport{id, e.runtime->fault_message()});
    }
    return out;
}

std::vector<CarrierChange> DataPlane::take_carrier_changes() {
    std::vector<CarrierChange> out;
    const std::uint64_t reports = reports_.load(std::memory_order_acquire);
    if (reports == carriers_walked_) return out;
    carriers_walked_ = reports;
    for (auto& [id, e] : vifs_) {
        const bool on = e.runtime->carrier();
        const std::uint64_t stalls = e.runtime->counters().rx_stalls.get();
        if (on == e.carrier && stalls == e.stalls) continue;
        e.carrier = on;
        e.stalls = stalls;
        out.push_back(CarrierChange{id, on, stalls});
    }
    return out;
}

std::optional<VifStats> DataPlane::stats(control::VifId id) const {
    const auto it = vifs_.find(id);
    if (it == vifs_.end()) return std::nullopt;
    return snapshot(it->second.runtime->counters());
}

std::vector<control::VifId> DataPlane::vif_ids() const {
    std::vector<control::VifId> out;
    out.reserve(vifs_.size());
    for (const auto& [id, e] : vifs_) out.push_back(id);
    return out;
}

std::vector<std::pair<control::VifId, VifStats>> DataPlane::all_stats() const {
    std::vector<std::pair<control::VifId, VifStats>> out;
    for (const auto& [id, e] : vifs_) out.emplace_back(id, snapshot(e.runtime->counters()));
    return out;
}

std::vector<VifTelemetry> DataPlane::telemetry_view() const {
    std::lock_guard lock(mutex_);
    std::vector<VifTelemetry> out;
    for (const auto& [id, e] : vifs_)
        out.push_back(VifTelemetry{id, e.runtime->state(), e.runtime->stats(), e.worker});
    return out;
}

std::unique_ptr<DataPlane> make_dataplane(const DataPlaneConfig& config, platform::Platform& platform) {
    return std::make_unique<DataPlane>(config, platform.open_worker_grants, *platform.events);
}

} // namespace netbackd::dataplane
