#include <algorithm>
#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include <sched.h>
#include <unistd.h>

#include <fmt/format.h>

#include "pmd/eal.hpp"

namespace netbackd::pmd {

namespace {

std::uint64_t meminfo_value(std::string_view key) {
    std::ifstream in("/proc/meminfo");
    std::string name;
    std::uint64_t value = 0;
    std::string rest;
    while (in >> name >> value) {
        std::getline(in, rest);
        if (name.size() == key.size() + 1 && name.starts_with(key) && name.back() == ':') {
            return value;
        }
    }
    return 0;
}

bool exists(const char* path) { return ::access(path, F_OK) == 0; }

} // namespace

std::vector<unsigned> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<unsigned> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) != 0) {
        return {0};
    }
    for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            cpus.push_back(cpu);
        }
    }
    return cpus.empty() ? std::vector<unsigned>{0} : cpus;
}

namespace {

// "0-1,4" for {0,1,4}; the input is sorted.
std::string cpuset(std::span<const unsigned> cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) {
            ++j;
        }
        if (!out.empty()) {
            out += ',';
        }
        out += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
        i = j + 1;
    }
    return out;
}

} // namespace

std::string allowed_cpu_list() { return cpuset(allowed_cpus()); }

std::string lcores_for_workers(std::span<const unsigned> worker_cpus, std::span<const unsigned> allowed) {
    std::vector<unsigned> sorted(allowed.begin(), allowed.end());
    std::ranges::sort(sorted);
    std::vector<unsigned> control;
    for (const unsigned cpu : sorted) {
        if (std::ranges::find(worker_cpus, cpu) == worker_cpus.end()) {
            control.push_back(cpu);
        }
    }
    for (const unsigned cpu : worker_cpus) {
        if (!std::ranges::binary_search(sorted, cpu)) {
            throw EalError(
                fmt::format("worker CPU {} is not among this process's CPUs ({})", cpu, cpuset(sorted)),
                EINVAL);
        }
    }
    std::string out = "0@(" + cpuset(control.empty() ? sorted : control) + ")";
    for (std::size_t i = 0; i < worker_cpus.size(); ++i) {
        out += fmt::format(",{}@{}", i + 1, worker_cpus[i]);
    }
    return out;
}

std::vector<std::string> eal_arguments(const EalConfig& c, const std::string& program) {
    if (!c.hugepages && c.in_memory) {
        throw EalError("EAL: --in-memory needs hugepages; without them use --no-huge alone "
                       "(with a distinct --file-prefix)",
                       EINVAL);
    }
    if (!c.hugepages && c.memory_mb == 0) {
        throw EalError("EAL: --no-huge needs an explicit memory size (-m)", EINVAL);
    }
    std::vector<std::string> a{program};
    a.push_back("--lcores=" + (c.lcores.empty() ? "0@(" + allowed_cpu_list() + ")" : c.lcores));
    if (!c.hugepages) {
        a.emplace_back("--no-huge");
    }
    if (c.memory_mb != 0) {
        a.emplace_back("-m");
        a.push_back(std::to_string(c.memory_mb));
    }
    if (c.in_memory) {
        a.emplace_back("--in-memory");
    }
    if (!c.file_prefix.empty()) {
        a.push_back("--file-prefix=" + c.file_prefix);
    }
    if (c.pci_allow.empty()) {
        a.emplace_back("--no-pci");
    }
    for (const auto& pci : c.pci_allow) {
        a.emplace_back("-a");
        a.push_back(pci);
    }
    for (const auto& vdev : c.vdevs) {
        a.push_back("--vdev=" + vdev);
    }
    if (!c.log_level.empty()) {
        a.push_back("--log-level=" + c.log_level);
    }
    if (!c.telemetry) {
        a.emplace_back("--no-telemetry");
    }
    a.insert(a.end(), c.extra.begin(), c.extra.end());
    return a;
}

