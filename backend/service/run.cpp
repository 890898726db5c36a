#include "backend/service/run.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <rte_eal.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "backend/control/config.hpp"
#include "backend/control/control_plane.hpp"
#include "backend/platform/fd.hpp"
#include "backend/service/capture_server.hpp"
#include "backend/service/dataplane_host.hpp"
#include "backend/service/resource_counting.hpp"
#include "backend/service/resource_telemetry.hpp"
#include "backend/service/start_clock.hpp"
#include "backend/service/start_phase.hpp"
#include "backend/service/watchdog.hpp"

namespace netbackd::service {
namespace {

using control::Config;
using control::ConfigError;

// One log line per problem, each with its level: under a journal a bare continuation line
// would not be tagged as an error.
void log_config_errors(std::string_view what, const ConfigError& e) {
    std::string_view all = e.what();
    while (!all.empty()) {
        const auto nl = all.find('\n');
        if (const auto line = all.substr(0, nl); !line.empty()) spdlog::error("{}: {}", what, line);
        all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
    }
}

void apply_log_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

// SIGHUP/SIGTERM/SIGINT arrive as readable data on a descriptor, so the loop handles them
// between watch events instead of inside a handler.
platform::Fd block_signals_to_fd() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        throw std::runtime_error(std::string("sigprocmask: ") + std::strerror(errno));
    const int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    return platform::Fd(fd);
}

// How long the service loop may sleep: everything else wakes it through its fds (xenstore
// watches, signals, control rings, data-plane reports, capture clients). An idle host with a
// thousand vifs so wakes about once a second, for the link check, not ten times.
int loop_timeout_ms(control::ControlPlane& cp, const DataPlaneHost& dataplane,
                    const std::optional<Watchdog>& watchdog, const CaptureServer* captures, bool ctrl_more) {
    // Control rings with requests left over from their budget: right away, after the other fds.
    if (ctrl_more) return 0;
    auto wake = dataplane.next_poll();
    if (const auto due = cp.next_due()) wake = std::min(wake, *due);
    if (watchdog) wake = std::min(wake, watchdog->next());
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(wake - std::chrono::steady_clock::now())
            .count();
    int timeout_ms = static_cast<int>(std::clamp<long long>(left + 1, 0, 1000));
    // A capture's end is seen by looking at its session; without channels of their own, the
    // control rings are served only by this loop.
    if ((captures != nullptr && captures->sessions() != 0) || !cp.ctrl_fd())
        timeout_ms = std::min(timeout_ms, 100);
    return timeout_ms;
}

} // namespace

