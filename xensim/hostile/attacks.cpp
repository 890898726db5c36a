#include "xensim/hostile/attacks.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <thread>
#include <vector>

namespace netbackd::xensim::hostile {

namespace {

using Bytes = std::vector<std::byte>;

// An Ethernet frame of a local experimental ethertype: nothing in the backend looks inside.
Bytes eth_frame(const AttackEnv& env, std::size_t payload, std::uint16_t ethertype = 0x88b5) {
    Bytes f(14 + payload);
    std::memcpy(f.data(), env.peer_mac.data(), 6);
    std::memcpy(f.data() + 6, env.own_mac.data(), 6);
    f[12] = static_cast<std::byte>(ethertype >> 8);
    f[13] = static_cast<std::byte>(ethertype & 0xff);
    for (std::size_t i = 14; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 7);
    return f;
}

// TCP/IPv4 with headers a GSO engine accepts; checksums left blank (the guest says so).
Bytes tcp_frame(const AttackEnv& env, std::size_t total) {
    Bytes f = eth_frame(env, total - 14, 0x0800);
    auto put16 = [&](std::size_t at, std::uint16_t v) {
        f[at] = static_cast<std::byte>(v >> 8);
        f[at + 1] = static_cast<std::byte>(v & 0xff);
    };
    std::fill(f.begin() + 14, f.begin() + 54, std::byte{0});
    f[14] = std::byte{0x45};
    put16(16, static_cast<std::uint16_t>(total - 14));
    f[22] = std::byte{64};
    f[23] = std::byte{6};
    const std::array<std::uint8_t, 8> addrs{10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(f.data() + 26, addrs.data(), addrs.size());
    put16(34, 40000);
    put16(36, 80);
    f[46] = std::byte{0x50};
    f[47] = std::byte{0x18};
    put16(48, 65535);
    return f;
}

netif_tx_request_t req(platform::GrantRef ref, std::uint16_t off, std::uint16_t flags, std::uint16_t id,
                       std::uint16_t size) {
    return netif_tx_request_t{ref, off, flags, id, size};
}

netif_tx_request_t extra_slot(std::uint8_t type, bool more) {
    netif_extra_info_t x{};
    x.type = type;
    x.flags = more ? XEN_NETIF_EXTRA_FLAG_MORE : 0;
    std::array<std::byte, sizeof(netif_tx_request_t)> slot{};
    std::memcpy(slot.data(), &x, sizeof(x));
    return std::bit_cast<netif_tx_request_t>(slot);
}

std::uint16_t next_id(HostileFront& f) { return static_cast<std::uint16_t>(f.tx().req_prod_pvt()); }

// One frame split into `slots` data slots of equal share (the first slot carries the total).
void multi_slot(HostileFront& f, const AttackEnv& env, std::size_t slots) {
    const Bytes frame = eth_frame(env, slots * 64 - 14);
    for (std::size_t i = 0; i < slots; ++i) {
        const auto part = std::span(frame).subspan(i * 64, 64);
        const std::uint16_t flags = i + 1 < slots ? NETTXF_more_data : 0;
        const auto size = static_cast<std::uint16_t>(i == 0 ? frame.size() : 64);
        f.tx().put_request(req(f.page(part), 0, flags, next_id(f), size));
    }
    f.push_tx_and_notify();
}

void one_slot(HostileFront& f, platform::GrantRef ref, std::uint16_t off, std::uint16_t size) {
    f.tx().put_request(req(ref, off, 0, next_id(f), size));
    f.push_tx_and_notify();
}

void req_prod_overflow(HostileFront& f, const AttackEnv&) {
    auto s = f.tx_shared();
    s.req_prod().store(s.rsp_prod().load() + 0x10000u, std::memory_order_release);
    f.notify();
}

void rsp_scribble(HostileFront& f, const AttackEnv& env) {
    // The response indices belong to the backend; a backend that trusted them could be steered.
    for (auto idx : {f.tx_shared().rsp_prod(), f.tx_shared().rsp_event()}) idx.store(0xdead0000u);
    for (auto idx : {f.rx_shared().rsp_prod(), f.rx_shared().rsp_event()}) idx.store(0xbeef0000u);
    send_frames(f, env, 4);
    f.tx_shared().rsp_prod().store(7);
    send_frames(f, env, 4);
}

void id_reuse(HostileFront& f, const AttackEnv& env) {
    // Ids only echo back to the guest; duplicates and 0xffff must not matter to the backend.
    const Bytes frame = eth_frame(env, 100);
    for (std::uint16_t id : {7, 7, 7, 0xffff, 0xffff, 256, 7})
        f.tx().put_request(req(f.page(frame), 0, 0, id, static_cast<std::uint16_t>(frame.size())));
    f.push_tx_and_notify();
}

void grant_never(HostileFront& f, const AttackEnv&) { one_slot(f, 0x7ffffff0u, 0, 100); }

void grant_other_domain(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 100);
    one_slot(f, f.page_for(env.stranger, frame, true), 0, static_cast<std::uint16_t>(frame.size()));
}

void grant_revoked(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 100);
    const auto ref = f.page(frame);
    one_slot(f, ref, 0, static_cast<std::uint16_t>(frame.size()));
    (void)f.revoke(ref); // false when the backend was quicker: then the copy is legitimate
}

void rx_grant_readonly(HostileFront& f, const AttackEnv&) { f.post_rx(32, true); }

void page_cross(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 200);
    one_slot(f, f.page(frame, 4000), 4000, static_cast<std::uint16_t>(frame.size()));
}

