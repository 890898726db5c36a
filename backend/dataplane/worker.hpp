// One run-to-completion poll loop: a worker owns the vifs the control thread handed it, its own
// L2 switch, and one RX/TX queue of each uplink. Each iteration: take control messages, switch an
// uplink RX burst to the vifs, take a bounded TX burst from every vif queue (one batched grant
// copy each) and switch it, flush the uplink TX buffers, then copy each vif queue's backlog into
// its posted RX buffers (one batched grant copy each). After a configurable idle time it re-arms
// the rings' event indices and sleeps on the event-channel fd, its own wake-up eventfd, and the
// RX interrupts of the uplink queues it polls (a timer instead when any of them has none).
//
// With several workers (a WorkerMesh), every worker's switch knows every vif; frames for a vif
// another worker owns cross through that pair's SPSC ring, and the owner copies them to the
// guest. Each worker sends on its own TX queue of every uplink; the wire's RX side is polled
// per worker when the port has one RSS queue per worker, else by worker 0 alone.
//
// Fast path rules: no allocation, lock, exception, log line or syscall per packet; virtual calls
// (platform, uplink) happen once per burst.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backend/control/data_plane_sink.hpp"
#include "backend/dataplane/copy_batch.hpp"
#include "backend/dataplane/frame_pools.hpp"
#include "backend/dataplane/l2_switch.hpp"
#include "backend/dataplane/mesh.hpp"
#include "backend/dataplane/rx_merge.hpp"
#include "backend/dataplane/spsc_queue.hpp"
#include "backend/dataplane/uplink.hpp"
#include "backend/dataplane/vif_runtime.hpp"
#include "backend/platform/fd.hpp"
#include "backend/platform/platform.hpp"
#include "pmd/gso.hpp"
#include "pmd/mempool.hpp"
#include "ring/rx_responder.hpp"
#include "ring/tx_packet.hpp"

struct rte_mbuf;

