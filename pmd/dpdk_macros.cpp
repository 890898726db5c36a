#include "pmd/dpdk_macros.hpp"

#include <rte_ethdev.h>

namespace netbackd::pmd {

std::vector<std::uint16_t> ethdev_ports() {
    std::vector<std::uint16_t> ports;
    std::uint16_t id = 0;
    RTE_ETH_FOREACH_DEV(id) { ports.push_back(id); }
    return ports;
}

std::optional<std::string> ethdev_name(std::uint16_t port_id) {
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) != 0) {
        return std::nullopt;
    }
    return std::string(name);
}

} // namespace netbackd::pmd
