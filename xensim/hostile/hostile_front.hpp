// A guest netfront that does exactly what an attack script tells it, including what a well
// behaved netfront never would: raw ring slots and indices, grants to the wrong domain or
// read-only, revocation mid-flight, notifications without end. It owns the guest half only;
// whoever plays the backend maps tx_ref()/rx_ref() and binds port().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "ring/front_ring.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

namespace netbackd::xensim::hostile {

class HostileFront {
public:
    HostileFront(std::shared_ptr<HvClient> client, DomId backend);
    // Takes over rings a regular netfront set up (and the backend already connected): the way a
    // compromised guest kernel turns hostile after a clean handshake.
    struct Rings {
        Gfn tx_gfn, rx_gfn;
        platform::GrantRef tx_ref, rx_ref;
        platform::EvtchnPort port;
    };
    // `events` is the netfront's: a port notifies only through the Events that bound it.
    HostileFront(std::shared_ptr<HvClient> client, DomId backend, const Rings& rings,
                 platform::Events& events);

    DomId domid() const noexcept { return mem_.domid(); }
    DomId backend() const noexcept { return backend_; }
    platform::GrantRef tx_ref() const noexcept { return tx_ref_; }
    platform::GrantRef rx_ref() const noexcept { return rx_ref_; }
    platform::EvtchnPort port() const noexcept { return port_; }

    ring::FrontRing<ring::TxRing>& tx() noexcept { return tx_; }
    ring::FrontRing<ring::RxRing>& rx() noexcept { return rx_; }
    // Raw views, for indices and slots the FrontRing would never write.
    ring::SharedRing<ring::TxRing> tx_shared() const noexcept {
        return ring::SharedRing<ring::TxRing>(tx_page_);
    }
    ring::SharedRing<ring::RxRing> rx_shared() const noexcept {
        return ring::SharedRing<ring::RxRing>(rx_page_);
    }

    // A fresh page holding `content` at `offset`, granted to `to` (the backend unless told).
    platform::GrantRef page(std::span<const std::byte> content, std::uint16_t offset = 0,
                            bool readonly = true);
    platform::GrantRef page_for(DomId to, std::span<const std::byte> content, bool readonly);
    // Revokes a grant as a guest kernel would; false while the backend holds it.
    bool revoke(platform::GrantRef ref) { return mem_.end_access(ref); }

    // Publishes whatever was queued and notifies unconditionally (a hostile guest ignores
    // req_event; notifying too often must be harmless).
    void push_tx_and_notify();
    void push_rx_and_notify();
    void notify() { events_->notify(port_); }
    // Writable RX buffers, each a fresh page (read-only grants when asked: the attack).
    void post_rx(std::size_t n, bool readonly = false);

private:
    DomId backend_;
    std::shared_ptr<HvClient> client_;
    GuestMemory mem_;
    std::optional<SimEvents> own_events_;
    platform::Events* events_;
    Gfn tx_gfn_;
    Gfn rx_gfn_;
    ring::Page tx_page_;
    ring::Page rx_page_;
    platform::GrantRef tx_ref_;
    platform::GrantRef rx_ref_;
    platform::EvtchnPort port_;
    ring::FrontRing<ring::TxRing> tx_;
    ring::FrontRing<ring::RxRing> rx_;
    std::uint16_t next_rx_id_ = 0;
};

} // namespace netbackd::xensim::hostile
