// netbackd-ring-selfcheck: a frontend thread and a backend thread over one TX and one RX ring,
// in one process. The frontend sends packets of mixed shapes (single slot, multi-slot, extras,
// multicast control, a few malformed); the backend assembles them, answers them, and echoes each
// accepted data packet back over the RX ring; the frontend checks every response and every echo.
// Prints a summary; exits non-zero on any mismatch or lost notification.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "ring/netif_ring.hpp"
#include "tests/ring/sim_event.hpp"

namespace {

using namespace netbackd::ring;
using namespace std::chrono_literals;

struct alignas(kPageSize) PageBuf {
    std::array<std::byte, kPageSize> bytes{};
};

// The shape of packet seq, reproducible on both sides of the check.
enum class Kind { single, multi, extras, mcast, zero_length, runt, size_mismatch, too_many_slots };

struct Shape {
    Kind kind;
    std::uint32_t nsegs;
    std::array<std::uint16_t, 20> size;
    std::array<std::uint16_t, 20> offset;
    std::optional<TxGso> gso;
};

std::uint32_t mix(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

Shape make_shape(std::uint32_t seq) {
    Shape s{};
    const std::uint32_t r = mix(seq);
    if (seq % 50 == 49) {
        // Page crossing is not among them: it is fatal, as in Linux (tx_assembler_test).
        constexpr std::array bad{Kind::zero_length, Kind::runt, Kind::size_mismatch, Kind::too_many_slots};
        s.kind = bad[(seq / 50) % bad.size()];
    } else if (r % 100 < 55) {
        s.kind = Kind::single;
    } else if (r % 100 < 80) {
        s.kind = Kind::multi;
    } else if (r % 100 < 97) {
        s.kind = Kind::extras;
    } else {
        s.kind = Kind::mcast;
    }
    auto seg = [&](std::uint32_t i, std::uint32_t salt) {
        const std::uint32_t h = mix(seq * 31 + salt);
        s.size[i] = static_cast<std::uint16_t>(1 + h % 4096);
        s.offset[i] = static_cast<std::uint16_t>((h >> 12) % (kPageSize - s.size[i] + 1));
    };
    switch (s.kind) {
    case Kind::single:
    case Kind::mcast:
        s.nsegs = 1;
        seg(0, 1);
        if (s.size[0] < kEthHeaderLen) s.size[0] = kEthHeaderLen;
        s.offset[0] = static_cast<std::uint16_t>(std::min<std::uint32_t>(s.offset[0], kPageSize - s.size[0]));
        if (s.kind == Kind::mcast) s.size[0] = 0;
        break;
    case Kind::multi:
    case Kind::extras:
        s.nsegs = 1 + r % kMaxTxSegments; // what a frontend sends; the echo over RX is as long
        for (std::uint32_t i = 0; i < s.nsegs; ++i) seg(i, i + 1);
        // The first slot holds the Ethernet header itself (Linux drops the packet otherwise).
        if (s.size[0] < kEthHeaderLen) {
            s.size[0] = kEthHeaderLen;
            s.offset[0] = 0;
        }
        // Keep the whole packet within the 16-bit size of the first slot.
        while (s.nsegs > 1) {
            std::uint32_t total = 0;
            for (std::uint32_t i = 0; i < s.nsegs; ++i) total += s.size[i];
            if (total <= XEN_NETIF_MAX_TX_SIZE && total >= kEthHeaderLen) break;
            --s.nsegs;
        }
        if (s.kind == Kind::extras) s.gso = TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV4, 0};
        break;
    case Kind::zero_length: s.nsegs = 1; break;
    case Kind::runt:
        s.nsegs = 1;
        s.size[0] = 10;
        break;
    case Kind::size_mismatch:
        s.nsegs = 2; // written raw below: first says 100, second carries 200
        s.size = {100, 200};
        break;
    case Kind::too_many_slots:
        s.nsegs = kMaxTxPacketSlots + 1;
        for (std::uint32_t i = 0; i < s.nsegs; ++i) s.size[i] = 64;
        break;
    }
    return s;
}

bool is_good(Kind k) {
    return k == Kind::single || k == Kind::multi || k == Kind::extras || k == Kind::mcast;
}

constexpr grant_ref_t gref_of(std::uint32_t seq, std::uint32_t seg) { return seq * 32 + seg; }

struct Shared {
    std::atomic<bool> stop{false};
    std::atomic<bool> failed{false};
    SimEvent to_back;
    SimEvent to_front;
};

void fail(Shared& sh, const char* what) {
    std::fprintf(stderr, "netbackd-ring-selfcheck: MISMATCH: %s\n", what);
    sh.failed.store(true);
    // Wake both sides so neither sits out its watchdog.
    sh.to_back.notify();
    sh.to_front.notify();
}

// ---------------------------------------------------------------- backend thread
struct BackendStats {
    std::uint64_t packets = 0;
    std::uint64_t mcast = 0;
    std::uint64_t echoed = 0;
    std::array<std::uint64_t, kTxErrorCount> errors{};
    TxError fatal = TxError::none;
};

struct Echo {
    std::uint32_t nsegs;
    std::array<RxChunk, kMaxTxSegments> chunks;
    std::optional<TxGso> gso;
};

void backend(Page tx_page, Page rx_page, Shared& sh, BackendStats& st) {
    BackRing<TxRing> tx_ring(tx_page);
    BackRing<RxRing> rx_ring(rx_page);
    TxAssembler tx(tx_ring);
    RxResponder rx(rx_ring);
    std::array<Echo, 512> echo{}; // FIFO of accepted packets awaiting RX buffers
    std::size_t echo_head = 0, echo_len = 0;
    TxPacket p;

    while (!sh.stop.load(std::memory_order_acquire)) {
        bool progress = false;
        for (int budget = 0; budget < 64 && echo_len < echo.size(); ++budget) {
            const TxResult r = tx.next(p);
            if (r.step == TxStep::packet) {
                progress = true;
                const std::uint32_t seq = p.segments()[0].gref / 32;
                std::uint32_t total = 0;
                for (std::uint32_t i = 0; i < p.nr_segments; ++i) {
                    total += p.segments()[i].size;
                    if (p.segments()[i].gref != gref_of(seq, i))
                        fail(sh, "backend: segment gref out of order");
                }
                if (total != p.length) fail(sh, "backend: segment sizes do not add up");
                tx.respond(p, NETIF_RSP_OKAY);
                if (p.is_mcast_control()) {
                    ++st.mcast;
                    continue;
                }
                ++st.packets;
                Echo& e = echo[(echo_head + echo_len++) % echo.size()];
                e.nsegs = p.nr_segments;
                for (std::uint32_t i = 0; i < p.nr_segments; ++i)
                    e.chunks[i] = RxChunk{p.segments()[i].offset, p.segments()[i].size};
                e.gso = p.gso;
            } else if (r.step == TxStep::dropped) {
                progress = true;
                ++st.errors[static_cast<std::size_t>(r.error)];
            } else if (r.step == TxStep::fatal) {
                st.fatal = r.error;
                fail(sh, "backend: fatal TX error");
                return;
            } else {
                break;
            }
        }
        if (tx_ring.push_and_check_notify()) sh.to_front.notify();

        RxStep rs = RxStep::ok;
        while (echo_len != 0) {
            const Echo& e = echo[echo_head];
            RxReservation res;
            rs = rx.reserve(e.nsegs, e.gso.has_value(), res);
            if (rs != RxStep::ok) break;
            rx.complete(res, std::span(e.chunks.data(), e.nsegs), RxMeta{true, false, e.gso});
            echo_head = (echo_head + 1) % echo.size();
            --echo_len;
            ++st.echoed;
            progress = true;
        }
        if (rs == RxStep::fatal) {
            fail(sh, "backend: fatal RX error");
            return;
        }
        if (rx_ring.push_and_check_notify()) sh.to_front.notify();
        if (progress) continue;

        // Sleep only when neither ring can move: no TX request (or no room to keep its echo), and
        // no echo waiting or too few RX buffers for it.
        bool idle = true;
        if (echo_len < echo.size()) {
            const Avail t = tx_ring.final_check();
            idle = t.count == 0 && t.error == ProdError::none;
        }
        if (idle && echo_len != 0) {
            const Echo& e = echo[echo_head];
            const Avail a = rx_ring.final_check(e.nsegs + (e.gso ? 1 : 0));
            idle = a.count < e.nsegs + (e.gso ? 1u : 0u) && a.error == ProdError::none;
        }
        if (idle && !sh.stop.load(std::memory_order_acquire) && !sh.to_back.wait(30s)) {
            fail(sh, "backend: lost notification (slept 30 s with work pending?)");
            return;
        }
    }
}

// ---------------------------------------------------------------- frontend thread
struct FrontendStats {
    std::uint64_t sent = 0, slots = 0, rsp_ok = 0, rsp_err = 0, rsp_null = 0, echoes = 0;
    std::uint64_t expected_echoes = 0;
};

void frontend(Page tx_page, Page rx_page, std::uint32_t n, Shared& sh, FrontendStats& st) {
    FrontRing<TxRing> tx(tx_page);
    FrontRing<RxRing> rx(rx_page);
    // Expected status per outstanding TX id; ids are unique within the 256 outstanding slots.
    std::array<std::int16_t, 65536> want{};
    std::array<std::uint32_t, 4096> echo_seq{}; // FIFO of seqs the backend must echo
    std::size_t echo_head = 0, echo_len = 0;
    std::uint16_t next_id = 0, next_rx_id = 0;
    std::uint64_t responses = 0;
    std::uint32_t seq = 0;

    auto send = [&](std::uint32_t s) -> bool {
        const Shape sh_ = make_shape(s);
        const bool good = is_good(sh_.kind);
        const bool echo = good && sh_.kind != Kind::mcast;
        if (echo && echo_len == echo_seq.size()) return false;
        std::array<TxFrontSegment, 20> segs{};
        for (std::uint32_t i = 0; i < sh_.nsegs; ++i)
            segs[i] = TxFrontSegment{gref_of(s, i), sh_.offset[i], sh_.size[i], next_id++};
        TxExtras x;
        x.gso = sh_.gso;
        if (sh_.kind == Kind::extras)
            x.hash = TxHash{_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, s};
        if (sh_.kind == Kind::mcast)
            x.mcast_add = MacAddr{0x01, 0x00, 0x5e, 0, 0, static_cast<std::uint8_t>(s)};
        const std::uint32_t slots = tx_slots_needed(sh_.nsegs, x);
        if (tx.free_requests() < slots) {
            next_id = static_cast<std::uint16_t>(next_id - sh_.nsegs);
            return false;
        }
        if (sh_.kind == Kind::size_mismatch) {
            tx.put_request(netif_tx_request_t{segs[0].gref, 0, NETTXF_more_data, segs[0].id, 100});
            tx.put_request(netif_tx_request_t{segs[1].gref, 0, 0, segs[1].id, 200});
        } else {
            put_tx_packet(tx, std::span(segs.data(), sh_.nsegs), x);
        }
        const std::int16_t status = good ? NETIF_RSP_OKAY : NETIF_RSP_ERROR;
        for (std::uint32_t i = 0; i < sh_.nsegs; ++i) want[segs[i].id] = status;
        st.slots += slots;
        ++st.sent;
        if (echo) {
            echo_seq[(echo_head + echo_len++) % echo_seq.size()] = s;
            ++st.expected_echoes;
        }
        return true;
    };

    while (!sh.failed.load()) {
        bool progress = false;
        while (!rx.full()) {
            rx.put_request(netif_rx_request_t{next_rx_id, 0, 0x100000u + next_rx_id});
            ++next_rx_id;
            progress = true;
        }
        if (rx.push_and_check_notify()) sh.to_back.notify();

        while (seq < n && send(seq)) {
            ++seq;
            progress = true;
        }
        if (tx.push_and_check_notify()) sh.to_back.notify();

        const Avail a = tx.poll();
        for (RingIdx i = 0; i < a.count; ++i) {
            const netif_tx_response_t r = tx.copy_response(i);
            if (r.status == NETIF_RSP_NULL) {
                ++st.rsp_null;
            } else if (r.status != want[r.id]) {
                fail(sh, "frontend: TX response status differs from the expected one");
            } else {
                ++(r.status == NETIF_RSP_OKAY ? st.rsp_ok : st.rsp_err);
            }
        }
        tx.consume(a.count);
        responses += a.count;
        progress |= a.count != 0;
        if (a.error != ProdError::none) fail(sh, "frontend: bad TX rsp_prod");

        RxFrontPacket pkt;
        for (RxReadStep rs; (rs = read_rx_packet(rx, pkt)) != RxReadStep::empty;) {
            if (rs == RxReadStep::pending) break;
            if (rs == RxReadStep::malformed || echo_len == 0) {
                fail(sh, "frontend: malformed or unexpected RX packet");
                break;
            }
            const Shape s = make_shape(echo_seq[echo_head]);
            echo_head = (echo_head + 1) % echo_seq.size();
            --echo_len;
            bool ok = pkt.nr_frags == s.nsegs && !pkt.error && pkt.gso.has_value() == s.gso.has_value() &&
                      (pkt.flags & NETRXF_data_validated);
            for (std::uint32_t i = 0; ok && i < s.nsegs; ++i)
                ok = pkt.frags()[i].status == s.size[i] && pkt.frags()[i].offset == s.offset[i];
            if (ok && s.gso) ok = pkt.gso->u.gso.size == s.gso->size && pkt.gso->u.gso.type == s.gso->type;
            if (!ok) fail(sh, "frontend: echoed RX packet differs from the one sent");
            ++st.echoes;
            progress = true;
        }

        if (seq == n && responses == st.slots && echo_len == 0) break;
        if (progress) continue;
        const Avail ta = tx.final_check();
        const Avail ra = rx.final_check();
        if (ta.count == 0 && ra.count == 0 && !sh.to_front.wait(30s)) {
            fail(sh, "frontend: lost notification (slept 30 s with work pending?)");
            break;
        }
    }
    sh.stop.store(true, std::memory_order_release);
    sh.to_back.notify();
}

} // namespace

