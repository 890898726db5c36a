// xensim down: stop the host running in --dir (SIGTERM, then wait for it to go).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "xensim/cli/host_files.hpp"
#include "xensim/cli/verbs.hpp"

namespace netbackd::xensim::cli {

namespace {

void run_down(const std::string& dir_arg) {
    std::string dir = std::filesystem::absolute(dir_arg).lexically_normal().string();
    auto pid = running_host(dir);
    if (!pid) {
        // Idempotent, so teardown scripts need no guard.
        std::fprintf(stderr, "xensim: no host running in %s\n", dir.c_str());
        remove_pid_file(dir);
        return;
    }
    if (::kill(*pid, SIGTERM) != 0 && errno != ESRCH)
        throw std::runtime_error(fmt::format("cannot signal host pid {}: {}", *pid, std::strerror(errno)));
    // Bounded wait: a host that ignores SIGTERM for 10 s is killed.
    for (int i = 0; i < 1000; ++i) {
        // The host removes its pid file as its last act; the pid itself may linger as a zombie
        // where nobody reaps orphans (containers without an init).
        if (!std::filesystem::exists(pid_file(dir)) || (::kill(*pid, 0) != 0 && errno == ESRCH)) {
            remove_pid_file(dir);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(*pid, SIGKILL);
    remove_pid_file(dir);
    throw std::runtime_error(fmt::format("host pid {} did not stop on SIGTERM; killed", *pid));
}

} // namespace

void install_down(CLI::App& app) {
    auto dir = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("down", "stop the simulated host running in --dir");
    add_dir_option(*sub, *dir);
    sub->callback([dir] { run_down(*dir); });
}

} // namespace netbackd::xensim::cli
