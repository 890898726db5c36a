// Switch -> guest: frames wait in a bounded per-queue backlog until the guest has posted RX
// buffers; each iteration copies a burst of them into the guest's pages with one batched grant
// copy and answers the reservations in order.
#include <algorithm>

#include <rte_mbuf.h>

#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/worker.hpp"

namespace netbackd::dataplane {

namespace {

constexpr std::uint32_t kPage = 4096;

std::uint32_t data_slots(const rte_mbuf* m) noexcept { return (m->pkt_len + kPage - 1) / kPage; }

std::optional<ring::TxGso> gso_of(const rte_mbuf* m) noexcept {
    if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0) return std::nullopt;
    const bool v6 = (m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0;
    return ring::TxGso{static_cast<std::uint16_t>(m->tso_segsz),
                       static_cast<std::uint8_t>(v6 ? XEN_NETIF_GSO_TYPE_TCPV6 : XEN_NETIF_GSO_TYPE_TCPV4),
                       0};
}

} // namespace

void Worker::vif_enqueue(VifRuntime& vif, rte_mbuf* m) noexcept {
    if (!vif.running()) {
        rte_pktmbuf_free(m);
        return;
    }
    if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0) {
        const bool v6 = (m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0;
        if (!(v6 ? vif.gso_v6 : vif.gso_v4)) {
            // This guest takes no GSO frames: cut it to its MTU here, checksums in software.
            const int k = gso_.segment(m, gso_out_, vif.mtu, pmd::Offloads::none());
            if (k < 0) {
                vif.counters_.drop(Drop::rx_too_big).add();
                return;
            }
            for (int i = 0; i < k; ++i) {
                rte_mbuf* s = gso_out_[static_cast<std::size_t>(i)];
                s->ol_flags &= ~RTE_MBUF_F_TX_TCP_SEG;
                mark_checksums_good(s);
                backlog_push(vif, s);
            }
            return;
        }
    }
    backlog_push(vif, m);
}

void Worker::backlog_push(VifRuntime& vif, rte_mbuf* m) noexcept {
    const std::size_t nq = vif.queues.size();
    QueueRuntime& q = *vif.queues[nq == 1 ? 0 : flow_hash(m) % nq];
    if (q.backlog.full()) {
        // The guest is not posting buffers fast enough (or at all): its loss, nobody else's.
        vif.counters_.drop(Drop::rx_no_buffer).add();
        rte_pktmbuf_free(m);
        return;
    }
    q.backlog.push(m);
}

std::size_t Worker::rx_queue(VifRuntime& vif, QueueRuntime& q) noexcept {
    if (q.backlog.empty()) return 0;
    VifCounters& c = vif.counters_;
    const platform::DomId dom = vif.id().frontend;
    std::size_t nf = 0;
    std::size_t si = 0;
    std::size_t work = 0;
    while (nf < rx_frames_.size() && !q.backlog.empty()) {
        rte_mbuf* m = q.backlog.front();
        const std::uint32_t slots = data_slots(m);
        const std::optional<ring::TxGso> gso = gso_of(m);
        if ((slots > 1 && !vif.sg) || slots > ring::kMaxRxSegments || m->pkt_len == 0) {
            q.backlog.pop();
            rte_pktmbuf_free(m);
            c.drop(Drop::rx_too_big).add();
            ++work;
            continue;
        }
        if (si + slots + m->nb_segs > copy_.size()) break;
        if (!vif.rx_bucket.available(m->pkt_len, now_)) {
            c.rx_throttled.add();
            break;
        }
        RxFrame& f = rx_frames_[nf];
        const ring::RxStep step = q.rx.reserve(slots, gso.has_value(), f.res);
        if (step == ring::RxStep::short_of) break;
        if (step == ring::RxStep::fatal) {
            vif.disable(VifFault::rx_ring);
            break;
        }
        q.backlog.pop();
        vif.rx_bucket.charge(m->pkt_len);
        f.m = m;
        f.first_seg = si;
        // Fill each guest buffer from the start of its page, following the mbuf chain.
        const rte_mbuf* seg = m;
        std::uint32_t seg_off = 0;
        std::uint32_t left = m->pkt_len;
        for (std::uint32_t b = 0; b < slots; ++b) {
            const std::uint32_t in_page = std::min(left, kPage);
            std::uint32_t dst_off = 0;
            while (dst_off < in_page) {
                while (seg_off == seg->data_len) {
                    seg = seg->next;
                    seg_off = 0;
                }
                const std::uint32_t take =
                    std::min<std::uint32_t>(in_page - dst_off, seg->data_len - seg_off);
                platform::CopySegment& cs = copy_[si++];
                cs.source.virt = rte_pktmbuf_mtod_offset(seg, char*, seg_off);
                cs.dest.foreign.ref = f.res.buffers()[b].gref;
                cs.dest.foreign.offset = static_cast<std::uint16_t>(dst_off);
                cs.dest.foreign.domid = dom;
                cs.len = static_cast<std::uint16_t>(take);
                cs.flags = GNTCOPY_dest_gref;
                cs.status = GNTST_general_error;
                dst_off += take;
                seg_off += take;
            }
            f.chunks[b] = ring::RxChunk{0, static_cast<std::uint16_t>(in_page)};
            left -= in_page;
        }
        f.nsegs = si - f.first_seg;
        f.meta = ring::RxMeta{checksums_validated(m), false, gso};
        ++nf;
    }
    if (nf != 0) {
        copy(std::span(copy_.data(), si));
        c.copy_batches.add();
        c.copy_segments.add(si);
        for (std::size_t i = 0; i < nf; ++i) {
            RxFrame& f = rx_frames_[i];
            bool ok = true;
            for (std::size_t s = f.first_seg; s < f.first_seg + f.nsegs; ++s)
                ok &= copy_[s].status == GNTST_okay;
            if (ok) {
                q.rx.complete(f.res, std::span(f.chunks.data(), f.res.nr_data), f.meta);
                c.rx_packets.add();
                c.rx_bytes.add(f.m->pkt_len);
            } else {
                q.rx.fail(f.res, NETIF_RSP_ERROR);
                c.drop(Drop::rx_copy_failed).add();
            }
            rte_pktmbuf_free(f.m);
        }
        if (q.rx_ring.push_and_check_notify()) notify(vif, q.rx_port);
    }
    return work + nf;
}

} // namespace netbackd::dataplane
