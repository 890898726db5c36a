// Charging a simulated hypercall's cost: the calling thread busy-waits, as a vCPU inside Xen
// is busy and not running guest code. Spinning (not sleeping) keeps the cost on the caller's
// core and exact down to tens of nanoseconds; steady_clock reads the TSC through the vDSO.
// What is charged is time on the CPU: a gap between two clock reads longer than any spin step
// means this thread was preempted (a shared machine), and does not count, so a loaded machine
// does not inflate the modelled cost.
#pragma once

#include <chrono>
#include <cstddef>

#include "backend/platform/sim/protocol.hpp"

namespace netbackd::xensim {

inline void spin_for(std::chrono::nanoseconds d) noexcept {
    constexpr auto kPreempted = std::chrono::microseconds(5);
    auto last = std::chrono::steady_clock::now();
    while (d.count() > 0) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        const auto now = std::chrono::steady_clock::now();
        const auto step = now - last;
        last = now;
        if (step < kPreempted) d -= std::chrono::duration_cast<std::chrono::nanoseconds>(step);
    }
}

// Linux's gntdev (IOCTL_GNTDEV_GRANT_COPY, what libxengnttab's grant copy goes through on Xen)
// issues one GNTTABOP_copy hypercall per 16 segments and pins each local page per segment, so
// a batch of n segments costs ceil(n / 16) hypercalls; the pin is part of the per-segment term.
inline constexpr std::size_t kGntdevSegmentsPerHypercall = 16;

inline std::size_t gntdev_hypercalls(std::size_t segments) noexcept {
    return (segments + kGntdevSegmentsPerHypercall - 1) / kGntdevSegmentsPerHypercall;
}

// One grant-copy call of `segments` segments, as the gntdev path on Xen charges it.
inline std::chrono::nanoseconds grant_copy_cost(const wire::CostModel& c, std::size_t segments) noexcept {
    return std::chrono::nanoseconds(std::uint64_t{c.grant_copy_batch_ns} * gntdev_hypercalls(segments) +
                                    std::uint64_t{c.grant_copy_segment_ns} * segments);
}

} // namespace netbackd::xensim
