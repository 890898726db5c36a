// systemd's watchdog (WatchdogSec= in the unit), pinged from the control thread only while the
// data plane answers: a wedged worker (stuck in a grant copy, a PMD, a livelock) gets the
// service restarted instead of a control thread that keeps pinging over a dead fast path.
//
// Each check (every half of WATCHDOG_USEC) compares every worker's loop count with the
// previous check's, then wakes every worker so an idle one iterates once before the next
// check. A worker whose count did not move across a whole interval, in which it was woken,
// is wedged: no WATCHDOG=1 until it moves again, and one error line naming it.
//
// Threads: control thread only; it reads the workers' counters (relaxed atomics) and writes
// their wake-up eventfds, nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "backend/dataplane/dataplane.hpp"

namespace netbackd::service {

class Watchdog {
public:
    using Clock = std::chrono::steady_clock;

    // Half of WATCHDOG_USEC when systemd asks this process for pings (sd_watchdog_enabled);
    // nullopt otherwise.
    static std::optional<std::chrono::microseconds> interval_from_environment();

    Watchdog(dataplane::DataPlane& dp, std::chrono::microseconds interval);

    // Called from the service loop, by next() at the latest; checks once per interval.
    void tick(Clock::time_point now);
    Clock::time_point next() const noexcept { return next_; }

    std::chrono::microseconds interval() const noexcept { return interval_; }
    // The workers found wedged at the last check (empty: all answered).
    const std::vector<std::size_t>& wedged() const noexcept { return wedged_; }
    // Worker i's loop count at the last check.
    std::uint64_t seen(std::size_t i) const noexcept { return last_[i]; }
    // WATCHDOG=1 messages sent so far.
    std::uint64_t pings() const noexcept { return pings_; }
    // Checks done so far.
    std::uint64_t checks() const noexcept { return checks_; }

private:
    dataplane::DataPlane& dp_;
    std::chrono::microseconds interval_;
    Clock::time_point next_{};
    std::vector<std::uint64_t> last_;
    bool have_last_ = false;
    std::vector<std::size_t> wedged_;
    std::uint64_t pings_ = 0;
    std::uint64_t checks_ = 0;
};

} // namespace netbackd::service
