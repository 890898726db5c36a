// Functions standing in for DPDK macros that do not compile cleanly in our code
// (RTE_ETH_FOREACH_DEV expands to implicit narrowing and C casts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace netbackd::pmd {

// Ids of every usable ethdev port (RTE_ETH_FOREACH_DEV).
std::vector<std::uint16_t> ethdev_ports();

// The name a port is known by (vdev name or PCI address), or std::nullopt for a bad id.
std::optional<std::string> ethdev_name(std::uint16_t port_id);

} // namespace netbackd::pmd
