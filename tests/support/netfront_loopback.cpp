#include "tests/support/netfront_loopback.hpp"

#include <algorithm>
#include <stdexcept>

namespace netbackd::xensim::test {

World::World()
    : admin(HvClient::connect_admin(host.dir())),
      guest_hv([&] {
          admin->create_domain(kBack, "driver", 4u << 20);
          admin->create_domain(kGuest, "guest", 16u << 20);
          return HvClient::connect(host.dir(), kGuest);
      }()),
      memory(guest_hv),
      guest_events(guest_hv) {}

GuestQueue World::make_queue(bool split) { return make_guest_queue(memory, guest_events, kBack, split); }

GuestQueue make_guest_queue(GuestMemory& memory, platform::Events& events, platform::DomId back, bool split) {
    GuestQueue q;
    q.spec.tx_gfn = memory.alloc_page();
    q.spec.rx_gfn = memory.alloc_page();
    ring::init_shared_ring<ring::TxRing>(ring::Page(memory.page(q.spec.tx_gfn).first<4096>()));
    ring::init_shared_ring<ring::RxRing>(ring::Page(memory.page(q.spec.rx_gfn).first<4096>()));
    q.tx_ref = memory.grant_access(q.spec.tx_gfn, back, false);
    q.rx_ref = memory.grant_access(q.spec.rx_gfn, back, false);
    q.spec.tx_port = events.alloc_unbound(back);
    q.spec.rx_port = split ? events.alloc_unbound(back) : q.spec.tx_port;
    return q;
}

void World::free_queue(const GuestQueue& q) {
    for (auto [ref, gfn] : {std::pair{q.tx_ref, q.spec.tx_gfn}, std::pair{q.rx_ref, q.spec.rx_gfn}}) {
        if (!memory.end_access(ref)) throw std::runtime_error("ring page still mapped");
        memory.free_page(gfn);
    }
    guest_events.unbind(q.spec.tx_port);
    if (q.spec.rx_port != q.spec.tx_port) guest_events.unbind(q.spec.rx_port);
}

Loopback::Loopback(World& w, const GuestQueue& q)
    : hv_(HvClient::connect(w.host.dir(), kBack)),
      grants_(hv_),
      events_(hv_),
      tx_map_(grants_.map(kGuest, q.tx_ref, true)),
      rx_map_(grants_.map(kGuest, q.rx_ref, true)),
      tx_port_(events_.bind_interdomain(kGuest, q.spec.tx_port)),
      rx_port_(q.spec.rx_port == q.spec.tx_port ? tx_port_
                                                : events_.bind_interdomain(kGuest, q.spec.rx_port)),
      split_(q.spec.rx_port != q.spec.tx_port) {
    tx_.emplace(ring::Page(tx_map_->page().first<4096>()));
    rx_.emplace(ring::Page(rx_map_->page().first<4096>()));
    asm_.emplace(*tx_);
}

Loopback::~Loopback() {
    asm_.reset();
    tx_.reset();
    rx_.reset();
    tx_map_.reset();
    rx_map_.reset();
    events_.unbind(tx_port_);
    if (split_) events_.unbind(rx_port_);
}

std::size_t Loopback::step() {
    std::size_t n = 0;
    ring::TxPacket p;
    for (;;) {
        const ring::TxResult r = asm_->next(p);
        if (r.step != ring::TxStep::packet) break;
        seen_flags.push_back(static_cast<std::uint8_t>((p.csum_blank ? NETTXF_csum_blank : 0) |
                                                       (p.data_validated ? NETTXF_data_validated : 0)));
        seen_lengths.push_back(p.length);
        const std::size_t data_slots = (p.length + 4095) / 4096;
        const std::size_t slots = data_slots + (p.gso ? 1 : 0);
        const ring::Avail avail = rx_->poll();
        if (avail.count < slots) {
            ++rx_drops;
            asm_->respond(p, NETIF_RSP_OKAY); // sent fine; lost on the way back, as netback does
            continue;
        }
        std::vector<netif_rx_request_t> reqs;
        for (std::size_t i = 0; i < slots; ++i)
            reqs.push_back(rx_->copy_request(static_cast<ring::RingIdx>(i)));
        rx_->consume(static_cast<ring::RingIdx>(slots));
        // Data requests: the first, then (after the extra's slot) the rest.
        std::vector<netif_rx_request_t> data;
        data.push_back(reqs[0]);
        for (std::size_t i = p.gso ? 2 : 1; i < slots; ++i) data.push_back(reqs[i]);

        segs_.clear();
        std::size_t seg = 0, seg_off = 0, out = 0, out_off = 0;
        std::vector<std::uint16_t> fill(data.size(), 0);
        while (seg < p.nr_segments) {
            const auto& s = p.segments()[seg];
            const std::size_t take = std::min<std::size_t>(s.size - seg_off, 4096 - out_off);
            platform::CopySegment c{};
            c.flags = GNTCOPY_source_gref | GNTCOPY_dest_gref;
            c.source.foreign.ref = s.gref;
            c.source.foreign.domid = kGuest;
            c.source.foreign.offset = static_cast<std::uint16_t>(s.offset + seg_off);
            c.dest.foreign.ref = data[out].gref;
            c.dest.foreign.domid = kGuest;
            c.dest.foreign.offset = static_cast<std::uint16_t>(out_off);
            c.len = static_cast<std::uint16_t>(take);
            segs_.push_back(c);
            fill[out] = static_cast<std::uint16_t>(fill[out] + take);
            seg_off += take;
            out_off += take;
            if (seg_off == s.size) {
                ++seg;
                seg_off = 0;
            }
            if (out_off == 4096) {
                ++out;
                out_off = 0;
            }
        }
        grants_.copy(segs_);
        const bool ok =
            std::all_of(segs_.begin(), segs_.end(), [](auto& c) { return c.status == GNTST_okay; });
        for (std::size_t i = 0; i < data.size(); ++i) {
            netif_rx_response_t rsp{};
            rsp.id = data[i].id;
            rsp.offset = 0;
            // A blank checksum stays blank on the way back, flagged as netback flags it.
            const unsigned csum = i == 0 && p.csum_blank ? NETRXF_csum_blank | NETRXF_data_validated : 0;
            rsp.flags = static_cast<std::uint16_t>((i + 1 < data.size() ? NETRXF_more_data : 0) |
                                                   (i == 0 && p.gso ? NETRXF_extra_info : 0) | csum);
            rsp.status = ok ? static_cast<std::int16_t>(fill[i]) : static_cast<std::int16_t>(NETIF_RSP_ERROR);
            rx_->put_response(rsp);
            if (i == 0 && p.gso) {
                netif_extra_info_t x{};
                x.type = XEN_NETIF_EXTRA_TYPE_GSO;
                x.u.gso.size = p.gso->size;
                x.u.gso.type = p.gso->type;
                rx_->put_response(x);
            }
        }
        asm_->respond(p, ok ? NETIF_RSP_OKAY : NETIF_RSP_ERROR);
        ++n;
    }
    if (tx_->push_and_check_notify()) {
        events_.notify(tx_port_);
        ++tx_notifies;
    }
    if (rx_->push_and_check_notify()) {
        events_.notify(rx_port_);
        ++rx_notifies;
    }
    echoed += n;
    return n;
}

void Loopback::final_check() {
    tx_->final_check();
    rx_->final_check();
}

std::size_t Loopback::kicks() {
    while (auto p = events_.pending()) {
        events_.unmask(*p);
        ++kicks_;
    }
    return kicks_;
}

} // namespace netbackd::xensim::test
