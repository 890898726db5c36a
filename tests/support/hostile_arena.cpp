#include "tests/support/hostile_arena.hpp"

#include <algorithm>
#include <cstring>

namespace netbackd::xensim::hostile::test {

namespace dt = dataplane::test;

namespace {

const dataplane::MacAddr kMacHealthy = dt::mac(0x41);
const dataplane::MacAddr kMacAttacker = dt::mac(0x42);
const dataplane::MacAddr kOutside = dt::mac(0x99);

bool from(const dt::Bytes& f, const dataplane::MacAddr& m) {
    const auto b = m.bytes();
    return f.size() >= 12 && std::memcmp(f.data() + 6, b.data(), 6) == 0;
}

} // namespace

Arena::Arena()
    : rig({kHealthy, kAttacker, kStranger}),
      healthy(rig.world, kHealthy),
      vh(rig.attach(healthy, kMacHealthy)) {
    const auto f = dt::frame(kOutside, kMacHealthy, 60);
    healthy_page_ = healthy.granted_page(f, true);
    healthy_size_ = f.size();
    env.own_mac = kMacAttacker.bytes();
    env.peer_mac = kOutside.bytes();
    env.stranger = kStranger;
    connect();
}

Arena::~Arena() { rig.worker.reset(); }

void Arena::connect() {
    fronts.push_back(
        std::make_unique<HostileFront>(HvClient::connect(rig.world.host.dir(), kAttacker), dt::kBackDom));
    auto& f = *fronts.back();
    auto h = std::make_unique<control::VifHandle>();
    h->id = control::VifId{kAttacker, 0};
    control::QueueRings q;
    q.tx_ring = rig.world.grants.map(kAttacker, f.tx_ref(), true);
    q.rx_ring = rig.world.grants.map(kAttacker, f.rx_ref(), true);
    q.tx_port = control::BoundPort(rig.world.events, rig.world.events.bind_interdomain(kAttacker, f.port()));
    q.tx_ref = f.tx_ref();
    q.rx_ref = f.rx_ref();
    h->queues.push_back(std::move(q));
    h->features = dt::Netfront::default_features();
    h->policy.guest_mac = kMacAttacker.bytes();
    va = &rig.attach(std::move(h));
}

void Arena::reconnect() {
    REQUIRE(rig.worker->post(dataplane::WorkerMsg{dataplane::WorkerMsgKind::detach, va, std::nullopt}));
    rig.poll();
    connect();
}

std::size_t Arena::count_out() {
    std::size_t n = 0;
    const auto hb = kMacHealthy.bytes();
    const auto ab = kMacAttacker.bytes();
    for (const auto& m : rig.up.sent_mbufs()) {
        const auto* p = rte_pktmbuf_mtod(m.get(), const std::uint8_t*);
        if (rte_pktmbuf_data_len(m.get()) < 12) continue;
        if (std::memcmp(p + 6, hb.data(), 6) == 0) ++n;
        if (std::memcmp(p + 6, ab.data(), 6) == 0) {
            ++attacker_out_;
            if (keep_attacker_frames) {
                std::vector<std::byte> f(rte_pktmbuf_pkt_len(m.get()));
                const void* d = rte_pktmbuf_read(m.get(), 0, static_cast<std::uint32_t>(f.size()), f.data());
                if (d != nullptr && d != f.data()) std::memcpy(f.data(), d, f.size());
                attacker_frames.push_back(std::move(f));
            }
        }
    }
    return n;
}

Round Arena::healthy_step(bool rx_attack) {
    if (rx_attack) inject_for_attacker(16);
    auto& tx = healthy.tx();
    Round r;
    for (; r.posted < kHealthyBurst && !tx.full(); ++r.posted)
        tx.put_request(netif_tx_request_t{healthy_page_, 0, 0, healthy_id_++,
                                          static_cast<std::uint16_t>(healthy_size_)});
    tx.push();
    rig.poll();
    const ring::Avail a = tx.poll();
    tx.consume(a.count);
    r.delivered = count_out();
    return r;
}

std::size_t Arena::healthy_round() {
    constexpr std::size_t kBurst = 32;
    for (std::size_t i = 0; i < kBurst; ++i) healthy.send(dt::frame(kOutside, kMacHealthy, 60 + i));
    healthy.push_tx();
    rig.poll(2);
    (void)healthy.tx_responses();
    std::size_t n = 0;
    for (const auto& f : rig.up.sent()) {
        if (from(f, kMacHealthy)) ++n;
        if (from(f, kMacAttacker)) {
            ++attacker_out_;
            if (keep_attacker_frames) attacker_frames.push_back(f);
        }
    }
    return n;
}

void Arena::inject_for_attacker(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) rig.up.inject(dt::frame(kMacAttacker, kOutside, 60 + i));
}

std::vector<netif_tx_response_t> Arena::attacker_tx_responses() {
    std::vector<netif_tx_response_t> out;
    auto& tx = front().tx();
    const auto a = tx.poll();
    for (ring::RingIdx i = 0; i < a.count; ++i) out.push_back(tx.copy_response(i));
    tx.consume(a.count);
    return out;
}

std::vector<netif_rx_response_t> Arena::attacker_rx_responses() {
    std::vector<netif_rx_response_t> out;
    auto& rx = front().rx();
    const auto a = rx.poll();
    for (ring::RingIdx i = 0; i < a.count; ++i) out.push_back(rx.copy_response(i));
    rx.consume(a.count);
    return out;
}

} // namespace netbackd::xensim::hostile::test
