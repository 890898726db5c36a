// A vif as a worker runs it: per queue, the back ends of its TX and RX rings over the pages the
// control plane mapped, the bound event channels, and a bounded backlog of frames waiting for RX
// buffers; per vif, the policy in fast-path form, the token buckets, the counters, and the state
// the control thread watches.
//
// Built on the control thread (it allocates), then handed to a worker, which alone touches the
// rings, backlog, buckets and counters (counters and state stay readable by the control thread).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/control/data_plane_sink.hpp"
#include "backend/dataplane/capture.hpp"
#include "backend/dataplane/counters.hpp"
#include "backend/dataplane/cross_room.hpp"
#include "backend/dataplane/held_frames.hpp"
#include "backend/dataplane/l2_switch.hpp"
#include "backend/dataplane/mcast_filter.hpp"
#include "backend/dataplane/token_bucket.hpp"
#include "backend/platform/fd.hpp"
#include "ring/back_ring.hpp"
#include "ring/ctrl_ring.hpp"
#include "ring/rx_responder.hpp"
#include "ring/tx_assembler.hpp"

struct rte_mbuf;

namespace netbackd::dataplane {

// Frames switched to a vif queue and not yet copied to the guest. A power of two.
inline constexpr std::size_t kRxBacklog = 256;

// The frames of one vif queue waiting for RX buffers, with the bytes and buffers they hold
// (the caps are the worker's, see WorkerConfig and backlog_limit.hpp).
class FrameBacklog {
public:
    bool empty() const noexcept { return head_ == tail_; }
    bool full() const noexcept { return tail_ - head_ == kRxBacklog; }
    std::size_t size() const noexcept { return tail_ - head_; }
    std::uint64_t bytes() const noexcept { return bytes_; }
    std::uint64_t mbufs() const noexcept { return mbufs_; }
    void push(rte_mbuf* m, std::uint32_t bytes, std::uint32_t mbufs) noexcept {
        slots_[tail_ & (kRxBacklog - 1)] = Held{m, bytes, mbufs};
        ++tail_;
        bytes_ += bytes;
        mbufs_ += mbufs;
    }
    rte_mbuf* front() const noexcept { return slots_[head_ & (kRxBacklog - 1)].m; }
    // Takes the front frame out; returns what it held, for the vif's totals.
    std::pair<std::uint32_t, std::uint32_t> pop() noexcept {
        const Held& h = slots_[head_ & (kRxBacklog - 1)];
        ++head_;
        bytes_ -= h.bytes;
        mbufs_ -= h.mbufs;
        return {h.bytes, h.mbufs};
    }

private:
    struct Held {
        rte_mbuf* m = nullptr;
        std::uint32_t bytes = 0;
        std::uint32_t mbufs = 0;
    };
    std::array<Held, kRxBacklog> slots_{};
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
    std::uint64_t bytes_ = 0;
    std::uint64_t mbufs_ = 0;
};

struct QueueRuntime {
    explicit QueueRuntime(control::QueueRings& rings);
    QueueRuntime(const QueueRuntime&) = delete;
    QueueRuntime& operator=(const QueueRuntime&) = delete;

    ring::BackRing<ring::TxRing> tx_ring;
    ring::TxAssembler tx; // refers to tx_ring: the struct never moves (held by unique_ptr)
    ring::BackRing<ring::RxRing> rx_ring;
    ring::RxResponder rx;
    platform::EvtchnPort tx_port;
    platform::EvtchnPort rx_port; // tx_port again without split event channels
    FrameBacklog backlog;
    // Guest RX stall (netback's rx_stall_timeout): the tick the guest last took a frame or the
    // backlog was last empty; stalled: purged for want of buffers, waiting for one to be posted.
    std::uint64_t rx_progress = 0;
    bool stalled = false;
    std::uint32_t index = 0; // the vif's queue number (staging grants are per queue)
};

enum class VifState : std::uint8_t {
    attaching, // handed over, the worker has not taken it yet
    running,
    disabled, // a fault stopped it; see fault()
};

enum class VifFault : std::uint8_t {
    none,
    tx_ring,        // see tx_error()
    rx_ring,        // RX req_prod out of range
    duplicate_mac,  // another vif on the same uplink/VLAN owns the MAC
    unknown_uplink, // policy names an uplink this data plane does not have
    switch_full,
};

std::string_view to_string(VifFault f) noexcept;

class VifRuntime {
public:
    // uplink: index into the data plane's uplinks, or nullopt when the policy names one that
    // does not exist (the vif is then disabled as soon as the worker takes it).
    VifRuntime(std::unique_ptr<control::VifHandle> handle, std::optional<std::uint16_t> uplink,
               std::uint64_t tsc_hz);
    VifRuntime(const VifRuntime&) = delete;
    VifRuntime& operator=(const VifRuntime&) = delete;

