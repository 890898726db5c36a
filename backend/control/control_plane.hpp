// The backend watcher: finds vifs under /local/domain/<self>/backend/vif, owns one VifControl
// per (frontend domid, devid), and routes xenstore watch events to them.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string_view>

#include "backend/control/vif_control.hpp"

namespace netbackd::control {

class ControlPlane {
public:
    ControlPlane(platform::Store& store, platform::Grants& grants, platform::Events& events,
                 DataPlaneSink& sink, std::shared_ptr<const Config> config);
    ~ControlPlane();
    ControlPlane(const ControlPlane&) = delete;
    ControlPlane& operator=(const ControlPlane&) = delete;

    // Learns the own domid, registers the watches and adopts the backend dirs already there.
    void start();
    // Drains and dispatches pending watch events; call when watch_fd() is readable.
    void process_watches();
    // Periodic work: reports vifs that wait too long on the other end.
    void tick(std::chrono::steady_clock::time_point now);
    // Control rings get their event channels from `events` (the control thread's own Events;
    // its fd() is what ctrl_fd() returns). Without it they share the data plane's Events and
    // are served on every serve_ctrl() call only. Call before start().
    void set_ctrl_events(platform::Events& events) noexcept { ctx_.ctrl_events = &events; }
    std::optional<int> ctrl_fd() const;
    // Takes the fired control-ring channels, then serves every vif's control ring, a bounded
    // number of requests each. True when some ring has requests left: call again soon.
    bool serve_ctrl();
    // The earliest deferred work, so the caller's poll wakes up for it.
    std::optional<std::chrono::steady_clock::time_point> next_deadline();
    // The earliest time tick() has anything to do: a deadline or a wait to report.
    std::optional<std::chrono::steady_clock::time_point> next_due();
    // New config for vifs that probe or connect from now on; connected vifs keep theirs.
    void reload(std::shared_ptr<const Config> config);
    // Shutdown without touching xenstore state: every vif is taken back from the data plane
    // and unmapped, frontends stay connected and are reconnected by the next start().
    void release_all();

    // The data plane disabled a vif (e.g. a fatal ring error): error node, Closing, unmapped;
    // the guest may reconnect by re-initialising. False when no such vif exists.
    bool fail_vif(VifId id, const Fatal& reason);

    int watch_fd() const { return ctx_.store.watch_fd(); }
    DomId self() const noexcept { return ctx_.self; }
    std::size_t vif_count() const noexcept { return vifs_.size(); }
    const VifControl* find(VifId id) const;

private:
    void scan(bool at_start);
    void on_backend_event(std::string_view path);
    void on_release_domain();
    VifControl& add(VifId id);
    void reap();
    // Something may have changed a vif's timers or connected a control ring: the next tick()
    // and serve_ctrl() look at every vif again.
    void changed() noexcept {
        due_known_ = false;
        ctrl_walk_ = true;
    }
    void compute_due();

    ControlContext ctx_;
    std::map<VifId, std::unique_ptr<VifControl>> vifs_;
    bool started_ = false;
    // An idle host's control loop must not walk every vif on each wake-up (10 a second): the
    // earliest time any vif's tick() or wait report has work is kept until an event changes it,
    // and control rings are looked at only when a channel fired, a ring had requests left, or
    // something changed.
    bool due_known_ = false;
    std::optional<std::chrono::steady_clock::time_point> due_;      // tick() or a wait report
    std::optional<std::chrono::steady_clock::time_point> deadline_; // deferred work only
    bool ctrl_walk_ = true;
    bool ctrl_more_ = false;
};

} // namespace netbackd::control