int main(int argc, char** argv) {
    std::uint32_t n = 20000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string_view(argv[i]) == "--packets")
            n = static_cast<std::uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));

    auto tx_page = std::make_unique<PageBuf>();
    auto rx_page = std::make_unique<PageBuf>();
    init_shared_ring<TxRing>(tx_page->bytes);
    init_shared_ring<RxRing>(rx_page->bytes);

    Shared sh;
    BackendStats bs;
    FrontendStats fs;
    const auto t0 = std::chrono::steady_clock::now();
    std::thread back(backend, Page(tx_page->bytes), Page(rx_page->bytes), std::ref(sh), std::ref(bs));
    std::thread front(frontend, Page(tx_page->bytes), Page(rx_page->bytes), n, std::ref(sh), std::ref(fs));
    front.join();
    back.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::uint64_t dropped = 0;
    for (auto c : bs.errors) dropped += c;
    if (!sh.failed && (bs.packets != fs.expected_echoes || bs.echoed != fs.echoes ||
                       fs.echoes != fs.expected_echoes || bs.packets + bs.mcast + dropped != fs.sent))
        fail(sh, "packet counts differ between frontend and backend");

    std::printf(
        "netbackd ring self-check: %u packets, %llu slots over one TX and one RX ring (256 slots each)\n", n,
        static_cast<unsigned long long>(fs.slots));
    std::printf("  TX packets accepted   %llu (+ %llu multicast control)\n",
                static_cast<unsigned long long>(bs.packets), static_cast<unsigned long long>(bs.mcast));
    std::printf("  TX packets dropped    %llu\n", static_cast<unsigned long long>(dropped));
    for (std::size_t i = 1; i < kTxErrorCount; ++i)
        if (bs.errors[i] != 0)
            std::printf("      %-16s    %llu\n", std::string(to_string(static_cast<TxError>(i))).c_str(),
                        static_cast<unsigned long long>(bs.errors[i]));
    std::printf("  TX responses          %llu okay, %llu error, %llu null (extras)\n",
                static_cast<unsigned long long>(fs.rsp_ok), static_cast<unsigned long long>(fs.rsp_err),
                static_cast<unsigned long long>(fs.rsp_null));
    std::printf("  RX packets echoed     %llu, checked by the frontend %llu\n",
                static_cast<unsigned long long>(bs.echoed), static_cast<unsigned long long>(fs.echoes));
    std::printf("  notifications         to backend %llu, to frontend %llu\n",
                static_cast<unsigned long long>(sh.to_back.sent()),
                static_cast<unsigned long long>(sh.to_front.sent()));
    std::printf("  time                  %.3f s, %.2f Mpps through TX+RX (two threads, no data copies)\n",
                secs, secs > 0 ? static_cast<double>(n) / secs / 1e6 : 0.0);
    std::printf("  result                %s\n", sh.failed ? "MISMATCH" : "ok");
    return sh.failed ? 1 : 0;
}
