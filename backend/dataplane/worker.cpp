// Worker set-up, control messages and the adaptive poll loop. The per-packet paths live in
// tx_path.cpp (guest -> switch -> wire) and rx_path.cpp (switch -> guest).
#include "backend/dataplane/worker.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <poll.h>
#include <rte_cycles.h>
#include <rte_epoll.h>
#include <rte_mbuf.h>
#include <sys/epoll.h>

#include "backend/dataplane/backlog_limit.hpp"
#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/slots.hpp"

namespace netbackd::dataplane {

namespace {

std::uint32_t data_room_of(const pmd::Mempool& pool) {
    return rte_pktmbuf_data_room_size(pool.get()) - RTE_PKTMBUF_HEADROOM;
}

} // namespace

Worker::Worker(const WorkerConfig& config, WorkerContext ctx)
    : cfg_(config),
      grants_(ctx.grants),
      events_(ctx.events),
      pools_(ctx.pools),
      base_pool_(ctx.pools.base().get()),
      uplinks_(std::move(ctx.uplinks)),
      gso_(ctx.pools.base(), ctx.pools.base_indirect()),
      room_(data_room_of(ctx.pools.base())),
      tsc_hz_(rte_get_tsc_hz()),
      sw_(config.max_vifs + uplinks_.size() + 1, config.mac_table),
      ports_(config.max_vifs + uplinks_.size() + 1, PortEntry{nullptr, -1, ctx.index}),
      uplink_port_(uplinks_.size(), kNoPort),
      index_(ctx.index),
      mesh_(ctx.mesh),
      inbox_(256),
      detached_(256),
      wake_(platform::make_eventfd()),
      txpkts_(config.tx_burst),
      tx_nmbufs_(config.tx_burst),
      tx_mbufs_(std::size_t{config.tx_burst} * max_buffers_per_packet(room_)),
      // Each packet needs at most one segment per guest slot plus one per buffer boundary.
      copies_(std::max<std::size_t>(std::size_t{config.tx_burst} *
                                        (ring::kMaxTxPacketSlots + max_buffers_per_packet(room_)),
                                    std::size_t{config.rx_burst} * (ring::kMaxRxSegments + 64))),
      seg_first_(std::max(config.tx_burst, config.rx_burst) + 1),
      tx_out_(config.tx_burst),
      rx_frames_(config.rx_burst),
      uplink_rx_buf_(config.uplink_burst),
      uplink_tx_(uplinks_.size(), UplinkTx{std::vector<rte_mbuf*>(512), std::vector<VifCounters*>(512), 0}),
      gso_out_(256),
      flood_(config.max_vifs + uplinks_.size() + 1) {
    if (room_ < 64) throw std::invalid_argument("dataplane: mempool buffers are too small");
    vifs_.reserve(config.max_vifs);
    for (Uplink* u : uplinks_) {
        uplink_traits_.push_back({u->hardware(), u->mtu(), u->tso_mtu_counts_l2(), u->contiguous_pool()});
    }
    for (std::size_t u = 0; u < uplinks_.size(); ++u) {
        SwitchPort p;
        p.kind = PortKind::uplink;
        p.uplink = static_cast<std::uint16_t>(u);
        const SwitchPortId id = sw_.add_port(p);
        uplink_port_[u] = id;
        ports_[id].uplink = static_cast<std::int32_t>(u);
    }
    if (mesh_ != nullptr) {
        if (index_ >= mesh_->size()) throw std::invalid_argument("dataplane: worker index outside the mesh");
        mesh_->set_wake_fd(index_, wake_.get());
    }
    remote_.reserve(config.max_vifs);
    // The wire's RX side: one RSS queue per worker when the port has exactly that, else every
    // queue on worker 0 (which hands frames for other workers' vifs over).
    const std::size_t nworkers = mesh_ != nullptr ? mesh_->size() : 1;
    for (std::uint16_t u = 0; u < uplinks_.size(); ++u) {
        const std::uint16_t nq = uplinks_[u]->rx_queues();
        if (nworkers > 1 && nq == nworkers)
            rx_polled_.emplace_back(u, index_);
        else if (index_ == 0)
            for (std::uint16_t q = 0; q < nq; ++q) rx_polled_.emplace_back(u, q);
    }
    setup_rx_interrupts();
    stall_ticks_ = static_cast<std::uint64_t>(cfg_.rx_stall_timeout.count()) * tsc_hz_ / 1000;
    rx_wait_ticks_ = static_cast<std::uint64_t>(cfg_.rx_wait.count()) * tsc_hz_ / 1'000'000;
    adopt_pools();
    now_ = rte_get_tsc_cycles();
    last_age_ = now_;
}

void Worker::update_backlog_cap() noexcept {
    const std::size_t workers = mesh_ != nullptr ? mesh_->size() : 1;
    vif_backlog_mbufs_ =
        vif_backlog_mbufs(static_cast<std::uint32_t>(std::min<std::uint64_t>(pools_.capacity(), UINT32_MAX)),
                          workers, vifs_.size(), cfg_.rx_vif_mbufs);
    base_backlog_cap_ = std::uint64_t{base_pool_->size} / 2 / workers;
}

void Worker::adopt_pools() noexcept {
    const std::size_t n = pools_.count();
    if (n == pools_seen_) return;
    for (std::size_t i = 0; i < n; ++i) alloc_order_[i] = pools_[n - 1 - i].get();
    pools_seen_ = n;
    update_backlog_cap();
}

bool Worker::alloc_frames(std::span<rte_mbuf*> out) noexcept {
    for (std::size_t i = 0; i < pools_seen_; ++i)
        if (rte_pktmbuf_alloc_bulk(alloc_order_[i], out.data(), static_cast<unsigned>(out.size())) == 0)
            return true;
    return false;
}

rte_mbuf* Worker::copy_frame(const rte_mbuf* m) noexcept {
    for (std::size_t i = 0; i < pools_seen_; ++i)
        if (rte_mbuf* copy = rte_pktmbuf_copy(m, alloc_order_[i], 0, UINT32_MAX)) return copy;
    return nullptr;
}

void Worker::setup_rx_interrupts() noexcept {
    if (!cfg_.rx_interrupts || cfg_.busy_poll || rx_polled_.empty()) return;
    platform::Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) return;
    std::size_t added = 0;
    for (const auto& [u, q] : rx_polled_) {
        if (!uplinks_[u]->add_rx_interrupt(q, ep.get())) {
            // One queue without: the timer for all of them.
            for (std::size_t i = 0; i < added; ++i)
                uplinks_[rx_polled_[i].first]->remove_rx_interrupt(rx_polled_[i].second, ep.get());
            return;
        }
        ++added;
    }
    intr_epoll_ = std::move(ep);
    intr_ok_ = true;
}

