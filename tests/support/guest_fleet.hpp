// Guests of a SimWorld that pass real traffic through the netbackd process: each one a Linux-like
// netfront (control half) plus its data half (NetfrontIo) running the generator/sink, all driven
// round-robin from the test thread. Throughput is what the receiving guests actually got, so a
// measured rate covers both directions through netbackd's switch.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/traffic.hpp"

namespace netbackd::testing {

// The MAC the toolstack gives (domid, devid): 00:16:3e:<domid, 2 bytes>:<devid>.
ring::MacAddr guest_mac(platform::DomId domid, std::uint32_t devid = 0);
std::string guest_mac_text(platform::DomId domid, std::uint32_t devid = 0);
// xl network-attach of vif `devid` with guest_mac(); returns once the backend is at InitWait.
void attach_vif(SimWorld& world, platform::DomId domid, std::uint32_t devid = 0);

struct FleetGuest {
    platform::DomId domid = 0;
    std::uint32_t devid = 0;
    Guest* guest = nullptr;
    std::unique_ptr<xensim::NetfrontIo> io;
    std::unique_ptr<xensim::Traffic> traffic;
    xensim::TrafficOptions options;
    // Counters of earlier connections (a reconnect starts a fresh NetfrontIo).
    std::uint64_t rx_before = 0;
    std::uint64_t tx_before = 0;

    std::uint64_t rx_pkts() const { return rx_before + (io ? io->counters().rx_pkts : 0); }
    std::uint64_t tx_pkts() const { return tx_before + (io ? io->counters().tx_pkts : 0); }
    bool connected() const {
        return guest && guest->netfront && guest->netfront->state() == 4 && io && io->attached();
    }
};

// A receiver's frames per second of wall time, and per CPU-second spent on the data path: this
// thread (which runs every fleet guest) plus netbackd's threads other than its main (control)
// thread, i.e. the worker. On a shared two-core machine (load 6 while measured) wall-clock
// rates of one case varied 3x between runs; CPU time moves with the work done, so a bound on it
// holds on a noisy machine and still sees what an attack costs the worker. The control thread
// is left out: it answers xenstore junk on a core of its own in a real driver domain, here it
// competes with the worker and xenstored for two cores.
struct Throughput {
    double wall = 0;
    double per_cpu = 0;
};

// CPU time of the threads of `pid` so far (/proc/<pid>/task/*/schedstat), all or all but the
// main thread.
std::chrono::nanoseconds process_cpu_time(pid_t pid, bool except_main = false);
std::chrono::nanoseconds this_thread_cpu_time();

class GuestFleet {
public:
    explicit GuestFleet(SimWorld& world) : world_(world) {}

    // Attaches a vif (as xl network-attach) and starts its netfront; `dst`: where its generator
    // sends (nullopt: sink only). Returns once both ends are Connected.
    FleetGuest& add(platform::DomId domid, std::uint32_t devid, std::optional<ring::MacAddr> dst,
                    std::size_t frame_size = 256);
    // As add(), for a vif the toolstack already attached, without waiting for Connected.
    FleetGuest& join(platform::DomId domid, std::uint32_t devid, std::optional<ring::MacAddr> dst,
                     std::size_t frame_size = 256);
    // Follows every guest's netfront until all are connected; false after `timeout`.
    bool settle(std::chrono::milliseconds timeout);
    // Restarts a guest's netfront after its vif was re-attached or its domain re-created.
    void restart(FleetGuest& g);
    // Forgets a guest whose domain is gone (its Guest object must not be used any more).
    void drop(FleetGuest& g);

    // Moves everyone's traffic for `span`.
    void pump(std::chrono::milliseconds span);
    // Moves everyone's traffic until each receiver got `frames` more frames, or `cap` passed (a
    // liveness bound, not a measure: on a busy host it only takes longer). Returns the fewest
    // frames any receiver got: progress is counted in frames, never in time.
    std::uint64_t pump_until_received(const std::vector<const FleetGuest*>& receivers, std::uint64_t frames,
                                      std::chrono::seconds cap = std::chrono::seconds(120));
    // Frames per second `receiver` got during `window` (everyone's traffic runs meanwhile).
    double rate(const FleetGuest& receiver, std::chrono::milliseconds window);
    // Best of `n` windows: noise on a shared machine only ever lowers a rate.
    double best_rate(const FleetGuest& receiver, std::chrono::milliseconds window, int n);
    Throughput measure(const FleetGuest& receiver, std::chrono::milliseconds window);
    // The same over several receivers together (their frames summed).
    Throughput measure(const std::vector<const FleetGuest*>& receivers, std::chrono::milliseconds window);
    // Guests take what arrived and reap TX answers, but send nothing new: in-flight frames land.
    void receive_only(std::chrono::milliseconds span);
    // Each figure the best of `n` windows.
    Throughput best(const FleetGuest& receiver, std::chrono::milliseconds window, int n);
    Throughput best(const std::vector<const FleetGuest*>& receivers, std::chrono::milliseconds window, int n);
    // netbackd's pid for the CPU figures (default: the SimWorld's own netbackd).
    void set_backend_pid(pid_t pid) { backend_pid_ = pid; }

    std::vector<std::unique_ptr<FleetGuest>>& guests() { return guests_; }

private:
    void follow(FleetGuest& g);
    SimWorld& world_;
    std::vector<std::unique_ptr<FleetGuest>> guests_;
    std::chrono::steady_clock::time_point next_watch_{};
    pid_t backend_pid_ = -1;
};

} // namespace netbackd::testing
