// The handover between the control plane and the data plane. The control plane maps the
// rings, binds the channels and settles policy, then gives the whole vif away; detach() gives
// it back so unmapping and unbinding happen on the control thread once the data plane no
// longer touches the rings.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/control/keys.hpp"
#include "backend/control/staged_pages.hpp"
#include "backend/control/vif_id.hpp"
#include "backend/platform/platform.hpp"
#include "ring/ctrl_ring.hpp"

namespace netbackd::control {

// An interdomain event channel bound by this process; unbound on destruction.
class BoundPort {
public:
    BoundPort() = default;
    BoundPort(platform::Events& events, platform::EvtchnPort port) : events_(&events), port_(port) {}
    BoundPort(BoundPort&& o) noexcept : events_(std::exchange(o.events_, nullptr)), port_(o.port_) {}
    BoundPort& operator=(BoundPort&& o) noexcept {
        if (this != &o) {
            reset();
            events_ = std::exchange(o.events_, nullptr);
            port_ = o.port_;
        }
        return *this;
    }
    BoundPort(const BoundPort&) = delete;
    BoundPort& operator=(const BoundPort&) = delete;
    ~BoundPort() { reset(); }

    platform::EvtchnPort port() const noexcept { return port_; }
    explicit operator bool() const noexcept { return events_ != nullptr; }
    void reset() noexcept {
        if (events_) {
            try {
                events_->unbind(port_);
            } catch (...) {
                // Unbinding fails only when the port is already gone (domain died).
            }
            events_ = nullptr;
        }
    }

private:
    platform::Events* events_ = nullptr;
    platform::EvtchnPort port_ = 0;
};

struct QueueRings {
    std::unique_ptr<platform::GrantMapping> tx_ring; // netif_tx_sring, one page
    std::unique_ptr<platform::GrantMapping> rx_ring; // netif_rx_sring, one page
    BoundPort tx_port;
    BoundPort rx_port; // not bound (false) without split event channels: tx_port serves both
    platform::GrantRef tx_ref = 0;
    platform::GrantRef rx_ref = 0;
};

// What the frontend asked for, within what this backend advertised.
struct NegotiatedFeatures {
    bool rx_notify = false; // absent: the guest must be polled for RX slots
    bool sg = false;
    bool gso_tcpv4 = false;
    bool gso_tcpv6 = false;
    bool ip_csum = true; // feature-no-csum-offload=0
    bool ipv6_csum = false;
    bool split_event_channels = false;
    // request-multicast-control as sampled at connect (netif.h): filter multicast to the guest.
    bool multicast_control = false;
    // xdp-headroom (Linux netfront since 5.9): bytes left free at the start of each RX buffer.
    std::uint16_t xdp_headroom = 0;
};

struct VifPolicy {
    Mac guest_mac{}; // the only source MAC the guest may use
    std::optional<std::string> uplink;
    std::optional<std::uint16_t> vlan;
    std::optional<Rate> rate;
    unsigned mtu = 1500;
    std::string client_source; // config file:line that matched, empty for defaults
};

struct VifHandle {
    VifId id;
    std::vector<QueueRings> queues;
    NegotiatedFeatures features;
    VifPolicy policy;
};

// What the data plane implements, so the control plane advertises nothing more.
struct DataPlaneFeatures {
    bool sg = false;
    bool gso_tcpv4 = false;
    bool gso_tcpv6 = false;
    bool ipv6_csum_offload = false;
    bool split_event_channels = false;
    unsigned max_queues = 1;
};

// Why a data plane will not run a vif: a positive errno and a message naming the cause.
struct Refusal {
    int err = 0;
    std::string message;
    // A MAC refusal: the vif that holds the MAC. A guest migrating to this host has the same
    // NIC (devid and MAC) on its old domain and its new one for a moment (VifControl::admit).
    std::optional<VifId> holder = std::nullopt;
};

class DataPlaneSink {
public:
    virtual ~DataPlaneSink() = default;
    virtual DataPlaneFeatures features() const = 0;
    // Whether attach() of a vif with this policy would be refused (a MAC another vif holds, an
    // uplink that does not exist, no room for another vif), asked before InitWait and again
    // right before attach() on the same thread, so that a vif is refused before Connected.
    // The default refuses nothing.
    virtual std::optional<Refusal> refusal(VifId /*id*/, const VifPolicy& /*policy*/) const {
        return std::nullopt;
    }
    virtual void attach(std::unique_ptr<VifHandle> vif) = 0;
    // The vif back, once the data plane has let go of its rings; nullptr if it never had it.
    virtual std::unique_ptr<VifHandle> detach(VifId id) = 0;
    // New policy for an attached vif (the toolstack changed `rate`). The default ignores it:
    // the vif keeps the policy it was attached with.
    virtual void update_policy(VifId /*id*/, const VifPolicy& /*policy*/) {}
    // The guest changed its hash configuration on its control ring. Published configs are
    // immutable; the data plane holds each as long as it uses it, and returns once frames are
    // steered by it (the guest is answered after). The default ignores them.
    virtual void set_hash(VifId /*id*/, std::shared_ptr<const ring::HashConfig> /*hash*/) {}
    // The guest changed request-multicast-control after connect (feature-dynamic-multicast-
    // control): multicast filtering on or off for an attached vif. The default ignores it.
    virtual void set_multicast_control(VifId /*id*/, bool /*on*/) {}
    // The guest's staging grants changed (ADD/DEL_GREF_MAPPING; see staged_pages.hpp). Returns
    // true once the vif's owner worker uses `pages` (nullptr: none) and has let go of the previous
    // set, so the pages left out may be unmapped. `removed`, on queue `queue`, are the grefs about
    // to be unmapped: false, with `pages` not applied, when one of them is in flight (named by a
    // request on the guest's ring the worker has not answered) or the worker did not answer in
    // time. The default, a sink that never touches the pages, accepts everything.
    virtual bool set_staging(VifId /*id*/, std::shared_ptr<const StagedPages> /*pages*/, unsigned /*queue*/,
                             std::span<const platform::GrantRef> /*removed*/) {
        return true;
    }
};

} // namespace netbackd::control
