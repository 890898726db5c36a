#include "backend/dataplane/vif_runtime.hpp"

#include <fmt/format.h>
#include <rte_mbuf.h>

#include "backend/dataplane/rx_merge.hpp"

namespace netbackd::dataplane {

namespace {

ring::Page page_of(platform::GrantMapping& m) { return ring::Page(m.page().data(), ring::kPageSize); }

} // namespace

QueueRuntime::QueueRuntime(control::QueueRings& rings)
    : tx_ring(page_of(*rings.tx_ring), ring::BackRing<ring::TxRing>::attach_index(page_of(*rings.tx_ring))),
      tx(tx_ring),
      rx_ring(page_of(*rings.rx_ring), ring::BackRing<ring::RxRing>::attach_index(page_of(*rings.rx_ring))),
      rx(rx_ring),
      tx_port(rings.tx_port.port()),
      rx_port(rings.rx_port ? rings.rx_port.port() : rings.tx_port.port()) {}

std::string_view to_string(VifFault f) noexcept {
    switch (f) {
    case VifFault::none: return "none";
    case VifFault::tx_ring: return "tx ring";
    case VifFault::rx_ring: return "rx ring: request producer out of range";
    case VifFault::duplicate_mac: return "MAC address already used by another vif on this uplink/VLAN";
    case VifFault::unknown_uplink: return "the configured uplink does not exist";
    case VifFault::switch_full: return "the switch has no free port";
    }
    return "?";
}

VifRuntime::VifRuntime(std::unique_ptr<control::VifHandle> handle, std::optional<std::uint16_t> up,
                       std::uint64_t hz)
    : uplink(up), tsc_hz(hz), handle_(std::move(handle)) {
    const auto& p = handle_->policy;
    mac = MacAddr::from_bytes(std::span<const std::uint8_t, 6>(p.guest_mac));
    vlan = p.vlan.value_or(0);
    mtu = static_cast<std::uint16_t>(p.mtu > 65535 ? 65535 : p.mtu);
    const auto& f = handle_->features;
    sg = f.sg;
    // Whole GSO frames need several slots: without SG they are cut up instead.
    gso_v4 = f.gso_tcpv4 && f.sg;
    gso_v6 = f.gso_tcpv6 && f.sg;
    merge_v4 = gso_v4 && f.ip_csum;
    merge_v6 = gso_v6 && f.ipv6_csum;
    rx_notify = f.rx_notify;
    xdp_headroom = f.xdp_headroom;
    merge_limit = RxMerge::max_bytes(xdp_headroom);
    mcast.set_enabled(f.multicast_control);
    queues.reserve(handle_->queues.size());
    for (auto& q : handle_->queues) {
        queues.push_back(std::make_unique<QueueRuntime>(q));
        queues.back()->index = static_cast<std::uint32_t>(queues.size() - 1);
    }
}

std::string VifRuntime::fault_message() const {
    const VifFault f = fault();
    if (f == VifFault::tx_ring) return fmt::format("tx ring: {}", ring::to_string(tx_error()));
    return std::string(to_string(f));
}

std::optional<ring::FrameHash> VifRuntime::guest_hash(const rte_mbuf* m) const noexcept {
    if (!hash || !hash->enabled() || hash->flags == 0) return std::nullopt;
    return hash->hash({rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len});
}

void VifRuntime::set_rate(std::optional<control::Rate> rate, std::uint64_t now) noexcept {
    if (!rate || rate->bytes == 0 || rate->usec == 0) {
        tx_bucket = TokenBucket();
        rx_bucket = TokenBucket();
        return;
    }
    const std::uint64_t ticks = static_cast<std::uint64_t>(static_cast<long double>(rate->usec) *
                                                           static_cast<long double>(tsc_hz) / 1e6L);
    tx_bucket = TokenBucket(rate->bytes, ticks, now);
    rx_bucket = TokenBucket(rate->bytes, ticks, now);
}

} // namespace netbackd::dataplane
