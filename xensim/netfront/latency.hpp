// Latency mode of the simulated netfront, for benchmarks: one frame in flight between two vifs
// of the same guest. Vif A sends to vif B through the backend, B sends it straight back, and A
// times the round trip: two passes through the backend, as a ping through a switch makes.
// Both ends busy-poll and ask for no events (like a polling driver), so the figure is the
// backend's forwarding latency plus the ring handoffs, not a scheduler's wake-up time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/udp_frame.hpp"

namespace netbackd::xensim {

struct LatencyStats {
    std::uint64_t rounds = 0;
    std::uint64_t lost = 0; // no answer within the loss timeout
    double p50_us = 0;
    double p99_us = 0;
    double p999_us = 0;
    double min_us = 0;
    double max_us = 0;
};

// p in [0, 1] over already sorted samples (nearest rank).
double percentile_us(const std::vector<std::uint32_t>& sorted_ns, double p) noexcept;

class PingPong {
public:
    // Throws std::invalid_argument for a frame size the generator cannot build or that needs
    // more than one page.
    PingPong(NetfrontIo& a, NetfrontIo& b, MacAddr mac_a, MacAddr mac_b, std::size_t size);

    // Call after every (re)attach of either side: stamps each side's frame into its buffers.
    void on_attach();
    // Round trips until `budget` passed.
    void run_for(std::chrono::nanoseconds budget);
    LatencyStats stats() const;
    // Forgets what was measured (after a warm-up: the backend may still be attaching the vifs).
    void reset() noexcept {
        samples_ns_.clear();
        lost_ = 0;
    }

private:
    // Sends one stamped frame from `from`; false when the ring stays full past the deadline.
    bool send(NetfrontIo& from, std::chrono::steady_clock::time_point deadline) noexcept;
    // Spins until `on` receives a frame; false on the deadline.
    bool receive(NetfrontIo& on, std::chrono::steady_clock::time_point deadline) noexcept;

    NetfrontIo& a_;
    NetfrontIo& b_;
    std::vector<std::byte> frame_ab_;
    std::vector<std::byte> frame_ba_;
    std::vector<std::uint32_t> samples_ns_;
    std::uint64_t lost_ = 0;
};

// {"rounds":..,"lost":..,"p50_us":..,"p99_us":..,"p999_us":..,"min_us":..,"max_us":..}
std::string to_json(const LatencyStats& s);

} // namespace netbackd::xensim