// Linux counts the slots after the first: 18 of them taken, up to 20 dropped, more fatal.
void slots_19(HostileFront& f, const AttackEnv& env) { multi_slot(f, env, ring::kMaxTxPacketSlots); }
void slots_21(HostileFront& f, const AttackEnv& env) { multi_slot(f, env, ring::kDefaultFatalSlots + 1); }
void slots_22(HostileFront& f, const AttackEnv& env) { multi_slot(f, env, ring::kDefaultFatalSlots + 2); }

void size_mismatch(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 600);
    f.tx().put_request(req(f.page(frame), 0, NETTXF_more_data, next_id(f), 100));
    f.tx().put_request(req(f.page(std::span(frame).subspan(100)), 0, 0, next_id(f), 514));
    f.push_tx_and_notify();
}

void extra_unknown(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 100);
    f.tx().put_request(
        req(f.page(frame), 0, NETTXF_extra_info, next_id(f), static_cast<std::uint16_t>(frame.size())));
    f.tx().put_request(extra_slot(0x7f, false));
    f.push_tx_and_notify();
}

void extra_endless(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = eth_frame(env, 100);
    f.tx().put_request(
        req(f.page(frame), 0, NETTXF_extra_info, next_id(f), static_cast<std::uint16_t>(frame.size())));
    while (!f.tx().full()) f.tx().put_request(extra_slot(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, true));
    f.push_tx_and_notify();
}

// Multicast subscriptions past netback's limit of 64 (XEN_NETBK_MCAST_MAX): 31 dummy requests
// with an MCAST_ADD extra each per play (62 slots; the test plays when 64 are free), each for a
// new group address. Past the limit they are answered with errors; the vif runs on.
void mcast_flood(HostileFront& f, const AttackEnv&) {
    for (int i = 0; i < 31; ++i) {
        const std::uint32_t n = f.tx().req_prod_pvt();
        f.tx().put_request(req(0, 0, NETTXF_extra_info, next_id(f), 0));
        netif_extra_info_t x{};
        x.type = XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
        const std::array<std::uint8_t, 6> mac{0x01,
                                              0x00,
                                              0x5e,
                                              static_cast<std::uint8_t>(n >> 16),
                                              static_cast<std::uint8_t>(n >> 8),
                                              static_cast<std::uint8_t>(n)};
        std::copy(mac.begin(), mac.end(), x.u.mcast.addr);
        std::array<std::byte, sizeof(netif_tx_request_t)> slot{};
        std::memcpy(slot.data(), &x, sizeof(x));
        f.tx().put_request(std::bit_cast<netif_tx_request_t>(slot));
    }
    f.push_tx_and_notify();
}

void gso_tiny_mss(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = tcp_frame(env, 65535);
    const std::size_t slots = (frame.size() + ring::kPageSize - 1) / ring::kPageSize;
    for (std::size_t i = 0; i < slots; ++i) {
        const auto part = std::span(frame).subspan(
            i * ring::kPageSize, std::min(ring::kPageSize, frame.size() - i * ring::kPageSize));
        std::uint16_t flags = i + 1 < slots ? NETTXF_more_data : 0;
        if (i == 0) flags |= NETTXF_extra_info | NETTXF_csum_blank;
        const auto size = static_cast<std::uint16_t>(i == 0 ? frame.size() : part.size());
        f.tx().put_request(req(f.page(part), 0, flags, next_id(f), size));
        if (i == 0) {
            netif_extra_info_t x{};
            x.type = XEN_NETIF_EXTRA_TYPE_GSO;
            x.u.gso.size = 8;
            x.u.gso.type = XEN_NETIF_GSO_TYPE_TCPV4;
            std::array<std::byte, sizeof(netif_tx_request_t)> slot{};
            std::memcpy(slot.data(), &x, sizeof(x));
            f.tx().put_request(std::bit_cast<netif_tx_request_t>(slot));
        }
    }
    f.push_tx_and_notify();
}

