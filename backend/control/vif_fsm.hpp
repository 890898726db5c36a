// The per-vif xenbus state machine as a pure function: facts + event in, actions out.
// No I/O happens here, so every transition is a table-driven test; VifControl applies the
// actions through the platform seam and feeds failures back in as `failed` events.
//
// The backend walks between states the way Linux xen-netback's set_backend_state() does
// (never skipping a state the frontend may be waiting to see), so Linux netfront, Windows PV
// drivers and libxl observe the same sequence of backend states they see with xen-netback.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/control/xenbus_state.hpp"

namespace netbackd::control {

// What VifControl knows when an event arrives. It refreshes `frontend` and `online` from the
// store before calling next(), and updates `backend`/`connected` as actions succeed (after()).
struct VifFacts {
    // The state this backend last wrote, or the stored B/state after a netbackd restart.
    XenbusState backend = XenbusState::unknown;
    // Rings mapped, channels bound and the vif handed to the data plane.
    bool connected = false;
    // B/online: 0 means the toolstack wants the device gone, not merely disconnected.
    bool online = true;
    // F/state; std::nullopt when the node is missing or unparsable.
    std::optional<XenbusState> frontend;
    // F/state when it holds a number outside the xenbus range (e.g. 42); `frontend` is then
    // std::nullopt. Linux netback's frontend_changed() fails the device for it.
    std::optional<std::uint64_t> frontend_out_of_range = std::nullopt;
};

enum class EventKind {
    backend_appeared,  // a new backend dir (toolstack wrote state=1)
    adopted,           // a backend dir found at start-up, left by a previous netbackd
    frontend_changed,  // F/state holds a value different from the last one seen
    toolstack_changed, // B/online or B/state written by someone other than us
    backend_removed,   // the backend dir is gone
    domain_released,   // the frontend domain no longer exists
    failed,            // an action failed; the vif must not stay half-connected
};

// A reason in xenbus_dev_fatal()'s terms: a positive errno and a message.
struct Fatal {
    int err = 0;
    std::string message;
    // The attach itself is refused (a MAC in use, an unknown uplink, the vif limit, a failing
    // client script): hotplug-status=error too, as a failing vif script writes.
    bool refused = false;
    bool operator==(const Fatal&) const = default;
};

struct VifEvent {
    EventKind kind;
    Fatal error{}; // only for EventKind::failed
};

enum class ActionKind {
    advertise,           // write feature-* keys in one transaction
    connect,             // read F keys, map rings, bind channels, hand over, hotplug-status
    disconnect,          // take back from the data plane, unmap, unbind
    write_state,         // B/state := state (and remember it)
    write_raw_state,     // B/state := state without changing facts (Reconfigured handshake)
    write_error,         // error/backend/vif/<fe>/<devid>/error := "<errno> <message>"
    write_hotplug_error, // B/hotplug-status := "error" (a refused attach)
    clear_error,
    remove_backend_dir, // what libxl's detach waits for
    forget,             // drop the VifControl; nothing of this vif remains
};

struct Action {
    ActionKind kind;
    XenbusState state = XenbusState::unknown; // write_state, write_raw_state
    Fatal error{};                            // write_error
    bool operator==(const Action&) const = default;
};

std::vector<Action> next(const VifFacts& facts, const VifEvent& event);

// The facts after all of `actions` succeeded (a driver applies them one at a time instead).
VifFacts after(VifFacts facts, std::span<const Action> actions);

std::string to_string(const Action& action);

} // namespace netbackd::control
