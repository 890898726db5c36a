// Waits for a condition that other threads or processes bring about. A deadlock guard, not a
// speed check: the bound is generous so that a loaded machine only makes a test slower.
#pragma once

#include <chrono>
#include <thread>

namespace netbackd::testing {

template <class F>
bool eventually(F&& done, std::chrono::milliseconds bound = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < end) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
}

} // namespace netbackd::testing