namespace netbackd::dataplane {

struct WorkerConfig {
    std::uint32_t tx_burst = 32;     // packets per vif queue per iteration (guest -> backend)
    std::uint32_t rx_burst = 64;     // frames per vif queue per iteration (backend -> guest)
    std::uint32_t uplink_burst = 32; // frames per uplink per iteration
    // Vifs in this worker's switch (its own and every other worker's): the port tables are
    // sized for it once; DataPlane::refusal() turns away the vif beyond it.
    std::size_t max_vifs = 64;
    std::size_t mac_table = 4096;
    // Busy-poll this long after the last work before re-arming notifications and sleeping.
    std::chrono::microseconds idle_before_sleep{200};
    // Sleep on a timer while something can only be polled: the uplink queues this worker polls
    // when not every one of them gives RX interrupts (or rx_interrupts is off), or a frontend
    // without feature-rx-notify holding a backlog. The first sleep after work lasts
    // poll_interval; each further idle one doubles it up to max_poll_interval, so a quiet host
    // costs next to nothing while a wire frame after a short pause still waits little.
    std::chrono::microseconds poll_interval{500};
    std::chrono::microseconds max_poll_interval{8000};
    // Sleep on the polled queues' RX interrupts when every one has them (false: always the
    // timer above).
    bool rx_interrupts = true;
    std::chrono::seconds mac_age{300};
    // TX queue of every uplink this worker sends on (its worker index in a data plane). RX: see
    // the file comment.
    std::uint16_t uplink_queue = 0;
    // Never sleep (the global config's polling = "busy"): lowest latency, one core at 100%.
    bool busy_poll = false;
    // What frames waiting for one guest's RX buffers may hold, per vif queue and per vif, in
    // bytes and in pool buffers (Linux caps a queue at 512 KiB, XENVIF_RX_QUEUE_BYTES). The
    // per-vif buffer cap is lowered to the vif's share of the pool (vif_backlog_mbufs in
    // backlog_limit.hpp). A frame over any cap is dropped (rx_over_backlog).
    std::uint32_t rx_queue_bytes = 512 * 1024;
    std::uint32_t rx_queue_mbufs = 256;
    std::uint32_t rx_vif_bytes = 1024 * 1024;
    std::uint32_t rx_vif_mbufs = 512;
    // A queue holding frames for this long without the guest posting a buffer they fit in is
    // purged, and the vif's carrier goes off (frames for it dropped, rx_stalled) until buffers
    // come back: netback's rx_stall_timeout. 0: never.
    std::chrono::milliseconds rx_stall_timeout{60000};
    // A frame from another vif of the same worker that finds this vif's backlog full waits this
    // long for room before it is dropped, and its sender's TX rings are not read meanwhile
    // (held_frames.hpp): guest-to-guest TCP slows down instead of losing segments. Frames from
    // the wire or from another worker's vif never wait. 0: drop at once.
    std::chrono::microseconds rx_wait{20000};
    // Merge TCP segments from the wire into GSO frames for guests that take them (rx_merge.hpp;
    // the config's [vif] rx_merge).
    bool rx_merge = true;
};

struct WorkerContext {
    platform::Grants& grants;
    platform::Events& events;
    const FramePools& pools;      // guest TX frames are copied into these buffers
    std::vector<Uplink*> uplinks; // index = uplink number used by VifRuntime::uplink
    // Several workers: this one's index and what they share (nullptr: the only worker).
    std::uint16_t index = 0;
    WorkerMesh* mesh = nullptr;
};

// attach/detach: a vif this worker runs. attach_remote/detach_remote: a vif another worker
// (`owner`) runs, entered in this worker's switch so frames for it cross to the owner.
// set_hash: the vif's hash configuration from its control ring (see VifRuntime::hash).
// set_staging: the vif's staging grants (see VifRuntime::staging and StagingUpdate).
enum class WorkerMsgKind : std::uint8_t {
    attach,
    detach,
    set_rate,
    attach_remote,
    detach_remote,
    set_hash,
    set_staging
};

// A new set of staging grants, and the grefs of one queue it leaves out to be unmapped: refused
// (not applied) when one of those is named by a request on that queue's rings not yet answered.
struct StagingUpdate {
    std::shared_ptr<const control::StagedPages> pages;
    std::uint32_t queue = 0;
    std::vector<platform::GrantRef> removed;
};

struct WorkerMsg {
    WorkerMsgKind kind = WorkerMsgKind::attach;
    VifRuntime* vif = nullptr;
    std::optional<control::Rate> rate;
    std::uint16_t owner = 0;
    std::shared_ptr<const ring::HashConfig> hash = nullptr;
    std::uint64_t seq = 0; // set_hash/set_staging: what VifRuntime::hash_seq/staging_seq becomes
    std::shared_ptr<const StagingUpdate> staging = nullptr;
};

struct WorkerCounters {
    Counter iterations;
    Counter empty_polls;       // iterations that moved nothing
    Counter empty_poll_cycles; // TSC cycles they took: the backend's idle share of its time
    Counter sleeps;
    Counter uplink_rx;
    Counter uplink_tx;
    Counter uplink_tx_dropped;  // the port refused them
    Counter uplink_unrouted;    // wire frames for nobody here
    Counter cross_out;          // frames handed to another worker's vif
    Counter cross_in;           // frames taken from other workers
    Counter cross_dropped;      // a ring to another worker was full
    Counter cross_waits_over;   // a frame for another worker's vif waited rx_wait in vain
    Counter wakeups_event;      // sleeps ended by an event channel (or another worker's event)
    Counter wakeups_rx_intr;    // sleeps ended by a port RX interrupt
    Counter wakeups_timer;      // sleeps ended by the poll timer (ports without RX interrupts)
    Counter wakeups_peer;       // sleeps ended by another worker's frames or the control thread
    Counter quiet_polls;        // rounds after a timer wake that found the ports empty: vifs left alone
    Counter rx_merged;          // GSO frames merged from wire segments (rx_merge.hpp)
    Counter rx_merged_segments; // the segments in them
};

class Worker {
public:
    Worker(const WorkerConfig& config, WorkerContext context);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // ---- control thread
    // Queues a message and wakes the worker; false when the mailbox is full (retry later).
    bool post(const WorkerMsg& msg) noexcept;
    // A vif whose detach the worker has completed: its rings are no longer touched.
    std::optional<VifRuntime*> take_detached() noexcept { return detached_.pop(); }
    // Interrupts a sleep (e.g. to make run() see its stop flag).
    void wake() noexcept { platform::signal_eventfd(wake_.get()); }
    const WorkerCounters& counters() const noexcept { return counters_; }
    std::uint16_t index() const noexcept { return index_; }
    // Whether an idle sleep waits on RX interrupts alone (no timer) for every port it polls.
    bool rx_interrupt_sleep() const noexcept { return intr_ok_; }
    // Whether an idle sleep needs the poll timer: a polled port without RX interrupts.
    bool idle_timer() const noexcept { return !rx_polled_.empty() && !intr_ok_; }

