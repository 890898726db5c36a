#include "backend/control/hook_script.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/platform/fd.hpp"

extern char** environ;

namespace netbackd::control {

HookResult run_hook(const std::filesystem::path& script, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout) {
    HookResult r;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        r.error = std::string("pipe: ") + std::strerror(errno);
        return r;
    }
    platform::Fd rd(p[0]), wr(p[1]);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);

    std::vector<std::string> argv_s{script.string()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);

    pid_t pid = -1;
    const int err = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    wr.reset();
    if (err != 0) {
        r.error = std::string("cannot run: ") + std::strerror(err);
        return r;
    }

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd pfd{rd.get(), POLLIN, 0};
        const int n = poll(&pfd, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        char buf[4096];
        const ssize_t got = read(rd.get(), buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        // A chatty hook must not grow the log line without bound.
        if (r.output.size() < 64 * 1024) r.output.append(buf, static_cast<std::size_t>(got));
    }
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timed_out)
        r.error = "timed out";
    else if (WIFEXITED(status))
        r.exit_code = WEXITSTATUS(status);
    else
        r.error = "killed by signal " + std::to_string(WTERMSIG(status));
    while (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
    return r;
}

} // namespace netbackd::control
