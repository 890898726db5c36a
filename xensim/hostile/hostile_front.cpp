#include "xensim/hostile/hostile_front.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace netbackd::xensim::hostile {

HostileFront::HostileFront(std::shared_ptr<HvClient> client, DomId backend)
    : backend_(backend),
      client_(std::move(client)),
      mem_(client_),
      own_events_(std::in_place, client_),
      events_(&*own_events_),
      tx_gfn_(mem_.alloc_page()),
      rx_gfn_(mem_.alloc_page()),
      tx_page_(mem_.page(tx_gfn_).data(), ring::kPageSize),
      rx_page_(mem_.page(rx_gfn_).data(), ring::kPageSize),
      tx_ref_(mem_.grant_access(tx_gfn_, backend_, false)),
      rx_ref_(mem_.grant_access(rx_gfn_, backend_, false)),
      port_(events_->alloc_unbound(backend_)),
      tx_(tx_page_),
      rx_(rx_page_) {
    ring::init_shared_ring<ring::TxRing>(tx_page_);
    ring::init_shared_ring<ring::RxRing>(rx_page_);
}

HostileFront::HostileFront(std::shared_ptr<HvClient> client, DomId backend, const Rings& rings,
                           platform::Events& events)
    : backend_(backend),
      client_(std::move(client)),
      mem_(client_),
      events_(&events),
      tx_gfn_(rings.tx_gfn),
      rx_gfn_(rings.rx_gfn),
      tx_page_(mem_.page(tx_gfn_).data(), ring::kPageSize),
      rx_page_(mem_.page(rx_gfn_).data(), ring::kPageSize),
      tx_ref_(rings.tx_ref),
      rx_ref_(rings.rx_ref),
      port_(rings.port),
      // Continue where the netfront left its indices, so only the attack is out of step.
      tx_(tx_page_, tx_shared().req_prod().load()),
      rx_(rx_page_, rx_shared().req_prod().load()) {}

platform::GrantRef HostileFront::page(std::span<const std::byte> content, std::uint16_t offset,
                                      bool readonly) {
    const Gfn g = mem_.alloc_page();
    const auto dst = mem_.page(g);
    const std::size_t n =
        std::min<std::size_t>(content.size(), dst.size() - std::min<std::size_t>(offset, dst.size()));
    std::memcpy(dst.data() + offset, content.data(), n);
    return mem_.grant_access(g, backend_, readonly);
}

platform::GrantRef HostileFront::page_for(DomId to, std::span<const std::byte> content, bool readonly) {
    const Gfn g = mem_.alloc_page();
    std::memcpy(mem_.page(g).data(), content.data(), std::min<std::size_t>(content.size(), ring::kPageSize));
    return mem_.grant_access(g, to, readonly);
}

void HostileFront::push_tx_and_notify() {
    tx_.push();
    notify();
}

void HostileFront::push_rx_and_notify() {
    rx_.push();
    notify();
}

void HostileFront::post_rx(std::size_t n, bool readonly) {
    for (std::size_t i = 0; i < n && !rx_.full(); ++i) {
        const Gfn g = mem_.alloc_page();
        netif_rx_request_t req{};
        req.id = next_rx_id_++;
        req.gref = mem_.grant_access(g, backend_, readonly);
        rx_.put_request(req);
    }
    push_rx_and_notify();
}

} // namespace netbackd::xensim::hostile
