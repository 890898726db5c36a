// The data plane as the control plane sees it: a DataPlaneSink that runs the vifs it is given
// on one or more worker threads, plus what the control thread polls (faults to write into
// xenstore, rate changes, counters).
//
// Threads: every public member is called from the one control thread. Each worker runs on a
// thread of its own; they talk only through lock-free mailboxes, rings and atomics. A vif goes
// to the worker running the fewest; every other worker learns it as a remote switch port.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backend/control/data_plane_sink.hpp"
#include "backend/dataplane/capture.hpp"
#include "backend/dataplane/counters.hpp"
#include "backend/dataplane/frame_pools.hpp"
#include "backend/dataplane/uplink.hpp"
#include "backend/dataplane/vif_runtime.hpp"
#include "backend/dataplane/worker.hpp"
#include "backend/platform/platform.hpp"
#include "pmd/mempool.hpp"

namespace netbackd::dataplane {

struct UplinkBinding {
    std::string name; // what a vif's policy.uplink names
    Uplink* uplink;   // must outlive the data plane
};

struct DataPlaneConfig {
    WorkerConfig worker;
    // Worker threads (at least 1). Every uplink needs one TX queue per worker.
    unsigned workers = 1;
    // CPU each worker thread is pinned to, by worker index (missing or empty: not pinned).
    std::vector<unsigned> worker_cpus;
    unsigned max_queues = 4;
    // The first is the default for vifs whose policy names none. Empty: guest-to-guest only.
    std::vector<UplinkBinding> uplinks;
    // Both must outlive the data plane. pool: buffers for guest frames; indirect_pool: software
    // GSO payload references (data room 0 is enough). Ignored when `pools` is set.
    const pmd::Mempool* pool = nullptr;
    const pmd::Mempool* indirect_pool = nullptr;
    // Pools that grow with the vifs (must outlive the data plane): before each attach,
    // grow_pools(vifs attached with it) may add pools for them (frame_pools.hpp).
    FramePools* pools = nullptr;
    std::function<void(std::size_t vifs)> grow_pools;
    // How long the control thread waits on a worker (an answer to a detach, room in its
    // mailbox) before it logs an error and goes on without it; see DataPlane::detach().
    std::chrono::milliseconds control_wait{5000};
    // Workers take the vifs attached to them but serve none until release(): a restarted
    // netbackd re-adopts every vif first, so a frame a guest queued while no netbackd ran finds
    // its receiver in the switch instead of being dropped as unknown.
    bool start_held = false;
};

struct VifTelemetry {
    control::VifId id;
    VifState state;
    VifStats stats;
    unsigned worker = 0;
};

struct VifFaultReport {
    control::VifId id;
    std::string message;
};

// A vif whose guest RX stalled (carrier off, backlog dropped) or came back since last asked.
struct CarrierChange {
    control::VifId id;
    bool on = true;
    std::uint64_t stalls = 0; // times it stalled so far
};

class DataPlane final : public control::DataPlaneSink {
public:
    // open_grants is called once per worker: each copies through its own Grants (platform.hpp,
    // Threads). events is shared by every worker.
    DataPlane(const DataPlaneConfig& config, const platform::GrantsFactory& open_grants,
              platform::Events& events);
    ~DataPlane() override;
    DataPlane(const DataPlane&) = delete;
    DataPlane& operator=(const DataPlane&) = delete;

