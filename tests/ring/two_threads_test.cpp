// A frontend thread and a backend thread push millions of requests and responses through one TX
// ring with event-index notifications. Checks order and content in both directions, and that no
// notification is ever lost: a side only sleeps after its final check found nothing, and a sleep
// that outlasts the watchdog with work pending fails the test instead of hanging.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/ring/ring_pairs.hpp"
#include "tests/ring/sim_event.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::test;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// 10 M in the normal build; sanitizers slow each step ~10x, so they get 1 M.
constexpr std::uint32_t kRequests = kSanitized ? 1'000'000 : 10'000'000;
constexpr auto kWatchdog = 60s;

netif_tx_request_t request_for(std::uint32_t seq) {
    const auto size = static_cast<std::uint16_t>(kEthHeaderLen + seq % 1500);
    return netif_tx_request_t{seq, static_cast<std::uint16_t>(seq % (kPageSize - size)), 0,
                              static_cast<std::uint16_t>(seq), size};
}

struct Outcome {
    std::atomic<std::uint64_t> bad_content{0};
    std::atomic<std::uint64_t> bad_order{0};
    std::atomic<std::uint64_t> lost_notifications{0};
    std::atomic<bool> abort{false};
};

void run_frontend(Page page, SimEvent& to_back, SimEvent& to_front, Outcome& out, std::uint64_t& sleeps) {
    FrontRing<TxRing> front(page);
    std::minstd_rand rng(1);
    std::uint32_t sent = 0, answered = 0;
    while (answered < kRequests && !out.abort.load(std::memory_order_relaxed)) {
        bool progress = false;
        // Bursts of varying size so that pushes land at every position relative to req_event.
        for (std::uint32_t burst = 1 + rng() % 64; burst != 0 && !front.full() && sent < kRequests; --burst) {
            front.put_request(request_for(sent++));
            progress = true;
        }
        if (front.push_and_check_notify()) to_back.notify();

        const Avail a = front.poll();
        if (a.error != ProdError::none) {
            out.bad_order.fetch_add(1);
            out.abort = true;
            break;
        }
        for (RingIdx i = 0; i < a.count; ++i) {
            const netif_tx_response_t r = front.copy_response(i);
            if (r.id != static_cast<std::uint16_t>(answered)) out.bad_order.fetch_add(1);
            if (r.status != NETIF_RSP_OKAY) out.bad_content.fetch_add(1);
            ++answered;
        }
        front.consume(a.count);
        if (progress || a.count != 0) continue;
        if (front.final_check().count != 0) continue;
        ++sleeps;
        if (!to_front.wait(kWatchdog)) {
            // Asleep for the whole watchdog: lost if responses were waiting all along.
            if (front.poll().count != 0) out.lost_notifications.fetch_add(1);
            out.abort = true;
            to_back.notify();
            break;
        }
    }
}

void run_backend(Page page, SimEvent& to_back, SimEvent& to_front, Outcome& out, std::uint64_t& sleeps) {
    BackRing<TxRing> back(page);
    TxAssembler tx(back);
    TxPacket p;
    std::minstd_rand rng(2);
    std::uint32_t seen = 0;
    while (seen < kRequests && !out.abort.load(std::memory_order_relaxed)) {
        bool progress = false;
        for (std::uint32_t budget = 1 + rng() % 64; budget != 0; --budget) {
            const TxResult r = tx.next(p);
            if (r.step == TxStep::empty) break;
            if (r.step != TxStep::packet) {
                out.bad_content.fetch_add(1);
                out.abort = true;
                to_front.notify();
                return;
            }
            const netif_tx_request_t want = request_for(seen);
            if (p.nr_segments != 1 || p.ids[0] != want.id ||
                p.segments()[0] != TxSegment{want.gref, want.offset, want.size})
                out.bad_content.fetch_add(1);
            tx.respond(p, NETIF_RSP_OKAY);
            ++seen;
            progress = true;
        }
        if (back.push_and_check_notify()) to_front.notify();
        if (progress) continue;
        const Avail f = back.final_check();
        if (f.count != 0 || f.error != ProdError::none) continue;
        ++sleeps;
        if (!to_back.wait(kWatchdog)) {
            if (back.poll().count != 0) out.lost_notifications.fetch_add(1);
            out.abort = true;
            to_front.notify();
            return;
        }
    }
}

} // namespace

TEST_CASE("two threads exchange millions of requests and responses without losing a notification",
          "[ring][threads]") {
    PageBuf page;
    init_shared_ring<TxRing>(page.bytes);
    SimEvent to_back, to_front;
    Outcome out;
    std::uint64_t front_sleeps = 0, back_sleeps = 0;
    std::thread back([&] { run_backend(page.bytes, to_back, to_front, out, back_sleeps); });
    std::thread front([&] { run_frontend(page.bytes, to_back, to_front, out, front_sleeps); });
    front.join();
    back.join();

    SharedRing<TxRing> s(page.bytes);
    INFO("requests " << kRequests << ", notifications to backend " << to_back.sent() << ", to frontend "
                     << to_front.sent() << ", sleeps front " << front_sleeps << " back " << back_sleeps);
    CHECK(out.lost_notifications.load() == 0);
    CHECK_FALSE(out.abort.load());
    CHECK(out.bad_content.load() == 0);
    CHECK(out.bad_order.load() == 0);
    CHECK(s.req_prod().load() == kRequests);
    CHECK(s.rsp_prod().load() == kRequests);
    // The run must have exercised the sleep/notify path, not only busy polling.
    CHECK(to_back.sent() > 0);
    CHECK(to_front.sent() > 0);
}
