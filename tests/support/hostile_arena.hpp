// A stepped data plane (the dataplane tests' Rig) with one healthy netfront and one hostile
// netfront, plus what every hostile test measures: the healthy vif's frames per round, the
// attacker's responses, and a reconnect of the attacker.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "tests/support/stepped_worker.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/hostile/hostile_front.hpp"

namespace netbackd::xensim::hostile::test {

inline constexpr platform::DomId kHealthy = 41;
inline constexpr platform::DomId kAttacker = 42;
inline constexpr platform::DomId kStranger = 43;

// The healthy vif's throughput, from one reused pre-granted page (so that measuring costs the
// guest nothing per frame), in slices: rates[i] is slice i's frames per second of this thread's
// CPU time. The stepped worker runs on this thread, so CPU time is the backend's (plus the
// healthy guest's) and other processes on a shared machine cannot move the figure; wall time
// here varied 3x between runs of the same case.
struct Meter {
    std::chrono::nanoseconds slice{std::chrono::milliseconds(150)};
    std::vector<double> rates;
    std::size_t frames = 0; // in the current slice
    std::chrono::nanoseconds slice_start{-1};
    std::chrono::nanoseconds now{0}; // CPU time at the last step (one clock read per step)
    double median() const;
};

std::chrono::nanoseconds thread_cpu_time();

struct Arena {
    Arena();
    ~Arena();

    // One step of the healthy guest at full speed: a burst to the wire, the worker polled, the
    // frames that left counted into `m` (and the attacker's into attacker_frames_out()).
    // rx_attack: frames for the attacker keep arriving from the wire as well.
    void healthy_step(Meter& m, bool rx_attack);

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
    std::size_t count_out(); // healthy frames that left; attacker's go to attacker_out_
    std::size_t attacker_out_ = 0;
    platform::GrantRef healthy_page_ = 0;
    std::size_t healthy_size_ = 0;
    std::uint16_t healthy_id_ = 0;
};

} // namespace netbackd::xensim::hostile::test
