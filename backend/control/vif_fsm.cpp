#include "backend/control/vif_fsm.hpp"

#include <cerrno>

#include <fmt/format.h>

namespace netbackd::control {
namespace {

using S = XenbusState;

Action act(ActionKind kind) { return Action{kind}; }
Action state(S s) { return Action{ActionKind::write_state, s}; }

// Moves one step from `from` towards `to`, appending the actions of that step; returns the
// state reached. `held` is whether data-plane resources are held (they may not be, in
// state Connected, right after a restart).
S step(S from, S to, bool& held, std::vector<Action>& out) {
    auto advertise = [&] {
        out.push_back(act(ActionKind::advertise));
        out.push_back(state(S::init_wait));
        return S::init_wait;
    };
    switch (from) {
    case S::unknown:
    case S::initialising:
        if (to == S::closed) {
            out.push_back(state(S::closed));
            return S::closed;
        }
        return advertise();
    case S::closed:
        if (to == S::closing) {
            out.push_back(state(S::closing));
            return S::closing;
        }
        return advertise();
    case S::init_wait:
        if (to == S::connected) {
            out.push_back(act(ActionKind::connect));
            out.push_back(state(S::connected));
            held = true;
            return S::connected;
        }
        out.push_back(state(S::closing));
        return S::closing;
    case S::connected:
        if (to == S::connected) { // state 4 in the store but nothing held: a restart
            out.push_back(act(ActionKind::connect));
            out.push_back(state(S::connected));
            held = true;
            return S::connected;
        }
        if (held) out.push_back(act(ActionKind::disconnect));
        held = false;
        out.push_back(state(S::closing));
        return S::closing;
    case S::closing:
    default: // a backend never rests in 3, 7 or 8; leave through Closed
        out.push_back(state(S::closed));
        return S::closed;
    }
}

void walk(S from, S to, bool held, std::vector<Action>& out) {
    // Bounded: the longest path (Connected -> Closing -> Closed -> InitWait -> Connected) is 4.
    for (int i = 0; i < 8; ++i) {
        if (from == to && (to != S::connected || held)) return;
        from = step(from, to, held, out);
    }
}

void detach(const VifFacts& f, std::vector<Action>& out) {
    if (f.connected) out.push_back(act(ActionKind::disconnect));
    if (f.backend != S::closed) out.push_back(state(S::closed));
    out.push_back(act(ActionKind::remove_backend_dir));
    out.push_back(act(ActionKind::forget));
}

// xenbus_dev_fatal(): the error node, then Closing; nothing stays mapped or bound.
void fail(const VifFacts& f, const Fatal& why, std::vector<Action>& out) {
    if (f.connected) out.push_back(act(ActionKind::disconnect));
    if (why.refused) out.push_back(act(ActionKind::write_hotplug_error));
    out.push_back(Action{ActionKind::write_error, S::unknown, why});
    if (f.backend != S::closing && f.backend != S::closed) out.push_back(state(S::closing));
}

void follow_frontend(const VifFacts& f, std::vector<Action>& out) {
    if (f.frontend_out_of_range) {
        // As Linux netback's frontend_changed() answers a state it does not know.
        fail(f, Fatal{EINVAL, fmt::format("saw state {} at frontend", *f.frontend_out_of_range)}, out);
        return;
    }
    const S fe = f.frontend.value_or(S::unknown);
    switch (fe) {
    case S::initialising: walk(f.backend, S::init_wait, f.connected, out); return;
    case S::init_wait: // frontends never write it; nothing to follow
    case S::reconfigured: return;
    case S::initialised:
    case S::connected: walk(f.backend, S::connected, f.connected, out); return;
    case S::closing: walk(f.backend, S::closing, f.connected, out); return;
    case S::reconfiguring:
        // Nothing to re-read (no XDP headroom support); acknowledge so the frontend proceeds.
        if (f.backend == S::connected) out.push_back(Action{ActionKind::write_raw_state, S::reconfigured});
        return;
    case S::closed:
    case S::unknown:
        if (!f.online) {
            detach(f, out);
            return;
        }
        walk(f.backend, S::closed, f.connected, out);
        return;
    }
}

// Right after probing, a missing F/state is more likely a toolstack still writing than a
// frontend gone; only a frontend change event may close the vif for that.
void follow_known_frontend(const VifFacts& f, std::vector<Action>& out) {
    if (f.frontend_out_of_range || (f.frontend && *f.frontend != S::unknown)) follow_frontend(f, out);
}

} // namespace

std::vector<Action> next(const VifFacts& f, const VifEvent& ev) {
    std::vector<Action> out;
    switch (ev.kind) {
    case EventKind::adopted:
        if (!f.online) {
            detach(f, out);
            break;
        }
        if (f.backend == S::unknown || f.backend == S::initialising) {
            out.push_back(act(ActionKind::clear_error));
            walk(f.backend, S::init_wait, false, out);
            follow_known_frontend(after(f, out), out);
            break;
        }
        follow_known_frontend(f, out);
        break;
    case EventKind::backend_appeared:
        if (!f.online) {
            detach(f, out);
            break;
        }
        out.push_back(act(ActionKind::clear_error));
        walk(S::initialising, S::init_wait, false, out);
        follow_known_frontend(after(f, out), out);
        break;
    case EventKind::frontend_changed: follow_frontend(f, out); break;
    case EventKind::toolstack_changed:
        if (!f.online) detach(f, out);
        break;
    case EventKind::backend_removed:
        if (f.connected) out.push_back(act(ActionKind::disconnect));
        out.push_back(act(ActionKind::forget));
        break;
    case EventKind::domain_released: detach(f, out); break;
    case EventKind::failed: fail(f, ev.error, out); break;
    }
    return out;
}

VifFacts after(VifFacts f, std::span<const Action> actions) {
    for (const auto& a : actions) {
        switch (a.kind) {
        case ActionKind::connect: f.connected = true; break;
        case ActionKind::disconnect: f.connected = false; break;
        case ActionKind::write_state: f.backend = a.state; break;
        default: break;
        }
    }
    return f;
}

std::string to_string(const Action& a) {
    switch (a.kind) {
    case ActionKind::advertise: return "advertise";
    case ActionKind::connect: return "connect";
    case ActionKind::disconnect: return "disconnect";
    case ActionKind::write_state: return fmt::format("state={}", to_int(a.state));
    case ActionKind::write_raw_state: return fmt::format("raw-state={}", to_int(a.state));
    case ActionKind::write_error: return fmt::format("error=\"{} {}\"", a.error.err, a.error.message);
    case ActionKind::write_hotplug_error: return "hotplug-status=error";
    case ActionKind::clear_error: return "clear-error";
    case ActionKind::remove_backend_dir: return "remove-dir";
    case ActionKind::forget: return "forget";
    }
    return "?";
}

} // namespace netbackd::control