    const control::VifId& id() const noexcept { return handle_->id; }
    control::VifHandle& handle() noexcept { return *handle_; }
    std::unique_ptr<control::VifHandle> release_handle() noexcept { return std::move(handle_); }

    // ---- control thread (any time)
    VifState state() const noexcept { return state_.load(std::memory_order_acquire); }
    VifFault fault() const noexcept { return fault_.load(std::memory_order_relaxed); }
    ring::TxError tx_error() const noexcept { return tx_error_.load(std::memory_order_relaxed); }
    // "tx ring: req_prod_overflow" and the like: what goes into the xenstore error node.
    std::string fault_message() const;
    const VifCounters& counters() const noexcept { return counters_; }
    // The counters plus the multicast filter's state.
    VifStats stats() const noexcept {
        VifStats s = snapshot(counters_);
        s.mcast_filter = mcast.enabled();
        s.mcast_subscribed = mcast.subscribed();
        s.mcast_filtered = mcast.filtered();
        return s;
    }

    // ---- worker only
    void set_running() noexcept { state_.store(VifState::running, std::memory_order_release); }
    void disable(VifFault f, ring::TxError e = ring::TxError::none) noexcept {
        fault_.store(f, std::memory_order_relaxed);
        tx_error_.store(e, std::memory_order_relaxed);
        // release: fault and error are visible to whoever sees the state change.
        state_.store(VifState::disabled, std::memory_order_release);
        tell_control();
    }
    bool running() const noexcept { return state_.load(std::memory_order_relaxed) == VifState::running; }
    void set_rate(std::optional<control::Rate> rate, std::uint64_t now) noexcept;