void zero_frame(HostileFront& f, const AttackEnv& env) { one_slot(f, f.page(eth_frame(env, 0)), 0, 0); }
void runt_frame(HostileFront& f, const AttackEnv& env) { one_slot(f, f.page(eth_frame(env, 0)), 0, 9); }

// Nothing posted: whatever arrives for this guest must be dropped without hurting anyone else.
void no_rx_buffers(HostileFront& f, const AttackEnv&) { f.notify(); }

// Runs `body` over and over on an attacker thread until `done()` says so; the caller's thread
// meanwhile plays env.during (a stepped backend, a meter) or sleeps.
template <class Body, class Done>
void run_thread(const AttackEnv& env, Body body, Done done) {
    // jthread: a `during` that throws (a failed check) still stops and joins the attacker.
    std::jthread t([&](std::stop_token st) {
        while (!st.stop_requested()) body();
    });
    while (!done()) {
        if (env.during)
            env.during();
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

template <class Body>
void run_thread(const AttackEnv& env, Body body) {
    const auto end = std::chrono::steady_clock::now() + env.duration;
    run_thread(env, body,
               [&] { return std::chrono::steady_clock::now() >= end && (!env.finished || env.finished()); });
}

// Takes the backend's TX answers off the ring (handing each to the test, when it asks for them).
void reap_tx_responses(HostileFront& f, const AttackEnv& env) {
    const auto a = f.tx().poll();
    if (a.error != ring::ProdError::none) return;
    if (env.on_tx_response)
        for (ring::RingIdx i = 0; i < a.count; ++i) env.on_tx_response(f.tx().copy_response(i));
    f.tx().consume(a.count);
}

void double_fetch(HostileFront& f, const AttackEnv& env) {
    const Bytes frame = double_fetch_frame(env);
    const auto ref = f.page(frame);
    const auto sizes = double_fetch_sizes();
    // The slot's third word holds id and size: rewritten whole, one atomic store, so any single
    // copy the backend takes pairs an id with its own size. The first word (the gref) is never
    // touched after posting: the backend writes its response there.
    auto id_size = [&](ring::RingIdx slot, std::uint16_t id, std::uint16_t size) {
        std::byte* p =
            f.tx_shared().base() + offsetof(netif_tx_sring, ring) +
            static_cast<std::size_t>(slot & (ring::TxRing::kSize - 1)) * sizeof(netif_tx_sring::ring[0]) +
            offsetof(netif_tx_request_t, id);
        std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p))
            .store(std::bit_cast<std::uint32_t>(std::array<std::uint16_t, 2>{id, size}),
                   std::memory_order_relaxed);
    };
    auto s = f.tx_shared();
    run_thread(env, [&] {
        reap_tx_responses(f, env);
        if (f.tx().full()) return;
        f.tx().put_request(req(ref, 0, 0, 1, sizes[1]));
        f.tx().push();
        // Rewrite the posted slot among the three shapes until the backend answered it; the
        // notify comes once rewriting is under way, so a backend that wakes on it (or polls)
        // reads the slot while it changes.
        const ring::RingIdx slot = f.tx().req_prod_pvt() - 1;
        for (int i = 0; i < 4096 && static_cast<std::int32_t>(s.rsp_prod().load() - slot) <= 0; ++i) {
            for (std::uint16_t id : {2, 3, 1}) id_size(slot, id, sizes[id]);
            if (i == 16) f.notify();
        }
    });
}

// XSA-39's guest: the TX ring kept full of runts (9 bytes, one slot each), refilled as fast as the
// backend answers them, so that a backend which does not count bad requests against its budget
// never finds the ring empty.
void malformed_refill(HostileFront& f, const AttackEnv& env) {
    const Bytes runt = eth_frame(env, 0);
    const auto ref = f.page(runt);
    std::uint64_t pushes = 0;
    run_thread(env, [&] {
        reap_tx_responses(f, env);
        if (f.tx().full()) return;
        while (!f.tx().full()) f.tx().put_request(req(ref, 0, 0, next_id(f), 9));
        f.tx().push();
        if (++pushes % 64 == 1) f.notify(); // a sleeping backend must hear of it, a storm is another attack
    });
}

