// A stepped data plane (the dataplane tests' Rig) with one healthy netfront and one hostile
// netfront, plus what every hostile test measures: the healthy vif's frames per round, the
// attacker's responses, and a reconnect of the attacker.
#pragma once

#include <memory>
#include <vector>

#include "../../dataplane/rig.hpp"
#include "backend/xensim/hostile/attacks.hpp"
#include "backend/xensim/hostile/hostile_front.hpp"

namespace netbackd::xensim::hostile::test {

inline constexpr platform::DomId kHealthy = 41;
inline constexpr platform::DomId kAttacker = 42;
inline constexpr platform::DomId kStranger = 43;

struct Arena {
    Arena();
    ~Arena();

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

    dataplane::test::Rig rig;
    dataplane::test::Netfront healthy;
    dataplane::VifRuntime& vh;
    std::vector<std::unique_ptr<HostileFront>> fronts; // old ones stay: detached vifs map them
    dataplane::VifRuntime* va = nullptr;
    AttackEnv env;

    HostileFront& front() { return *fronts.back(); }

private:
    void connect();
    std::size_t attacker_out_ = 0;
};

} // namespace netbackd::xensim::hostile::test
