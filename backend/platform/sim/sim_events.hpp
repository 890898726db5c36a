// platform::Events on the simulated hypervisor. Pending and mask bits live in the domains'
// shared state; a notify is an atomic on the peer's port plus, when the peer must wake, one
// write() to the eventfd of the process that bound that port.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/platform/platform.hpp"
#include "backend/platform/sim/client.hpp"

namespace netbackd::xensim {

class SimEvents final : public platform::Events {
public:
    explicit SimEvents(std::shared_ptr<HvClient> client);
    ~SimEvents() override;

    platform::EvtchnPort bind_interdomain(DomId remote, platform::EvtchnPort remote_port) override;
    platform::EvtchnPort alloc_unbound(DomId remote) override;
    void unbind(platform::EvtchnPort local) override;
    void notify(platform::EvtchnPort local) override;
    int fd() const override { return client_->eventfd(); }
    std::optional<platform::EvtchnPort> pending() override;
    void unmask(platform::EvtchnPort local) override;

private:
    EventPort& own_port(platform::EvtchnPort local);

    std::shared_ptr<HvClient> client_;
    std::shared_ptr<DomainView> self_;
    std::mutex mutex_;
    std::vector<platform::EvtchnPort> ports_;
    std::size_t next_scan_ = 0;
    bool rescan_ = false;
    // Resolved peers, so a steady-state notify needs no lookup beyond a check.
    struct Peer {
        std::shared_ptr<DomainView> domain;
        std::uint32_t port = 0;
        std::uint32_t owner = 0;
        int eventfd = -1; // >= 0: a reference on the client's cached eventfd of owner
    };
    // Gives back the peer's eventfd reference (a dead guest's fd must not stay open).
    void forget_eventfd(Peer& peer) noexcept;
    std::unordered_map<platform::EvtchnPort, Peer> peers_;
};

} // namespace netbackd::xensim
