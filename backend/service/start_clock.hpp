// Where a start of `netbackd run` spends its time (issue 19: a restart is an outage for every
// guest). Each step logs one line, `start: <step> +N ms (M ms since exec)`, so an operator or a
// test can read from the log which part of a restart was slow; `ready` logs the total.
//
// Time since exec comes from the kernel's start time of the process (/proc/self/stat, in clock
// ticks, so 10 ms coarse): it includes loading DPDK's libraries before main().
#pragma once

#include <chrono>
#include <string_view>

namespace netbackd::service {

class StartClock {
public:
    StartClock();
    // Logs the step that just ended: its own duration and the time since exec.
    void mark(std::string_view step);
    // Milliseconds since exec (coarse, see above).
    double since_exec_ms() const;

private:
    std::chrono::steady_clock::time_point last_;
    double exec_offset_ms_ = 0; // from exec to this object's construction
    std::chrono::steady_clock::time_point made_;
};

} // namespace netbackd::service
