// netbackd's configuration: the global TOML file and the per-client directory.
// Validation is strict (unknown keys are errors: a typo must not silently lose a VLAN) and
// every message names file:line so an operator can fix it without reading code.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/control/keys.hpp"

namespace netbackd::control {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A port's `mtu`: at least IPv4's minimum; at most the largest any Ethernet NIC takes (e1000's
// 16128-byte frame), far below what one mbuf's 16-bit data room could hold. Whether the device
// itself takes it is known only at start (the port's max_mtu).
inline constexpr std::uint16_t kMinPortMtu = 68;
inline constexpr std::uint16_t kMaxPortMtu = 16110;

struct DpdkPort {
    std::string name;
    std::string pci; // exactly one of pci / vdev
    std::string vdev;
    std::optional<std::uint16_t> mtu; // L3 MTU of the wire; unset: the device's default
    std::string mtu_source;           // "file:line" of `mtu`, for a refusal at start
};

enum class Polling { busy, adaptive };

struct GlobalConfig {
    std::string platform = "xen"; // xen | sim
    std::string log_level = "info";
    std::filesystem::path clients_dir = "/etc/netbackd/clients";
    unsigned wait_report_seconds = 5;
    std::string sim_dir;
    std::uint16_t sim_domid = 0;
    unsigned max_queues = 4; // multi-queue-max-queues; 1 disables multi-queue
    // Vifs served at once; the next attach is refused before InitWait/Connected.
    unsigned max_vifs = 1024;
    // Caps on what frames waiting for a guest's RX buffers may hold (see dataplane::WorkerConfig).
    std::uint32_t rx_queue_bytes = 512 * 1024; // per vif queue (Linux XENVIF_RX_QUEUE_BYTES)
    std::uint32_t rx_vif_bytes = 1024 * 1024;  // per vif, all queues
    // Guest RX stalled this long: backlog dropped, carrier off until buffers return. 0: never.
    unsigned rx_stall_timeout_ms = 60000;
    // How long a frame from another vif waits for room in a vif's full backlog (back-pressure).
    unsigned rx_wait_ms = 20;
    // Guest pages a vif may keep mapped as staging grants (ADD_GREF_MAPPING), split evenly
    // between its queues; 0: staging grants not offered.
    unsigned staging_pages_per_vif = 1024;
    // Wire TCP segments merged into GSO frames for guests that take them (dataplane rx_merge).
    bool rx_merge = true;
    bool split_event_channels = true;
    std::vector<std::string> eal_args;
    std::vector<DpdkPort> ports;
    std::vector<unsigned> worker_cores;
    Polling polling = Polling::adaptive; // busy: a core at 100% for the lowest latency
    // Packets per vif queue / uplink per worker iteration, both directions; unset keeps the
    // worker's own defaults. The bench varies it to show how a batch amortises a hypercall.
    std::optional<unsigned> burst;
};

struct ClientConfig {
    std::string source; // "file:line" of the [match] table, for log lines
    // Match keys: domain (+ optional devid), or mac.
    std::optional<std::string> match_domain;
    std::optional<std::uint32_t> match_devid;
    std::optional<Mac> match_mac;
    // Policy.
    std::optional<Mac> mac;
    std::optional<std::string> uplink;
    std::string uplink_source; // "file:line" of `uplink`
    std::optional<std::uint16_t> vlan;
    std::optional<Rate> rate;
    std::optional<unsigned> queues;
    std::optional<std::filesystem::path> script;
};

struct Config {
    std::filesystem::path path;
    GlobalConfig global;
    std::vector<ClientConfig> clients; // in file-name order
};

GlobalConfig parse_global(std::string_view text, const std::string& source_name);
// One client file: its policy and how it is matched.
ClientConfig parse_client(std::string_view text, const std::string& source_name);
// The global file plus every *.toml in its clients_dir; throws ConfigError listing every
// problem found (one per line), so one reload attempt shows them all. A client's `uplink` must
// name one of the global file's ports.
Config load_config(const std::filesystem::path& path);

// The client entry for a vif: the most specific match wins (domain+devid, then MAC, then
// domain alone); ties go to the first file by name.
const ClientConfig* match_client(const Config& config, std::string_view domain_name, std::uint32_t devid,
                                 const std::optional<Mac>& toolstack_mac);

} // namespace netbackd::control
