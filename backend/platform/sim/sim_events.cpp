#include "backend/platform/sim/sim_events.hpp"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace netbackd::xensim {

using platform::EvtchnPort;
using platform::PlatformError;

namespace {

constexpr auto kInterdomain = static_cast<std::uint32_t>(PortState::interdomain);

} // namespace

SimEvents::SimEvents(std::shared_ptr<HvClient> client) : client_(std::move(client)) {
    if (!client_->claim_events())
        throw PlatformError("this hypervisor connection already has an Events; connect again for another",
                            EBUSY);
    self_ = client_->domain(client_->domid());
    if (self_ == nullptr)
        throw PlatformError(fmt::format("domain {} does not exist", client_->domid()), ESRCH);
}

SimEvents::~SimEvents() {
    for (auto& [port, peer] : peers_) forget_eventfd(peer);
    for (EvtchnPort port : ports_) {
        try {
            client_->unbind(port);
        } catch (const PlatformError&) {
            // Already closed by the peer's domain going away, or the hypervisor is gone.
        }
    }
}

EventPort& SimEvents::own_port(EvtchnPort local) {
    if (local == 0 || local >= kNrPorts || self_->state->ports[local].owner.load() != client_->token())
        throw PlatformError(fmt::format("event channel port {} is not bound by this process", local), EINVAL);
    return self_->state->ports[local];
}

EvtchnPort SimEvents::bind_interdomain(DomId remote, EvtchnPort remote_port) {
    EvtchnPort port = client_->bind_interdomain(remote, remote_port);
    std::lock_guard lock(mutex_);
    ports_.push_back(port);
    // The hypervisor marked the new port pending (as Xen does); make sure we scan for it.
    rescan_ = true;
    return port;
}

EvtchnPort SimEvents::alloc_unbound(DomId remote) {
    EvtchnPort port = client_->alloc_unbound(remote);
    std::lock_guard lock(mutex_);
    ports_.push_back(port);
    return port;
}

void SimEvents::unbind(EvtchnPort local) {
    {
        std::lock_guard lock(mutex_);
        if (std::find(ports_.begin(), ports_.end(), local) == ports_.end())
            throw PlatformError(fmt::format("event channel port {} is not bound by this process", local),
                                EINVAL);
    }
    client_->unbind(local);
    std::lock_guard lock(mutex_);
    std::erase(ports_, local);
    if (auto it = peers_.find(local); it != peers_.end()) {
        forget_eventfd(it->second);
        peers_.erase(it);
    }
}

void SimEvents::forget_eventfd(Peer& peer) noexcept {
    if (peer.eventfd >= 0) client_->release_eventfd(peer.owner);
    peer.eventfd = -1;
}

void SimEvents::notify(EvtchnPort local) {
    EventPort& me = own_port(local);
    if (me.state.load(std::memory_order_acquire) != kInterdomain) return; // unbound: Xen drops it
    auto remote_dom = static_cast<DomId>(me.remote_dom.load(std::memory_order_relaxed));
    std::uint32_t remote_port = me.remote_port.load(std::memory_order_relaxed);

    std::lock_guard lock(mutex_);
    Peer& peer = peers_[local];
    if (peer.domain == nullptr || peer.domain->domid != remote_dom || peer.port != remote_port ||
        !peer.domain->alive()) {
        forget_eventfd(peer);
        peer.domain = client_->domain(remote_dom);
        peer.port = remote_port;
        peer.owner = 0;
        if (peer.domain == nullptr || remote_port >= kNrPorts) {
            peers_.erase(local);
            return;
        }
    }
    EventPort& them = peer.domain->state->ports[remote_port];
    if (them.state.load(std::memory_order_acquire) != kInterdomain ||
        them.remote_dom.load() != client_->domid() || them.remote_port.load() != local)
        return;
    std::uint32_t owner = them.owner.load(std::memory_order_acquire);
    if (owner != peer.owner) {
        forget_eventfd(peer);
        peer.owner = owner;
        peer.eventfd = client_->eventfd_of(owner);
    }
    // Only the edge from idle to pending on an unmasked port wakes the peer; the rest coalesce.
    if (them.pending.exchange(1, std::memory_order_seq_cst) == 0 &&
        them.mask.load(std::memory_order_seq_cst) == 0 && peer.eventfd >= 0)
        platform::signal_eventfd(peer.eventfd);
}

std::optional<EvtchnPort> SimEvents::pending() {
    if (platform::drain_eventfd(client_->eventfd())) {
        std::lock_guard lock(mutex_);
        rescan_ = true;
    }
    std::lock_guard lock(mutex_);
    if (!rescan_ || ports_.empty()) return std::nullopt;
    // Round-robin, so a chatty port cannot hide the others.
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        EvtchnPort port = ports_[(next_scan_ + i) % ports_.size()];
        EventPort& p = self_->state->ports[port];
        if (p.pending.load(std::memory_order_seq_cst) != 0 && p.mask.load(std::memory_order_seq_cst) == 0) {
            // Delivered ports stay masked until unmask(), like Linux's evtchn device.
            p.mask.store(1, std::memory_order_seq_cst);
            p.pending.store(0, std::memory_order_seq_cst);
            next_scan_ = (next_scan_ + i + 1) % ports_.size();
            return port;
        }
    }
    rescan_ = false;
    return std::nullopt;
}

void SimEvents::unmask(EvtchnPort local) {
    EventPort& p = own_port(local);
    p.mask.store(0, std::memory_order_seq_cst);
    // An event that arrived while masked is delivered now.
    if (p.pending.load(std::memory_order_seq_cst) != 0) platform::signal_eventfd(client_->eventfd());
}

} // namespace netbackd::xensim
