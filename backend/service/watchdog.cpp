#include "backend/service/watchdog.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace netbackd::service {

std::optional<std::chrono::microseconds> Watchdog::interval_from_environment() {
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) names this process.
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(std::max<std::uint64_t>(usec / 2, 1));
}

Watchdog::Watchdog(dataplane::DataPlane& dp, std::chrono::microseconds interval)
    : dp_(dp), interval_(interval), last_(dp.worker_count(), 0) {}

void Watchdog::tick(Clock::time_point now) {
    if (now < next_) return;
    next_ = now + interval_;
    ++checks_;
    std::vector<std::size_t> stuck;
    for (std::size_t i = 0; i < last_.size(); ++i) {
        const std::uint64_t beat = dp_.worker_heartbeat(i);
        if (have_last_ && beat == last_[i]) stuck.push_back(i);
        last_[i] = beat;
    }
    have_last_ = true;
    // An idle worker sleeps without a timer: make it iterate once before the next check.
    for (std::size_t i = 0; i < last_.size(); ++i) dp_.poke_worker(i);

    if (!stuck.empty()) {
        if (stuck != wedged_) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count();
            spdlog::error("data-plane worker(s) {} made no progress in {} ms although woken; "
                          "no longer pinging the systemd watchdog",
                          fmt::join(stuck, ", "), ms);
            sd_notifyf(0, "STATUS=data-plane worker(s) %s wedged",
                       fmt::format("{}", fmt::join(stuck, ",")).c_str());
        }
        wedged_ = std::move(stuck);
        return;
    }
    if (!wedged_.empty()) {
        spdlog::warn("data-plane worker(s) {} answer again; pinging the systemd watchdog",
                     fmt::join(wedged_, ", "));
        sd_notify(0, "STATUS=serving");
        wedged_.clear();
    }
    sd_notify(0, "WATCHDOG=1");
    ++pings_;
}

} // namespace netbackd::service