    std::vector<std::unique_ptr<QueueRuntime>> queues;
    VifCounters counters_;
    MacAddr mac;
    std::optional<std::uint16_t> uplink;
    std::uint16_t vlan = 0;
    std::uint16_t mtu = 1500;
    SwitchPortId switch_port = kNoPort;
    bool sg = false;
    bool gso_v4 = false;
    bool gso_v6 = false;
    // Merged uplink TCP segments may go to it (rx_merge.hpp): GSO frames whose TCP checksum is
    // left to the guest (csum_blank), which netback sends only with checksum offload on.
    bool merge_v4 = false;
    bool merge_v6 = false;
    std::uint32_t merge_limit = 0; // bytes of a merged frame, RxMerge::max_bytes(xdp_headroom)
    bool rx_notify = true;
    // Bytes the guest keeps free at the start of every RX buffer (xdp-headroom, validated by
    // the control plane to leave room for data): RX data starts there, as in Linux netback.
    std::uint16_t xdp_headroom = 0;
    // Shared state: the guest's multicast subscriptions and filter switch. Changed by this vif's
    // worker (TX extras) and the control thread (request-multicast-control), read by every
    // worker's switch that floods to this vif; see mcast_filter.hpp for why that is safe.
    McastFilter mcast;
    // Shared state: the guest's hash configuration (control ring), built and published by the
    // control thread, immutable once published. It reaches the owner worker only through a
    // set_hash message; the worker alone reads and replaces this pointer, so the fast path
    // reads it without atomics or locks, and a config lives as long as someone holds it.
    // nullptr: the guest never configured hashing.
    std::shared_ptr<const ring::HashConfig> hash;
    // The last set_hash message applied (worker writes, control thread waits for it).
    std::atomic<std::uint64_t> hash_seq{0};
    // Shared state: the guest's staging grants (control/staged_pages.hpp), built and published by
    // the control thread, immutable once published, owned and unmapped by the control thread.
    // Like `hash`, it reaches the owner worker only through a set_staging message, applied
    // between bursts; the worker alone reads and replaces this pointer, so the TX/RX paths look
    // pages up without atomics or locks. nullptr: no staging grants.
    std::shared_ptr<const control::StagedPages> staging;
    // The last set_staging message answered (worker writes with release, after staging_ok), and
    // whether it was applied (false: a gref it removes was in flight on the guest's rings).
    std::atomic<std::uint64_t> staging_seq{0};
    std::atomic<bool> staging_ok{false};
    // The page staged for ref on queue q (for RX: writable ones only), or nullptr.
    const control::StagedPage* staged(std::uint32_t q, platform::GrantRef ref, bool for_rx) const noexcept {
        if (staging == nullptr) [[likely]]
            return nullptr;
        const control::StagedPage* p = staging->find(q, ref);
        return p != nullptr && (!for_rx || p->writable) ? p : nullptr;
    }
    // The guest's hash of a frame (headers read from its first segment), when it enabled
    // hashing: picks the RX queue and becomes the frame's XEN_NETIF_EXTRA_TYPE_HASH.
    std::optional<ring::FrameHash> guest_hash(const rte_mbuf* m) const noexcept;
    TokenBucket tx_bucket;
    TokenBucket rx_bucket;
    std::uint64_t tsc_hz;
    // Every queue's backlog together (worker only).
    std::uint64_t backlog_bytes = 0;
    std::uint64_t backlog_mbufs = 0;
    // Queues stalled; carrier is off while any is (as netback's stalled_queues).
    std::uint32_t stalled_queues = 0;
    // This vif's TX frames waiting for room at another vif (worker only; held_frames.hpp).
    HeldFrames held;
    // A frame waited out rx_wait for room here: frames for this vif wait no more until its
    // backlog has emptied, so a guest that takes slowly holds up each sender once, not per
    // frame (worker only).
    bool rx_wait_off = false;
    // Shared state: the room left in this vif's backlog, published by its worker for senders on
    // other workers, and their requests to be woken when it changes (cross_room.hpp).
    CrossRoom cross_room;
    bool carrier() const noexcept { return carrier_.load(std::memory_order_relaxed); }
    void set_carrier(bool on) noexcept {
        carrier_.store(on, std::memory_order_relaxed);
        tell_control();
    }
    // Shared state: the data plane's count of vif faults and carrier changes (DataPlane::
    // reports_), bumped by the worker after each, so that the control thread scans the vifs
    // only when it moved, and the eventfd that wakes the control thread for it (one write per
    // fault or carrier change, never per packet). nullptr / -1: nobody collects them (a worker
    // driven by a test).
    std::atomic<std::uint64_t>* reports = nullptr;
    int reports_fd = -1;

    // Shared between threads: a running `netbackd capture` on this vif (nullptr: none; the
    // worker's one per-burst branch). The control thread publishes and clears it; the worker
    // announces the tap it is using in capture_busy (hazard pointer, seq_cst), so the control
    // thread frees a cleared tap only once capture_busy no longer names it.
    std::atomic<CaptureTap*> capture{nullptr};
    std::atomic<CaptureTap*> capture_busy{nullptr};

private:
    void tell_control() noexcept {
        // release: the state and carrier stored before are visible to a scan that sees this.
        if (reports != nullptr) reports->fetch_add(1, std::memory_order_release);
        if (reports_fd >= 0) platform::signal_eventfd(reports_fd);
    }

    std::unique_ptr<control::VifHandle> handle_;
    std::atomic<VifState> state_{VifState::attaching};
    std::atomic<VifFault> fault_{VifFault::none};
    std::atomic<ring::TxError> tx_error_{ring::TxError::none};
    std::atomic<bool> carrier_{true}; // written by the worker, read by the control thread
};

} // namespace netbackd::dataplane