    // ---- worker thread
    // One iteration; returns how much it did (0: idle).
    std::size_t poll_once() noexcept;
    // Polls until stop is set, sleeping when idle.
    void run(const std::atomic<bool>& stop) noexcept;
    // Until `held` clears (or stop is set): takes the control thread's messages (vifs attached
    // and detached) and serves no ring and no port; DataPlane::release() clears it.
    void serve_messages_while(const std::atomic<bool>& held, const std::atomic<bool>& stop) noexcept;
    // Re-arms every ring's event index; false when work showed up meanwhile (don't sleep), or
    // when kMaxEventsPerSleep fired ports were drained and more may follow (an event storm).
    bool prepare_sleep() noexcept;
    static constexpr std::size_t kMaxEventsPerSleep = 1024;

private:
    struct RxFrame {
        rte_mbuf* m;
        ring::RxReservation res;
        std::array<ring::RxChunk, ring::kMaxRxSegments> chunks;
        std::size_t first_seg;
        std::size_t nsegs;
        ring::RxMeta meta;
    };
    // What tx_collect took: packets in txpkts_ (with their buffer counts in tx_nmbufs_), the
    // buffers they fill, and every request handled (answered ones included).
    struct TxBurst {
        std::size_t packets = 0;
        std::size_t bufs = 0;
        std::size_t work = 0; // requests taken, good or bad: the budget (tx_burst) counts these
    };
    // What rx_collect took: frames reserved in rx_frames_, and frames dropped on the way.
    struct RxBurst {
        std::size_t frames = 0;
        std::size_t work = 0;
        bool short_of = false; // stopped for want of guest buffers
    };

    void handle_messages() noexcept;
    void attach(VifRuntime& vif) noexcept;
    void detach(VifRuntime& vif) noexcept;
    void attach_remote(VifRuntime& vif, std::uint16_t owner) noexcept;
    void detach_remote(VifRuntime& vif) noexcept;
    // Frames other workers switched to this worker's vifs.
    std::size_t drain_cross() noexcept;
    // To the vif behind switch port `id`, here or through the owner's ring.
    // queue: the receiver's backlog queue when already picked for this frame (must_wait), so
    // that it is not hashed twice; nullptr: picked on the way in.
    void deliver(SwitchPortId id, rte_mbuf* m, QueueRuntime* queue = nullptr) noexcept;
    void wake_peers() noexcept;
    bool owns_port(platform::EvtchnPort port) const noexcept;
    void setup_rx_interrupts() noexcept;

