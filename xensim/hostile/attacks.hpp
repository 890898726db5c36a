// The hostile netfront's attack scripts, each selectable by name. An attack only writes what the
// guest controls (its rings, grants, event channel); the expectation says how Linux netback
// answers the same guest, so a test or the CLI can check the backend against it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "ring/tx_packet.hpp"
#include "xensim/hostile/hostile_front.hpp"

namespace netbackd::xensim::hostile {

enum class Verdict : std::uint8_t {
    errors,   // the bad packets are answered NETIF_RSP_ERROR (RX: negative status), the vif runs on
    disabled, // the vif is disabled with its `error` node written; a reconnect recovers it
    survives, // only the guest itself can lose: the vif runs on, nothing else notices
};

enum class Direction : std::uint8_t { tx, rx };

struct AttackEnv {
    ring::MacAddr own_mac{};
    ring::MacAddr peer_mac{};
    // A domain other than the backend, for grants aimed elsewhere.
    DomId stranger = 0;
    // How long thread attacks (double_fetch, evtchn_storm, malformed_refill) run at least.
    std::chrono::milliseconds duration{2000};
    // evtchn_storm goes on past `duration` until it sent this many notifies (or `storm_cap`
    // passed): a storm is counted in notifies, not seconds, so a slow machine still gets one.
    std::uint64_t storm_notifies = 0;
    std::chrono::milliseconds storm_cap{120000};
    // Thread attacks also go on until this says so (empty: no condition of the caller's).
    std::function<bool()> finished;
    // Where evtchn_storm counts the notifies it sent (optional).
    std::atomic<std::uint64_t>* notified = nullptr;
    // Thread attacks that reap their TX responses report each here (on the attacker's thread).
    std::function<void(const netif_tx_response_t&)> on_tx_response;
    // Called over and over while a thread attack runs: a stepped backend polls here, a live
    // one just lets time pass. Empty: sleep.
    std::function<void()> during;
};

struct Attack {
    std::string_view name;
    std::string_view what;
    Direction direction;
    Verdict expect;
    // For Verdict::disabled: the text the fault (and so the `error` node) must contain; empty:
    // any fault.
    std::string_view fault;
    void (*run)(HostileFront&, const AttackEnv&);
};

std::span<const Attack> attacks();
const Attack* find_attack(std::string_view name);

// double_fetch posts requests for the page holding this frame (at offset 0) and rewrites each
// posted slot's id and size, one 32-bit word, among id 1 (size double_fetch_sizes()[1]), id 2
// (size [2], the whole frame) and id 3 (size 0: dropped). A backend that copies each request
// once answers OKAY only ids 1 and 2, and for each OKAY id i sends the frame's first sizes[i]
// bytes; anything else (another length per id, OKAY for id 3) shows a field read twice.
std::vector<std::byte> double_fetch_frame(const AttackEnv& env);
std::array<std::uint16_t, 4> double_fetch_sizes();

// Well-formed traffic from the guest: n frames of `payload` bytes, one slot each, pushed.
void send_frames(HostileFront& front, const AttackEnv& env, std::size_t n, std::size_t payload = 100);

} // namespace netbackd::xensim::hostile
