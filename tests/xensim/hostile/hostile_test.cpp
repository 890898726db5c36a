// Every hostile netfront attack against the stepped data plane. Each case checks three things:
// the data plane keeps running (the worker keeps answering), the healthy vif is isolated from
// the attack (in every poll round of the worker while the attacker is active, the whole burst
// the healthy guest posted reaches the wire in that same round), and the attacked vif is
// handled as Linux netback handles that guest, then recovers by a reconnect. Everything is
// counted in the worker's poll rounds, never in time: a busy host cannot fail these checks.
#include <algorithm>
#include <array>
#include <atomic>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/hostile_arena.hpp"

using namespace netbackd;
using namespace netbackd::xensim::hostile;
using namespace netbackd::xensim::hostile::test;

namespace {

constexpr std::size_t kRounds = 64; // poll rounds counted before and while attacking
constexpr int kMaxPlays = 40;       // bounds the attacker's guest memory (fresh pages per play)
// double_fetch runs until the backend answered this many requests of each rewritten shape (read
// mid-rewrite), or 120 s passed; the checks want kRacedMin (on a loaded host races are rarer).
constexpr std::uint64_t kRaced = 1000;
constexpr std::uint64_t kRacedMin = 50;

// The healthy guest's rounds: what it posted, what reached the wire, and the rounds in which
// some of its burst did not get out in that round.
struct Tally {
    std::size_t rounds = 0;
    std::size_t posted = 0;
    std::size_t delivered = 0;
    std::size_t short_rounds = 0;
    void add(const Round& r) {
        ++rounds;
        posted += r.posted;
        delivered += r.delivered;
        if (r.delivered != r.posted) ++short_rounds;
    }
};

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

// double_fetch: what the backend answered and sent must be what one copy of each request could
// describe (see double_fetch_frames).
struct OneCopyTally {
    std::array<std::atomic<std::uint64_t>, 4> okay{}; // by id; [0]: any other id
    std::atomic<std::uint64_t> errors{0};
    void add(const netif_tx_response_t& r) {
        if (r.status == NETIF_RSP_OKAY)
            okay[r.id >= 1 && r.id <= 3 ? r.id : 0].fetch_add(1);
        else
            errors.fetch_add(1);
    }
};

void check_one_copy_each(Arena& a, OneCopyTally& t) {
    for (const auto& r : a.attacker_tx_responses()) t.add(r); // what the thread left
    const auto frame = double_fetch_frame(a.env);
    const auto sizes = double_fetch_sizes();
    std::size_t odd = 0;
    std::array<std::uint64_t, 3> by_size{}; // [i]: frames of sizes[i], i = 1, 2
    for (const auto& f : a.attacker_frames) {
        bool one = false;
        for (std::size_t i = 1; i <= 2; ++i)
            if (f.size() == sizes[i] && std::equal(f.begin(), f.end(), frame.begin())) {
                ++by_size[i];
                one = true;
            }
        if (!one) ++odd;
    }
    INFO(a.attacker_frames.size() << " frames of the attacker on the wire (" << by_size[1] << " short, "
                                  << by_size[2] << " long), " << odd << " neither; OKAY by id 1/2/3/other "
                                  << t.okay[1] << "/" << t.okay[2] << "/" << t.okay[3] << "/" << t.okay[0]
                                  << ", errors " << t.errors);
    // The race was run, not just survived: the backend read slots mid-rewrite.
    CHECK(t.okay[2] >= kRacedMin);
    CHECK(t.errors >= kRacedMin);
    CHECK(odd == 0);
    CHECK(t.okay[3] == 0); // id 3 comes with size 0 in one word: only ever dropped
    CHECK(t.okay[0] == 0);
    CHECK(t.okay[1] == by_size[1]);
    CHECK(t.okay[2] == by_size[2]);
}

bool is_thread_attack(const Attack& atk) { return atk.name == "double_fetch" || atk.name == "evtchn_storm"; }

void run_case(std::string_view name) {
    const Attack* atk = find_attack(name);
    REQUIRE(atk != nullptr);
    Arena a;
    INFO("attack " << atk->name << ": " << atk->what);
    const bool rx = atk->direction == Direction::rx;

    // Before: the healthy guest alone, round by round.
    Tally before;
    while (before.rounds < kRounds) before.add(a.healthy_step(rx));
    REQUIRE(before.posted == kRounds * kHealthyBurst);
    REQUIRE(before.delivered == before.posted);
    (void)a.attacker_tx_responses();
    const std::size_t attacker_out_before = a.attacker_frames_out();

    // While attacking: thread attacks run throughout, and every round until they end is
    // counted; one-shot attacks are played again before each round while the vif takes them
    // (the ring has room and the vif was not disabled), so the worker meets the attack in the
    // same poll rounds as the healthy guest's bursts.
    Tally during;
    std::atomic<std::uint64_t> notified{0};
    OneCopyTally one_copy;
    if (is_thread_attack(*atk)) {
        a.keep_attacker_frames = atk->name == "double_fetch";
        a.env.on_tx_response = [&](const netif_tx_response_t& r) { one_copy.add(r); };
        a.env.duration = std::chrono::milliseconds(100);
        a.env.storm_notifies = 2'000'000;
        a.env.notified = &notified;
        // double_fetch runs until the backend was seen reading slots mid-rewrite often enough
        // (answers for the other two shapes), capped in case it never is (then checks fail).
        const auto cap = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        a.env.finished = [&] {
            const bool raced =
                atk->name != "double_fetch" || (one_copy.okay[2] >= kRaced && one_copy.errors >= kRaced);
            return during.rounds >= kRounds && (raced || std::chrono::steady_clock::now() > cap);
        };
        a.env.during = [&] { during.add(a.healthy_step(rx)); };
        atk->run(a.front(), a.env);
        // What the attacker's thread posted after the last counted round lands now.
        for (int i = 0; i < 10; ++i) during.add(a.healthy_step(rx)); // a ring is 8 rounds of 32
    } else {
        int plays = 0;
        while (during.rounds < kRounds) {
            if (plays < kMaxPlays && a.va->state() == dataplane::VifState::running &&
                a.front().tx().free_requests() >= 64 && a.front().rx().free_requests() >= 64) {
                atk->run(a.front(), a.env);
                ++plays;
                if (atk->expect != Verdict::errors) (void)a.attacker_tx_responses();
            }
            during.add(a.healthy_step(rx));
        }
        INFO("attack played " << plays << " times");
        CHECK(plays >= 1);
    }
    if (atk->name == "evtchn_storm") CHECK(notified.load() >= 2'000'000u);
    if (atk->name == "double_fetch") check_one_copy_each(a, one_copy);
    a.keep_attacker_frames = false;

    // Isolation: the attack cost the healthy guest no frame and no round.
    INFO("healthy guest: " << during.delivered << " of " << during.posted << " frames out in "
                           << during.rounds << " rounds while attacked, " << during.short_rounds
                           << " rounds short");
    CHECK(during.rounds >= kRounds);
    CHECK(during.posted == during.rounds * kHealthyBurst);
    CHECK(during.short_rounds == 0);
    CHECK(during.delivered == during.posted);
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
HOSTILE_CASE("slots_22")
HOSTILE_CASE("size_mismatch")
HOSTILE_CASE("extra_unknown")
HOSTILE_CASE("extra_endless")
HOSTILE_CASE("gso_tiny_mss")
HOSTILE_CASE("mcast_flood")
HOSTILE_CASE("zero_frame")
HOSTILE_CASE("runt_frame")
HOSTILE_CASE("no_rx_buffers")
HOSTILE_CASE("double_fetch")
HOSTILE_CASE("evtchn_storm")
