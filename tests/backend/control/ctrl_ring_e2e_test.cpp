// The control ring against the real netbackd on xensim: a Windows-style frontend (control ring,
// its own Toeplitz key and mapping table) gets each frame on the queue its table names, with the
// hash extra; and the hostile cases a guest can play on the ring: out-of-range mappings, a key
// grant that is not granted, a mapping size over the maximum (answered, the vif lives on), a
// message storm (every message answered, the control thread still serves other vifs) and a
// producer jump (the vif's error node, as for the TX/RX rings).
#include <array>
#include <atomic>
#include <map>
#include <thread>

#include <catch2/catch.hpp>

#include "ring/ctrl_ring.hpp"
#include "tests/support/guest_fleet.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/udp_frame.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kWin = 11;
constexpr platform::DomId kPeer = 12;
constexpr unsigned kQueues = 4;

const std::vector<std::uint8_t> kKey = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                        0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                        0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// Not hash % 4: entries chosen so that steering by the table differs from modular steering.
const std::vector<std::uint32_t> kTable = {3, 3, 1, 0, 2, 3, 0, 1, 1, 2, 3, 3, 0, 0, 2, 1};

xensim::NetfrontOptions windows_options() {
    xensim::NetfrontOptions o;
    o.devid = 0;
    o.queues = kQueues;
    o.hash =
        xensim::HashOptions{kKey, XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP, kTable};
    return o;
}

// Both ends Connected.
void connect(W& w, Guest& g) {
    REQUIRE(w.wait_node(W::be(g.domid, 0) + "/state", [&](auto&&) {
        g.netfront->process_watches();
        return g.netfront->state() == 4;
    }));
    REQUIRE(w.wait_state(W::be(g.domid, 0) + "/state", "4"));
}

struct World {
    World() {
        w.start_netbackd();
        w.create_domain("win", kWin, 32); // 4 queues of 2 x 256 buffer pages
        attach_vif(w, kWin);
        win = &w.guest(kWin);
        win->start_netfront(windows_options());
        connect(w, *win);
    }
    W w;
    Guest* win = nullptr;
};

} // namespace

TEST_CASE("ctrl e2e: netbackd advertises feature-ctrl-ring and answers each message", "[ctrl][e2e]") {
    World t;
    xensim::Netfront& nf = *t.win->netfront;
    CHECK(t.w.dom0().read(0, W::be(kWin, 0) + "/feature-ctrl-ring") == "1");
    REQUIRE(nf.has_ctrl_ring());
    auto call = [&](std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0, std::uint32_t d2 = 0) {
        const auto r = nf.ctrl_call(type, d0, d1, d2);
        REQUIRE(r.has_value());
        CHECK(r->type == type);
        return *r;
    };
    CHECK(call(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS).status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 9).status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ).status ==
          XEN_NETIF_CTRL_STATUS_SUCCESS);
    const auto flags = call(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS);
    CHECK(flags.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(flags.data == ring::kHashTypesSupported);
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_HASH_TYPE_IPV6).status ==
          XEN_NETIF_CTRL_STATUS_SUCCESS);
    const auto key = nf.grant_bytes(std::as_bytes(std::span(kKey)));
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, key, 40).status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, key, 41).status == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
    const auto size = call(XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE);
    CHECK(size.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(size.data == ring::kHashMappingMax);
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 16).status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    const auto table = nf.grant_bytes(std::as_bytes(std::span(kTable)));
    CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, table, 16, 0).status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    // Staging grants are offered now: a queue index past the vif's queues is refused.
    CHECK(call(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, kQueues, table, 1).status ==
          XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);

    SECTION("hostile: SET_HASH_MAPPING out of range (XSA-270), an entry past the queues") {
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, table, 16, 1).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, table, 2, 0xffffffffu).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        const std::vector<std::uint32_t> bad = {0, kQueues};
        const auto bad_ref = nf.grant_bytes(std::as_bytes(std::span(bad)));
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, bad_ref, 2, 0).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    }
    SECTION("hostile: a key gref that is not granted") {
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 4000, 40).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    }
    SECTION("hostile: mapping size over the maximum") {
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, ring::kHashMappingMax + 1).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(call(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 0xffffffffu).status ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    }
    // None of it is fatal: the vif stays up with no error node.
    CHECK(t.w.dom0().read(0, W::be(kWin, 0) + "/state") == "4");
    CHECK_FALSE(t.w.dom0().read(0, W::error_node(kWin, 0)).has_value());
}