void evtchn_storm(HostileFront& f, const AttackEnv& env) {
    std::atomic<std::uint64_t> own{0};
    std::atomic<std::uint64_t>& sent = env.notified != nullptr ? *env.notified : own;
    const auto start = std::chrono::steady_clock::now();
    run_thread(
        env,
        [&] {
            for (int i = 0; i < 1024; ++i) f.notify();
            sent.fetch_add(1024, std::memory_order_relaxed);
        },
        [&] {
            const auto ran = std::chrono::steady_clock::now() - start;
            return ran >= env.storm_cap ||
                   (ran >= env.duration && sent.load(std::memory_order_relaxed) >= env.storm_notifies &&
                    (!env.finished || env.finished()));
        });
}

constexpr Attack kAttacks[] = {
    {"req_prod_overflow", "TX req_prod far beyond the ring", Direction::tx, Verdict::disabled,
     "req_prod_overflow", req_prod_overflow},
    {"rsp_scribble", "the guest writes the response indices of both rings", Direction::tx, Verdict::survives,
     "", rsp_scribble},
    {"id_reuse", "request ids reused and out of range", Direction::tx, Verdict::survives, "", id_reuse},
    {"grant_never", "a grant ref that was never granted", Direction::tx, Verdict::errors, "", grant_never},
    {"grant_other_domain", "a page granted to another domain", Direction::tx, Verdict::errors, "",
     grant_other_domain},
    {"grant_revoked", "a grant revoked between posting and copy", Direction::tx, Verdict::errors, "",
     grant_revoked},
    {"rx_grant_readonly", "RX buffers granted read-only", Direction::rx, Verdict::errors, "",
     rx_grant_readonly},
    {"page_cross", "offset + size past the page", Direction::tx, Verdict::disabled, "page_cross", page_cross},
    {"slots_19", "19 data slots (18 after the first, the most Linux takes)", Direction::tx, Verdict::survives,
     "", slots_19},
    {"slots_21", "21 data slots (20 after the first: more than 18)", Direction::tx, Verdict::errors, "",
     slots_21},
    {"slots_22", "22 data slots (21 after the first: more than 20)", Direction::tx, Verdict::disabled,
     "fatal_slot_count", slots_22},
    {"size_mismatch", "first slot size below the sum of the others", Direction::tx, Verdict::errors, "",
     size_mismatch},
    {"extra_unknown", "an extra-info slot of unknown type", Direction::tx, Verdict::disabled, "unknown_extra",
     extra_unknown},
    {"extra_endless", "extra-info slots chained to the end of the ring", Direction::tx, Verdict::disabled, "",
     extra_endless},
    {"gso_tiny_mss", "a 64 KiB GSO frame with an 8-byte mss", Direction::tx, Verdict::survives, "",
     gso_tiny_mss},
    {"mcast_flood", "MCAST_ADD extras past the 64-address limit", Direction::tx, Verdict::survives, "",
     mcast_flood},
    {"zero_frame", "a zero-length frame", Direction::tx, Verdict::errors, "", zero_frame},
    {"runt_frame", "a frame shorter than an Ethernet header", Direction::tx, Verdict::errors, "", runt_frame},
    {"no_rx_buffers", "a guest that never posts RX buffers", Direction::rx, Verdict::survives, "",
     no_rx_buffers},
    {"double_fetch", "a thread rewrites a request while the backend reads it", Direction::tx,
     Verdict::survives, "", double_fetch},
    {"malformed_refill", "a thread keeps the TX ring full of runts, refilled as fast as they are answered",
     Direction::tx, Verdict::errors, "", malformed_refill},
    {"evtchn_storm", "a thread notifies as fast as it can (millions of times)", Direction::tx,
     Verdict::survives, "", evtchn_storm},
};

} // namespace

std::span<const Attack> attacks() { return kAttacks; }

const Attack* find_attack(std::string_view name) {
    for (const auto& a : kAttacks)
        if (a.name == name) return &a;
    return nullptr;
}

std::vector<std::byte> double_fetch_frame(const AttackEnv& env) { return eth_frame(env, 1400); }

std::array<std::uint16_t, 4> double_fetch_sizes() { return {0, 114, 1414, 0}; }

void send_frames(HostileFront& front, const AttackEnv& env, std::size_t n, std::size_t payload) {
    const Bytes frame = eth_frame(env, payload);
    for (std::size_t i = 0; i < n && !front.tx().full(); ++i)
        front.tx().put_request(
            req(front.page(frame), 0, 0, next_id(front), static_cast<std::uint16_t>(frame.size())));
    front.push_tx_and_notify();
}

} // namespace netbackd::xensim::hostile
