// Generator/sink mode of the simulated netfront, for benchmarks: fixed-size frames sent as fast
// as the rings take them from pre-built, pre-granted buffers, and whatever comes back counted.
// Per batch: one push, and one kick only when the backend asked; per packet: no syscall, no
// allocation, no copy (frames up to a page; bigger ones are copied into the pages per send).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/udp_frame.hpp"

namespace netbackd::xensim {

struct TrafficOptions {
    bool generate = false;
    UdpFrameSpec frame;        // src MAC: the vif's
    std::uint64_t count = 0;   // frames to send; 0: no limit
    bool csum_offload = false; // CHECKSUM_PARTIAL frames (csum_blank|data_validated) if offered
    std::size_t batch = 64;    // frames per push
    bool sink = false;         // keep receiving after the generator finished (run_for runs on)
    // Never sleep, and so never re-arm rsp_event: the backend, seeing no request for an event,
    // sends none. This is how a polling guest driver runs (DPDK's virtio-user sets
    // VRING_AVAIL_F_NO_INTERRUPT the same way), and the fair match for the vhost-user peer.
    bool poll = false;
    // Frames per second the generator sends at most, evenly spaced (0: as fast as the ring
    // takes them). A generator held back by a full ring catches up by at most one batch, so a
    // stall does not turn into a burst.
    double pps = 0;
};

struct TrafficStats {
    std::uint64_t tx_pkts = 0;
    std::uint64_t tx_bytes = 0;
    std::uint64_t rx_pkts = 0;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_errors = 0;
    // Where the frontend's time went, in rounds: a generator that often finds its ring full is
    // waiting for the backend; a sink that often finds nothing is starved by it.
    std::uint64_t steps = 0;
    std::uint64_t tx_full_steps = 0;  // the generator wanted to send and had no slot
    std::uint64_t rx_empty_steps = 0; // nothing arrived
    double seconds = 0;
};

class Traffic {
public:
    // Throws std::invalid_argument for a frame size the generator cannot build.
    Traffic(NetfrontIo& io, TrafficOptions options);

    // Call after every (re)attach of the NetfrontIo: stamps the frame into the new buffers.
    // Without the backend's csum offload the frame gets its full checksum (as Linux computes
    // it in software then). Returns an explanation when the backend cannot take the frame at
    // all (bigger than a page and no feature-sg); the generator then sends nothing.
    std::optional<std::string> on_attach();
    // Moves traffic until `budget` passed, or the generator finished its count (all answered)
    // unless this is also a sink.
    void run_for(std::chrono::nanoseconds budget);
    // The generator sent its whole count and every frame was answered.
    bool finished() const noexcept;

    std::uint64_t queued() const noexcept { return queued_; }
    TrafficStats stats() const noexcept;
    std::span<const std::byte> frame() const noexcept { return frame_; }

private:
    using Clock = std::chrono::steady_clock;

    // The generator has frames left to send (its count, if any, not reached).
    bool generating() const noexcept {
        return opt_.generate && !blocked_ && (opt_.count == 0 || queued_ < opt_.count);
    }
    bool want_more() const noexcept { return generating() && queued_ < allowed_; }
    std::chrono::duration<double> frame_gap() const noexcept {
        return std::chrono::duration<double>(1.0 / opt_.pps);
    }
    // How many frames the pace allows by `now` (all when unpaced); starts the pace's clock.
    std::uint64_t frames_due(Clock::time_point now) noexcept;
    // When the pace allows the next frame; nullopt when unpaced or the generator is done.
    std::optional<Clock::time_point> next_due() const noexcept;
    bool step() noexcept;

    NetfrontIo& io_;
    TrafficOptions opt_;
    std::vector<std::byte> frame_;
    ring::TxFrontFlags flags_{};
    std::uint64_t queued_ = 0;
    std::uint64_t steps_ = 0, tx_full_steps_ = 0, rx_empty_steps_ = 0;
    bool blocked_ = false;
    std::uint64_t allowed_ = UINT64_MAX;         // frames_due() at this step
    std::optional<Clock::time_point> pace_from_; // when frame 0 was due
    std::chrono::steady_clock::duration ran_{};
};

// The line bench/ parses: {"tx_pkts":..,"tx_bytes":..,"rx_pkts":..,"rx_bytes":..,"tx_errors":..,
// "steps":..,"tx_full_steps":..,"rx_empty_steps":..,"seconds":..}
std::string to_json(const TrafficStats& s);

} // namespace netbackd::xensim