Worker::~Worker() {
    if (intr_ok_)
        for (const auto& [u, q] : rx_polled_) uplinks_[u]->remove_rx_interrupt(q, intr_epoll_.get());
    for (VifRuntime* v : vifs_)
        for (auto& q : v->queues) backlog_purge(*v, *q, std::nullopt);
    for (UplinkTx& tx : uplink_tx_)
        for (std::size_t i = 0; i < tx.count; ++i) rte_pktmbuf_free(tx.frames[i]);
    if (mesh_ != nullptr) {
        for (std::size_t from = 0; from < mesh_->size(); ++from) {
            if (from == index_) continue;
            while (auto f = mesh_->ring(from, index_).pop()) rte_pktmbuf_free(f->m);
        }
        mesh_->set_wake_fd(index_, -1);
    }
}

bool Worker::post(const WorkerMsg& msg) noexcept {
    if (!inbox_.push(msg)) return false;
    platform::signal_eventfd(wake_.get());
    return true;
}

void Worker::handle_messages() noexcept {
    while (auto msg = inbox_.pop()) {
        VifRuntime& vif = *msg->vif;
        switch (msg->kind) {
        case WorkerMsgKind::attach: attach(vif); break;
        case WorkerMsgKind::detach: detach(vif); break;
        case WorkerMsgKind::set_rate: vif.set_rate(msg->rate, now_); break;
        case WorkerMsgKind::attach_remote: attach_remote(vif, msg->owner); break;
        case WorkerMsgKind::detach_remote: detach_remote(vif); break;
        // The previous config may be freed here: once per control message, never per packet.
        case WorkerMsgKind::set_hash:
            vif.hash = std::move(msg->hash);
            vif.hash_seq.store(msg->seq, std::memory_order_release);
            break;
        // A quiescent point: no burst of this vif is running, so once the pointer is replaced
        // no page of the previous set is touched again, and the control thread may unmap what
        // the new set leaves out as soon as it sees staging_seq.
        case WorkerMsgKind::set_staging: {
            const bool ok = msg->staging == nullptr || !staging_in_flight(vif, *msg->staging);
            if (ok) {
                vif.staging = msg->staging ? msg->staging->pages : nullptr;
                vif.counters_.staged_pages.set(vif.staging ? vif.staging->pages() : 0);
            }
            vif.staging_ok.store(ok, std::memory_order_relaxed);
            vif.staging_seq.store(msg->seq, std::memory_order_release);
            break;
        }
        }
    }
}

