// Every hostile netfront attack against the stepped data plane. Each case checks three things:
// the data plane keeps running (the worker keeps answering), the healthy vif keeps its
// throughput within 20% (frames per CPU-second of the thread that runs the worker, over slices
// of the same length before and while attacking, best slice against best slice), and
// the attacked vif is handled as Linux netback handles that guest, then recovers by a reconnect.
#include <algorithm>
#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/support/hostile_arena.hpp"

using namespace netbackd;
using namespace netbackd::xensim::hostile;
using namespace netbackd::xensim::hostile::test;

namespace {

constexpr std::size_t kSlices = 5;
constexpr int kMaxPlays = 40; // bounds the attacker's guest memory (fresh pages per play)

void check_attacked_vif(Arena& a, const Attack& atk, std::size_t attacker_out_before) {
    const auto& vif = *a.va;
    switch (atk.expect) {
    case Verdict::disabled:
        REQUIRE(vif.state() == dataplane::VifState::disabled);
        CHECK_FALSE(vif.fault_message().empty());
        if (!atk.fault.empty()) CHECK_THAT(vif.fault_message(), Catch::Contains(std::string(atk.fault)));
        break;
    case Verdict::errors:
        REQUIRE(vif.state() == dataplane::VifState::running);
        if (atk.direction == Direction::tx) {
            const auto rs = a.attacker_tx_responses();
            CHECK(std::any_of(rs.begin(), rs.end(), [](auto r) { return r.status == NETIF_RSP_ERROR; }));
            CHECK(std::none_of(rs.begin(), rs.end(), [](auto r) { return r.status == NETIF_RSP_OKAY; }));
        } else {
            const auto rs = a.attacker_rx_responses();
            CHECK_FALSE(rs.empty());
            CHECK(std::all_of(rs.begin(), rs.end(), [](auto r) { return r.status < 0; }));
        }
        CHECK(a.attacker_frames_out() == attacker_out_before);
        break;
    case Verdict::survives: {
        REQUIRE(vif.state() == dataplane::VifState::running);
        // Still a working vif without a reconnect: its well-formed frames get out.
        (void)a.attacker_tx_responses();
        const auto before = a.attacker_frames_out();
        send_frames(a.front(), a.env, 4);
        (void)a.healthy_round();
        CHECK(a.attacker_frames_out() - before == 4);
        break;
    }
    }
}

bool is_thread_attack(const Attack& atk) { return atk.name == "double_fetch" || atk.name == "evtchn_storm"; }

// The attacker's own thread needs a CPU as a real guest's vCPU would; so that the comparison
// measures what netbackd does about the attack and not that the simulated guest shares our two
// cores, the "before" slices run next to a thread that burns a CPU the same way.
struct Spinner {
    Spinner()
        : t([](std::stop_token st) {
              std::uint64_t x = 0;
              while (!st.stop_requested()) x = x * 6364136223846793005u + 1;
              (void)x;
          }) {}
    std::jthread t;
};

void run_case(std::string_view name) {
    const Attack* atk = find_attack(name);
    REQUIRE(atk != nullptr);
    Arena a;
    INFO("attack " << atk->name << ": " << atk->what);
    const bool rx = atk->direction == Direction::rx;

    // Before: the healthy vif's rate over kSlices slices.
    Meter before;
    {
        std::optional<Spinner> spin;
        if (is_thread_attack(*atk)) spin.emplace();
        while (before.rates.size() < kSlices) a.healthy_step(before, rx);
    }
    REQUIRE(before.median() > 0);
    (void)a.attacker_tx_responses();
    const std::size_t attacker_out_before = a.attacker_frames_out();

    // While attacking, over as many slices of the same length: thread attacks run throughout;
    // one-shot attacks are played again every 20 ms of CPU time while the vif takes them (the
    // ring has room and the vif was not disabled), so every slice is under attack.
    Meter during;
    std::atomic<std::uint64_t> notified{0};
    if (is_thread_attack(*atk)) {
        a.env.duration = std::chrono::milliseconds(100);
        a.env.storm_notifies = 2'000'000;
        a.env.notified = &notified;
        a.env.during = [&] {
            if (during.rates.size() < kSlices)
                a.healthy_step(during, rx);
            else
                a.rig.poll();
        };
        atk->run(a.front(), a.env);
        while (during.rates.size() < kSlices) a.healthy_step(during, rx);
    } else {
        std::chrono::nanoseconds next{0};
        int plays = 0;
        while (during.rates.size() < kSlices) {
            if (during.now >= next && plays < kMaxPlays && a.va->state() == dataplane::VifState::running &&
                a.front().tx().free_requests() >= 64 && a.front().rx().free_requests() >= 64) {
                atk->run(a.front(), a.env);
                ++plays;
                next = during.now + std::chrono::milliseconds(20);
                if (atk->expect != Verdict::errors) (void)a.attacker_tx_responses();
            }
            a.healthy_step(during, rx);
        }
        INFO("attack played " << plays << " times");
        CHECK(plays >= 1);
    }
    if (atk->name == "evtchn_storm") {
        CHECK(notified.load() >= 2'000'000u);
        WARN("evtchn_storm: " << notified.load() << " notifies");
    }

    // The healthy vif keeps its throughput within 20%.
    INFO("healthy frames/s before " << before.median() << ", during " << during.median());
    WARN(atk->name << ": healthy vif " << static_cast<std::uint64_t>(before.median()) << " frames/s before, "
                   << static_cast<std::uint64_t>(during.median()) << " while attacking ("
                   << static_cast<int>(100.0 * during.median() / before.median()) << "%)");
    CHECK(during.median() >= 0.8 * before.median());
    CHECK(a.vh.state() == dataplane::VifState::running);

    check_attacked_vif(a, *atk, attacker_out_before);

    // A reconnect (fresh rings, as netfront after Closing) gives a working vif again.
    a.reconnect();
    REQUIRE(a.va->state() == dataplane::VifState::running);
    const auto out = a.attacker_frames_out();
    send_frames(a.front(), a.env, 4);
    (void)a.healthy_round();
    CHECK(a.attacker_frames_out() - out == 4);
    const auto rs = a.attacker_tx_responses();
    CHECK(rs.size() == 4);
    CHECK(std::all_of(rs.begin(), rs.end(), [](auto r) { return r.status == NETIF_RSP_OKAY; }));
}

} // namespace

