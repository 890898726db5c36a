// Staging grants against the real netbackd on xensim: a frontend that has the backend map its
// pre-granted buffers once (ADD_GREF_MAPPING) moves traffic both ways with no grant-copy call for
// its vif (counted in `netbackd stats`), and the hostile cases: ADD with foreign or ungranted
// grefs, a mapping table overflow, DEL of a buffer in flight; everything unmapped at disconnect.
#include <array>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/held_resources.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/udp_frame.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kStaging = 11;
constexpr platform::DomId kPeer = 12;
constexpr std::size_t kPerQueue = 1024; // the default staging_pages_per_vif, one queue

void connect(W& w, Guest& g) {
    REQUIRE(w.wait_node(W::be(g.domid, 0) + "/state", [&](auto&&) {
        g.netfront->process_watches();
        return g.netfront->state() == 4;
    }));
    REQUIRE(w.wait_state(W::be(g.domid, 0) + "/state", "4"));
}

std::uint64_t counter(const Held& h, platform::DomId dom, const char* key) {
    const auto it = h.vifs_json.find(fmt::format("vif{}_0", dom));
    return it == h.vifs_json.end() ? 0 : it->value(key, std::uint64_t{0});
}

// Sends `n` frames from `from` to `to_mac` and receives them at `rx`; returns how many arrived.
unsigned move_frames(xensim::NetfrontIo& from, platform::DomId from_dom, xensim::NetfrontIo& rx,
                     platform::DomId to_dom, unsigned n) {
    std::array<std::byte, 256> frame{};
    xensim::UdpFrameSpec s;
    s.dst = guest_mac(to_dom);
    s.src = guest_mac(from_dom);
    s.size = 256;
    REQUIRE(xensim::build_udp_frame(s, frame));
    unsigned got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    unsigned sent = 0;
    while (got < n && std::chrono::steady_clock::now() < deadline) {
        while (sent < n && from.send(0, frame) == xensim::SendResult::queued) ++sent;
        from.flush(0);
        from.reap_tx(0);
        xensim::RxFrame f;
        bool any = false;
        while (rx.next_rx(0, f)) {
            any = true;
            ++got;
        }
        rx.refill(0);
        rx.drain_events();
        from.drain_events();
        if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Every TX buffer answered: none of them is in flight any more.
    for (int i = 0; i < 1000 && from.tx_room(0) < xensim::NetfrontIo::kBuffers; ++i) {
        from.reap_tx(0);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return got;
}

struct World {
    World() {
        w.start_netbackd();
        w.create_domain("staging", kStaging, 16);
        w.create_domain("peer", kPeer, 16);
        attach_vif(w, kStaging);
        attach_vif(w, kPeer);
        st = &w.guest(kStaging);
        peer = &w.guest(kPeer);
        xensim::NetfrontOptions o;
        o.staging = true;
        st->start_netfront(o);
        peer->start_netfront(0, 1);
        connect(w, *st);
        connect(w, *peer);
        sio = std::make_unique<xensim::NetfrontIo>(*st->memory, *st->events);
        pio = std::make_unique<xensim::NetfrontIo>(*peer->memory, *peer->events);
        REQUIRE(sio->follow(*st->netfront));
        REQUIRE(pio->follow(*peer->netfront));
        REQUIRE(st->netfront->has_ctrl_ring());
    }
    Held stats() { return netbackd_stats(w.netbackd_pid(), w.dir() + "/stats.log"); }
    W w;
    Guest* st = nullptr;
    Guest* peer = nullptr;
    std::unique_ptr<xensim::NetfrontIo> sio, pio;
};

} // namespace

TEST_CASE("staging e2e: mapped buffers move traffic both ways with no grant copy for the vif",
          "[ctrl][staging][e2e]") {
    World t;
    const Held before = t.stats();
    const auto size = t.st->netfront->ctrl_call(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, 0);
    REQUIRE(size);
    CHECK(size->status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(size->data == kPerQueue);
    // 256 TX pages read-only, 256 RX pages writable.
    REQUIRE(t.sio->stage_buffers(*t.st->netfront, 0) == 2 * xensim::NetfrontIo::kBuffers);
    const Held staged = t.stats();
    CHECK(counter(staged, kStaging, "staged_pages") == 2 * xensim::NetfrontIo::kBuffers);
    CHECK(staged.mapped_pages == before.mapped_pages + 2 * std::int64_t{xensim::NetfrontIo::kBuffers});

    constexpr unsigned kFrames = 300; // more than a ring's worth: buffers are reused
    CHECK(move_frames(*t.sio, kStaging, *t.pio, kPeer, kFrames) == kFrames);
    CHECK(move_frames(*t.pio, kPeer, *t.sio, kStaging, kFrames) == kFrames);
    const Held after = t.stats();
    INFO(after.raw);
    CHECK(counter(after, kStaging, "tx_packets") == kFrames);
    CHECK(counter(after, kStaging, "rx_packets") == kFrames);
    // Every segment of the staging vif went through memcpy, none through a grant copy...
    CHECK(counter(after, kStaging, "copy_batches") == 0);
    CHECK(counter(after, kStaging, "copy_segments") == 0);
    CHECK(counter(after, kStaging, "staged_copies") == 2 * kFrames);
    // ...while the peer, which staged nothing, copied by grant as ever (the test can fail).
    CHECK(counter(after, kPeer, "copy_batches") > 0);
    CHECK(counter(after, kPeer, "staged_copies") == 0);

    SECTION("hostile: DEL of an in-flight RX buffer is refused; an idle TX buffer is unmapped") {
        // Every RX buffer is posted on the ring (refill): in flight until the backend fills it.
        const auto rx_refs = t.sio->buffer_refs(0, false);
        std::vector<std::uint16_t> st;
        const std::vector<xen_netif_gref> busy{{rx_refs[0], 0, 0}};
        const auto r = t.st->netfront->gref_call(XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING, 0, busy, &st);
        REQUIRE(r);
        CHECK(r->status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(st == std::vector<std::uint16_t>{XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER});
        const auto tx_refs = t.sio->buffer_refs(0, true);
        const std::vector<xen_netif_gref> idle{{tx_refs[0], XEN_NETIF_CTRLF_GREF_readonly, 0}, {4000, 0, 0}};
        const auto d = t.st->netfront->gref_call(XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING, 0, idle, &st);
        REQUIRE(d);
        CHECK(d->status == XEN_NETIF_CTRL_STATUS_SUCCESS);
        CHECK(d->data == 1);
        CHECK(st == std::vector<std::uint16_t>{XEN_NETIF_CTRL_STATUS_SUCCESS,
                                               XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER});
        const Held h = t.stats();
        CHECK(counter(h, kStaging, "staged_pages") == 2 * xensim::NetfrontIo::kBuffers - 1);
        CHECK(h.mapped_pages == staged.mapped_pages - 1);
        // The unmapped buffer falls back to grant copies: traffic still flows.
        CHECK(move_frames(*t.sio, kStaging, *t.pio, kPeer, xensim::NetfrontIo::kBuffers) ==
              xensim::NetfrontIo::kBuffers);
        CHECK(counter(t.stats(), kStaging, "copy_batches") > 0);
    }
    SECTION("hostile: ADD with a foreign or ungranted gref, or past the table, maps nothing") {
        std::vector<std::uint16_t> st;
        // A page the guest granted to its peer, not to the backend.
        const auto gfn = t.st->memory->alloc_page();
        const auto foreign = t.st->memory->grant_access(gfn, kPeer, false);
        const std::array<std::byte, 1> zero{};
        const auto extra = t.st->netfront->grant_bytes(zero, true);
        const std::vector<xen_netif_gref> bad{{extra, 0, 0}, {foreign, 0, 0}, {4000, 0, 0}};
        const auto r = t.st->netfront->gref_call(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, 0, bad, &st);
        REQUIRE(r);
        CHECK(r->status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(st == std::vector<std::uint16_t>(3, XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER));
        // Room for 512 more. One good page first (room 511), then a full list page of 512 entries
        // overflows the table: refused whole, every entry marked BUFFER_OVERFLOW.
        const std::vector<xen_netif_gref> one{{t.st->netfront->grant_bytes(zero, true), 0, 0}};
        const auto g = t.st->netfront->gref_call(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, 0, one, &st);
        REQUIRE(g);
        CHECK(g->status == XEN_NETIF_CTRL_STATUS_SUCCESS);
        std::vector<xen_netif_gref> many;
        for (int i = 0; i < 512; ++i) many.push_back({t.st->netfront->grant_bytes(zero, true), 0, 0});
        const auto o = t.st->netfront->gref_call(XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, 0, many, &st);
        REQUIRE(o);
        CHECK(o->status == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        REQUIRE(st.size() == 512);
        CHECK(st[0] == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        CHECK(st[511] == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        const Held h = t.stats();
        CHECK(counter(h, kStaging, "staged_pages") == 2 * xensim::NetfrontIo::kBuffers + 1);
        CHECK(h.mapped_pages == staged.mapped_pages + 1);
    }
    SECTION("disconnect unmaps every staged page") {
        t.sio->detach();
        t.st->netfront->close();
        REQUIRE(t.w.wait_state(W::be(kStaging, 0) + "/state", "6"));
        const Held h = t.stats();
        CHECK(h.mapped_pages == before.mapped_pages - 3); // with its TX, RX and control ring pages
        CHECK(h.vifs == before.vifs - 1);
    }
    SECTION("domain death unmaps every staged page") {
        t.sio.reset(); // the data half first: it refers to the netfront
        t.st->netfront.reset();
        REQUIRE(run({XENSIM_BINARY, "domain", "destroy", std::to_string(kStaging), "--dir", t.w.host_dir()},
                    t.w.dir() + "/xensim.log") == 0);
        // netbackd closes a dead domain's vif on @releaseDomain; bounded wait for it to go.
        Held h = t.stats();
        for (int i = 0; i < 300 && h.vifs != before.vifs - 1; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            h = t.stats();
        }
        INFO(h.raw);
        CHECK(h.vifs == before.vifs - 1);
        CHECK(h.mapped_pages == before.mapped_pages - 3); // with its TX, RX and control ring pages
    }
    SECTION("a restarted netbackd holds no staged page; the guest's buffers go by grant copy again") {
        t.w.stop_netbackd(SIGKILL);
        t.w.start_netbackd();
        CHECK(move_frames(*t.sio, kStaging, *t.pio, kPeer, 64) == 64);
        const Held h = t.stats();
        INFO(h.raw);
        CHECK(counter(h, kStaging, "staged_pages") == 0);
        CHECK(counter(h, kStaging, "staged_copies") == 0);
        CHECK(counter(h, kStaging, "copy_batches") > 0);
        CHECK(h.mapped_pages == before.mapped_pages); // the rings (re-adopted), nothing staged
    }
}
