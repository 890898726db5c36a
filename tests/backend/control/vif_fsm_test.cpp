// Every transition of the vif state machine, as a table, plus whole handshakes replayed
// through after() the way VifControl applies them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "backend/control/vif_fsm.hpp"

using namespace netbackd::control;
using S = XenbusState;
using K = ActionKind;

namespace {

Action st(S s) { return Action{K::write_state, s}; }
Action a(K k) { return Action{k}; }
Action err(int e, std::string m) { return Action{K::write_error, S::unknown, Fatal{e, std::move(m)}}; }

std::string show(const std::vector<Action>& v) {
    std::string s;
    for (const auto& x : v) s += to_string(x) + " ";
    return s;
}

struct Row {
    const char* name;
    VifFacts facts;
    VifEvent event;
    std::vector<Action> want;
};

const std::vector<Row>& table() {
    static const std::vector<Row> rows = {
        {"probe: advertise then InitWait",
         {S::unknown, false, true, S::initialising},
         {EventKind::backend_appeared},
         {a(K::clear_error), a(K::advertise), st(S::init_wait)}},
        {"probe with frontend already connecting",
         {S::unknown, false, true, S::connected},
         {EventKind::backend_appeared},
         {a(K::clear_error), a(K::advertise), st(S::init_wait), a(K::connect), st(S::connected)}},
        {"probe while frontend node missing waits",
         {S::unknown, false, true, std::nullopt},
         {EventKind::backend_appeared},
         {a(K::clear_error), a(K::advertise), st(S::init_wait)}},
        {"probe of an offline dir removes it",
         {S::unknown, false, false, S::initialising},
         {EventKind::backend_appeared},
         {st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"frontend 4 connects",
         {S::init_wait, false, true, S::connected},
         {EventKind::frontend_changed},
         {a(K::connect), st(S::connected)}},
        {"frontend 3 connects too",
         {S::init_wait, false, true, S::initialised},
         {EventKind::frontend_changed},
         {a(K::connect), st(S::connected)}},
        {"frontend 4 after 3 is idempotent",
         {S::connected, true, true, S::connected},
         {EventKind::frontend_changed},
         {}},
        {"frontend 1 while waiting is idle",
         {S::init_wait, false, true, S::initialising},
         {EventKind::frontend_changed},
         {}},
        {"frontend closing tears down",
         {S::connected, true, true, S::closing},
         {EventKind::frontend_changed},
         {a(K::disconnect), st(S::closing)}},
        {"frontend closed after closing",
         {S::closing, false, true, S::closed},
         {EventKind::frontend_changed},
         {st(S::closed)}},
        {"frontend jumps straight to 6",
         {S::connected, true, true, S::closed},
         {EventKind::frontend_changed},
         {a(K::disconnect), st(S::closing), st(S::closed)}},
        {"guest close while online keeps the dir",
         {S::closing, false, true, S::closed},
         {EventKind::frontend_changed},
         {st(S::closed)}},
        {"frontend closed while offline removes",
         {S::closing, false, false, S::closed},
         {EventKind::frontend_changed},
         {st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"windows: closing before connect",
         {S::init_wait, false, true, S::closing},
         {EventKind::frontend_changed},
         {st(S::closing)}},
        {"windows: closed before connect",
         {S::init_wait, false, true, S::closed},
         {EventKind::frontend_changed},
         {st(S::closing), st(S::closed)}},
        {"windows: re-initialise after close",
         {S::closed, false, true, S::initialising},
         {EventKind::frontend_changed},
         {a(K::advertise), st(S::init_wait)}},
        {"frontend reboot: back to 1 from connected",
         {S::connected, true, true, S::initialising},
         {EventKind::frontend_changed},
         {a(K::disconnect), st(S::closing), st(S::closed), a(K::advertise), st(S::init_wait)}},
        {"reconnect from closed straight to 4",
         {S::closed, false, true, S::connected},
         {EventKind::frontend_changed},
         {a(K::advertise), st(S::init_wait), a(K::connect), st(S::connected)}},
        {"frontend vanished (state missing)",
         {S::connected, true, true, std::nullopt},
         {EventKind::frontend_changed},
         {a(K::disconnect), st(S::closing), st(S::closed)}},
        {"frontend vanished while offline",
         {S::init_wait, false, false, S::unknown},
         {EventKind::frontend_changed},
         {st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"reconfiguring is acknowledged",
         {S::connected, true, true, S::reconfiguring},
         {EventKind::frontend_changed},
         {Action{K::write_raw_state, S::reconfigured}}},
        {"reconfiguring before connect is ignored",
         {S::init_wait, false, true, S::reconfiguring},
         {EventKind::frontend_changed},
         {}},
        {"toolstack detach while connected",
         {S::connected, true, false, S::connected},
         {EventKind::toolstack_changed},
         {a(K::disconnect), st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"toolstack detach before connect",
         {S::init_wait, false, false, S::initialising},
         {EventKind::toolstack_changed},
         {st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"toolstack write while online is ignored",
         {S::connected, true, true, S::connected},
         {EventKind::toolstack_changed},
         {}},
        {"backend dir removed under us",
         {S::connected, true, true, S::connected},
         {EventKind::backend_removed},
         {a(K::disconnect), a(K::forget)}},
        {"backend dir removed while idle",
         {S::init_wait, false, true, S::initialising},
         {EventKind::backend_removed},
         {a(K::forget)}},
        {"releaseDomain releases the vif",
         {S::connected, true, true, S::connected},
         {EventKind::domain_released},
         {a(K::disconnect), st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
        {"releaseDomain of a closed vif",
         {S::closed, false, true, S::closed},
         {EventKind::domain_released},
         {a(K::remove_backend_dir), a(K::forget)}},
        {"connect failure: error node and Closing",
         {S::init_wait, false, true, S::connected},
         {EventKind::failed, Fatal{22, "mapping tx-ring-ref 9"}},
         {err(22, "mapping tx-ring-ref 9"), st(S::closing)}},
        {"failure while connected releases first",
         {S::connected, true, true, S::connected},
         {EventKind::failed, Fatal{5, "x"}},
         {a(K::disconnect), err(5, "x"), st(S::closing)}},
        {"failure while closed only reports",
         {S::closed, false, true, S::closed},
         {EventKind::failed, Fatal{5, "x"}},
         {err(5, "x")}},
        {"restart: connected frontend is reconnected",
         {S::connected, false, true, S::connected},
         {EventKind::adopted},
         {a(K::connect), st(S::connected)}},
        {"restart: waiting backend keeps waiting",
         {S::init_wait, false, true, S::initialising},
         {EventKind::adopted},
         {}},
        {"restart: frontend connected meanwhile",
         {S::init_wait, false, true, S::connected},
         {EventKind::adopted},
         {a(K::connect), st(S::connected)}},
        {"restart: never probed",
         {S::initialising, false, true, S::initialising},
         {EventKind::adopted},
         {a(K::clear_error), a(K::advertise), st(S::init_wait)}},
        {"restart: frontend went away meanwhile",
         {S::connected, false, true, S::closed},
         {EventKind::adopted},
         {st(S::closing), st(S::closed)}},
        {"frontend state outside the xenbus range: error node and Closing, as Linux netback",
         {S::init_wait, false, true, std::nullopt, 42},
         {EventKind::frontend_changed},
         {err(22, "saw state 42 at frontend"), st(S::closing)}},
        {"frontend state outside the xenbus range while connected",
         {S::connected, true, true, std::nullopt, 42},
         {EventKind::frontend_changed},
         {a(K::disconnect), err(22, "saw state 42 at frontend"), st(S::closing)}},
        {"frontend state outside the xenbus range when the dir appears",
         {S::unknown, false, true, std::nullopt, 9},
         {EventKind::backend_appeared},
         {a(K::clear_error), a(K::advertise), st(S::init_wait), err(22, "saw state 9 at frontend"),
          st(S::closing)}},
        {"a refused attach before InitWait: hotplug-status=error, never InitWait",
         {S::unknown, false, true, S::initialising},
         {EventKind::failed, Fatal{98, "MAC in use", true}},
         {a(K::write_hotplug_error), Action{K::write_error, S::unknown, Fatal{98, "MAC in use", true}},
          st(S::closing)}},
        {"a refused attach at connect: hotplug-status=error, never Connected",
         {S::init_wait, false, true, S::connected},
         {EventKind::failed, Fatal{28, "limit", true}},
         {a(K::write_hotplug_error), Action{K::write_error, S::unknown, Fatal{28, "limit", true}},
          st(S::closing)}},
        {"restart: half-finished detach",
         {S::closing, false, false, S::connected},
         {EventKind::adopted},
         {st(S::closed), a(K::remove_backend_dir), a(K::forget)}},
    };
    return rows;
}

} // namespace

TEST_CASE("vif state machine: every transition", "[control][fsm]") {
    for (const auto& row : table()) {
        INFO(row.name);
        const auto got = next(row.facts, row.event);
        INFO("got: " << show(got));
        INFO("want: " << show(row.want));
        CHECK(got == row.want);
    }
}

TEST_CASE("vif state machine: never skips Closing when leaving Connected", "[control][fsm]") {
    for (auto fe : {S::unknown, S::initialising, S::closing, S::closed}) {
        const auto got = next({S::connected, true, true, fe}, {EventKind::frontend_changed});
        INFO(show(got));
        REQUIRE(got.size() >= 2);
        CHECK(got[0] == a(K::disconnect));
        CHECK(got[1] == st(S::closing));
    }
}

TEST_CASE("vif state machine: full lifetimes replayed", "[control][fsm]") {
    VifFacts f{S::unknown, false, true, S::initialising};
    auto step = [&](EventKind k) {
        const auto acts = next(f, {k});
        f = after(f, acts);
        return acts;
    };

    SECTION("attach, connect, guest reboot, reconnect, detach") {
        step(EventKind::backend_appeared);
        CHECK(f.backend == S::init_wait);
        f.frontend = S::connected;
        step(EventKind::frontend_changed);
        CHECK(f.backend == S::connected);
        CHECK(f.connected);
        f.frontend = S::initialising;
        step(EventKind::frontend_changed);
        CHECK(f.backend == S::init_wait);
        CHECK_FALSE(f.connected);
        f.frontend = S::connected;
        step(EventKind::frontend_changed);
        CHECK(f.connected);
        f.online = false;
        const auto acts = step(EventKind::toolstack_changed);
        CHECK(f.backend == S::closed);
        CHECK_FALSE(f.connected);
        CHECK(acts.back() == a(K::forget));
    }
    SECTION("windows close cycle before the first connect") {
        step(EventKind::backend_appeared);
        for (auto fe : {S::closing, S::closed, S::initialising, S::connected}) {
            f.frontend = fe;
            step(EventKind::frontend_changed);
        }
        CHECK(f.backend == S::connected);
        CHECK(f.connected);
    }
    SECTION("a fatal connect error leaves nothing held and closes cleanly") {
        step(EventKind::backend_appeared);
        f.frontend = S::connected;
        const auto acts = next(f, {EventKind::frontend_changed});
        REQUIRE(acts.front() == a(K::connect));
        // The driver stops at the failing action and reports instead.
        f = after(f, next(f, {EventKind::failed, Fatal{12, "cannot map"}}));
        CHECK(f.backend == S::closing);
        CHECK_FALSE(f.connected);
        f.frontend = S::closed;
        step(EventKind::frontend_changed);
        CHECK(f.backend == S::closed);
    }
}
