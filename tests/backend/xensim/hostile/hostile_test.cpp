// Every hostile netfront attack against the stepped data plane. Each case checks three things:
// the data plane keeps running (the worker keeps answering), the healthy vif keeps passing at
// least half of its frames per round (rounds, not wall time: no speed assertion), and the
// attacked vif is handled as Linux netback handles that guest, then recovers by a reconnect.
#include <algorithm>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "arena.hpp"

using namespace netbackd;
using namespace netbackd::xensim::hostile;
using namespace netbackd::xensim::hostile::test;

namespace {

constexpr int kRounds = 4;

std::size_t rounds(Arena& a, int n, Direction dir) {
    std::size_t total = 0;
    for (int i = 0; i < n; ++i) {
        if (dir == Direction::rx) a.inject_for_attacker(16);
        total += a.healthy_round();
    }
    return total;
}

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

void run_case(std::string_view name) {
    const Attack* atk = find_attack(name);
    REQUIRE(atk != nullptr);
    Arena a;
    INFO("attack " << atk->name << ": " << atk->what);

    const std::size_t before = rounds(a, kRounds, atk->direction);
    REQUIRE(before == kRounds * 32u);
    const std::size_t attacker_out_before = a.attacker_frames_out();

    std::size_t during = 0;
    int during_rounds = 0;
    a.env.duration = std::chrono::milliseconds(1500);
    a.env.during = [&] {
        // The healthy netfront spends a fresh grant per frame: a few rounds, then only the worker.
        if (during_rounds < 8) {
            during += rounds(a, 1, atk->direction);
            ++during_rounds;
        } else {
            a.rig.poll();
        }
    };
    atk->run(a.front(), a.env);
    during += rounds(a, kRounds, atk->direction);
    during_rounds += kRounds;

    // The healthy vif: generous bound per round, the worker still answering it.
    CHECK(during * 2 >= before / kRounds * static_cast<std::size_t>(during_rounds));
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

#define HOSTILE_CASE(NAME) \
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
