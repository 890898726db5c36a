#include <cerrno>
#include <fstream>
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

std::string allowed_cpu_list() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) {
        return "0";
    }
    std::string out;
    int cpu = 0;
    while (cpu < CPU_SETSIZE) {
        if (!CPU_ISSET(cpu, &set)) {
            ++cpu;
            continue;
        }
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) {
            ++last;
        }
        if (!out.empty()) {
            out += ',';
        }
        out += last == cpu ? fmt::format("{}", cpu) : fmt::format("{}-{}", cpu, last);
        cpu = last + 1;
    }
    return out.empty() ? "0" : out;
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

HostFacts probe_host() {
    HostFacts h;
    h.hugepages_total = meminfo_value("HugePages_Total");
    h.hugepages_free = meminfo_value("HugePages_Free");
    h.vfio = exists("/dev/vfio/vfio");
    h.uio = exists("/sys/class/uio");
    h.running_as_root = ::geteuid() == 0;
    return h;
}

std::string explain_eal_failure(int err, const EalConfig& c, const HostFacts& host) {
    const std::string what = fmt::format("EAL start failed (errno {})", err);
    if (err == EALREADY) {
        return what + ": EAL already started in this process, or another primary process uses "
                      "file prefix '" + c.file_prefix + "' (choose a distinct --file-prefix)";
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
