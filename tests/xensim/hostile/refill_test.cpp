// Issue 14 item 3 (the XSA-39 class) against the stepped data plane: a guest keeps its TX ring
// full of malformed requests from a thread of its own while two healthy guests stream to the
// wire. Counted in the worker's poll rounds, never in time: in every round the attacker gets at
// most one TX budget of answers, both healthy bursts leave in that same round, and a detach of
// the attacker and of a healthy vif, asked while the attack goes on, completes in one round.
#include <algorithm>
#include <atomic>
#include <cstring>

#include <catch2/catch.hpp>

#include "tests/support/stepped_worker.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/hostile/hostile_front.hpp"

using namespace netbackd;
using namespace netbackd::xensim::hostile;
namespace dt = netbackd::dataplane::test;

namespace {

constexpr platform::DomId kH1 = 61;
constexpr platform::DomId kH2 = 62;
constexpr platform::DomId kAttacker = 63;
const dataplane::MacAddr kMacH1 = dt::mac(0x61);
const dataplane::MacAddr kMacH2 = dt::mac(0x62);
const dataplane::MacAddr kMacAttacker = dt::mac(0x63);
const dataplane::MacAddr kOutside = dt::mac(0x99);
constexpr std::size_t kRounds = 64;

// A healthy guest posting one whole burst per round from one pre-granted page.
struct Streamer {
    Streamer(dt::Rig& rig, platform::DomId dom, dataplane::MacAddr m) : nf(rig.world, dom), mac(m) {
        vif = &rig.attach(nf, m);
        const auto f = dt::frame(kOutside, m, 60);
        page = nf.granted_page(f, true);
        size = static_cast<std::uint16_t>(f.size());
    }
    std::size_t post(std::size_t n) {
        auto& tx = nf.tx();
        const ring::Avail a = tx.poll();
        tx.consume(a.count);
        std::size_t k = 0;
        for (; k < n && !tx.full(); ++k) tx.put_request(netif_tx_request_t{page, 0, 0, id++, size});
        tx.push();
        return k;
    }
    dt::Netfront nf;
    dataplane::MacAddr mac;
    dataplane::VifRuntime* vif = nullptr;
    platform::GrantRef page = 0;
    std::uint16_t size = 0;
    std::uint16_t id = 0;
};

std::size_t from(const std::vector<dt::Bytes>& frames, const dataplane::MacAddr& m) {
    const auto b = m.bytes();
    return static_cast<std::size_t>(std::count_if(frames.begin(), frames.end(), [&](const dt::Bytes& f) {
        return f.size() >= 12 && std::memcmp(f.data() + 6, b.data(), 6) == 0;
    }));
}

} // namespace

TEST_CASE("hostile guest: malformed requests refilled for ever cost the others nothing, detach completes",
          "[hostile]") {
    const Attack* atk = find_attack("malformed_refill");
    REQUIRE(atk != nullptr);
    const dataplane::WorkerConfig cfg;
    dt::Rig rig({kH1, kH2, kAttacker});
    Streamer h1(rig, kH1, kMacH1);
    Streamer h2(rig, kH2, kMacH2);

    HostileFront front(xensim::HvClient::connect(rig.world.host.dir(), kAttacker), dt::kBackDom);
    auto h = std::make_unique<control::VifHandle>();
    h->id = control::VifId{kAttacker, 0};
    control::QueueRings q;
    q.tx_ring = rig.world.grants.map(kAttacker, front.tx_ref(), true);
    q.rx_ring = rig.world.grants.map(kAttacker, front.rx_ref(), true);
    q.tx_port =
        control::BoundPort(rig.world.events, rig.world.events.bind_interdomain(kAttacker, front.port()));
    q.tx_ref = front.tx_ref();
    q.rx_ref = front.rx_ref();
    h->queues.push_back(std::move(q));
    h->features = dt::Netfront::default_features();
    h->policy.guest_mac = kMacAttacker.bytes();
    dataplane::VifRuntime& va = rig.attach(std::move(h));
    REQUIRE(va.state() == dataplane::VifState::running);

    AttackEnv env;
    env.own_mac = kMacAttacker.bytes();
    env.peer_mac = kOutside.bytes();
    env.duration = std::chrono::milliseconds(100);
    std::atomic<std::uint64_t> errors{0}, okay{0};
    env.on_tx_response = [&](const netif_tx_response_t& r) {
        (r.status == NETIF_RSP_OKAY ? okay : errors).fetch_add(1, std::memory_order_relaxed);
    };

    std::size_t rounds = 0, short_rounds = 0, over_budget = 0, most = 0;
    std::size_t posted = 0, delivered = 0;
    bool detached_attacker = false, detached_h2 = false, detach_asked = false;
    std::size_t detach_rounds = 0, detach_round = 0;
    // Detach once the attack was counted over kRounds and answered this often (a loaded host
    // may run the attacker's thread rarely: then it takes more rounds, never fails).
    const std::uint64_t min_errors = kRounds * cfg.tx_burst / 2;
    constexpr std::size_t kMaxRounds = 1'000'000; // a hang guard; the checks below then fail
    const auto rsp_prod = [&] { return front.tx_shared().rsp_prod().load(std::memory_order_acquire); };
    env.during = [&] {
        const bool detaching = !detach_asked && rounds >= kRounds && errors.load() >= min_errors;
        if (detaching) {
            detach_asked = true;
            detach_round = rounds;
            // Asked while the attacker keeps refilling: each must be answered in this round.
            REQUIRE(rig.worker->post({dataplane::WorkerMsgKind::detach, &va, std::nullopt, 0}));
            REQUIRE(rig.worker->post({dataplane::WorkerMsgKind::detach, h2.vif, std::nullopt, 0}));
        }
        const std::size_t p1 = h1.post(cfg.tx_burst);
        const std::size_t p2 = detached_h2 || detaching ? 0 : h2.post(cfg.tx_burst);
        const auto before = rsp_prod();
        rig.poll();
        const std::size_t answered = rsp_prod() - before; // one slot per runt
        const auto sent = rig.up.sent();
        const std::size_t d = from(sent, kMacH1) + from(sent, kMacH2);
        ++rounds;
        posted += p1 + p2;
        delivered += d;
        if (d != p1 + p2) ++short_rounds;
        if (!detached_attacker) {
            most = std::max(most, answered);
            if (answered > cfg.tx_burst) ++over_budget;
        }
        if (detaching) {
            while (auto v = rig.worker->take_detached()) {
                detached_attacker = detached_attacker || *v == &va;
                detached_h2 = detached_h2 || *v == h2.vif;
            }
            detach_rounds = 1;
        }
    };
    env.finished = [&] { return (detach_asked && rounds > detach_round + 8) || rounds > kMaxRounds; };
    atk->run(front, env);

    INFO(rounds << " rounds: healthy " << delivered << " of " << posted << " frames out, " << short_rounds
                << " rounds short; attacker answered at most " << most << " requests in a round ("
                << over_budget << " rounds over the budget of " << cfg.tx_burst << "), " << errors.load()
                << " errors, " << okay.load() << " OKAY");
    CHECK(errors.load() >= min_errors); // the attack was taken, not starved
    CHECK(okay.load() == 0);
    CHECK(over_budget == 0);
    CHECK(most >= 1);
    CHECK(short_rounds == 0);
    CHECK(delivered == posted);
    CHECK(posted >= 2 * kRounds * cfg.tx_burst);
    CHECK(detach_rounds == 1);
    CHECK(detached_attacker);
    CHECK(detached_h2);
    CHECK(h1.vif->state() == dataplane::VifState::running);
}
