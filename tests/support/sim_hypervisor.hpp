// Test world: a simulated hypervisor in a child process, in a private temp dir, plus helpers
// to run code in further child processes ("domains"). Children never return into Catch2.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <sys/types.h>

namespace netbackd::xensim::testing {

class HvHost {
public:
    HvHost();
    ~HvHost();
    HvHost(const HvHost&) = delete;
    HvHost& operator=(const HvHost&) = delete;
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    pid_t pid_ = -1;
};

// Runs body in a forked child; its return value (or 99 on exception) is the exit status.
pid_t spawn(const std::function<int()>& body);
// Exit status of a spawned child (-1 if it died by a signal).
int join(pid_t pid);

// A pipe to pass small integers between test processes.
class Channel {
public:
    Channel();
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    void send(std::uint32_t value);
    std::uint32_t receive(); // blocks

private:
    int fds_[2];
};

} // namespace netbackd::xensim::testing