// The requests the guest published and this worker has not taken yet, on both rings of the
// update's queue, each slot copied once (bounded by the ring size). Requests taken are answered
// within the same burst, so nothing else is in flight at a quiescent point.
bool Worker::staging_in_flight(VifRuntime& vif, const StagingUpdate& u) noexcept {
    if (u.removed.empty() || u.queue >= vif.queues.size()) return false;
    QueueRuntime& q = *vif.queues[u.queue];
    const auto named = [&](platform::GrantRef ref) {
        return std::find(u.removed.begin(), u.removed.end(), ref) != u.removed.end();
    };
    auto& txr = q.tx_ring;
    auto& rxr = q.rx_ring;
    const ring::Avail tx = txr.poll();
    for (ring::RingIdx i = 0; tx.error == ring::ProdError::none && i < tx.count; ++i)
        if (named(txr.copy_request<netif_tx_request>(i).gref)) return true;
    const ring::Avail rx = rxr.poll();
    for (ring::RingIdx i = 0; rx.error == ring::ProdError::none && i < rx.count; ++i)
        if (named(rxr.copy_request<netif_rx_request>(i).gref)) return true;
    return false;
}

namespace {

// A vif's port in a worker's switch: the same whether the worker runs the vif or only forwards
// to it.
SwitchPort switch_port_of(const VifRuntime& vif) noexcept {
    SwitchPort p;
    p.kind = PortKind::vif;
    p.uplink = *vif.uplink;
    p.vlan = vif.vlan;
    p.allowed_src = vif.mac;
    p.mtu = vif.mtu;
    p.mcast = &vif.mcast;
    return p;
}

} // namespace

void Worker::attach(VifRuntime& vif) noexcept {
    vifs_.push_back(&vif);
    adopt_pools();
    update_backlog_cap();
    vif.set_rate(vif.handle().policy.rate, now_);
    if (!vif.uplink || (!uplinks_.empty() && *vif.uplink >= uplinks_.size())) {
        vif.disable(VifFault::unknown_uplink);
        return;
    }
    const SwitchPortId id = sw_.add_port(switch_port_of(vif));
    if (id == kNoPort) {
        vif.disable(sw_.lookup(vif.vlan, vif.mac) != kNoPort ? VifFault::duplicate_mac
                                                             : VifFault::switch_full);
        return;
    }
    vif.switch_port = id;
    ports_[id].vif = &vif;
    vif.set_running();
}

