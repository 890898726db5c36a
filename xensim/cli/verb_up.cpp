// xensim up: the simulated host in one process: xenstored on one thread, the hypervisor's
// control server on another. Daemonizes unless --foreground; `up` returns only once both
// sockets accept connections, so a script may use the host on the next line.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "xensim/cli/host_files.hpp"
#include "xensim/cli/verbs.hpp"
#include "xensim/hypervisor/hypervisor.hpp"
#include "xensim/xenstored/xenstored.hpp"

namespace netbackd::xensim::cli {

namespace {

struct UpOptions {
    std::string dir;
    bool foreground = false;
    XenstoredLimits limits;
    wire::CostModel costs;
};

std::atomic<Hypervisor*> g_hypervisor{nullptr};
std::atomic<Xenstored*> g_xenstored{nullptr};

extern "C" void on_stop_signal(int) {
    if (Hypervisor* hv = g_hypervisor.load()) hv->stop();
    if (Xenstored* xs = g_xenstored.load()) xs->stop();
}

// Runs the host until a stop signal; writes one byte to ready_fd (if any) once serving.
void serve(const std::string& dir, const UpOptions& options, int ready_fd) {
    Xenstored xenstored(dir, options.limits);
    Hypervisor hypervisor(dir, options.costs);
    hypervisor.set_hooks({
        .created =
            [&xenstored](std::uint16_t domid, const std::string& name) {
                xenstored.create_domain_home(domid, name);
                xenstored.introduce(domid);
            },
        .destroyed = [&xenstored](std::uint16_t domid) { xenstored.release(domid); },
    });
    write_pid_file(dir);
    g_hypervisor = &hypervisor;
    g_xenstored = &xenstored;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    xenstored.start();
    spdlog::info("xensim host up in {} (pid {})", dir, ::getpid());
    if (ready_fd >= 0) {
        char ok = 1;
        [[maybe_unused]] auto n = ::write(ready_fd, &ok, 1);
        ::close(ready_fd);
    }
    hypervisor.run();
    xenstored.stop();
    g_hypervisor = nullptr;
    g_xenstored = nullptr;
    remove_pid_file(dir);
    spdlog::info("xensim host in {} stopped", dir);
}

void detach_stdio(const std::string& dir) {
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int log = ::open(log_file(dir).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
    }
    if (null >= 0) ::close(null);
    if (log >= 0) ::close(log);
}

void run_up(const UpOptions& options) {
    std::string dir = std::filesystem::absolute(options.dir).lexically_normal().string();
    std::filesystem::create_directories(dir);
    if (auto pid = running_host(dir))
        throw std::runtime_error(fmt::format("a host already runs in {} (pid {})", dir, *pid));

    if (options.foreground) {
        serve(dir, options, -1);
        return;
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
    if (pid == 0) {
        ::close(ready[0]);
        ::setsid();
        detach_stdio(dir);
        int rc = 0;
        try {
            serve(dir, options, ready[1]);
        } catch (const std::exception& e) {
            spdlog::error("xensim host in {}: {}", dir, e.what());
            rc = 1;
        }
        ::_exit(rc);
    }
    ::close(ready[1]);
    char ok = 0;
    ssize_t n = ::read(ready[0], &ok, 1);
    ::close(ready[0]);
    if (n != 1) throw std::runtime_error(fmt::format("the host failed to start; see {}", log_file(dir)));
}

} // namespace

void install_up(CLI::App& app) {
    auto options = std::make_shared<UpOptions>();
    auto* sub = app.add_subcommand("up", "start a simulated host (hypervisor + xenstored) in --dir");
    add_dir_option(*sub, options->dir);
    sub->add_flag("--foreground", options->foreground, "stay in the foreground, logging to stderr");
    // A driver domain owns ~20 backend nodes per vif: like `xenstored -E`, large hosts raise these.
    sub->add_option("--quota-nodes", options->limits.max_nodes_per_domain,
                    "xenstore nodes a non-dom0 domain may own")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_option("--quota-watches", options->limits.max_watches_per_connection,
                    "watches per xenstore connection")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    // Xen does a grant copy in a hypercall; the simulation in-process. These charge the
    // difference (busy-wait in the copying process) so batching can be judged as on Xen.
    sub->add_option("--grant-copy-batch-ns", options->costs.grant_copy_batch_ns,
                    "simulated cost of one grant-copy hypercall (gntdev makes one per 16 segments)")
        ->capture_default_str();
    sub->add_option("--grant-copy-segment-ns", options->costs.grant_copy_segment_ns,
                    "simulated cost of each segment in a grant copy")
        ->capture_default_str();
    sub->callback([options] { run_up(*options); });
}

} // namespace netbackd::xensim::cli
