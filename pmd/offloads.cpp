#include "pmd/offloads.hpp"

#include <rte_ethdev.h>

#include <fmt/format.h>

namespace netbackd::pmd {

Offloads Offloads::from_capabilities(std::uint64_t rx, std::uint64_t tx) noexcept {
    Offloads o;
    o.tx_ipv4_cksum = (tx & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    o.tx_udp_cksum = (tx & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0;
    o.tx_tcp_cksum = (tx & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0;
    o.tx_tcp_tso = (tx & RTE_ETH_TX_OFFLOAD_TCP_TSO) != 0;
    o.tx_multi_segs = (tx & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
    o.rx_ipv4_cksum = (rx & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0;
    o.rx_udp_cksum = (rx & RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0;
    o.rx_tcp_cksum = (rx & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) != 0;
    o.rx_scatter = (rx & RTE_ETH_RX_OFFLOAD_SCATTER) != 0;
    return o;
}

std::uint64_t Offloads::tx_mask() const noexcept {
    std::uint64_t m = 0;
    m |= tx_ipv4_cksum ? RTE_ETH_TX_OFFLOAD_IPV4_CKSUM : 0;
    m |= tx_udp_cksum ? RTE_ETH_TX_OFFLOAD_UDP_CKSUM : 0;
    m |= tx_tcp_cksum ? RTE_ETH_TX_OFFLOAD_TCP_CKSUM : 0;
    m |= tx_tcp_tso ? RTE_ETH_TX_OFFLOAD_TCP_TSO : 0;
    m |= tx_multi_segs ? RTE_ETH_TX_OFFLOAD_MULTI_SEGS : 0;
    return m;
}

std::uint64_t Offloads::rx_mask() const noexcept {
    std::uint64_t m = 0;
    m |= rx_ipv4_cksum ? RTE_ETH_RX_OFFLOAD_IPV4_CKSUM : 0;
    m |= rx_udp_cksum ? RTE_ETH_RX_OFFLOAD_UDP_CKSUM : 0;
    m |= rx_tcp_cksum ? RTE_ETH_RX_OFFLOAD_TCP_CKSUM : 0;
    m |= rx_scatter ? RTE_ETH_RX_OFFLOAD_SCATTER : 0;
    return m;
}

Offloads Offloads::operator&(const Offloads& o) const noexcept {
    return from_capabilities(rx_mask() & o.rx_mask(), tx_mask() & o.tx_mask());
}

std::string Offloads::describe() const {
    std::string tx;
    std::string rx;
    const auto add = [](std::string& s, bool on, const char* name) {
        if (on) {
            s += s.empty() ? "" : " ";
            s += name;
        }
    };
    add(tx, tx_ipv4_cksum, "ipv4-cksum");
    add(tx, tx_udp_cksum, "udp-cksum");
    add(tx, tx_tcp_cksum, "tcp-cksum");
    add(tx, tx_tcp_tso, "tcp-tso");
    add(tx, tx_multi_segs, "multi-segs");
    add(rx, rx_ipv4_cksum, "ipv4-cksum");
    add(rx, rx_udp_cksum, "udp-cksum");
    add(rx, rx_tcp_cksum, "tcp-cksum");
    add(rx, rx_scatter, "scatter");
    return fmt::format("tx: {} | rx: {}", tx.empty() ? "none" : tx, rx.empty() ? "none" : rx);
}

std::string describe(const LinkStatus& link) {
    if (!link.up) {
        return "down";
    }
    return fmt::format("up {} {}{}",
                       link.speed_mbps == 0 ? std::string("speed unknown")
                                            : fmt::format("{} Mbps", link.speed_mbps),
                       link.full_duplex ? "full-duplex" : "half-duplex", link.autoneg ? " autoneg" : "");
}

} // namespace netbackd::pmd