void Worker::attach_remote(VifRuntime& vif, std::uint16_t owner) noexcept {
    adopt_pools();
    // The owner refuses (and reports) a vif it cannot run; here it is simply left out.
    if (!vif.uplink || (!uplinks_.empty() && *vif.uplink >= uplinks_.size()) || owner == index_) return;
    const SwitchPortId id = sw_.add_port(switch_port_of(vif));
    if (id == kNoPort) return;
    ports_[id] = PortEntry{&vif, -1, owner, 0, false};
    remote_.emplace_back(&vif, id);
}

void Worker::detach_remote(VifRuntime& vif) noexcept {
    for (auto it = remote_.begin(); it != remote_.end(); ++it) {
        if (it->first != &vif) continue;
        sw_.remove_port(it->second);
        ports_[it->second].vif = nullptr;
        ports_[it->second].owner = index_;
        remote_.erase(it);
        break;
    }
    // A sender's frames waiting for it are switched again (and go nowhere); nothing may look
    // at its room once it is gone.
    for (VifRuntime* v : vifs_)
        if (v->held.room == &vif.cross_room) v->held.room = nullptr;
    // From here on nothing this worker sends can name the vif; what it sent before is in the
    // owner's ring, ahead of the owner's own detach (see detach()).
    (void)detached_.push(&vif);
}

std::size_t Worker::drain_cross() noexcept {
    if (mesh_ == nullptr) return 0;
    std::size_t n = 0;
    for (std::size_t from = 0; from < mesh_->size(); ++from) {
        if (from == index_) continue;
        auto& r = mesh_->ring(from, index_);
        while (auto f = r.pop()) {
            f->to->cross_room.took(from, f->m->nb_segs);
            vif_enqueue(*f->to, f->m);
            ++n;
        }
    }
    counters_.cross_in.add(n);
    return n;
}

