// Guest -> backend: take a burst of TX requests, copy them into mbufs with one batched grant
// copy, answer the guest, then switch each frame to a vif backlog or an uplink TX buffer.
// Also the uplink side: RX bursts switched to vifs, TX buffers flushed once per iteration.
#include <algorithm>
#include <cerrno>

#include <rte_mbuf.h>
#include <rte_net.h>

#include "backend/dataplane/frame_util.hpp"
#include "backend/dataplane/worker.hpp"

namespace netbackd::dataplane {

std::size_t Worker::tx_queue(VifRuntime& vif, QueueRuntime& q) noexcept {
    VifCounters& c = vif.counters_;
    const std::size_t worst_bufs = (0xffffu + room_ - 1) / room_;
    const std::size_t worst_segs = ring::kMaxTxPacketSlots + worst_bufs;
    std::size_t n = 0;
    std::size_t nbufs = 0;
    std::size_t nsegs = 0;
    std::size_t work = 0;

    while (n < txpkts_.size() && nbufs + worst_bufs <= tx_mbufs_.size() &&
           nsegs + worst_segs <= copy_.size()) {
        if (!vif.tx_bucket.unlimited()) {
            // Peek at the size before taking the packet: a packet once taken must go now.
            const ring::Avail a = q.tx_ring.poll();
            if (a.count != 0 && a.error == ring::ProdError::none &&
                !vif.tx_bucket.available(q.tx_ring.copy_request(0).size, now_)) {
                c.tx_throttled.add();
                break;
            }
        }
        ring::TxPacket& p = txpkts_[n];
        const ring::TxResult r = q.tx.next(p);
        if (r.step == ring::TxStep::empty || r.step == ring::TxStep::pending) break;
        ++work;
        if (r.step == ring::TxStep::dropped) {
            c.drop(Drop::tx_malformed).add();
            continue;
        }
        if (r.step == ring::TxStep::fatal) {
            vif.disable(VifFault::tx_ring, r.error);
            break;
        }
        if (p.is_mcast_control()) {
            // Multicast filtering is not offered; the guest gets its answer and nothing changes.
            q.tx.respond(p, NETIF_RSP_OKAY);
            continue;
        }
        vif.tx_bucket.charge(p.length);
        const auto k = static_cast<std::uint16_t>((p.length + room_ - 1) / room_);
        tx_nmbufs_[n] = k;
        nbufs += k;
        nsegs += p.nr_segments + k;
        ++n;
    }

    if (n != 0 && rte_pktmbuf_alloc_bulk(pool_.get(), tx_mbufs_.data(), static_cast<unsigned>(nbufs)) != 0) {
        for (std::size_t i = 0; i < n; ++i) q.tx.respond(txpkts_[i], NETIF_RSP_ERROR);
        c.drop(Drop::tx_no_mbuf).add(n);
        n = 0;
    }

    std::size_t nout = 0;
    if (n != 0) {
        // One copy segment per (guest slot x destination buffer) piece, for the whole burst.
        std::size_t mi = 0;
        std::size_t si = 0;
        const platform::DomId dom = vif.id().frontend;
        for (std::size_t i = 0; i < n; ++i) {
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
            seg_first_[i] = si;
            std::size_t cj = 0;
            std::uint32_t coff = 0;
            for (const ring::TxSegment& s : p.segments()) {
                std::uint32_t off = s.offset;
                std::uint32_t size = s.size;
                while (size != 0) {
                    if (coff == room_) {
                        ++cj;
                        coff = 0;
                    }
                    const std::uint32_t take = std::min(size, room_ - coff);
                    platform::CopySegment& cs = copy_[si++];
                    cs.source.foreign.ref = s.gref;
                    cs.source.foreign.offset = static_cast<std::uint16_t>(off);
                    cs.source.foreign.domid = dom;
                    cs.dest.virt = rte_pktmbuf_mtod_offset(chain[cj], char*, coff);
                    cs.len = static_cast<std::uint16_t>(take);
                    cs.flags = GNTCOPY_source_gref;
                    cs.status = GNTST_general_error;
                    off += take;
                    size -= take;
                    coff += take;
                }
            }
            mi += k;
        }
        seg_first_[n] = si;
        copy(std::span(copy_.data(), si));
        c.copy_batches.add();
        c.copy_segments.add(si);

        mi = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const ring::TxPacket& p = txpkts_[i];
            rte_mbuf* m = tx_mbufs_[mi];
            mi += tx_nmbufs_[i];
            bool ok = true;
            for (std::size_t s = seg_first_[i]; s < seg_first_[i + 1]; ++s)
                ok &= copy_[s].status == GNTST_okay;
            q.tx.respond(p, ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
            if (!ok) {
                rte_pktmbuf_free(m);
                c.drop(Drop::tx_copy_failed).add();
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
    }
    // One push per burst (it also carries the error answers of dropped packets).
    if (q.tx_ring.push_and_check_notify()) notify(vif, q.tx_port);
    for (std::size_t i = 0; i < nout; ++i) forward_from_vif(vif, tx_out_[i]);
    return work;
}

void Worker::forward_from_vif(VifRuntime& vif, const TxOut& out) noexcept {
    rte_mbuf* m = out.m;
    VifCounters& c = vif.counters_;
    const Decision d = sw_.forward(vif.switch_port, mac_at(m, 0), mac_at(m, 6), 0, now_, flood_);
    std::span<const SwitchPortId> dests;
    switch (d.verdict) {
    case Verdict::drop_spoofed:
        c.drop(Drop::tx_spoofed).add();
        rte_pktmbuf_free(m);
        return;
    case Verdict::drop_local:
        c.drop(Drop::tx_no_route).add();
        rte_pktmbuf_free(m);
        return;
    case Verdict::unicast: dests = std::span(&d.port, 1); break;
    case Verdict::flood: dests = std::span(flood_.data(), d.flood_count); break;
    }
    if (dests.empty()) {
        rte_pktmbuf_free(m);
        return;
    }
    if (out.gso && !pmd::SoftwareGso::mark_tso(m, out.gso->size)) {
        c.drop(Drop::tx_bad_gso).add();
        rte_pktmbuf_free(m);
        return;
    }
    bool csum_blank = out.csum_blank;
    const bool uplink_only = dests.size() == 1 && port_uplink_[dests[0]] >= 0;
    if (csum_blank && !uplink_only) {
        // Vifs get complete checksums, and the buffer may be shared read-only from here on.
        if (pmd::fill_mbuf_checksums(m)) mark_checksums_good(m);
        csum_blank = false;
    } else if (out.data_validated) {
        mark_checksums_good(m);
    }
    if (dests.size() > 1) add_references(m, static_cast<std::int16_t>(dests.size() - 1));
    for (const SwitchPortId id : dests) {
        if (port_uplink_[id] >= 0) {
            uplink_out(static_cast<std::uint16_t>(port_uplink_[id]), m, csum_blank, vif.vlan, c);
        } else {
            deliver(id, m);
        }
    }
}

void Worker::uplink_out(std::uint16_t u, rte_mbuf* m, bool csum_blank, std::uint16_t vlan,
                        VifCounters& c) noexcept {
    const UplinkTraits& up = uplink_traits_[u];
    const pmd::Offloads& hw = up.hw;
    const bool gso = (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0;
    // The wire takes MTU + Ethernet header (+ the tag we insert). A GSO frame is cut to fit
    // below, by the port or in software, so only its segments count.
    if (!gso && m->pkt_len > std::uint32_t{up.mtu} + RTE_ETHER_HDR_LEN) {
        c.drop(Drop::tx_over_mtu).add();
        rte_pktmbuf_free(m);
        return;
    }
    const bool hw_tso = gso && hw.tx_tcp_tso && hw.tx_l4_cksum();
    if ((vlan != 0 || hw_tso) && !exclusively_owned(m)) {
        // Both rewrite headers, which other destinations of a flooded frame must not see.
        rte_mbuf* copy = rte_pktmbuf_copy(m, pool_.get(), 0, UINT32_MAX);
        rte_pktmbuf_free(m);
        if (copy == nullptr) {
            counters_.uplink_tx_dropped.add();
            return;
        }
        m = copy;
    }
    if (vlan != 0) {
        const auto mss = static_cast<std::uint16_t>(m->tso_segsz);
        m->vlan_tci = vlan;
        if (rte_vlan_insert(&m) != 0) {
            rte_pktmbuf_free(m);
            counters_.uplink_tx_dropped.add();
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
            c.drop(Drop::tx_over_mtu).add();
            rte_pktmbuf_free(m);
            return;
        }
        if (m->tso_segsz > max_mss) m->tso_segsz = static_cast<std::uint16_t>(max_mss);
        if ((m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0) m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
        if (rte_net_intel_cksum_prepare(m) != 0) {
            rte_pktmbuf_free(m);
            counters_.uplink_tx_dropped.add();
            return;
        }
        uplink_push(u, m);
        return;
    }
    if (gso) {
        const int k = gso_.segment(m, gso_out_, up.mtu, hw);
        if (k < 0) {
            counters_.uplink_tx_dropped.add();
            return;
        }
        for (int i = 0; i < k; ++i) uplink_push(u, gso_out_[static_cast<std::size_t>(i)]);
        return;
    }
    if (csum_blank) pmd::prepare_tx_checksums(m, hw);
    uplink_push(u, m);
}

void Worker::uplink_push(std::uint16_t u, rte_mbuf* m) noexcept {
    auto& buf = uplink_tx_buf_[u];
    std::size_t& count = uplink_tx_count_[u];
    if (count == buf.size()) flush_uplinks();
    buf[count++] = m;
}

void Worker::flush_uplinks() noexcept {
    for (std::uint16_t u = 0; u < uplinks_.size(); ++u) {
        std::size_t& count = uplink_tx_count_[u];
        if (count == 0) continue;
        auto& buf = uplink_tx_buf_[u];
        const std::uint16_t sent = uplinks_[u]->tx_burst(cfg_.uplink_queue, std::span(buf.data(), count));
        counters_.uplink_tx.add(sent);
        for (std::size_t i = sent; i < count; ++i) rte_pktmbuf_free(buf[i]);
        counters_.uplink_tx_dropped.add(count - sent);
        count = 0;
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
            rte_pktmbuf_free(m);
            counters_.uplink_unrouted.add();
            continue;
        }
        // Without checksum offload the flags mean nothing (net_ring passes the sender's on).
        if (!hw_checked) m->ol_flags &= ~kCsumMask;
        std::uint16_t vlan = 0;
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) && rte_vlan_strip(m) == 0)
            vlan = m->vlan_tci & 0x0fff;
        const Decision d = sw_.forward(uplink_port_[u], mac_at(m, 0), mac_at(m, 6), vlan, now_, flood_);
        if (d.verdict == Verdict::unicast && by_port_[d.port] != nullptr) {
            deliver(d.port, m);
        } else if (d.verdict == Verdict::flood && d.flood_count != 0) {
            if (d.flood_count > 1) add_references(m, static_cast<std::int16_t>(d.flood_count - 1));
            for (std::uint16_t f = 0; f < d.flood_count; ++f) deliver(flood_[f], m);
        } else {
            counters_.uplink_unrouted.add();
            rte_pktmbuf_free(m);
        }
    }
    return n;
}

} // namespace netbackd::dataplane