EalConfig parse_eal_args(const std::vector<std::string>& args) {
    EalConfig c;
    c.hugepages = true;
    c.memory_mb = 0;
    c.log_level.clear();
    // Telemetry stays as EAL defaults it (on) unless the operator says otherwise.
    c.telemetry = true;
    bool memory_given = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        // "--opt=value" or "--opt value"; "-m512" style too for the short ones.
        const auto value_of = [&](std::string_view opt) -> std::optional<std::string> {
            if (a == opt) {
                if (i + 1 >= args.size()) {
                    throw EalError(fmt::format("EAL option {} needs a value", opt), EINVAL);
                }
                return args[++i];
            }
            if (a.size() > opt.size() && a.starts_with(opt)) {
                if (opt.starts_with("--") && a[opt.size()] == '=') {
                    return a.substr(opt.size() + 1);
                }
                if (!opt.starts_with("--")) {
                    return a.substr(opt.size());
                }
            }
            return std::nullopt;
        };
        if (a == "--no-huge") {
            c.hugepages = false;
        } else if (a == "--in-memory") {
            c.in_memory = true;
        } else if (a == "--no-telemetry") {
            c.telemetry = false;
        } else if (a == "--telemetry") {
            c.telemetry = true;
        } else if (a == "--no-pci") {
            // Implied by an empty allow list.
        } else if (a == "-c" || (a.starts_with("-c") && a.size() > 2 && !a.starts_with("--"))) {
            throw EalError("EAL option -c (core mask): use -l or --lcores", EINVAL);
        } else if (auto v = value_of("--file-prefix")) {
            c.file_prefix = *v;
        } else if (auto v = value_of("--lcores")) {
            c.lcores = *v;
        } else if (auto v = value_of("-l")) {
            c.lcores = *v;
        } else if (auto v = value_of("--vdev")) {
            c.vdevs.push_back(*v);
        } else if (auto v = value_of("--allow")) {
            c.pci_allow.push_back(*v);
        } else if (auto v = value_of("-a")) {
            c.pci_allow.push_back(*v);
        } else if (auto v = value_of("--log-level")) {
            c.log_level = *v;
        } else if (auto v = value_of("-m")) {
            try {
                c.memory_mb = static_cast<std::uint32_t>(std::stoul(*v));
            } catch (const std::exception&) {
                throw EalError(fmt::format("EAL option -m: '{}' is not a number of MB", *v), EINVAL);
            }
            memory_given = true;
        } else {
            c.extra.push_back(a);
        }
    }
    if (!c.hugepages && !memory_given) {
        c.memory_mb = 256;
    }
    return c;
}

void add_uplinks(EalConfig& config, const std::vector<UplinkSpec>& uplinks) {
    for (const auto& u : uplinks) {
        if (!u.pci.empty()) {
            config.pci_allow.push_back(u.pci);
        }
        if (!u.vdev.empty()) {
            config.vdevs.push_back(u.vdev);
        }
    }
}

std::string ethdev_name_of(const UplinkSpec& u) {
    if (!u.pci.empty()) {
        // "BB:DD.F" has one colon; EAL names the port with the PCI domain as well.
        return std::count(u.pci.begin(), u.pci.end(), ':') == 1 ? "0000:" + u.pci : u.pci;
    }
    return u.vdev.substr(0, u.vdev.find(','));
}

HostFacts probe_host() {
    HostFacts h;
    h.hugepages_total = meminfo_value("HugePages_Total");
    h.hugepages_free = meminfo_value("HugePages_Free");
    h.hugepage_kb = meminfo_value("Hugepagesize");
    h.vfio = exists("/dev/vfio/vfio");
    h.uio = exists("/sys/class/uio");
    h.running_as_root = ::geteuid() == 0;
    return h;
}

std::string explain_eal_failure(int err, const EalConfig& c, const HostFacts& host) {
    const std::string what = fmt::format("EAL start failed (errno {})", err);
    if (err == EALREADY) {
        return what +
               ": EAL already started in this process, or another primary process uses "
               "file prefix '" +
               c.file_prefix + "' (choose a distinct --file-prefix)";
    }
    if (c.hugepages && host.hugepages_free == 0) {
        return what + (host.hugepages_total == 0
                           ? ": no hugepages are reserved; run without hugepages (--no-huge) or "
                             "reserve some (echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/"
                             "nr_hugepages and mount hugetlbfs)"
                           : ": every reserved hugepage is in use; free some, reserve more, or "
                             "run with --no-huge");
    }
    if (!c.pci_allow.empty() && !host.vfio && !host.uio) {
        return what + ": PCI devices were requested but neither vfio nor uio is available; bind "
                      "the NIC to vfio-pci (modprobe vfio-pci; dpdk-devbind.py -b vfio-pci ADDR)";
    }
    if (!host.running_as_root && (c.hugepages || !c.pci_allow.empty())) {
        return what + ": not running as root; hugepages and PCI access need privileges";
    }
    if (err == ENOMEM) {
        return what + fmt::format(": cannot reserve {} MB; lower -m or add memory", c.memory_mb);
    }
    if (err == EINVAL) {
        return what + ": EAL rejected an argument (a misspelt --vdev driver or option?)";
    }
    if (err == ENOENT || err == ENODEV) {
        return what + ": a requested device or driver was not found (is the PMD installed?)";
    }
    return what;
}

} // namespace netbackd::pmd