    std::size_t uplink_rx(std::uint16_t u, std::uint16_t queue) noexcept;
    void deliver_merged() noexcept;
    std::size_t tx_queue(VifRuntime& vif, QueueRuntime& q) noexcept;
    TxBurst tx_collect(VifRuntime& vif, QueueRuntime& q) noexcept;
    void tx_mcast(VifRuntime& vif, QueueRuntime& q, const ring::TxPacket& p) noexcept;
    bool tx_alloc(VifRuntime& vif, QueueRuntime& q, const TxBurst& b) noexcept;
    void tx_build_copies(VifRuntime& vif, const QueueRuntime& q, const TxBurst& b) noexcept;
    std::size_t tx_complete(VifRuntime& vif, QueueRuntime& q, const TxBurst& b) noexcept;
    // Whether a frame for a full backlog may wait (held_frames.hpp): `no` for a vif that cannot
    // hold it, `over` for one that waited rx_wait already (the receiver then stops making
    // senders wait, rx_wait_off).
    enum class Wait : std::uint8_t { may, no, over };
    // false: the frame must wait for room at the vif it goes to (only with Wait::may), and was
    // left as it was.
    bool forward_from_vif(VifRuntime& vif, const TxOut& out, Wait wait) noexcept;
    // Whether a frame to switch port `id` should wait for room there rather than be dropped;
    // notes in `held` what a wait for another worker's vif watches, and in `queue` the backlog
    // queue of this worker's vif it looked at.
    bool must_wait(SwitchPortId id, const rte_mbuf* m, const TxOut& out, HeldFrames& held,
                   QueueRuntime*& queue) noexcept;
    bool must_wait_remote(SwitchPortId id, const rte_mbuf* m, const TxOut& out, HeldFrames& held) noexcept;
    // The room a frame takes in `to`'s backlog, cut to its MTU there if it must be.
    struct Need {
        std::uint64_t bytes;
        std::uint64_t mbufs;
    };
    Need backlog_need(const VifRuntime& to, const rte_mbuf* m, const TxOut& out) const noexcept;
    // What `vif`'s backlog has room for, for senders on other workers (cross_room.hpp).
    BacklogRoom backlog_room(const VifRuntime& vif) const noexcept;
    void publish_room(VifRuntime& vif) noexcept;
    // Sends the vif's held frames on while there is room (or their wait is over); how many.
    std::size_t release_held(VifRuntime& vif) noexcept;
    void uplink_out(std::uint16_t u, rte_mbuf* m, bool csum_blank, std::uint16_t vlan,
                    VifCounters& c) noexcept;
    void uplink_push(std::uint16_t u, rte_mbuf* m, VifCounters& from) noexcept;
    void flush_uplinks() noexcept;
    void vif_enqueue(VifRuntime& vif, rte_mbuf* m, QueueRuntime* queue = nullptr) noexcept;
    void backlog_push(VifRuntime& vif, rte_mbuf* m, QueueRuntime* queue = nullptr) noexcept;
    // The vif queue a frame for the vif goes to (the guest's hash steering, else a flow hash).
    QueueRuntime& backlog_queue(VifRuntime& vif, const rte_mbuf* m) noexcept;
    // Whether a frame of this size fits the backlog caps of the vif and its queue q.
    bool backlog_fits(const VifRuntime& vif, const QueueRuntime& q, std::uint64_t bytes, std::uint64_t mbufs,
                      bool base) const noexcept;
    rte_mbuf* backlog_pop(VifRuntime& vif, QueueRuntime& q) noexcept;
    // Frees every frame of q's backlog, counting them as `why` (none: not counted).
    std::size_t backlog_purge(VifRuntime& vif, QueueRuntime& q, std::optional<Drop> why) noexcept;
    std::size_t rx_stall(VifRuntime& vif, QueueRuntime& q) noexcept;
    void rx_ready(VifRuntime& vif, QueueRuntime& q) noexcept;
    // Recomputes vif_backlog_mbufs_ and base_backlog_cap_ for the vifs and pools of now.
    void update_backlog_cap() noexcept;
    // Takes up pools the control thread added since (before it posts the attach they are for).
    void adopt_pools() noexcept;
    // From the newest pool, else from older ones: all of `out` or nothing.
    bool alloc_frames(std::span<rte_mbuf*> out) noexcept;
    rte_mbuf* copy_frame(const rte_mbuf* m) noexcept;
    std::size_t rx_queue(VifRuntime& vif, QueueRuntime& q) noexcept;
    RxBurst rx_collect(VifRuntime& vif, QueueRuntime& q) noexcept;
    void rx_copy_add(VifRuntime& vif, const QueueRuntime& q, RxFrame& f, rte_mbuf* m,
                     std::uint32_t data_slots) noexcept;
    // set_staging: whether a gref the update removes is named by an unanswered request.
    static bool staging_in_flight(VifRuntime& vif, const StagingUpdate& u) noexcept;
    void rx_complete(VifRuntime& vif, QueueRuntime& q, std::size_t frames) noexcept;
    void notify(VifRuntime& vif, platform::EvtchnPort port) noexcept;
    // A running capture's copies of a burst (worker_capture.cpp): guest TX after tx_complete,
    // guest RX after the copy, before the responses.
    void capture_tx(VifRuntime& vif, const QueueRuntime& q, std::size_t nout) noexcept;
    void capture_rx(VifRuntime& vif, const QueueRuntime& q, std::size_t frames) noexcept;
    void sleep() noexcept;
    // Sets vif_wake_at_ and vif_polled_ from every vif's backlogs, buckets and waiting frames.
    void walk_vif_deadlines() noexcept;

