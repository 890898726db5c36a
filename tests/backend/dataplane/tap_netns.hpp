// Tests that put a real net_tap uplink in front of the kernel: a private network namespace to
// do it in, the kernel side of the tap brought up, and a packet socket on it.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "backend/platform/fd.hpp"

namespace netbackd::dataplane::test {

inline constexpr int kSkip = 77; // SKIP_RETURN_CODE, set in tests/backend/dataplane/CMakeLists.txt

// Moves this process into a new network namespace; exits kSkip where that or /dev/net/tun is
// not available.
void enter_private_netns();
// The kernel side of the tap: up, and quiet (no IPv6 autoconfiguration chatter that would wake
// a worker or land among the frames a test counts).
void prepare_kernel_side(const std::string& ifname);
// An AF_PACKET socket bound to the interface, to send frames into the tap; with `receive`, it
// also gets every frame the kernel receives from the tap.
platform::Fd kernel_socket(const std::string& ifname, bool receive = false);

// Polls `done` every millisecond until it holds or `bound` has passed; its last answer.
template <class F>
bool within(std::chrono::milliseconds bound, F&& done) {
    const auto end = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < end) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

} // namespace netbackd::dataplane::test
