#include "tests/support/dataplane_world.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include <poll.h>

#include "pmd/checksum.hpp"
#include "pmd/mbuf.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/frames.hpp"

namespace netbackd::dataplane::test {

void CountingGrants::copy(std::span<platform::CopySegment> segs) {
    check_.enter();
    ++calls;
    segments += segs.size();
    inner_.copy(segs);
    for (auto& s : segs) {
        if ((s.flags & GNTCOPY_source_gref) != 0 &&
            std::find(poisoned.begin(), poisoned.end(), s.source.foreign.ref) != poisoned.end())
            s.status = GNTST_general_error;
    }
    check_.leave();
}

RingUplink::RingUplink(const pmd::Mempool& pool, pmd::Offloads hw, std::uint16_t mtu)
    : pool_(pool), hw_(hw), mtu_(mtu) {
    to_backend_ = rte_ring_create(pmd::test::unique_name("upin").c_str(), 4096, SOCKET_ID_ANY, 0);
    from_backend_ = rte_ring_create(pmd::test::unique_name("upout").c_str(), 4096, SOCKET_ID_ANY, 0);
    if (to_backend_ == nullptr || from_backend_ == nullptr)
        throw std::runtime_error("rte_ring_create failed");
}

RingUplink::~RingUplink() {
    void* m = nullptr;
    while (rte_ring_dequeue(to_backend_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    while (rte_ring_dequeue(from_backend_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(to_backend_);
    rte_ring_free(from_backend_);
}

std::uint16_t RingUplink::rx_burst(std::uint16_t, std::span<rte_mbuf*> out) noexcept {
    return static_cast<std::uint16_t>(rte_ring_dequeue_burst(
        to_backend_, reinterpret_cast<void**>(out.data()), static_cast<unsigned>(out.size()), nullptr));
}

std::uint16_t RingUplink::tx_burst(std::uint16_t, std::span<rte_mbuf*> pkts) noexcept {
    std::lock_guard lock(tx_lock_);
    return static_cast<std::uint16_t>(rte_ring_enqueue_burst(
        from_backend_, reinterpret_cast<void**>(pkts.data()), static_cast<unsigned>(pkts.size()), nullptr));
}

void RingUplink::inject(std::span<const std::byte> frame) {
    auto m = pmd::mbuf_from_bytes(pool_.get(), frame);
    if (!m) throw std::runtime_error("pool dry");
    if (rte_ring_enqueue(to_backend_, m.get()) != 0) throw std::runtime_error("uplink ring full");
    (void)m.release();
}

void RingUplink::inject_mbuf(rte_mbuf* m) {
    if (rte_ring_enqueue(to_backend_, m) != 0) {
        rte_pktmbuf_free(m);
        throw std::runtime_error("uplink ring full");
    }
}

std::size_t RingUplink::discard() {
    std::array<void*, 64> burst{};
    std::size_t n = 0;
    for (;;) {
        const unsigned k = rte_ring_dequeue_burst(from_backend_, burst.data(), burst.size(), nullptr);
        if (k == 0) return n;
        rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(burst.data()), k);
        n += k;
    }
}

std::vector<pmd::MbufPtr> RingUplink::sent_mbufs() {
    std::vector<pmd::MbufPtr> out;
    void* m = nullptr;
    while (rte_ring_dequeue(from_backend_, &m) == 0) out.emplace_back(static_cast<rte_mbuf*>(m));
    return out;
}

std::vector<Bytes> RingUplink::sent() {
    std::vector<Bytes> out;
    void* m = nullptr;
    while (rte_ring_dequeue(from_backend_, &m) == 0) {
        pmd::MbufPtr p(static_cast<rte_mbuf*>(m));
        out.push_back(pmd::mbuf_to_bytes(p.get()));
    }
    return out;
}

World::World(std::vector<platform::DomId> guests, std::uint64_t guest_bytes, bool start_eal)
    : admin(xensim::HvClient::connect_admin(host.dir())),
      back([&] {
          admin->create_domain(kBackDom, "driver", 4u << 20);
          for (auto d : guests) admin->create_domain(d, "guest" + std::to_string(d), guest_bytes);
          return xensim::HvClient::connect(host.dir(), kBackDom);
      }()),
      sim_grants(back),
      grants(sim_grants),
      events(back) {
    // EAL after the hypervisor's fork: the child must not inherit DPDK's threads.
    if (start_eal) pmd::test::dataplane_eal();
}

Netfront::Netfront(World& world, platform::DomId domid, std::uint32_t devid)
    : world_(world),
      domid_(domid),
      devid_(devid),
      client_(xensim::HvClient::connect(world.host.dir(), domid)),
      mem_(client_),
      events_(client_) {
    tx_gfn_ = mem_.alloc_page();
    rx_gfn_ = mem_.alloc_page();
    ring::Page txp(mem_.page(tx_gfn_).data(), ring::kPageSize);
    ring::Page rxp(mem_.page(rx_gfn_).data(), ring::kPageSize);
    ring::init_shared_ring<ring::TxRing>(txp);
    ring::init_shared_ring<ring::RxRing>(rxp);
    tx_ = std::make_unique<ring::FrontRing<ring::TxRing>>(txp);
    rx_ = std::make_unique<ring::FrontRing<ring::RxRing>>(rxp);
    tx_ref_ = mem_.grant_access(tx_gfn_, kBackDom, false);
    rx_ref_ = mem_.grant_access(rx_gfn_, kBackDom, false);
    port_ = events_.alloc_unbound(kBackDom);
}

control::NegotiatedFeatures Netfront::default_features() {
    control::NegotiatedFeatures f;
    f.rx_notify = true;
    f.sg = true;
    f.gso_tcpv4 = true;
    f.gso_tcpv6 = true;
    f.ip_csum = true;
    f.ipv6_csum = true;
    return f;
}

control::QueueRings Netfront::queue_rings() {
    control::QueueRings q;
    q.tx_ring = world_.grants.map(domid_, tx_ref_, true);
    q.rx_ring = world_.grants.map(domid_, rx_ref_, true);
    q.tx_port = control::BoundPort(world_.events, world_.events.bind_interdomain(domid_, port_));
    q.tx_ref = tx_ref_;
    q.rx_ref = rx_ref_;
    return q;
}

std::unique_ptr<control::VifHandle> Netfront::handle(MacAddr m, control::NegotiatedFeatures features,
                                                     std::optional<control::Rate> rate) {
    auto h = std::make_unique<control::VifHandle>();
    h->id = control::VifId{domid_, devid_};
    h->queues.push_back(queue_rings());
    h->features = features;
    h->policy.guest_mac = m.bytes();
    h->policy.rate = rate;
    return h;
}

std::uint16_t Netfront::send(std::span<const std::byte> f, ring::TxFrontFlags flags, ring::TxExtras extras,
                             std::uint16_t first_offset, std::optional<platform::GrantRef> bad_ref) {
    std::vector<ring::TxFrontSegment> segs;
    std::size_t done = 0;
    std::uint16_t off = first_offset;
    while (done < f.size()) {
        const std::size_t take = std::min<std::size_t>(f.size() - done, 4096 - off);
        const xensim::Gfn g = mem_.alloc_page();
        std::memcpy(mem_.page(g).data() + off, f.data() + done, take);
        platform::GrantRef ref = mem_.grant_access(g, kBackDom, true);
        if (bad_ref && segs.empty()) ref = *bad_ref;
        segs.push_back(ring::TxFrontSegment{ref, off, static_cast<std::uint16_t>(take), next_tx_id_++});
        done += take;
        off = 0;
    }
    if (!ring::put_tx_packet(*tx_, segs, extras, flags)) throw std::runtime_error("tx ring full");
    return segs.front().id;
}

bool Netfront::push_tx() {
    const bool n = tx_->push_and_check_notify();
    if (n) events_.notify(port_);
    return n;
}

std::vector<netif_tx_response_t> Netfront::tx_responses() {
    std::vector<netif_tx_response_t> out;
    const ring::Avail a = tx_->poll();
    for (ring::RingIdx i = 0; i < a.count; ++i) out.push_back(tx_->copy_response(i));
    tx_->consume(a.count);
    return out;
}

void Netfront::notify() { events_.notify(port_); }

void Netfront::post_rx_buffers(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const xensim::Gfn g = mem_.alloc_page();
        const platform::GrantRef ref = mem_.grant_access(g, kBackDom, false);
        const std::uint16_t id = next_rx_id_++;
        rx_pages_[id] = g;
        netif_rx_request_t req{};
        req.id = id;
        req.gref = ref;
        rx_->put_request(req);
    }
    if (rx_->push_and_check_notify()) events_.notify(port_);
}

std::vector<Netfront::Received> Netfront::receive() {
    std::vector<Received> out;
    ring::RxFrontPacket p;
    while (ring::read_rx_packet(*rx_, p) == ring::RxReadStep::packet) {
        Received r;
        r.flags = p.flags;
        r.gso = p.gso;
        r.error = p.error;
        for (const auto& fr : p.frags()) {
            if (fr.status <= 0) continue;
            const auto page = mem_.page(rx_pages_.at(fr.id));
            r.frame.insert(r.frame.end(), page.begin() + fr.offset, page.begin() + fr.offset + fr.status);
        }
        out.push_back(std::move(r));
    }
    return out;
}

platform::GrantRef Netfront::granted_page(std::span<const std::byte> content, bool readonly) {
    const xensim::Gfn g = mem_.alloc_page();
    std::memcpy(mem_.page(g).data(), content.data(), std::min<std::size_t>(content.size(), 4096));
    return mem_.grant_access(g, kBackDom, readonly);
}

std::size_t Netfront::drain_notifications() {
    std::size_t n = 0;
    pollfd p{events_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) {
        while (auto port = events_.pending()) {
            events_.unmask(*port);
            ++n;
        }
    }
    return n;
}

MacAddr mac(std::uint8_t last) { return MacAddr{0x02'16'3e'00'00'00ULL | last}; }

Bytes frame(MacAddr dst, MacAddr src, std::size_t payload, int ip_version, std::uint8_t seed) {
    pmd::test::FrameSpec s;
    s.ip_version = ip_version;
    s.payload = payload;
    s.payload_seed = seed;
    Bytes f = pmd::test::build_frame(s);
    const auto d = dst.bytes();
    const auto sr = src.bytes();
    for (std::size_t i = 0; i < 6; ++i) {
        f[i] = static_cast<std::byte>(d[i]);
        f[6 + i] = static_cast<std::byte>(sr[i]);
    }
    return f;
}

Bytes with_checksums(Bytes f) {
    if (!pmd::fill_checksums(std::span<std::byte>(f))) throw std::runtime_error("not checksummable");
    return f;
}

} // namespace netbackd::dataplane::test

namespace netbackd::dataplane::test {

platform::GrantsFactory World::worker_grants() {
    return [client = back] {
        return std::make_unique<platform::CheckedGrants>(std::make_unique<xensim::SimGrants>(client));
    };
}

} // namespace netbackd::dataplane::test