    WorkerConfig cfg_;
    platform::Grants& grants_;
    platform::Events& events_;
    const FramePools& pools_;
    // The pools as this worker last read them (adopt_pools), newest first, and the first one's:
    // uplink frames come from it, so the backlogs may hold at most half of it.
    std::array<rte_mempool*, FramePools::kMaxPools> alloc_order_{};
    std::size_t pools_seen_ = 0;
    rte_mempool* base_pool_ = nullptr;
    std::uint64_t base_backlog_mbufs_ = 0; // in this worker's backlogs
    std::uint64_t base_backlog_cap_ = 0;   // see update_backlog_cap
    std::vector<Uplink*> uplinks_;
    // What each uplink offers, read once: per-packet decisions make no virtual call.
    struct UplinkTraits {
        pmd::Offloads hw;
        std::uint16_t mtu = 0;
        bool tso_mtu_counts_l2 = false;    // see Uplink
        rte_mempool* contiguous = nullptr; // see Uplink::contiguous_pool
    };
    std::vector<UplinkTraits> uplink_traits_;
    pmd::SoftwareGso gso_;
    std::uint32_t room_;                  // data bytes per buffer of every frame pool
    std::uint32_t vif_backlog_mbufs_ = 0; // see update_backlog_cap
    std::uint64_t stall_ticks_ = 0;       // rx_stall_timeout in TSC ticks; 0: never
    std::uint64_t rx_wait_ticks_ = 0;     // rx_wait in TSC ticks; 0: frames never wait
    std::uint64_t tsc_hz_;

    L2Switch sw_;
    std::vector<VifRuntime*> vifs_;
    // What stands behind each switch port, indexed by SwitchPortId.
    struct PortEntry {
        VifRuntime* vif = nullptr; // a vif (this worker's or another's), else nullptr
        std::int32_t uplink = -1;  // an uplink's index, else -1
        std::uint16_t owner = 0;   // the worker running the vif
        // Another worker's vif: buffers handed to it (mod 2^23, cross_room.hpp), and whether
        // frames for it wait no more until its backlog has emptied (as VifRuntime::rx_wait_off).
        std::uint32_t sent = 0;
        bool wait_off = false;
    };
    std::vector<PortEntry> ports_;
    std::vector<SwitchPortId> uplink_port_;                    // uplink -> switch port
    std::vector<std::pair<VifRuntime*, SwitchPortId>> remote_; // other workers' vifs here

    std::uint16_t index_ = 0;
    WorkerMesh* mesh_ = nullptr;
    std::uint64_t cross_touched_ = 0; // bit per worker whose ring got frames this iteration
    // Uplink RX queues this worker polls: (uplink, queue).
    std::vector<std::pair<std::uint16_t, std::uint16_t>> rx_polled_;
    // An epoll instance holding the RX interrupts of rx_polled_ (when all of them have one).
    platform::Fd intr_epoll_;
    bool intr_ok_ = false;

    SpscQueue<WorkerMsg> inbox_;
    SpscQueue<VifRuntime*> detached_;
    platform::Fd wake_;

    // Scratch for one burst, sized once.
    std::vector<ring::TxPacket> txpkts_;
    std::vector<std::uint16_t> tx_nmbufs_;
    std::vector<rte_mbuf*> tx_mbufs_;
    CopyBatch copies_;                   // one burst's grant copy, TX or RX
    std::vector<std::size_t> seg_first_; // TX packet -> its first segment in copies_
    std::vector<TxOut> tx_out_;
    std::vector<RxFrame> rx_frames_;
    std::vector<rte_mbuf*> uplink_rx_buf_;
    // Frames for one uplink's TX queue, sent once per iteration (or when full), each with the
    // counters of the vif it came from: the port may refuse it (tx_uplink_full).
    struct UplinkTx {
        std::vector<rte_mbuf*> frames;
        std::vector<VifCounters*> from;
        std::size_t count = 0;
    };
    std::vector<UplinkTx> uplink_tx_;
    std::vector<rte_mbuf*> gso_out_;
    std::vector<SwitchPortId> flood_;

    std::uint64_t now_ = 0;
    std::uint64_t last_age_ = 0;
    std::uint64_t wake_at_ = 0; // earliest tick a throttled vif regains credit; 0: none
    // The last sleep was ended by the ports' poll timer alone, before any vif's deadline: every
    // vif ring is armed as the sleep left it (a guest's request since would have fired its
    // event), so until a port or another worker brings a frame, rounds skip the walk over the
    // vifs, and an idle host's timer wake-ups cost the same with one vif or a thousand. Only for
    // a worker alone (see sleep()).
    bool quiet_ = false;
    // What the last full walk in sleep() found: the earliest vif deadline (0: none) and whether
    // a vif can only be polled (a backlog for a guest without feature-rx-notify).
    std::uint64_t vif_wake_at_ = 0;
    bool vif_polled_ = false;
    std::uint64_t interval_us_ = 0; // current polling sleep, see poll_interval
    WorkerCounters counters_;
    RxMerge merge_{counters_.rx_merged, counters_.rx_merged_segments};
};

} // namespace netbackd::dataplane