TEST_CASE("ctrl e2e: a Windows-style frontend gets its frames on the queues its table names", "[ctrl][e2e]") {
    World t;
    Guest& win = *t.win;
    REQUIRE(win.netfront->has_ctrl_ring());
    REQUIRE(win.netfront->configure_hash());
    t.w.create_domain("peer", kPeer);
    attach_vif(t.w, kPeer);
    Guest& peer = t.w.guest(kPeer);
    peer.start_netfront(0, 1);
    connect(t.w, peer);

    xensim::NetfrontIo wio(*win.memory, *win.events);
    xensim::NetfrontIo pio(*peer.memory, *peer.events);
    REQUIRE(wio.follow(*win.netfront));
    REQUIRE(pio.follow(*peer.netfront));
    REQUIRE(wio.queue_count() == kQueues);
    for (unsigned q = 0; q < kQueues; ++q) wio.refill(q);

    // 64 flows from the peer, one frame each: the source address varies, so does the hash.
    constexpr unsigned kFlows = 64;
    std::array<std::uint64_t, kQueues> want{};
    std::map<std::uint32_t, std::uint32_t> want_hash; // source address -> hash
    const std::array<std::uint8_t, 4> dst_ip{198, 51, 100, 1};
    std::array<std::byte, 128> frame{};
    unsigned sent = 0;
    for (unsigned i = 0; i < kFlows; ++i) {
        xensim::UdpFrameSpec s;
        s.dst = guest_mac(kWin);
        s.src = guest_mac(kPeer);
        s.src_ip = {10, 1, static_cast<std::uint8_t>(i / 7), static_cast<std::uint8_t>(1 + i * 3)};
        s.dst_ip = dst_ip;
        s.size = 128;
        REQUIRE(xensim::build_udp_frame(s, frame));
        std::array<std::uint8_t, 8> in{};
        std::copy(s.src_ip.begin(), s.src_ip.end(), in.begin());
        std::copy(dst_ip.begin(), dst_ip.end(), in.begin() + 4);
        const std::uint32_t h = ring::toeplitz_hash(kKey, in);
        want_hash[h] = h;
        ++want[kTable[h % kTable.size()]];
        while (pio.send(0, frame) != xensim::SendResult::queued) {
            pio.flush(0);
            pio.reap_tx(0);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ++sent;
    }
    pio.flush(0);
    // Every queue of the table is used, and not all flows land on one (the test could not fail).
    for (unsigned q = 0; q < kQueues; ++q) CHECK(want[q] > 0);

    std::array<std::uint64_t, kQueues> got{};
    std::uint64_t total = 0, with_hash = 0, right_hash = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (total < sent && std::chrono::steady_clock::now() < deadline) {
        bool any = false;
        for (unsigned q = 0; q < kQueues; ++q) {
            xensim::RxFrame f;
            while (wio.next_rx(q, f)) {
                any = true;
                ++got[q];
                ++total;
                if (f.hash) {
                    ++with_hash;
                    std::uint32_t v = 0;
                    std::memcpy(&v, f.hash->u.hash.value, 4);
                    if (f.hash->u.hash.type == _XEN_NETIF_CTRL_HASH_TYPE_IPV4 &&
                        f.hash->u.hash.algorithm == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ &&
                        want_hash.count(v) && kTable[v % kTable.size()] == q)
                        ++right_hash;
                }
            }
            wio.refill(q);
        }
        wio.drain_events();
        pio.reap_tx(0);
        if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(total == sent);
    CHECK(got == want);
    CHECK(with_hash == sent);
    CHECK(right_hash == sent);
}

TEST_CASE("ctrl e2e: a message storm is answered in full while the control thread serves other vifs",
          "[ctrl][e2e][hostile]") {
    World t;
    xensim::Netfront& nf = *t.win->netfront;
    auto* front = nf.ctrl_front();
    REQUIRE(front != nullptr);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> answered{0}, bad{0}, rounds{0};
    std::thread storm([&] {
        std::uint16_t id = 0;
        while (!stop.load()) {
            // A whole ring of requests at once, then one kick.
            while (!front->full())
                front->put_request(
                    xen_netif_ctrl_request{id++, XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, {}});
            if (front->push_and_check_notify()) t.win->events->notify(nf.ctrl_port());
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (front->free_requests() != ring::CtrlRing::kSize &&
                   std::chrono::steady_clock::now() < until) {
                const ring::Avail a = front->poll();
                if (a.error != ring::ProdError::none) {
                    ++bad;
                    return;
                }
                for (ring::RingIdx i = 0; i < a.count; ++i) {
                    const auto r = front->copy_response(i);
                    if (r.status != XEN_NETIF_CTRL_STATUS_SUCCESS || r.data != ring::kHashMappingMax) ++bad;
                }
                front->consume(a.count);
                answered += a.count;
            }
            if (front->free_requests() != ring::CtrlRing::kSize) {
                ++bad; // a round left unanswered
                return;
            }
            ++rounds;
        }
    });
    // Meanwhile another guest attaches and connects: the control thread is not starved.
    while (rounds.load() < 2 && bad.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::uint64_t before = answered.load();
    t.w.create_domain("peer", kPeer);
    attach_vif(t.w, kPeer);
    Guest& peer = t.w.guest(kPeer);
    peer.start_netfront(0, 1);
    connect(t.w, peer);
    const std::uint64_t during = answered.load() - before;
    while (rounds.load() < 10 && bad.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    stop = true;
    storm.join();
    CHECK(bad.load() == 0);
    CHECK(during > 0); // the storm ran while the other vif connected
    CHECK(answered.load() >= 10 * ring::CtrlRing::kSize);
    CHECK(answered.load() % ring::CtrlRing::kSize == 0);
    CHECK(t.w.dom0().read(0, W::be(kWin, 0) + "/state") == "4");
    CHECK_FALSE(t.w.dom0().read(0, W::error_node(kWin, 0)).has_value());
}

TEST_CASE("ctrl e2e: a producer jump on the control ring writes the vif's error node",
          "[ctrl][e2e][hostile]") {
    World t;
    xensim::Netfront& nf = *t.win->netfront;
    auto* front = nf.ctrl_front();
    REQUIRE(front != nullptr);
    front->shared().req_prod().store(front->req_prod_pvt() + ring::CtrlRing::kSize + 5);
    t.win->events->notify(nf.ctrl_port());
    // Liveness bounds only: a loaded host may take seconds to run netbackd's control loop.
    using namespace std::chrono_literals;
    REQUIRE(t.w.wait_node(
        W::error_node(kWin, 0),
        [](const std::optional<std::string>& v) {
            return v && v->find("ctrl ring: req_prod_overflow") != std::string::npos;
        },
        120s));
    CHECK(t.w.wait_closing_or_closed(W::be(kWin, 0) + "/state", 120s));
}
