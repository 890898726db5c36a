#include "backend/service/start_clock.hpp"

#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <unistd.h>

#include <spdlog/spdlog.h>

namespace netbackd::service {
namespace {

// Milliseconds from the process's start (field 22 of /proc/self/stat, clock ticks since boot)
// to now on CLOCK_BOOTTIME, the clock that field counts on; 0 when unreadable.
double ms_since_process_start() {
    std::ifstream in("/proc/self/stat");
    const std::string stat{std::istreambuf_iterator<char>(in), {}};
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    unsigned long long start_ticks = 0;
    for (int i = 3; i <= 22 && fields >> field; ++i)
        if (i == 22) start_ticks = std::stoull(field);
    const long hz = sysconf(_SC_CLK_TCK);
    timespec now{};
    if (start_ticks == 0 || hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
    const double now_ms = double(now.tv_sec) * 1e3 + double(now.tv_nsec) / 1e6;
    const double start_ms = double(start_ticks) * 1e3 / double(hz);
    return now_ms > start_ms ? now_ms - start_ms : 0;
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

} // namespace

StartClock::StartClock()
    : last_(std::chrono::steady_clock::now()), exec_offset_ms_(ms_since_process_start()), made_(last_) {}

double StartClock::since_exec_ms() const {
    return exec_offset_ms_ + ms_between(made_, std::chrono::steady_clock::now());
}

void StartClock::mark(std::string_view step) {
    const auto now = std::chrono::steady_clock::now();
    spdlog::info("start: {} +{:.0f} ms ({:.0f} ms since exec)", step, ms_between(last_, now),
                 exec_offset_ms_ + ms_between(made_, now));
    last_ = now;
}

} // namespace netbackd::service