TEST_CASE("attack names are unique and found by name", "[hostile]") {
    std::set<std::string_view> names;
    for (const auto& a : attacks()) {
        CHECK(names.insert(a.name).second);
        CHECK(find_attack(a.name) == &a);
    }
    CHECK(names.size() >= 19);
    CHECK(find_attack("no_such_attack") == nullptr);
}

#define HOSTILE_CASE(NAME)                                                                                   \
    TEST_CASE("hostile guest: " NAME, "[hostile]") { run_case(NAME); }

HOSTILE_CASE("req_prod_overflow")
HOSTILE_CASE("rsp_scribble")
HOSTILE_CASE("id_reuse")
HOSTILE_CASE("grant_never")
HOSTILE_CASE("grant_other_domain")
HOSTILE_CASE("grant_revoked")
HOSTILE_CASE("rx_grant_readonly")
HOSTILE_CASE("page_cross")
HOSTILE_CASE("slots_19")
HOSTILE_CASE("slots_21")
HOSTILE_CASE("size_mismatch")
HOSTILE_CASE("extra_unknown")
HOSTILE_CASE("extra_endless")
HOSTILE_CASE("gso_tiny_mss")
HOSTILE_CASE("zero_frame")
HOSTILE_CASE("runt_frame")
HOSTILE_CASE("no_rx_buffers")
HOSTILE_CASE("double_fetch")
HOSTILE_CASE("evtchn_storm")
