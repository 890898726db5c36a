// What a port does in hardware, detected once at start; the rest is done in software.
#pragma once

#include <cstdint>
#include <string>

namespace netbackd::pmd {

struct Offloads {
    bool tx_ipv4_cksum = false;
    bool tx_udp_cksum = false;
    bool tx_tcp_cksum = false;
    bool tx_tcp_tso = false;
    bool tx_multi_segs = false;
    bool rx_ipv4_cksum = false;
    bool rx_udp_cksum = false;
    bool rx_tcp_cksum = false;
    bool rx_scatter = false;

    static constexpr Offloads all() noexcept {
        return {true, true, true, true, true, true, true, true, true};
    }
    static constexpr Offloads none() noexcept { return {}; }

    // From rte_eth_dev_info's rx_offload_capa / tx_offload_capa.
    static Offloads from_capabilities(std::uint64_t rx_capa, std::uint64_t tx_capa) noexcept;
    // RTE_ETH_{RX,TX}_OFFLOAD_* masks to pass to rte_eth_dev_configure.
    std::uint64_t rx_mask() const noexcept;
    std::uint64_t tx_mask() const noexcept;

    Offloads operator&(const Offloads& o) const noexcept;
    bool operator==(const Offloads&) const = default;

    // Both checksums a TCP or UDP frame needs, so a guest's csum_blank can go to hardware.
    bool tx_l4_cksum() const noexcept { return tx_ipv4_cksum && tx_tcp_cksum && tx_udp_cksum; }
    bool rx_l4_cksum() const noexcept { return rx_ipv4_cksum && rx_tcp_cksum && rx_udp_cksum; }

    // "tx: ipv4-cksum tcp-cksum ... | rx: ..." with "none" for an empty side.
    std::string describe() const;
};

struct LinkStatus {
    bool up = false;
    std::uint32_t speed_mbps = 0; // 0 when unknown
    bool full_duplex = false;
    bool autoneg = false;
    bool operator==(const LinkStatus&) const = default;
};

// The value of a vif's "carrier" xenstore key for this link.
inline const char* carrier_value(const LinkStatus& link) noexcept { return link.up ? "1" : "0"; }

std::string describe(const LinkStatus& link);

} // namespace netbackd::pmd
