// A stepped data plane (the dataplane tests' Rig) with one healthy netfront and one hostile
// netfront, plus what every hostile test counts: the healthy vif's frames per poll round, the
// attacker's responses, and a reconnect of the attacker.
#pragma once

#include <memory>
#include <vector>

#include "tests/support/stepped_worker.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/hostile/hostile_front.hpp"

namespace netbackd::xensim::hostile::test {

inline constexpr platform::DomId kHealthy = 41;
inline constexpr platform::DomId kAttacker = 42;
inline constexpr platform::DomId kStranger = 43;
inline constexpr std::size_t kHealthyBurst = 32;

// What the healthy guest got done in one poll round of the worker: what it posted and how many
// of those frames reached the wire in that round. Counted in the worker's rounds, not in time,
// so that a busy host (other processes on the same cores) cannot move it.
struct Round {
    std::size_t posted = 0;
    std::size_t delivered = 0;
};

struct Arena {
    Arena();
    ~Arena();

    // One round of the healthy guest at full speed: a burst of kHealthyBurst frames (a worker's
    // whole per-queue TX budget) posted, the worker polled once, the healthy frames that left
    // counted (and the attacker's into attacker_frames_out()). rx_attack: frames for the
    // attacker keep arriving from the wire as well.
    Round healthy_step(bool rx_attack);

    // The healthy guest sends a burst to the wire; returns how many of its frames left.
    std::size_t healthy_round();
    // Frames for the attacker arrive from the wire.
    void inject_for_attacker(std::size_t n);
    // The attacker's TX responses so far (its own view of the ring).
    std::vector<netif_tx_response_t> attacker_tx_responses();
    std::vector<netif_rx_response_t> attacker_rx_responses();
    // Frames from the attacker's MAC that reached the wire since the last healthy_round().
    std::size_t attacker_frames_out() const { return attacker_out_; }
    // Detach, as the control plane does on Closing, and connect with fresh rings.
    void reconnect();

    // Set: every attacker frame that reaches the wire is kept here, bytes as sent.
    bool keep_attacker_frames = false;
    std::vector<std::vector<std::byte>> attacker_frames;

    dataplane::test::Rig rig;
    dataplane::test::Netfront healthy;
    dataplane::VifRuntime& vh;
    std::vector<std::unique_ptr<HostileFront>> fronts; // old ones stay: detached vifs map them
    dataplane::VifRuntime* va = nullptr;
    AttackEnv env;

    HostileFront& front() { return *fronts.back(); }

private:
    void connect();
    std::size_t count_out(); // healthy frames that left; attacker's go to attacker_out_
    std::size_t attacker_out_ = 0;
    platform::GrantRef healthy_page_ = 0;
    std::size_t healthy_size_ = 0;
    std::uint16_t healthy_id_ = 0;
};

} // namespace netbackd::xensim::hostile::test