    control::DataPlaneFeatures features() const override;
    // Refuses a MAC another attached vif holds on the same uplink and VLAN, an uplink this
    // data plane does not have, and a vif beyond worker.max_vifs.
    std::optional<control::Refusal> refusal(control::VifId id,
                                            const control::VifPolicy& policy) const override;
    void attach(std::unique_ptr<control::VifHandle> vif) override;
    // Lets workers started held (config.start_held) serve their vifs; idempotent.
    void release();
    // Bounded by config.control_wait per worker answer. A worker that does not answer in time
    // may still touch the vif: it is logged and quarantined (rings stay mapped, the runtime
    // stays allocated) until every late answer arrived, and nullptr is returned.
    std::unique_ptr<control::VifHandle> detach(control::VifId id) override;
    // Only the rate applies at run time; MAC, VLAN and uplink changes need a re-attach.
    void update_policy(control::VifId id, const control::VifPolicy& policy) override;
    // To the vif's owner worker as a set_hash message.
    void set_hash(control::VifId id, std::shared_ptr<const ring::HashConfig> hash) override;
    // Straight into the vif's McastFilter (one atomic flag every worker's switch reads).
    void set_multicast_control(control::VifId id, bool on) override;
    // To the vif's owner worker as a set_staging message; waits for its answer (control_wait).
    bool set_staging(control::VifId id, std::shared_ptr<const control::StagedPages> pages, unsigned queue,
                     std::span<const platform::GrantRef> removed) override;

    // The toolstack's `rate` key changed (nullopt: unlimited).
    void set_rate(control::VifId id, std::optional<control::Rate> rate);
    // Vifs the worker disabled since the last call (each reported once), with the text for the
    // backend's `error` node. Lock-free: reads the per-vif state atomics.
    std::vector<VifFaultReport> take_faults();
    // Carrier transitions of the vifs' guest RX (rx_stall_timeout) since the last call, each
    // reported once: a stall and recovery both between two calls show as a new stall count.
    std::vector<CarrierChange> take_carrier_changes();
    // Readable once a vif fault or carrier change waits for the two above, so the control
    // thread sleeps on it instead of asking ten times a second; the reader drains it
    // (platform::drain_eventfd).
    int reports_fd() const noexcept { return reports_bell_.get(); }
    std::optional<VifStats> stats(control::VifId id) const;
    std::vector<std::pair<control::VifId, VifStats>> all_stats() const;
    // The vifs attached (control thread).
    std::size_t vif_count() const noexcept { return vifs_.size(); }
    std::vector<control::VifId> vif_ids() const;
    // Detached vifs still waiting for a late worker answer (see detach()). Late answers are
    // collected on every control-thread call that waits on a worker and in take_faults().
    std::size_t quarantined() const noexcept { return quarantine_.size(); }
    // Worker 0's counters (the only worker's, by default).
    const WorkerCounters& worker_counters() const noexcept { return workers_.front()->counters(); }
    std::size_t worker_count() const noexcept { return workers_.size(); }
    const WorkerCounters& worker_counters(std::size_t i) const noexcept { return workers_[i]->counters(); }
    // Whether worker i sleeps on RX interrupts rather than a timer when idle.
    bool worker_sleeps_on_rx_interrupts(std::size_t i) const noexcept {
        return workers_[i]->rx_interrupt_sleep();
    }
    bool worker_idle_timer(std::size_t i) const noexcept { return workers_[i]->idle_timer(); }
    // Liveness for the service watchdog: worker i's loop count, which advances on every
    // iteration, and a wake-up that makes a sleeping worker iterate once (any thread).
    std::uint64_t worker_heartbeat(std::size_t i) const noexcept {
        return workers_[i]->counters().iterations.get();
    }
    void poke_worker(std::size_t i) noexcept { workers_[i]->wake(); }
    // Vifs worker i runs (control thread).
    std::size_t worker_load(std::size_t i) const;
    // The worker running vif id (control thread); nullopt when not attached.
    std::optional<unsigned> worker_of(control::VifId id) const;
    // `netbackd capture`: makes the vif's worker offer its frames to `tap` (capture.hpp).
    // Returns why not: the vif is not attached, or a capture already runs on it.
    std::optional<std::string> start_capture(control::VifId id, std::shared_ptr<CaptureTap> tap);
    // Stops offering to `tap`; once it returns, no worker touches the tap any more. Detaching
    // the vif does the same and marks the tap ended.
    void stop_capture(control::VifId id, const CaptureTap* tap);
    // Any thread (the telemetry thread): a consistent list of the vifs and their counters.
    std::vector<VifTelemetry> telemetry_view() const;

private:
    struct Entry {
        std::unique_ptr<VifRuntime> runtime;
        bool fault_reported = false;
        unsigned worker = 0;
        bool carrier = true; // as last reported by take_carrier_changes
        std::uint64_t stalls = 0;
        std::shared_ptr<CaptureTap> capture;
        std::uint64_t hash_seq = 0;    // set_hash messages posted
        std::uint64_t staging_seq = 0; // set_staging messages posted
    };
    // Index into config_.uplinks of what a policy names (0 when it names none); nullopt when
    // it names one that does not exist.
    std::optional<std::uint16_t> uplink_of(const control::VifPolicy& policy) const;
    std::string uplink_name(std::uint16_t uplink) const;
    // A vif detached while a worker did not answer in time: kept whole until they all did.
    struct Quarantined {
        control::VifId id;
        std::unique_ptr<VifRuntime> runtime;
        std::vector<unsigned> awaiting; // workers whose answer is still missing
        unsigned owner = 0;
        bool fence = false; // a non-owner was late: the owner drains once more before release
        std::shared_ptr<CaptureTap> capture; // a late worker may still be inside a burst with it
    };
    void post(Worker& w, const WorkerMsg& msg, const VifRuntime& vif);
    // Waits (at most config_.control_wait) until worker w says it let go of vif; false on
    // timeout, logged with `what` was asked.
    bool await_detached(unsigned w, const VifRuntime* vif, const char* what);
    // Takes worker w's answers; one for a quarantined vif counts, the last one frees it.
    // Returns whether `want` was among them.
    bool take_answers(unsigned w, const VifRuntime* want);
    // Releases the quarantined vifs every worker let go of (after the owner's fence, if due).
    void settle_quarantine();
    // What senders on other workers take a new vif's backlog to hold until its owner publishes.
    BacklogRoom first_room() const noexcept;
    void reap_quarantine();

