#include "xensim/netfront/netfront_io.hpp"

#include <algorithm>
#include <cstring>

namespace netbackd::xensim {

namespace {

constexpr std::size_t kPage = platform::kPageSize;

ring::Page ring_page(GuestMemory& memory, Gfn gfn) { return ring::Page(memory.page(gfn).first<kPage>()); }

} // namespace

NetfrontIo::NetfrontIo(GuestMemory& memory, platform::Events& events) : memory_(memory), events_(events) {}

NetfrontIo::~NetfrontIo() {
    if (followed_ != nullptr) followed_->set_release_hook({});
    detach();
}

void NetfrontIo::make_pool(std::array<Buffer, kBuffers>& pool, bool readonly) {
    for (auto& b : pool) {
        b.gfn = memory_.alloc_page();
        try {
            b.ref = memory_.grant_access(b.gfn, backend_, readonly);
        } catch (...) {
            memory_.free_page(b.gfn);
            b = Buffer{};
            throw;
        }
        b.data = memory_.page(b.gfn).data();
    }
}

std::vector<platform::GrantRef> NetfrontIo::buffer_refs(unsigned q, bool tx) const {
    std::vector<platform::GrantRef> out;
    if (q >= queues_.size()) return out;
    for (const Buffer& b : tx ? queues_[q].txb : queues_[q].rxb) out.push_back(b.ref);
    return out;
}

std::size_t NetfrontIo::stage_buffers(Netfront& nf, unsigned q) {
    if (q >= queues_.size() || !nf.has_ctrl_ring()) return 0;
    const auto size = nf.ctrl_call(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, q);
    if (!size || size->status != XEN_NETIF_CTRL_STATUS_SUCCESS) return 0;
    std::size_t room = size->data;
    std::size_t staged = 0;
    for (const bool tx : {true, false}) {
        std::vector<xen_netif_gref> entries;
        for (const platform::GrantRef ref : buffer_refs(q, tx)) {
            if (entries.size() == room) break;
            entries.push_back(
                xen_netif_gref{ref, static_cast<std::uint16_t>(tx ? XEN_NETIF_CTRLF_GREF_readonly : 0), 0});
        }
        if (entries.empty()) break;
        const auto r = nf.gref_call(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, q, entries);
        if (!r || r->status != XEN_NETIF_CTRL_STATUS_SUCCESS) break;
        staged += entries.size();
        room -= entries.size();
    }
    return staged;
}

void NetfrontIo::release_pool(std::array<Buffer, kBuffers>& pool) noexcept {
    for (auto& b : pool) {
        if (b.data == nullptr) continue;
        try {
            // A backend still copying from/to the page keeps it: it must not be reused yet.
            if (memory_.end_access(b.ref))
                memory_.free_page(b.gfn);
            else
                stuck_.emplace_back(b.ref, b.gfn);
        } catch (...) {
            stuck_.emplace_back(b.ref, b.gfn);
        }
        b = Buffer{};
    }
}

void NetfrontIo::retry_stuck() noexcept {
    std::erase_if(stuck_, [&](const std::pair<platform::GrantRef, Gfn>& s) {
        try {
            if (!memory_.end_access(s.first)) return false;
            memory_.free_page(s.second);
            return true;
        } catch (...) {
            return false;
        }
    });
}

void NetfrontIo::attach(platform::DomId backend, std::span<const IoQueueSpec> specs,
                        const BackendFeatures& features) {
    detach();
    backend_ = backend;
    features_ = features;
    queues_.reserve(specs.size());
    try {
        for (const auto& s : specs) {
            Queue& q = queues_.emplace_back();
            // The control half initialised the shared indices before granting the pages.
            q.tx.emplace(ring_page(memory_, s.tx_gfn),
                         ring::SharedRing<ring::TxRing>(ring_page(memory_, s.tx_gfn)).req_prod().load());
            q.rx.emplace(ring_page(memory_, s.rx_gfn),
                         ring::SharedRing<ring::RxRing>(ring_page(memory_, s.rx_gfn)).req_prod().load());
            q.tx_port = s.tx_port;
            q.rx_port = s.rx_port;
            make_pool(q.txb, true);
            make_pool(q.rxb, false);
            for (std::size_t i = 0; i < kBuffers; ++i)
                q.tx_free[i] = static_cast<std::uint16_t>(kBuffers - 1 - i);
            q.nr_tx_free = kBuffers;
        }
    } catch (...) {
        detach();
        throw;
    }
    for (unsigned q = 0; q < queue_count(); ++q) refill(q);
}

void NetfrontIo::detach() noexcept {
    for (auto& q : queues_) {
        release_pool(q.txb);
        release_pool(q.rxb);
    }
    queues_.clear();
    retry_stuck();
}

bool NetfrontIo::follow(Netfront& nf) {
    if (followed_ != &nf) {
        if (followed_ != nullptr) followed_->set_release_hook({});
        followed_ = &nf;
        nf.set_release_hook([this] { detach(); });
        seen_generation_ = nf.generation() - 1; // whatever it has now is new to us
    }
    if (nf.generation() == seen_generation_) return false;
    seen_generation_ = nf.generation();
    detach();
    if (nf.state() == 4 && !nf.queues().empty()) {
        std::vector<IoQueueSpec> specs;
        for (const auto& fq : nf.queues())
            specs.push_back(IoQueueSpec{fq.tx_gfn, fq.rx_gfn, fq.tx_port, fq.rx_port});
        attach(nf.backend_id(), specs, nf.backend_features());
    }
    return true;
}

std::uint16_t NetfrontIo::take_tx_buffer(Queue& q) noexcept {
    const std::uint16_t id = q.tx_free[--q.nr_tx_free];
    q.txb[id].in_flight = true;
    q.txb[id].head_length = 0;
    return id;
}

SendResult NetfrontIo::send(unsigned qi, std::span<const std::byte> frame, const TxMeta& meta) noexcept {
    if (qi >= queues_.size() || frame.empty() || frame.size() > 0xffff || meta.offset >= kPage)
        return SendResult::refused;
    if (meta.gso && !(meta.gso->type == XEN_NETIF_GSO_TYPE_TCPV4   ? features_.gso_tcpv4
                      : meta.gso->type == XEN_NETIF_GSO_TYPE_TCPV6 ? features_.gso_tcpv6
                                                                   : false))
        return SendResult::refused;
    if (meta.flags.csum_blank && !features_.csum_offload) return SendResult::refused;
    // As Linux netfront (xennet_start_xmit bounces the skb): the first slot must hold the
    // Ethernet header, or netback drops the packet.
    const std::uint16_t start = kPage - meta.offset < ring::kEthHeaderLen ? 0 : meta.offset;
    const std::size_t first = std::min(frame.size(), kPage - start);
    const std::size_t nr = 1 + (frame.size() - first + kPage - 1) / kPage;
    if (nr > 1 && !features_.sg) return SendResult::refused;
    if (nr > ring::kMaxTxSegments) return SendResult::refused;
    Queue& q = queues_[qi];
    ring::TxExtras extras;
    extras.gso = meta.gso;
    if (q.nr_tx_free < nr || q.tx->free_requests() < ring::tx_slots_needed(nr, extras))
        return SendResult::busy;

    std::array<ring::TxFrontSegment, ring::kMaxTxSegments> segs;
    std::size_t done = 0;
    for (std::size_t i = 0; i < nr; ++i) {
        const std::uint16_t off = i == 0 ? start : 0;
        const std::size_t take = std::min(frame.size() - done, kPage - off);
        const std::uint16_t id = take_tx_buffer(q);
        std::memcpy(q.txb[id].data + off, frame.data() + done, take);
        segs[i] = ring::TxFrontSegment{q.txb[id].ref, off, static_cast<std::uint16_t>(take), id};
        done += take;
    }
    q.txb[segs[0].id].head_length = static_cast<std::uint32_t>(frame.size());
    // Room was checked above, so this cannot refuse.
    (void)ring::put_tx_packet(*q.tx, std::span(segs.data(), nr), extras, meta.flags);
    return SendResult::queued;
}

SendResult NetfrontIo::send_mcast(unsigned qi, bool add, const ring::MacAddr& mac) noexcept {
    if (qi >= queues_.size()) return SendResult::refused;
    Queue& q = queues_[qi];
    ring::TxExtras extras;
    (add ? extras.mcast_add : extras.mcast_del) = mac;
    if (q.nr_tx_free == 0 || q.tx->free_requests() < ring::tx_slots_needed(1, extras))
        return SendResult::busy;
    const std::uint16_t id = take_tx_buffer(q);
    q.txb[id].mcast = true;
    // A dummy request: no data, only the extra (netback skips its length checks).
    const ring::TxFrontSegment seg{q.txb[id].ref, 0, 0, id};
    (void)ring::put_tx_packet(*q.tx, std::span(&seg, 1), extras);
    return SendResult::queued;
}

bool NetfrontIo::stamp_tx_buffers(std::span<const std::byte> frame) noexcept {
    if (frame.empty() || frame.size() > kPage) return false;
    for (auto& q : queues_)
        for (auto& b : q.txb) std::memcpy(b.data, frame.data(), frame.size());
    return true;
}

SendResult NetfrontIo::send_stamped(unsigned qi, std::uint16_t length, ring::TxFrontFlags flags) noexcept {
    if (qi >= queues_.size() || length == 0 || length > kPage) return SendResult::refused;
    if (flags.csum_blank && !features_.csum_offload) return SendResult::refused;
    Queue& q = queues_[qi];
    if (q.nr_tx_free == 0 || q.tx->full()) return SendResult::busy;
    const std::uint16_t id = take_tx_buffer(q);
    q.txb[id].head_length = length;
    netif_tx_request_t req{};
    req.gref = q.txb[id].ref;
    req.offset = 0;
    req.flags = static_cast<std::uint16_t>((flags.csum_blank ? NETTXF_csum_blank : 0) |
                                           (flags.data_validated ? NETTXF_data_validated : 0));
    req.id = id;
    req.size = length;
    q.tx->put_request(req);
    return SendResult::queued;
}

bool NetfrontIo::flush(unsigned qi) noexcept {
    if (qi >= queues_.size()) return false;
    Queue& q = queues_[qi];
    if (!q.tx->push_and_check_notify()) return false;
    try {
        events_.notify(q.tx_port);
    } catch (...) {
        return false; // the channel went with the backend; the reconnect will follow
    }
    ++counters_.tx_notifies;
    return true;
}

std::size_t NetfrontIo::reap_tx(unsigned qi) noexcept {
    if (qi >= queues_.size()) return 0;
    Queue& q = queues_[qi];
    const ring::Avail a = q.tx->poll();
    if (a.error != ring::ProdError::none) {
        ++counters_.protocol_errors;
        return 0;
    }
    for (ring::RingIdx i = 0; i < a.count; ++i) {
        const netif_tx_response_t r = q.tx->copy_response(i);
        if (r.status == NETIF_RSP_NULL) continue; // answers an extra slot; no buffer behind it
        if (r.id >= kBuffers || !q.txb[r.id].in_flight) {
            ++counters_.protocol_errors;
            continue;
        }
        Buffer& b = q.txb[r.id];
        if (b.mcast) {
            ++(r.status == NETIF_RSP_OKAY ? counters_.mcast_ok : counters_.mcast_errors);
            b.mcast = false;
        } else if (b.head_length != 0) {
            if (r.status == NETIF_RSP_OKAY) {
                ++counters_.tx_pkts;
                counters_.tx_bytes += b.head_length;
            } else {
                ++counters_.tx_errors;
            }
        }
        b.in_flight = false;
        b.head_length = 0;
        q.tx_free[q.nr_tx_free++] = r.id;
    }
    q.tx->consume(a.count);
    return a.count;
}

std::size_t NetfrontIo::tx_room(unsigned qi) const noexcept {
    if (qi >= queues_.size()) return 0;
    const Queue& q = queues_[qi];
    return std::min<std::size_t>(q.nr_tx_free, q.tx->free_requests());
}

bool NetfrontIo::next_rx(unsigned qi, RxFrame& out) noexcept {
    if (qi >= queues_.size()) return false;
    Queue& q = queues_[qi];
    ring::RxFrontPacket p;
    const ring::RxReadStep step = ring::read_rx_packet(*q.rx, p);
    if (step == ring::RxReadStep::malformed) {
        ++counters_.protocol_errors;
        // A broken backend: drop what is there so the ring does not wedge on it.
        const ring::Avail a = q.rx->poll();
        if (a.error == ring::ProdError::none) q.rx->consume(a.count);
        return false;
    }
    if (step != ring::RxReadStep::packet) return false;
    out.nr_frags = 0;
    out.length = 0;
    out.flags = p.flags;
    out.gso = p.gso;
    out.hash = p.hash;
    out.error = p.error;
    out.headroom_error = false;
    for (const auto& f : p.frags()) {
        if (f.status <= 0) continue;
        const std::size_t off = f.offset;
        const std::size_t len = static_cast<std::size_t>(f.status);
        if (f.id >= kBuffers || off + len > kPage) {
            out.error = true;
            continue;
        }
        if (rx_headroom_ && off != *rx_headroom_) out.headroom_error = true;
        out.frag_storage[out.nr_frags++] = std::span<const std::byte>(q.rxb[f.id].data + off, len);
        out.length += static_cast<std::uint32_t>(len);
    }
    if (out.headroom_error) ++counters_.rx_headroom_errors;
    if (out.error) {
        ++counters_.rx_errors;
    } else {
        ++counters_.rx_pkts;
        counters_.rx_bytes += out.length;
    }
    return true;
}

bool NetfrontIo::refill(unsigned qi) noexcept {
    if (qi >= queues_.size()) return false;
    Queue& q = queues_[qi];
    while (!q.rx->full()) {
        const auto slot = static_cast<std::uint16_t>(q.rx->req_prod_pvt() & (kBuffers - 1));
        netif_rx_request_t req{};
        req.id = slot;
        req.gref = q.rxb[slot].ref;
        q.rx->put_request(req);
    }
    if (!q.rx->push_and_check_notify()) return false;
    try {
        events_.notify(q.rx_port);
    } catch (...) {
        return false;
    }
    ++counters_.rx_notifies;
    return true;
}

std::size_t NetfrontIo::rx_posted(unsigned qi) const noexcept {
    if (qi >= queues_.size()) return 0;
    const auto& rx = *queues_[qi].rx;
    return rx.req_prod_pvt() - rx.rsp_cons();
}

std::size_t NetfrontIo::drain_events() noexcept {
    std::size_t n = 0;
    try {
        while (auto port = events_.pending()) {
            events_.unmask(*port);
            ++n;
        }
    } catch (...) {
        // A port closed under us; the rest is picked up next time.
    }
    counters_.events += n;
    return n;
}

bool NetfrontIo::prepare_to_sleep(unsigned qi) noexcept {
    if (qi >= queues_.size()) return false;
    Queue& q = queues_[qi];
    const ring::Avail t = q.tx->final_check();
    const ring::Avail r = q.rx->final_check();
    return t.count != 0 || r.count != 0 || t.error != ring::ProdError::none ||
           r.error != ring::ProdError::none;
}

} // namespace netbackd::xensim