void Worker::deliver(SwitchPortId id, rte_mbuf* m, QueueRuntime* queue) noexcept {
    const PortEntry& port = ports_[id];
    VifRuntime* to = port.vif;
    if (to == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    const std::uint16_t owner = port.owner;
    if (owner == index_) {
        vif_enqueue(*to, m, queue);
        return;
    }
    const std::uint16_t mbufs = m->nb_segs; // the owner may free m as soon as it is pushed
    if (!mesh_->ring(index_, owner).push(CrossFrame{m, to})) {
        drop(m, counters_.cross_dropped);
        return;
    }
    ports_[id].sent += mbufs;
    counters_.cross_out.add();
    cross_touched_ |= std::uint64_t{1} << (owner & 63);
}

BacklogRoom Worker::backlog_room(const VifRuntime& vif) const noexcept {
    BacklogRoom room;
    if (rx_wait_ticks_ == 0 || !vif.running() || vif.stalled_queues != 0) return room;
    const auto left = [](std::uint64_t cap, std::uint64_t used) { return cap > used ? cap - used : 0; };
    room.waits = true;
    room.empty = vif.backlog_mbufs == 0;
    room.mbufs = left(vif_backlog_mbufs_, vif.backlog_mbufs);
    room.bytes = left(cfg_.rx_vif_bytes, vif.backlog_bytes);
    // The fullest queue: a frame may hash to it. A frame takes a buffer at least, so free
    // entries bound the buffers too.
    for (const auto& q : vif.queues) {
        room.mbufs = std::min(
            {room.mbufs, left(cfg_.rx_queue_mbufs, q->backlog.mbufs()), left(kRxBacklog, q->backlog.size())});
        room.bytes = std::min(room.bytes, left(cfg_.rx_queue_bytes, q->backlog.bytes()));
    }
    return room;
}

void Worker::publish_room(VifRuntime& vif) noexcept {
    cross_touched_ |= vif.cross_room.publish(backlog_room(vif), index_);
}

void Worker::wake_peers() noexcept {
    if (cross_touched_ == 0) return;
    for (std::size_t w = 0; w < mesh_->size(); ++w)
        if ((cross_touched_ >> (w & 63)) & 1) mesh_->wake(w);
    cross_touched_ = 0;
}

void Worker::detach(VifRuntime& vif) noexcept {
    // Other workers detached their entries for this vif first; frames they sent before are in
    // the rings now and must reach the vif (or be freed) before it goes.
    drain_cross();
    std::erase(vifs_, &vif);
    update_backlog_cap();
    if (vif.switch_port != kNoPort) {
        sw_.remove_port(vif.switch_port);
        ports_[vif.switch_port].vif = nullptr;
        vif.switch_port = kNoPort;
    }
    for (auto& q : vif.queues) backlog_purge(vif, *q, std::nullopt);
    for (; !vif.held.empty(); vif.held.pop()) rte_pktmbuf_free(vif.held.front().m);
    // The mailbox back is as large as the one in: it cannot be full while detaches are paired.
    (void)detached_.push(&vif);
}

void Worker::notify(VifRuntime& vif, platform::EvtchnPort port) noexcept {
    try {
        events_.notify(port);
        vif.counters_.notifications.add();
    } catch (...) {
        // Only a port that is already gone fails; its vif is being torn down by the control
        // plane, and an exception must not unwind through the poll loop.
    }
}

std::size_t Worker::poll_once() noexcept {
    counters_.iterations.add();
    handle_messages();
    now_ = rte_get_tsc_cycles();
    const std::uint64_t started = now_;
    wake_at_ = 0;
    std::size_t work = drain_cross();
    for (const auto& [u, rq] : rx_polled_) work += uplink_rx(u, rq);
    if (quiet_ && work == 0) {
        counters_.quiet_polls.add();
        counters_.empty_polls.add();
        counters_.empty_poll_cycles.add(rte_get_tsc_cycles() - started);
        return 0;
    }
    quiet_ = false;
    for (VifRuntime* v : vifs_) {
        if (!v->running()) continue;
        if (!v->held.empty()) {
            work += release_held(*v);
            if (!v->held.empty()) continue; // still waiting: its TX rings stay unread
        }
        for (auto& q : v->queues) {
            work += tx_queue(*v, *q);
            if (!v->running()) break;
        }
    }
    flush_uplinks();
    for (VifRuntime* v : vifs_) {
        if (v->running()) {
            for (auto& q : v->queues) {
                work += rx_queue(*v, *q);
                if (!v->running()) break;
            }
        }
        if (mesh_ != nullptr) publish_room(*v);
    }
    if (mesh_ != nullptr) wake_peers();
    if (now_ - last_age_ > tsc_hz_) {
        last_age_ = now_;
        sw_.age(now_, static_cast<std::uint64_t>(cfg_.mac_age.count()) * tsc_hz_);
    }
    if (work == 0) {
        counters_.empty_polls.add();
        counters_.empty_poll_cycles.add(rte_get_tsc_cycles() - started);
    }
    return work;
}

bool Worker::prepare_sleep() noexcept {
    if (quiet_) {
        // Nothing was touched since the last full check: the rings are armed, and an event or
        // message since is pending on the fds the sleep waits on.
        handle_messages();
        return mesh_ == nullptr || !mesh_->inbound_pending(index_);
    }
    // A delivered port stays masked until unmasked: re-open them all before the final checks, so
    // a request published after the check still wakes us.
    // The event-channel fd is shared by every worker: a port another worker's vif owns is
    // passed on by waking that worker (if it sleeps), or it would miss its guest's kick.
    // Bounded: a guest notifying as fast as it can re-fires its port as soon as it is unmasked,
    // and must not keep the worker here (what is left stays pending for the next try).
    bool foreign = false;
    std::size_t drained = 0;
    try {
        for (; drained < kMaxEventsPerSleep; ++drained) {
            const auto port = events_.pending();
            if (!port) break;
            foreign = foreign || !owns_port(*port);
            events_.unmask(*port);
        }
    } catch (...) {
        return false; // keep polling rather than sleep on a channel we could not re-arm
    }
    if (foreign && mesh_ != nullptr)
        for (std::size_t w = 0; w < mesh_->size(); ++w)
            if (w != index_) mesh_->wake(w);
    if (drained == kMaxEventsPerSleep) return false; // an event storm: poll another round instead
    handle_messages();
    if (mesh_ != nullptr && mesh_->inbound_pending(index_)) return false;
    now_ = rte_get_tsc_cycles();
    for (VifRuntime* v : vifs_) {
        if (!v->running()) continue;
        for (auto& q : v->queues) {
            const bool tx_throttled = v->tx_bucket.exhausted() && now_ < v->tx_bucket.next_refill();
            // A vif whose frames wait leaves its TX ring unread: the receiver's buffers wake us
            // (on another worker: the room its owner publishes, or the owner itself).
            if (!v->held.empty() && v->held.room != nullptr && v->held.room->word(index_) != v->held.seen)
                return false;
            if (!tx_throttled && v->held.empty()) {
                const ring::Avail a = q->tx_ring.final_check();
                if (a.count != 0 || a.error != ring::ProdError::none) return false;
            }
            // A stalled queue comes back with the guest's next buffer: ask to be told.
            if (q->stalled && q->rx_ring.final_check(1).count != 0) return false;
            if (!q->backlog.empty()) {
                const rte_mbuf* m = q->backlog.front();
                const auto slots = static_cast<ring::RingIdx>(rx_slots(m, v->xdp_headroom).total() +
                                                              (v->guest_hash(m) ? 1u : 0u));
                const ring::Avail a = q->rx_ring.final_check(slots);
                const bool throttled = !v->rx_bucket.available(m->pkt_len, now_);
                if (!throttled && (a.count >= slots || a.error != ring::ProdError::none)) return false;
            }
        }
    }
    if (intr_ok_) {
        // Armed before the last look, so a frame arriving after it still interrupts.
        for (const auto& [u, q] : rx_polled_) uplinks_[u]->arm_rx_interrupt(q);
        for (const auto& [u, q] : rx_polled_) {
            if (uplinks_[u]->rx_pending(q) != 0) {
                for (const auto& [u2, q2] : rx_polled_) uplinks_[u2]->disarm_rx_interrupt(q2);
                return false;
            }
        }
    }
    return true;
}

bool Worker::owns_port(platform::EvtchnPort port) const noexcept {
    for (const VifRuntime* v : vifs_)
        for (const auto& q : v->queues)
            if (q->tx_port == port || q->rx_port == port) return true;
    return false;
}

void Worker::walk_vif_deadlines() noexcept {
    bool polled = false;
    std::uint64_t until = 0;
    const auto earliest = [&until](std::uint64_t at) { until = until == 0 ? at : std::min(until, at); };
    for (VifRuntime* v : vifs_) {
        if (!v->running()) continue;
        for (auto& q : v->queues) {
            if (q->backlog.empty()) continue;
            if (!v->rx_notify) polled = true;
            if (!v->rx_bucket.unlimited()) earliest(v->rx_bucket.next_refill());
            // Wake to purge a backlog the guest leaves stalled.
            if (stall_ticks_ != 0) earliest(q->rx_progress + stall_ticks_ + 1);
        }
        if (v->tx_bucket.exhausted()) earliest(v->tx_bucket.next_refill());
        // Wake when a waiting frame's time is up, whether or not the receiver took anything.
        if (!v->held.empty()) earliest(v->held.until);
    }
    vif_polled_ = polled;
    vif_wake_at_ = until;
}

void Worker::sleep() noexcept {
    counters_.sleeps.add();
    // Ports without RX interrupts can only be polled; with them the worker sleeps until a frame.
    const bool ports_polled = !rx_polled_.empty() && !intr_ok_;
    if (!quiet_) walk_vif_deadlines();
    const bool polled = ports_polled || vif_polled_;
    const std::uint64_t until = vif_wake_at_;

    std::uint64_t timeout_us = UINT64_MAX;
    if (polled) {
        timeout_us = interval_us_;
        interval_us_ = std::min<std::uint64_t>(interval_us_ * 2,
                                               static_cast<std::uint64_t>(cfg_.max_poll_interval.count()));
    }
    if (until != 0) {
        const std::uint64_t ticks = until > now_ ? until - now_ : 0;
        timeout_us = std::min(timeout_us, ticks * 1'000'000 / tsc_hz_ + 1);
    }
    pollfd fds[3] = {{events_.fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}, {intr_epoll_.get(), POLLIN, 0}};
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_us != UINT64_MAX) {
        ts.tv_sec = static_cast<time_t>(timeout_us / 1'000'000);
        ts.tv_nsec = static_cast<long>((timeout_us % 1'000'000) * 1000);
        tsp = &ts;
    }
    const int ready = ::ppoll(fds, intr_ok_ ? 3 : 2, tsp, nullptr);
    // Not with several workers: they share the event-channel fd, and an event for one of our vifs
    // that another worker drains while we are awake reaches us only through prepare_sleep's
    // final check of our rings (it wakes only a worker that sleeps). The real-Xen lab lost a
    // guest's pings that way.
    quiet_ = mesh_ == nullptr && ready == 0 && !vif_polled_ && (until == 0 || rte_get_tsc_cycles() < until);
    if (fds[1].revents != 0) platform::drain_eventfd(wake_.get());
    if (intr_ok_) {
        if (fds[2].revents != 0) {
            // DPDK clears what its interrupt type needs cleared (an eventfd read, or nothing for
            // a tap fd, which stays readable until the burst takes the frames).
            std::array<rte_epoll_event, 8> ev{};
            (void)rte_epoll_wait(intr_epoll_.get(), ev.data(), static_cast<int>(ev.size()), 0);
        }
        for (const auto& [u, q] : rx_polled_) uplinks_[u]->disarm_rx_interrupt(q);
    }
    if (ready == 0)
        counters_.wakeups_timer.add();
    else if (intr_ok_ && fds[2].revents != 0)
        counters_.wakeups_rx_intr.add();
    else if (fds[0].revents != 0)
        counters_.wakeups_event.add();
    else
        counters_.wakeups_peer.add();
}

