// The DPDK Environment Abstraction Layer, once per process.
//
// rte_eal_init can run only once in a process (a second call fails with EALREADY and even
// rte_eal_cleanup does not allow another), so Eal refuses a second live instance outright.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pmd/error.hpp"

namespace netbackd::pmd {

struct EalConfig {
    // EAL --lcores value. Empty: lcore 0 floating over every CPU this process may use, because
    // "-l 0" would pin the main thread, and every thread it starts later, to CPU 0.
    std::string lcores;
    // --vdev arguments, e.g. "net_null0" or "net_tap0,iface=vif1.0".
    std::vector<std::string> vdevs;
    // PCI addresses to allow (-a); empty means --no-pci, since scanning the bus finds nothing
    // usable unless devices were bound to vfio-pci or uio beforehand.
    std::vector<std::string> pci_allow;
    bool hugepages = false;
    // -m: megabytes to reserve at start; 0 lets EAL grow on demand (hugepages only).
    std::uint32_t memory_mb = 256;
    // --file-prefix: distinct per process, or parallel DPDK processes clash on shared files.
    std::string file_prefix;
    // --in-memory: no shared files at all. Only with hugepages (EAL rejects it with --no-huge).
    bool in_memory = false;
    // --log-level value, e.g. "*:error" or "8".
    std::string log_level = "*:error";
    bool telemetry = false;
    // Anything else, passed through verbatim at the end.
    std::vector<std::string> extra;
};

using EalError = DpdkError;

// argv for rte_eal_init (argv[0] included). Throws EalError(EINVAL) for contradictory settings.
std::vector<std::string> eal_arguments(const EalConfig& config, const std::string& program = "netbackd");

// The other direction: an EalConfig from EAL arguments as an operator writes them (netbackd's
// [dpdk] eal_args). Recognised options become fields (--no-huge, --in-memory, -m,
// --file-prefix, -l/--lcores, --vdev, -a/--allow, --log-level, --no-telemetry/--telemetry,
// both "--opt value" and "--opt=value"); anything else is kept verbatim in `extra`.
// Without --no-huge the result uses hugepages, since that is what a production host has.
// Throws EalError(EINVAL) for an option that lacks its value, or for -c (use -l/--lcores).
EalConfig parse_eal_args(const std::vector<std::string>& args);

// An uplink as netbackd's config names it: a PCI address or a vdev specification.
struct UplinkSpec {
    std::string name;
    std::string pci;  // "0000:03:00.0" or "03:00.0"
    std::string vdev; // "net_tap0,iface=nbtap0"
};

// Adds the uplinks to the EAL configuration (-a for PCI, --vdev for vdevs).
void add_uplinks(EalConfig& config, const std::vector<UplinkSpec>& uplinks);

// The ethdev name the uplink's port will have: the full PCI address ("0000:" is added to a
// short one, as EAL names it) or the vdev's device name (up to the first comma).
std::string ethdev_name_of(const UplinkSpec& uplink);

// What the host offers, read from /proc and /dev, for explaining a failed start.
struct HostFacts {
    std::uint64_t hugepages_total = 0;
    std::uint64_t hugepages_free = 0;
    std::uint64_t hugepage_kb = 0; // the default size's
    bool vfio = false;
    bool uio = false;
    bool running_as_root = false;
};
HostFacts probe_host();

// One line saying what most likely went wrong and what to do about it.
std::string explain_eal_failure(int rte_errno_value, const EalConfig& config, const HostFacts& host);

// The CPUs this process may run on, as an EAL cpuset ("0-1" or "0,2,5").
std::string allowed_cpu_list();
std::vector<unsigned> allowed_cpus();

// An EAL --lcores value for netbackd's threads: lcore 0 (the control thread, and anything it
// starts) floating over the allowed CPUs that no worker uses, and lcore i+1 pinned to
// worker_cpus[i], so that a busy-polling worker has its CPU to itself. When the workers take
// every allowed CPU, lcore 0 floats over all of them. Throws EalError(EINVAL) for a worker CPU
// outside `allowed`.
std::string lcores_for_workers(std::span<const unsigned> worker_cpus, std::span<const unsigned> allowed);

// Ports, pools and virtual devices live in EAL memory: destroy them all before the Eal.
class Eal {
public:
    explicit Eal(const EalConfig& config);
    ~Eal();
    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
    Eal(Eal&&) = delete;
    Eal& operator=(Eal&&) = delete;

    const std::vector<std::string>& arguments() const noexcept { return args_; }

private:
    void remove_runtime_dir() noexcept;

    std::vector<std::string> args_;
    // EAL leaves its runtime directory (/var/run/dpdk/<prefix>) behind; we remove it.
    std::string runtime_dir_;
};

} // namespace netbackd::pmd
