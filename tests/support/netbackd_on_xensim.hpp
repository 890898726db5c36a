// A simulated Xen host with real processes: `xensim up`, a driver domain running the netbackd
// binary, and guests whose netfronts run in the test process. What the end-to-end tests share.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "backend/platform/platform.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "xensim/hypervisor/guest_memory.hpp"
#include "xensim/netfront/netfront.hpp"

namespace netbackd::testing {

inline constexpr platform::DomId kDriverDomain = 1;

// Runs `argv` with output appended to `log`; returns the pid.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::vector<std::string>& env = {});
// Waits for a child; its exit code, or 128+signal.
int reap(pid_t pid);
// Runs to completion; exit code.
int run(const std::vector<std::string>& argv, const std::string& log);

// A guest domain as seen from inside: its own store connection, memory and channels.
struct Guest {
    platform::DomId domid;
    std::shared_ptr<xensim::HvClient> hv;
    std::unique_ptr<platform::Store> store;
    std::unique_ptr<xensim::SimEvents> events;
    std::unique_ptr<xensim::GuestMemory> memory;
    std::unique_ptr<xensim::Netfront> netfront;

    // Starts (or restarts) the netfront of vif `devid`; returns once it has read its dir.
    xensim::Netfront& start_netfront(std::uint32_t devid, unsigned queues = 1, bool split = true);
    // The same with every option (self is filled in).
    xensim::Netfront& start_netfront(xensim::NetfrontOptions options);
};

// xenstored's quotas for the host (`xensim up`): a driver domain owns ~20 nodes and one watch
// per vif, so many vifs need more than cxenstored's defaults (1000 nodes, 128 watches).
struct SimWorldOptions {
    unsigned quota_nodes = 4000;
    unsigned quota_watches = 128;
    unsigned driver_event_channels = 0; // the nicdom's max_event_channels; 0: libxl's default (1023)
};

class SimWorld {
public:
    SimWorld() : SimWorld(SimWorldOptions{}) {}
    explicit SimWorld(const SimWorldOptions& options);
    ~SimWorld();

    const std::string& dir() const { return dir_; }
    std::string host_dir() const { return dir_ + "/host"; }

    // xensim domain create.
    void create_domain(const std::string& name, platform::DomId domid, unsigned memory_mib = 8,
                       unsigned max_event_channels = 0);
    Guest& guest(platform::DomId domid);

    // The netbackd binary in the driver domain; returns once it notified READY=1.
    // extra_config: more tables; service_keys: more keys for [service].
    void start_netbackd(const std::string& extra_config = "", const std::string& service_keys = "");
    // Sends `sig` and waits; returns the exit status (0 for a clean SIGTERM).
    int stop_netbackd(int sig);
    pid_t netbackd_pid() const { return netbackd_; }
    // More environment for the next start_netbackd ("KEY=value"), e.g. WATCHDOG_USEC.
    std::vector<std::string> netbackd_env;
    // The test's end of netbackd's NOTIFY_SOCKET (READY=1 already taken by start_netbackd).
    int notify_fd() const { return notify_fd_; }
    std::string netbackd_log() const;
    void write_client_file(const std::string& name, const std::string& text);

    // A dom0 connection (the toolstack's).
    platform::Store& dom0();
    // Polls `path` on dom0's connection until `pred(value)`; false after `timeout`.
    bool wait_node(const std::string& path,
                   const std::function<bool(const std::optional<std::string>&)>& pred,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
    bool wait_state(const std::string& path, const std::string& want,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // A failed vif's backend `state_path`: Closing, or already Closed when its netfront answered
    // Closing before a poll saw 5.
    bool wait_closing_or_closed(const std::string& state_path,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // Event channels of the driver domain in use (interdomain or unbound).
    int driver_ports_in_use();
    // Counts in the netbackd process: open fds, and mappings of simulated domain memory.
    int netbackd_fds() const;
    int netbackd_maps() const;

    static std::string be(platform::DomId fe, std::uint32_t devid);
    static std::string fe(platform::DomId fe, std::uint32_t devid);
    static std::string error_node(platform::DomId fe, std::uint32_t devid);

private:
    std::string dir_;
    bool host_up_ = false;
    pid_t netbackd_ = -1;
    int notify_fd_ = -1;
    std::unique_ptr<platform::Store> dom0_;
    std::shared_ptr<xensim::HvClient> admin_;
    std::vector<std::unique_ptr<Guest>> guests_;
};

} // namespace netbackd::testing