    DataPlaneConfig config_;
    // config_.pool and indirect_pool as the one pool, when config_.pools is not given.
    std::unique_ptr<FramePools> own_pools_;
    std::unique_ptr<WorkerMesh> mesh_;
    std::vector<std::unique_ptr<platform::Grants>> worker_grants_; // [i]: worker i's alone
    std::vector<std::unique_ptr<Worker>> workers_;
    std::map<control::VifId, Entry> vifs_;
    // Shared state: bumped by the workers after a vif fault or carrier change (VifRuntime::
    // reports), read by the control thread, which walks vifs_ in take_faults and
    // take_carrier_changes only when it moved since their last walk: an idle host with a
    // thousand vifs is not scanned ten times a second for nothing.
    std::atomic<std::uint64_t> reports_{0};
    platform::Fd reports_bell_ = platform::make_eventfd(); // readable once reports_ moved
    std::uint64_t faults_walked_ = 0;
    std::uint64_t carriers_walked_ = 0;
    std::vector<Quarantined> quarantine_; // control thread only
    // Guards vifs_ against the telemetry thread: taken by the control thread when it changes
    // the map and by readers from other threads; never by the worker.
    mutable std::mutex mutex_;
    std::atomic<bool> stop_{false};
    // Shared with every worker: set from the constructor (config.start_held) until release().
    std::atomic<bool> held_{false};
    std::vector<std::thread> threads_;
};

// The /netbackd/* telemetry commands read this data plane (one per process; nullptr: none).
// The DataPlane publishes itself on construction and withdraws on destruction.
void publish_telemetry(const DataPlane* dp);
// Vifs per /netbackd/vifs reply (see telemetry.cpp): readers page with "/netbackd/vifs,<first>".
inline constexpr unsigned kVifsPerPage = 16;
void withdraw_telemetry(const DataPlane* dp);

// What `netbackd run` builds once the EAL, pools and ports exist.
std::unique_ptr<DataPlane> make_dataplane(const DataPlaneConfig& config, platform::Platform& platform);

} // namespace netbackd::dataplane
