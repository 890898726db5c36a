// One vif's driver: reads what the state machine needs from xenstore, runs next(), and applies
// the resulting actions through the platform seam. All of it runs on the control thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "backend/control/config.hpp"
#include "backend/control/ctrl_channel.hpp"
#include "backend/control/data_plane_sink.hpp"
#include "backend/control/vif_fsm.hpp"
#include "backend/control/vif_id.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::control {

// What every VifControl shares: the platform, the data plane and the current config.
struct ControlContext {
    platform::Store& store;
    platform::Grants& grants;
    platform::Events& events;
    DataPlaneSink& sink;
    // Control rings' event channels are bound here: an Events of the control thread's own, so
    // the workers (which drain `events`) never take them. Defaults to `events`; the control
    // rings are then still served on every tick().
    platform::Events* ctrl_events = nullptr;
    DomId self = 0;
    // Replaced on reload; a vif reads it when it probes and when it connects.
    std::shared_ptr<const Config> config;
};

class VifControl {
public:
    VifControl(ControlContext& ctx, VifId id);
    ~VifControl();
    VifControl(const VifControl&) = delete;
    VifControl& operator=(const VifControl&) = delete;

    VifId id() const noexcept { return id_; }
    // The token of the watch on the frontend's dir, as passed to Store::watch.
    std::string frontend_token() const;
    // Most bytes of headroom a frontend may ask for in xdp-headroom.
    static constexpr std::uint64_t kMaxXdpHeadroom = 2048;
    // Whether this vif is done with: its backend dir is gone or removed by us.
    bool finished() const noexcept { return forgotten_; }
    const VifFacts& facts() const noexcept { return facts_; }

    // `fresh`: the toolstack just created the dir (state 1); otherwise it predates this process.
    void appeared(bool fresh);
    // Something under the backend dir changed (online, state, or the dir itself).
    void backend_changed();
    // The watch on the frontend's dir fired for `path`: state and request-multicast-control
    // are acted on, other nodes ignored.
    void frontend_event(std::string_view path);
    // The frontend's state node (or its dir) fired.
    void frontend_changed();
    // F/request-multicast-control changed (feature-dynamic-multicast-control): re-sampled
    // while connected and given to the data plane.
    void multicast_control_changed();
    // B/rate changed: Linux re-reads it on the fly; so do we, without a renegotiation.
    void rate_changed();
    // Something outside the handshake (the data plane) found the vif unusable.
    void fail(const Fatal& reason);
    // The frontend domain no longer exists.
    void domain_released();
    // Whether the frontend dir is still there (false once the toolstack removed the domain).
    bool frontend_exists();
    // Logs, once per wait, what the vif has waited for longer than `after` and on which key.
    void report_wait(std::chrono::steady_clock::time_point now, std::chrono::seconds after);
    // Deferred work (the backend dir removal) due at this time, if any.
    std::optional<std::chrono::steady_clock::time_point> deadline() const;
    // When tick() or report_wait(…, after) next has something to do, if ever (until an event).
    std::optional<std::chrono::steady_clock::time_point> next_due(std::chrono::seconds after) const;
    void tick(std::chrono::steady_clock::time_point now);
    // Serves the control ring, if the frontend gave one: at most CtrlChannel::kBudget requests.
    // True when requests are left for another call. A fatal ring error fails the vif.
    bool serve_ctrl();
    // The bound event-channel-ctrl port, if any.
    std::optional<platform::EvtchnPort> ctrl_port() const;
    // Shutdown: give the rings back and stop watching, leaving xenstore as it is, so that a
    // restarted netbackd reconnects to the still-connected frontend.
    void release();

private:
    void run(const VifEvent& ev);
    void apply(const Action& a);
    void refresh();
    void refresh_online();
    void refresh_frontend();
    void probe();
    void adopt_advertised();
    void probe_and_advertise();
    void connect();
    std::optional<std::string> read_frontend(const std::string& path);
    std::string require_frontend(const std::string& path);
    unsigned read_queue_count();
    NegotiatedFeatures read_features();
    std::uint16_t read_xdp_headroom();
    std::unique_ptr<CtrlChannel> connect_ctrl(unsigned queues);
    QueueRings connect_queue(unsigned q, const std::string& dir, bool& split_used, std::string& summary);
    VifPolicy make_policy() const;
    // Throws a refused VifFatal when the data plane would not run this vif; at connect, throws
    // Postponed while the vif's NIC is still on the domain of a guest moving here.
    enum class Admission { probe, connect };
    void admit(Admission when);
    void run_client_hook();
    void disconnect();
    bool write_backend_key(std::string_view key, std::string_view value);
    void remove_backend_dir();
    void watch_frontend();
    void unwatch_frontend();
    void note_progress();

    ControlContext& ctx_;
    VifId id_;
    std::string be_;
    std::string fe_;
    VifFacts facts_;
    bool forgotten_ = false;
    bool fe_watched_ = false;

    // Learned when probing.
    std::optional<Mac> toolstack_mac_;
    std::optional<Rate> toolstack_rate_;
    unsigned mtu_ = 1500;
    std::string domain_name_;
    std::optional<ClientConfig> client_;
    VifPolicy policy_; // as handed to the data plane
    unsigned max_queues_ = 1;
    bool split_ = false;
    DataPlaneFeatures advertised_{};
    std::unique_ptr<CtrlChannel> ctrl_; // while connected with a control ring

    static constexpr std::chrono::milliseconds kRemovalGrace{500};
    std::optional<std::chrono::steady_clock::time_point> removal_due_;

    // A guest migrating to this host: the old domain keeps the NIC (same devid and MAC) until
    // the toolstack destroys it, after the new one runs. The new vif's connect waits for that,
    // retried every kMoveRetry, and is refused after kMoveWait.
    static constexpr std::chrono::seconds kMoveWait{30};
    static constexpr std::chrono::milliseconds kMoveRetry{200};
    std::optional<std::chrono::steady_clock::time_point> move_wait_since_;
    std::optional<std::chrono::steady_clock::time_point> retry_due_;

    std::chrono::steady_clock::time_point waiting_since_ = std::chrono::steady_clock::now();
    bool wait_reported_ = false;
};

} // namespace netbackd::control