void Worker::serve_messages_while(const std::atomic<bool>& held, const std::atomic<bool>& stop) noexcept {
    while (held.load(std::memory_order_acquire) && !stop.load(std::memory_order_relaxed)) {
        now_ = rte_get_tsc_cycles();
        handle_messages();
        // A message and the release both signal wake_: neither is missed between the check
        // above and this wait.
        pollfd p{wake_.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) platform::drain_eventfd(wake_.get());
    }
}

void Worker::run(const std::atomic<bool>& stop) noexcept {
    const std::uint64_t idle_ticks =
        static_cast<std::uint64_t>(cfg_.idle_before_sleep.count()) * tsc_hz_ / 1'000'000;
    std::uint64_t last_work = rte_get_tsc_cycles();
    bool slept = false;
    interval_us_ = static_cast<std::uint64_t>(std::max<std::int64_t>(cfg_.poll_interval.count(), 1));
    while (!stop.load(std::memory_order_relaxed)) {
        if (poll_once() != 0) {
            last_work = now_;
            slept = false;
            interval_us_ = static_cast<std::uint64_t>(std::max<std::int64_t>(cfg_.poll_interval.count(), 1));
            continue;
        }
        // After a wake-up that brought nothing, go straight back to sleep: spinning for the idle
        // period after every timer tick would keep an idle host busy.
        if (cfg_.busy_poll || (!slept && now_ - last_work < idle_ticks)) continue;
        if (stop.load(std::memory_order_relaxed)) break;
        if (mesh_ != nullptr) mesh_->going_to_sleep(index_);
        if (prepare_sleep()) {
            sleep();
            slept = true;
        }
        if (mesh_ != nullptr) mesh_->awake(index_);
    }
}

} // namespace netbackd::dataplane
