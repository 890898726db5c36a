#include "tests/support/sim_hypervisor.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/platform/platform.hpp"
#include "xensim/hypervisor/hypervisor.hpp"

namespace netbackd::xensim::testing {

HvHost::HvHost() {
    char tmpl[] = "/tmp/netbackd-hv-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    int ready[2];
    if (::pipe(ready) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
        // A crashed test must not leave its hypervisor behind holding ctest's pipes open.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(ready[0]);
        int rc = 0;
        try {
            Hypervisor hv(dir_);
            char ok = 1;
            [[maybe_unused]] auto n = ::write(ready[1], &ok, 1);
            ::close(ready[1]);
            hv.run();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "test hypervisor: %s\n", e.what());
            rc = 1;
        }
        ::_exit(rc);
    }
    ::close(ready[1]);
    char ok = 0;
    ssize_t n = ::read(ready[0], &ok, 1);
    ::close(ready[0]);
    if (n != 1) throw std::runtime_error("test hypervisor failed to start");
}

HvHost::~HvHost() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

pid_t spawn(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 99;
        try {
            rc = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
        }
        std::fflush(nullptr);
        ::_exit(rc);
    }
    return pid;
}

int join(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Channel::Channel() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
}

Channel::~Channel() {
    ::close(fds_[0]);
    ::close(fds_[1]);
}

void Channel::send(std::uint32_t value) {
    if (::write(fds_[1], &value, sizeof value) != sizeof value)
        throw std::runtime_error("channel write failed");
}

std::uint32_t Channel::receive() {
    std::uint32_t value = 0;
    if (::read(fds_[0], &value, sizeof value) != sizeof value)
        throw std::runtime_error("channel read failed");
    return value;
}

} // namespace netbackd::xensim::testing
