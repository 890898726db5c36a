// Guest -> backend: take a burst of TX requests, copy them into mbufs with one batched grant
// copy, answer the guest, then switch each frame to a vif backlog or an uplink TX buffer.
// Also the uplink side: RX bursts switched to vifs, TX buffers flushed once per iteration.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <rte_mbuf.h>
#include <rte_net.h>

#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/slots.hpp"
#include "backend/dataplane/worker.hpp"

namespace netbackd::dataplane {

// One TX burst of one vif queue, in the phases of Linux netback's xenvif_tx_action: collect
// the packets (budget, rate, assembly), take their buffers, build the copy ops, one grant copy,
// complete them (statuses, responses), then forward what arrived.
std::size_t Worker::tx_queue(VifRuntime& vif, QueueRuntime& q) noexcept {
    const TxBurst b = tx_collect(vif, q);
    std::size_t nout = 0;
    if (b.packets != 0 && tx_alloc(vif, q, b)) {
        tx_build_copies(vif, q, b);
        // Nothing left for a grant copy when every piece came from a staged page.
        if (copies_.size() != 0) copies_.flush(grants_, vif.counters_);
        nout = tx_complete(vif, q, b);
    }
    if (vif.capture.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
        capture_tx(vif, q, nout);
    // One push per burst (it also carries the error answers of dropped packets).
    if (q.tx_ring.push_and_check_notify()) notify(vif, q.tx_port);
    for (std::size_t i = 0; i < nout; ++i) {
        const TxOut& out = tx_out_[i];
        // Behind a waiting frame, the rest of the burst waits too: a flow's order is kept.
        const Wait wait = vif.held.capacity() != 0 ? Wait::may : Wait::no;
        if (!vif.held.empty() || !forward_from_vif(vif, out, wait)) {
            if (vif.held.empty()) vif.held.until = now_ + rx_wait_ticks_;
            if (vif.held.push(out))
                vif.counters_.tx_held.add();
            else
                (void)forward_from_vif(vif, out, Wait::no); // never fuller than a burst
        }
    }
    return b.work;
}

std::size_t Worker::release_held(VifRuntime& vif) noexcept {
    std::size_t n = 0;
    while (!vif.held.empty()) {
        // Past its wait, the first frame goes whatever room there is (dropped if none), and the
        // vif it went to stops making senders wait (rx_wait_off).
        const bool waited_out = now_ >= vif.held.until;
        if (!forward_from_vif(vif, vif.held.front(), waited_out ? Wait::over : Wait::may)) break;
        vif.held.pop();
        vif.held.until = now_ + rx_wait_ticks_;
        ++n;
    }
    return n;
}

bool Worker::must_wait(SwitchPortId id, const rte_mbuf* m, const TxOut& out, HeldFrames& held,
                       QueueRuntime*& queue) noexcept {
    const PortEntry& port = ports_[id];
    held.room = nullptr;
    // The wire never waits.
    if (rx_wait_ticks_ == 0 || port.vif == nullptr) return false;
    if (port.owner != index_) return must_wait_remote(id, m, out, held);
    VifRuntime& to = *port.vif;
    if (!to.running() || to.stalled_queues != 0) return false;
    if (to.rx_wait_off) {
        if (to.backlog_mbufs != 0) return false;
        to.rx_wait_off = false;
    }
    // A frame that would not fit even an empty backlog gains nothing by waiting.
    if (to.backlog_mbufs == 0) return false;
    const Need need = backlog_need(to, m, out);
    queue = &backlog_queue(to, m);
    return !backlog_fits(to, *queue, need.bytes, need.mbufs, m->pool == base_pool_);
}

// Another worker's vif: its backlog is not ours to read, only the room its owner published.
bool Worker::must_wait_remote(SwitchPortId id, const rte_mbuf* m, const TxOut& out,
                              HeldFrames& held) noexcept {
    PortEntry& port = ports_[id];
    const std::uint64_t word = port.vif->cross_room.word(index_);
    const BacklogRoom room = BacklogRoom::unpack(word);
    if (!room.waits) return false;
    // What we handed over that the owner has not taken yet will take room first.
    const std::uint64_t in_flight = (port.sent - room.taken) & BacklogRoom::kTakenMask;
    if (room.empty && in_flight == 0) {
        // Emptied: frames for it may wait again. A frame that would not fit even an empty
        // backlog gains nothing by waiting.
        port.wait_off = false;
        return false;
    }
    if (port.wait_off) return false;
    const Need need = backlog_need(*port.vif, m, out);
    const bool fits = in_flight + need.mbufs <= room.mbufs && in_flight * room_ + need.bytes <= room.bytes;
    if (fits) return false;
    // Registered before prepare_sleep reads the word again: a change after `word` either shows
    // there, or its owner sees this request and wakes us.
    port.vif->cross_room.wake_me(index_);
    held.room = &port.vif->cross_room;
    held.seen = word;
    return true;
}

Worker::Need Worker::backlog_need(const VifRuntime& to, const rte_mbuf* m, const TxOut& out) const noexcept {
    Need need{m->pkt_len, m->nb_segs};
    const bool v6 = out.gso && out.gso->type == XEN_NETIF_GSO_TYPE_TCPV6;
    if (out.gso && !(v6 ? to.gso_v6 : to.gso_v4) && out.gso->size != 0) {
        // Cut to its MTU on the way in (vif_enqueue): one or more buffers per segment.
        const std::uint64_t segments = m->pkt_len / out.gso->size + 1;
        need.bytes += segments * 128; // each segment's own headers, at most
        need.mbufs = segments * buffers_per_packet(std::uint32_t{out.gso->size} + 128, room_);
    }
    return need;
}

// Takes packets while the burst's scratch has room for a worst-case one and the vif's credit
// allows (netback's tx_credit_exceeded); malformed ones are answered by the assembler.
// Every request taken counts against the queue's budget for this round (tx_burst), good or bad:
// a guest that keeps refilling its ring with malformed requests or multicast-control extras
// must not keep the worker in its queue (the XSA-39 class).
Worker::TxBurst Worker::tx_collect(VifRuntime& vif, QueueRuntime& q) noexcept {
    VifCounters& c = vif.counters_;
    const std::size_t worst_bufs = max_buffers_per_packet(room_);
    const std::size_t worst_segs = ring::kMaxTxPacketSlots + worst_bufs;
    TxBurst b;
    std::size_t nsegs = 0;
    while (b.work < txpkts_.size() && b.bufs + worst_bufs <= tx_mbufs_.size() &&
           nsegs + worst_segs <= copies_.capacity()) {
        // The size is known only from the one copy next() takes: a packet is taken while there
        // is credit, and charged in full once taken (the credit may go negative). Never peek at
        // the slot first: the guest can change it before next() copies it (issue 14 item 5).
        if (!vif.tx_bucket.has_credit(now_)) {
            if (q.tx_ring.poll().count != 0) c.tx_throttled.add();
            break;
        }
        ring::TxPacket& p = txpkts_[b.packets];
        const ring::TxResult r = q.tx.next(p);
        if (r.step == ring::TxStep::empty || r.step == ring::TxStep::pending) break;
        ++b.work;
        if (r.step == ring::TxStep::dropped) {
            c.drop(Drop::tx_malformed).add();
            continue;
        }
        if (r.step == ring::TxStep::fatal) {
            vif.disable(VifFault::tx_ring, r.error);
            break;
        }
        if (p.is_mcast_control()) {
            tx_mcast(vif, q, p);
            continue;
        }
        vif.tx_bucket.charge(p.length);
        const auto k = static_cast<std::uint16_t>(buffers_per_packet(p.length, room_));
        tx_nmbufs_[b.packets] = k;
        b.bufs += k;
        nsegs += p.nr_segments + k;
        ++b.packets;
    }
    return b;
}

// A multicast-control request (netif.h, xenvif_tx_build_gops): an ADD wins over a DEL in the same
// request and is refused when the filter is full; a DEL always succeeds. Neither is a frame.
void Worker::tx_mcast(VifRuntime& vif, QueueRuntime& q, const ring::TxPacket& p) noexcept {
    VifCounters& c = vif.counters_;
    if (p.mcast_add) {
        const bool ok = vif.mcast.add(MacAddr::from_bytes(std::span<const std::uint8_t, 6>(*p.mcast_add)));
        (ok ? c.mcast_added : c.mcast_refused).add();
        q.tx.respond(p, ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
        return;
    }
    vif.mcast.del(MacAddr::from_bytes(std::span<const std::uint8_t, 6>(*p.mcast_del)));
    c.mcast_deleted.add();
    q.tx.respond(p, NETIF_RSP_OKAY);
}

// Every buffer of the burst in one allocation; without them every packet is answered with an
// error.
bool Worker::tx_alloc(VifRuntime& vif, QueueRuntime& q, const TxBurst& b) noexcept {
    if (alloc_frames(std::span(tx_mbufs_).first(b.bufs))) return true;
    for (std::size_t i = 0; i < b.packets; ++i) q.tx.respond(txpkts_[i], NETIF_RSP_ERROR);
    vif.counters_.drop(Drop::tx_no_mbuf).add(b.packets);
    return false;
}

// Chains each packet's buffers and adds one copy segment per (guest slot x destination buffer)
// piece, for the whole burst (netback's xenvif_tx_build_gops). A piece whose gref the guest
// staged (ADD_GREF_MAPPING) is copied here with memcpy from the mapped page instead: the guest
// may still write it, but what lands in the mbuf is the one copy the frame is parsed from, as
// with a grant copy. Its bounds were checked by the assembler (offset + size within the page)
// and are checked again here before the page is read.
void Worker::tx_build_copies(VifRuntime& vif, const QueueRuntime& q, const TxBurst& b) noexcept {
    const platform::DomId dom = vif.id().frontend;
    copies_.clear();
    std::uint64_t staged = 0;
    std::size_t mi = 0;
    for (std::size_t i = 0; i < b.packets; ++i) {
        const ring::TxPacket& p = txpkts_[i];
        rte_mbuf** chain = &tx_mbufs_[mi];
        const std::uint16_t k = tx_nmbufs_[i];
        std::uint32_t left = p.length;
        for (std::uint16_t j = 0; j < k; ++j) {
            chain[j]->data_len = static_cast<std::uint16_t>(std::min(left, room_));
            left -= chain[j]->data_len;
            if (j + 1 < k) chain[j]->next = chain[j + 1];
        }
        chain[0]->nb_segs = k;
        chain[0]->pkt_len = p.length;
        seg_first_[i] = copies_.size();
        std::size_t cj = 0;
        std::uint32_t coff = 0;
        for (const ring::TxSegment& s : p.segments()) {
            std::uint32_t off = s.offset;
            std::uint32_t size = s.size;
            const control::StagedPage* sp = vif.staged(q.index, s.gref, false);
            if (sp != nullptr && std::uint64_t{off} + size > ring::kPageSize) sp = nullptr;
            while (size != 0) {
                if (coff == room_) {
                    ++cj;
                    coff = 0;
                }
                const std::uint32_t take = std::min(size, room_ - coff);
                char* dest = rte_pktmbuf_mtod_offset(chain[cj], char*, coff);
                if (sp != nullptr) {
                    std::memcpy(dest, sp->page + off, take);
                    ++staged;
                } else {
                    copies_.add_from_guest(dom, s.gref, off, dest, take);
                }
                off += take;
                size -= take;
                coff += take;
            }
        }
        mi += k;
    }
    seg_first_[b.packets] = copies_.size();
    if (staged != 0) vif.counters_.staged_copies.add(staged);
}

// Answers each packet by its copy statuses (netback's xenvif_tx_check_gop) and lines up the
// good ones for forwarding; returns how many.
std::size_t Worker::tx_complete(VifRuntime& vif, QueueRuntime& q, const TxBurst& b) noexcept {
    VifCounters& c = vif.counters_;
    std::size_t nout = 0;
    std::size_t mi = 0;
    for (std::size_t i = 0; i < b.packets; ++i) {
        const ring::TxPacket& p = txpkts_[i];
        rte_mbuf* m = tx_mbufs_[mi];
        mi += tx_nmbufs_[i];
        const bool ok = copies_.ok(seg_first_[i], seg_first_[i + 1]);
        q.tx.respond(p, ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
        if (!ok) {
            drop(m, c, Drop::tx_copy_failed);
            continue;
        }
        c.tx_packets.add();
        c.tx_bytes.add(p.length);
        // Field by field: a temporary copied whole stalled on store forwarding in the profile.
        TxOut& out = tx_out_[nout++];
        out.m = m;
        out.csum_blank = p.csum_blank;
        out.data_validated = p.data_validated;
        out.gso = p.gso;
    }
    return nout;
}

bool Worker::forward_from_vif(VifRuntime& vif, const TxOut& out, Wait wait) noexcept {
    rte_mbuf* m = out.m;
    VifCounters& c = vif.counters_;
    const Decision d = sw_.forward(vif.switch_port, mac_at(m, 0), mac_at(m, 6), 0, now_, flood_);
    std::span<const SwitchPortId> dests;
    QueueRuntime* queue = nullptr; // the receiver's, when must_wait picked it
    switch (d.verdict) {
    case Verdict::drop_spoofed: drop(m, c, Drop::tx_spoofed); return true;
    case Verdict::drop_local: drop(m, c, Drop::tx_no_route); return true;
    case Verdict::unicast:
        // Before anything below changes the frame: a waiting one is sent again as it came.
        if (wait != Wait::no && must_wait(d.port, m, out, vif.held, queue)) {
            PortEntry& port = ports_[d.port];
            if (wait == Wait::may) return false;
            if (port.owner != index_) {
                port.wait_off = true; // the receiver's counters are its owner's to write
                counters_.cross_waits_over.add();
            } else {
                port.vif->rx_wait_off = true;
                port.vif->counters_.rx_waits_over.add();
            }
        }
        dests = std::span(&d.port, 1);
        break;
    case Verdict::flood: dests = std::span(flood_.data(), d.flood_count); break;
    }
    if (dests.empty()) {
        rte_pktmbuf_free(m); // a flood with nobody else on the segment: delivered to all of none
        return true;
    }
    if (out.gso && !pmd::SoftwareGso::mark_tso(m, out.gso->size)) {
        drop(m, c, Drop::tx_bad_gso);
        return true;
    }
    bool csum_blank = out.csum_blank;
    const bool uplink_only = dests.size() == 1 && ports_[dests[0]].uplink >= 0;
    if (csum_blank && !uplink_only) {
        // Vifs get complete checksums, and the buffer may be shared read-only from here on.
        if (pmd::fill_mbuf_checksums(m)) mark_checksums_good(m);
        csum_blank = false;
    } else if (out.data_validated) {
        mark_checksums_good(m);
    }
    if (dests.size() > 1) add_references(m, static_cast<std::int16_t>(dests.size() - 1));
    for (const SwitchPortId id : dests) {
        if (ports_[id].uplink >= 0) {
            uplink_out(static_cast<std::uint16_t>(ports_[id].uplink), m, csum_blank, vif.vlan, c);
        } else if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0 && !sw_.fits_mtu(id, m->pkt_len)) {
            drop(m, c, Drop::tx_over_vif_mtu); // a bridge port drops what exceeds its MTU
        } else {
            deliver(id, m, queue);
        }
    }
    return true;
}

void Worker::uplink_out(std::uint16_t u, rte_mbuf* m, bool csum_blank, std::uint16_t vlan,
                        VifCounters& c) noexcept {
    const UplinkTraits& up = uplink_traits_[u];
    const pmd::Offloads& hw = up.hw;
    const bool gso = (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0;
    // The wire takes MTU + Ethernet header (+ the tag we insert). A GSO frame is cut to fit
    // below, by the port or in software, so only its segments count.
    if (!gso && m->pkt_len > std::uint32_t{up.mtu} + RTE_ETHER_HDR_LEN) {
        drop(m, c, Drop::tx_over_mtu);
        return;
    }
    const bool hw_tso = gso && hw.tx_tcp_tso && hw.tx_l4_cksum();
    if ((vlan != 0 || hw_tso) && !exclusively_owned(m)) {
        // Both rewrite headers, which other destinations of a flooded frame must not see.
        rte_mbuf* copy = copy_frame(m);
        if (copy == nullptr) {
            drop(m, counters_.uplink_tx_dropped);
            return;
        }
        rte_pktmbuf_free(m);
        m = copy;
    }
    if (vlan != 0) {
        const auto mss = static_cast<std::uint16_t>(m->tso_segsz);
        m->vlan_tci = vlan;
        if (rte_vlan_insert(&m) != 0) {
            drop(m, counters_.uplink_tx_dropped);
            return;
        }
        if (gso) pmd::SoftwareGso::mark_tso(m, mss); // header lengths moved by the tag
    }
    if (hw_tso) {
        // The guest's MSS follows its own MTU; segments must fit the port's.
        const auto headers =
            static_cast<std::uint32_t>(m->l3_len + m->l4_len) + (up.tso_mtu_counts_l2 ? m->l2_len : 0u);
        const std::uint32_t max_mss = up.mtu > headers ? up.mtu - headers : 0;
        if (max_mss == 0) {
            drop(m, c, Drop::tx_over_mtu);
            return;
        }
        if (m->tso_segsz > max_mss) m->tso_segsz = static_cast<std::uint16_t>(max_mss);
        if ((m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0) m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
        if (rte_net_intel_cksum_prepare(m) != 0) {
            drop(m, counters_.uplink_tx_dropped);
            return;
        }
        uplink_push(u, m, c);
        return;
    }
    if (gso) {
        const int k = gso_.segment(m, gso_out_, up.mtu, hw, up.contiguous);
        if (k < 0) {
            counters_.uplink_tx_dropped.add(); // segment() freed it
            return;
        }
        for (int i = 0; i < k; ++i) uplink_push(u, gso_out_[static_cast<std::size_t>(i)], c);
        return;
    }
    if (csum_blank) pmd::prepare_tx_checksums(m, hw);
    uplink_push(u, m, c);
}

void Worker::uplink_push(std::uint16_t u, rte_mbuf* m, VifCounters& from) noexcept {
    UplinkTx& tx = uplink_tx_[u];
    if (tx.count == tx.frames.size()) flush_uplinks();
    tx.from[tx.count] = &from;
    tx.frames[tx.count++] = m;
}

void Worker::flush_uplinks() noexcept {
    for (std::uint16_t u = 0; u < uplinks_.size(); ++u) {
        UplinkTx& tx = uplink_tx_[u];
        if (tx.count == 0) continue;
        const std::uint16_t sent =
            uplinks_[u]->tx_burst(cfg_.uplink_queue, std::span(tx.frames.data(), tx.count));
        counters_.uplink_tx.add(sent);
        // Frames enter only from this iteration's vif bursts, so each `from` is still attached.
        for (std::size_t i = sent; i < tx.count; ++i) drop(tx.frames[i], *tx.from[i], Drop::tx_uplink_full);
        counters_.uplink_tx_dropped.add(tx.count - sent);
        tx.count = 0;
    }
}

std::size_t Worker::uplink_rx(std::uint16_t u, std::uint16_t queue) noexcept {
    Uplink& up = *uplinks_[u];
    const std::uint16_t n = up.rx_burst(queue, uplink_rx_buf_);
    counters_.uplink_rx.add(n);
    const bool hw_checked = uplink_traits_[u].hw.rx_l4_cksum();
    for (std::uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = uplink_rx_buf_[i];
        if (m->data_len < RTE_ETHER_HDR_LEN) {
            drop(m, counters_.uplink_unrouted);
            continue;
        }
        // Without checksum offload the flags mean nothing (net_ring passes the sender's on).
        if (!hw_checked) m->ol_flags &= ~kCsumMask;
        std::uint16_t vlan = 0;
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) && rte_vlan_strip(m) == 0)
            vlan = m->vlan_tci & 0x0fff;
        const Decision d = sw_.forward(uplink_port_[u], mac_at(m, 0), mac_at(m, 6), vlan, now_, flood_);
        if (d.verdict == Verdict::unicast && ports_[d.port].vif != nullptr) {
            // merge_v4/v6/limit are fixed before attach (another worker's vif is read too).
            const VifRuntime& to = *ports_[d.port].vif;
            if (cfg_.rx_merge && (to.merge_v4 || to.merge_v6)) {
                merge_.offer(d.port, to.merge_v4, to.merge_v6, to.merge_limit, m);
                deliver_merged();
            } else {
                deliver(d.port, m);
            }
        } else if (d.verdict == Verdict::flood && d.flood_count != 0) {
            // What was merged so far arrived first: it goes first, to every destination.
            if (!merge_.idle()) {
                merge_.flush();
                deliver_merged();
            }
            if (d.flood_count > 1) add_references(m, static_cast<std::int16_t>(d.flood_count - 1));
            for (std::uint16_t f = 0; f < d.flood_count; ++f) deliver(flood_[f], m);
        } else {
            drop(m, counters_.uplink_unrouted);
        }
    }
    // Frames of other flows may have passed the open ones; nothing waits past the burst.
    merge_.flush();
    deliver_merged();
    return n;
}

void Worker::deliver_merged() noexcept {
    for (const RxMerge::Ready& r : merge_.ready()) deliver(static_cast<SwitchPortId>(r.dest), r.m);
    merge_.clear_ready();
}

} // namespace netbackd::dataplane
