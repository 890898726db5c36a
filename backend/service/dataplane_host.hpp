// Everything the data plane stands on, built from the global config in the order DPDK needs
// (EAL, pools, ports, then the worker) and torn down in reverse: `netbackd run` owns one.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/control/config.hpp"
#include "backend/control/control_plane.hpp"
#include "backend/dataplane/dataplane.hpp"
#include "backend/platform/platform.hpp"
#include "backend/service/growing_frame_pools.hpp"
#include "backend/service/start_clock.hpp"
#include "pmd/eal.hpp"
#include "pmd/mempool.hpp"
#include "pmd/port.hpp"

namespace netbackd::service {

class DataPlaneHost {
public:
    // EAL alone, first of all: its telemetry socket lets `netbackd stats` say "starting" while
    // the rest comes up. Throws pmd::EalError.
    static std::unique_ptr<pmd::Eal> start_eal(const control::GlobalConfig& config);
    // The rest on top of that EAL: pools, ports, workers; each step marked on `clock`.
    DataPlaneHost(const control::GlobalConfig& config, platform::Platform& platform,
                  std::unique_ptr<pmd::Eal> eal, StartClock& clock);
    ~DataPlaneHost();
    DataPlaneHost(const DataPlaneHost&) = delete;
    DataPlaneHost& operator=(const DataPlaneHost&) = delete;

    control::DataPlaneSink& sink() noexcept { return *dataplane_; }
    dataplane::DataPlane& dataplane() noexcept { return *dataplane_; }

    // Control-thread housekeeping, called from the service loop: faults the worker reported
    // become `error` nodes, link changes become every vif's `carrier`. The loop calls it when
    // reports_fd() is readable (it drains it first) and by next_poll() at the latest.
    void poll(control::ControlPlane& cp, platform::Store& store, std::chrono::steady_clock::time_point now);
    int reports_fd() const noexcept { return dataplane_->reports_fd(); }
    // The next link check: some PMDs never raise a link event, so links are polled once a second.
    std::chrono::steady_clock::time_point next_poll() const noexcept { return next_link_check_; }

private:
    struct UplinkPort {
        std::string name;
        // A jumbo MTU gets RX buffers of its own, one frame each: PMDs without RX scatter
        // (net_null, net_pcap, many NICs) drop what does not fit one buffer. Declared before
        // the port, which holds buffers from it until it stops.
        std::unique_ptr<pmd::Mempool> rx_pool;
        std::unique_ptr<pmd::Port> port;
        std::unique_ptr<dataplane::PortUplink> uplink;
        std::optional<bool> last_link_up;
    };
    void publish_link(control::ControlPlane& cp, platform::Store& store, UplinkPort& up, bool force);

    // Declaration order is destruction order in reverse: the data plane goes first, EAL last.
    std::unique_ptr<pmd::Eal> eal_;
    std::unique_ptr<GrowingFramePools> pools_;
    std::vector<UplinkPort> uplinks_;
    std::unique_ptr<dataplane::DataPlane> dataplane_;
    std::chrono::steady_clock::time_point next_link_check_{};
    std::size_t carrier_vifs_ = 0;
};

} // namespace netbackd::service