int run(const RunOptions& opt) {
    StartClock clock;
    std::shared_ptr<const Config> config;
    try {
        config = std::make_shared<const Config>(control::load_config(opt.config_path));
    } catch (const ConfigError& e) {
        log_config_errors("configuration rejected", e);
        return 2;
    }
    apply_log_level(opt.log_level.empty() ? config->global.log_level : opt.log_level);

    platform::PlatformOptions popt = opt.platform;
    if (!opt.platform_given)
        popt.kind =
            config->global.platform == "sim" ? platform::PlatformKind::sim : platform::PlatformKind::xen;
    if (popt.sim_dir.empty()) popt.sim_dir = config->global.sim_dir;
    if (popt.sim_domid == 0) popt.sim_domid = config->global.sim_domid;

    platform::Fd sigfd;
    try {
        sigfd = block_signals_to_fd();
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }

    // EAL first: from here on `netbackd stats` answers, and says "starting" until the vifs
    // in xenstore are re-adopted.
    register_phase_telemetry();
    std::unique_ptr<pmd::Eal> eal;
    try {
        eal = DataPlaneHost::start_eal(config->global);
    } catch (const std::exception& e) {
        spdlog::error("cannot start the data plane: {}", e.what());
        return 1;
    }
    clock.mark("EAL");

    platform::Platform plat;
    try {
        plat = platform::open_platform(popt);
    } catch (const platform::PlatformError& e) {
        spdlog::error("cannot open the {} platform: {}",
                      popt.kind == platform::PlatformKind::sim ? "sim" : "xen", e.what());
        return 1;
    }
    // `netbackd stats` reports what we hold; counting wraps the platform before anyone uses it.
    const auto held = std::make_shared<ResourceCounts>();
    count_platform(plat, held);
    clock.mark("platform");

    std::unique_ptr<DataPlaneHost> dataplane;
    try {
        dataplane = std::make_unique<DataPlaneHost>(config->global, plat, std::move(eal), clock);
    } catch (const std::exception& e) {
        spdlog::error("cannot start the data plane: {}", e.what());
        return 1;
    }

    const ResourceTelemetry resource_telemetry(held);
    CountingSink sink(dataplane->sink(), held);
    control::ControlPlane cp(*plat.store, *plat.grants, *plat.events, sink, config);
    if (plat.control_events) cp.set_ctrl_events(*plat.control_events);
    try {
        cp.start();
    } catch (const platform::PlatformError& e) {
        spdlog::error("cannot start the control plane: {}", e.what());
        return 1;
    }
    // Every vif is in the switch now: frames the guests queued while no netbackd ran may move.
    dataplane->dataplane().release();
    set_phase(Phase::running);
    clock.mark(fmt::format("re-adopting {} vif(s)", cp.vif_count()));
    // WatchdogSec= in the unit: pinged below, only while every worker makes progress.
    std::optional<Watchdog> watchdog;
    if (const auto interval = Watchdog::interval_from_environment()) {
        watchdog.emplace(dataplane->dataplane(), *interval);
        spdlog::info("systemd watchdog: checking the data plane every {} ms",
                     std::chrono::duration_cast<std::chrono::milliseconds>(*interval).count());
    }
    // `netbackd capture` connects here, next to DPDK's telemetry socket.
    std::unique_ptr<CaptureServer> captures;
    try {
        captures = std::make_unique<CaptureServer>(
            dataplane->dataplane(), std::string(rte_eal_get_runtime_dir()) + "/" + kCaptureSocketName);
    } catch (const std::exception& e) {
        spdlog::warn("netbackd capture will not work: {}", e.what());
    }
    sd_notifyf(0, "READY=1\nSTATUS=serving %zu vif(s) in domain %u", cp.vif_count(), unsigned{cp.self()});
    clock.mark("ready");
    spdlog::info("netbackd ready: domain {}, {} vif(s) found", cp.self(), cp.vif_count());

    bool ctrl_more = false;
    for (;;) {
        pollfd fds[5] = {{cp.watch_fd(), POLLIN, 0},
                         {sigfd.get(), POLLIN, 0},
                         {captures ? captures->fd() : -1, POLLIN, 0},
                         {cp.ctrl_fd().value_or(-1), POLLIN, 0},
                         {dataplane->reports_fd(), POLLIN, 0}};
        const int n = poll(fds, 5, loop_timeout_ms(cp, *dataplane, watchdog, captures.get(), ctrl_more));
        if (n < 0 && errno != EINTR) {
            spdlog::error("poll: {}", std::strerror(errno));
            return 1;
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si{};
            while (read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (si.ssi_signo == SIGHUP) {
                    sd_notify(0, "RELOADING=1");
                    try {
                        auto fresh = std::make_shared<const Config>(control::load_config(opt.config_path));
                        apply_log_level(opt.log_level.empty() ? fresh->global.log_level : opt.log_level);
                        cp.reload(std::move(fresh));
                    } catch (const ConfigError& e) {
                        log_config_errors("reload rejected, keeping the running configuration", e);
                    }
                    sd_notify(0, "READY=1");
                } else {
                    spdlog::info(
                        "signal {}: releasing {} vif(s); frontends stay connected for the next start",
                        strsignal(static_cast<int>(si.ssi_signo)), cp.vif_count());
                    sd_notify(0, "STOPPING=1");
                    cp.release_all();
                    return 0;
                }
            }
        }
        if (fds[4].revents & POLLIN) platform::drain_eventfd(fds[4].fd);
        try {
            if (fds[0].revents & POLLIN) cp.process_watches();
            const auto now = std::chrono::steady_clock::now();
            cp.tick(now);
            ctrl_more = cp.serve_ctrl();
            dataplane->poll(cp, *plat.store, now);
            if (watchdog) watchdog->tick(now);
            if (captures) {
                if (fds[2].revents & POLLIN) captures->accept();
                captures->poll();
            }
        } catch (const platform::PlatformError& e) {
            // Losing xenstore leaves nothing to serve; systemd restarts us and we re-adopt.
            spdlog::error("xenstore connection failed: {}", e.what());
            return 1;
        }
        if (fds[0].revents & (POLLHUP | POLLERR)) {
            spdlog::error("xenstore connection closed");
            return 1;
        }
    }
}

} // namespace netbackd::service
