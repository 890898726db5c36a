// Switch -> guest: frames wait in a bounded per-queue backlog until the guest has posted RX
// buffers; each iteration copies a burst of them into the guest's pages with one batched grant
// copy and answers the reservations in order.
#include <algorithm>
#include <cstring>

#include <rte_mbuf.h>

#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/slots.hpp"
#include "backend/dataplane/worker.hpp"

namespace netbackd::dataplane {

namespace {

std::optional<ring::TxGso> gso_of(const rte_mbuf* m) noexcept {
    if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0) return std::nullopt;
    const bool v6 = (m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0;
    return ring::TxGso{static_cast<std::uint16_t>(m->tso_segsz),
                       static_cast<std::uint8_t>(v6 ? XEN_NETIF_GSO_TYPE_TCPV6 : XEN_NETIF_GSO_TYPE_TCPV4),
                       0};
}

} // namespace

void Worker::vif_enqueue(VifRuntime& vif, rte_mbuf* m, QueueRuntime* queue) noexcept {
    if (!vif.running()) {
        rte_pktmbuf_free(m);
        return;
    }
    if (vif.stalled_queues != 0) {
        // Carrier off: nothing queues for a guest that takes nothing.
        drop(m, vif.counters_, Drop::rx_stalled);
        return;
    }
    if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0) {
        const bool v6 = (m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0;
        if (!(v6 ? vif.gso_v6 : vif.gso_v4)) {
            // This guest takes no GSO frames: cut it to its MTU here, checksums in software.
            const int k = gso_.segment(m, gso_out_, vif.mtu, pmd::Offloads::none());
            if (k < 0) {
                vif.counters_.drop(Drop::rx_too_big).add(); // segment() freed it
                return;
            }
            for (int i = 0; i < k; ++i) {
                rte_mbuf* s = gso_out_[static_cast<std::size_t>(i)];
                s->ol_flags &= ~RTE_MBUF_F_TX_TCP_SEG;
                mark_checksums_good(s);
                backlog_push(vif, s, queue); // a segment hashes as the frame it was cut from
            }
            return;
        }
    }
    backlog_push(vif, m, queue);
}

QueueRuntime& Worker::backlog_queue(VifRuntime& vif, const rte_mbuf* m) noexcept {
    const std::size_t nq = vif.queues.size();
    std::size_t qi = 0;
    if (nq > 1 && vif.hash && vif.hash->enabled()) {
        // The guest's steering (control ring): its Toeplitz hash through its mapping table; a
        // frame of no enabled hash type hashes to 0, as in Linux netback.
        const auto h = vif.guest_hash(m);
        qi = vif.hash->queue_for(h ? h->value : 0, static_cast<std::uint32_t>(nq));
    } else if (nq > 1) {
        qi = flow_hash(m) % nq;
    }
    return *vif.queues[qi];
}

bool Worker::backlog_fits(const VifRuntime& vif, const QueueRuntime& q, std::uint64_t bytes,
                          std::uint64_t mbufs, bool base) const noexcept {
    return !q.backlog.full() && q.backlog.bytes() + bytes <= cfg_.rx_queue_bytes &&
           q.backlog.mbufs() + mbufs <= cfg_.rx_queue_mbufs &&
           vif.backlog_bytes + bytes <= cfg_.rx_vif_bytes &&
           vif.backlog_mbufs + mbufs <= vif_backlog_mbufs_ &&
           // The uplink ports receive into the first pool: stalled guests must not drain it.
           (!base || base_backlog_mbufs_ + mbufs <= base_backlog_cap_);
}

void Worker::backlog_push(VifRuntime& vif, rte_mbuf* m, QueueRuntime* queue) noexcept {
    QueueRuntime& q = queue != nullptr ? *queue : backlog_queue(vif, m);
    if (q.backlog.full()) {
        // The guest is not posting buffers fast enough (or at all): its loss, nobody else's.
        drop(m, vif.counters_, Drop::rx_no_buffer);
        return;
    }
    // What the frame keeps out of the shared pool until the guest takes it.
    const std::uint32_t bytes = m->pkt_len;
    const std::uint32_t mbufs = m->nb_segs;
    const bool base = m->pool == base_pool_;
    if (!backlog_fits(vif, q, bytes, mbufs, base)) {
        drop(m, vif.counters_, Drop::rx_over_backlog);
        return;
    }
    if (q.backlog.empty()) q.rx_progress = now_; // the stall clock starts with the first frame
    q.backlog.push(m, bytes, mbufs);
    vif.backlog_bytes += bytes;
    vif.backlog_mbufs += mbufs;
    if (base) base_backlog_mbufs_ += mbufs;
}

rte_mbuf* Worker::backlog_pop(VifRuntime& vif, QueueRuntime& q) noexcept {
    rte_mbuf* m = q.backlog.front();
    const auto [bytes, mbufs] = q.backlog.pop();
    vif.backlog_bytes -= bytes;
    vif.backlog_mbufs -= mbufs;
    if (m->pool == base_pool_) base_backlog_mbufs_ -= mbufs;
    return m;
}

std::size_t Worker::backlog_purge(VifRuntime& vif, QueueRuntime& q, std::optional<Drop> why) noexcept {
    std::size_t n = 0;
    for (; !q.backlog.empty(); ++n) {
        rte_mbuf* m = backlog_pop(vif, q);
        if (why)
            drop(m, vif.counters_, *why);
        else
            rte_pktmbuf_free(m);
    }
    return n;
}

// netback's xenvif_queue_carrier_off: the first stalled queue turns the vif's carrier off, and
// every backlog of the vif is given back to the pool.
std::size_t Worker::rx_stall(VifRuntime& vif, QueueRuntime& q) noexcept {
    q.stalled = true;
    if (vif.stalled_queues++ == 0) {
        vif.counters_.rx_stalls.add();
        vif.set_carrier(false);
    }
    std::size_t n = 0;
    for (auto& other : vif.queues) n += backlog_purge(vif, *other, Drop::rx_stalled);
    return n;
}

// netback's xenvif_queue_carrier_on: the last stalled queue with buffers again turns it on.
void Worker::rx_ready(VifRuntime& vif, QueueRuntime& q) noexcept {
    q.stalled = false;
    q.rx_progress = now_;
    if (--vif.stalled_queues == 0) vif.set_carrier(true);
}

// One RX burst of one vif queue, in the phases of Linux netback's xenvif_rx_action: take frames
// from the backlog while the guest has buffers and credit, adding each one's copy segments
// (xenvif_rx_copy_add), one grant copy for all (xenvif_rx_copy_flush), then the responses.
std::size_t Worker::rx_queue(VifRuntime& vif, QueueRuntime& q) noexcept {
    if (q.stalled) {
        // xenvif_rx_queue_ready: one posted request (or a broken ring, for reserve to find).
        const ring::Avail a = q.rx_ring.poll();
        if (a.count == 0 && a.error == ring::ProdError::none) return 0;
        rx_ready(vif, q);
        return 1;
    }
    if (q.backlog.empty()) return 0;
    const RxBurst b = rx_collect(vif, q);
    if (b.frames != 0) {
        q.rx_progress = now_;
        // Nothing left for a grant copy when every buffer was a staged page.
        if (copies_.size() != 0) copies_.flush(grants_, vif.counters_);
        if (vif.capture.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
            capture_rx(vif, q, b.frames);
        rx_complete(vif, q, b.frames);
    } else if (b.short_of && stall_ticks_ != 0 && now_ - q.rx_progress >= stall_ticks_) {
        // xenvif_rx_queue_stalled: frames waited rx_stall_timeout for a buffer they fit in.
        return b.work + rx_stall(vif, q);
    }
    return b.work + b.frames;
}

// Frames the guest cannot take at all are dropped here; the burst stops at the first one it
// cannot take yet (no buffers posted, no credit, the copy batch full).
Worker::RxBurst Worker::rx_collect(VifRuntime& vif, QueueRuntime& q) noexcept {
    VifCounters& c = vif.counters_;
    RxBurst b;
    copies_.clear();
    while (b.frames < rx_frames_.size() && !q.backlog.empty()) {
        rte_mbuf* m = q.backlog.front();
        const RxSlots slots = rx_slots(m, vif.xdp_headroom);
        if ((slots.data > 1 && !vif.sg) || slots.data > ring::kMaxRxSegments || m->pkt_len == 0) {
            backlog_pop(vif, q);
            drop(m, c, Drop::rx_too_big);
            ++b.work;
            continue;
        }
        if (copies_.size() + slots.data + m->nb_segs > copies_.capacity()) break;
        if (!vif.rx_bucket.available(m->pkt_len, now_)) {
            c.rx_throttled.add();
            break;
        }
        RxFrame& f = rx_frames_[b.frames];
        const std::optional<ring::FrameHash> hash = vif.guest_hash(m);
        const ring::RxStep step = q.rx.reserve(slots.data, slots.gso_extra, hash.has_value(), f.res);
        if (step == ring::RxStep::short_of) {
            b.short_of = true;
            break;
        }
        if (step == ring::RxStep::fatal) {
            vif.disable(VifFault::rx_ring);
            break;
        }
        backlog_pop(vif, q);
        vif.rx_bucket.charge(m->pkt_len);
        rx_copy_add(vif, q, f, m, slots.data);
        f.meta.hash = hash;
        ++b.frames;
    }
    return b;
}

// Fills each reserved guest buffer from the guest's xdp-headroom on (every buffer, as Linux
// netback's xenvif_rx_data_slot; the response carries that offset), following the mbuf chain. A
// buffer whose gref the guest staged writable (ADD_GREF_MAPPING) is filled here with memcpy into
// the mapped page; the others get grant-copy segments. Every piece stays within the page:
// headroom + in_page <= kPageSize.
void Worker::rx_copy_add(VifRuntime& vif, const QueueRuntime& q, RxFrame& f, rte_mbuf* m,
                         std::uint32_t data_slots) noexcept {
    const platform::DomId dom = vif.id().frontend;
    const std::uint16_t headroom = vif.xdp_headroom;
    std::uint64_t staged = 0;
    f.m = m;
    f.first_seg = copies_.size();
    const rte_mbuf* seg = m;
    std::uint32_t seg_off = 0;
    std::uint32_t left = m->pkt_len;
    for (std::uint32_t b = 0; b < data_slots; ++b) {
        const std::uint32_t in_page = std::min<std::uint32_t>(left, ring::kPageSize - headroom);
        std::uint32_t dst_off = 0;
        const platform::GrantRef gref = f.res.buffers()[b].gref;
        const control::StagedPage* sp = vif.staged(q.index, gref, true);
        while (dst_off < in_page) {
            while (seg_off == seg->data_len) {
                seg = seg->next;
                seg_off = 0;
            }
            const std::uint32_t take = std::min<std::uint32_t>(in_page - dst_off, seg->data_len - seg_off);
            const char* src = rte_pktmbuf_mtod_offset(seg, const char*, seg_off);
            if (sp != nullptr) {
                std::memcpy(sp->page + headroom + dst_off, src, take);
                ++staged;
            } else {
                copies_.add_to_guest(const_cast<char*>(src), dom, gref, headroom + dst_off, take);
            }
            dst_off += take;
            seg_off += take;
        }
        f.chunks[b] = ring::RxChunk{headroom, static_cast<std::uint16_t>(in_page)};
        left -= in_page;
    }
    f.nsegs = copies_.size() - f.first_seg;
    if (staged != 0) vif.counters_.staged_copies.add(staged);
    // As netback answers CHECKSUM_PARTIAL: csum_blank with data_validated.
    const bool blank = checksum_blank(m);
    f.meta = ring::RxMeta{blank || checksums_validated(m), blank, gso_of(m)};
}

// Answers each reservation by its copy statuses, in the order taken, frees the frames, and
// pushes the responses once.
void Worker::rx_complete(VifRuntime& vif, QueueRuntime& q, std::size_t frames) noexcept {
    VifCounters& c = vif.counters_;
    for (std::size_t i = 0; i < frames; ++i) {
        RxFrame& f = rx_frames_[i];
        if (copies_.ok(f.first_seg, f.first_seg + f.nsegs)) {
            q.rx.complete(f.res, std::span(f.chunks.data(), f.res.nr_data), f.meta);
            c.rx_packets.add();
            c.rx_bytes.add(f.m->pkt_len);
            rte_pktmbuf_free(f.m);
        } else {
            q.rx.fail(f.res, NETIF_RSP_ERROR);
            drop(f.m, c, Drop::rx_copy_failed);
        }
    }
    if (q.rx_ring.push_and_check_notify()) notify(vif, q.rx_port);
}

} // namespace netbackd::dataplane
