#include "backend/control/doctor_access.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/control/doctor_util.hpp"
#include "backend/platform/fd.hpp"

namespace netbackd::control {
namespace {

namespace fs = std::filesystem;
using namespace doctor_util;

std::string who_str(const Identity& who) {
    return who.name.empty() ? fmt::format("uid {}", who.uid) : fmt::format("uid {} ({})", who.uid, who.name);
}

std::string mode_str(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return std::strerror(errno);
    return fmt::format("mode {:04o}, owner {}:{}", st.st_mode & 07777, st.st_uid, st.st_gid);
}

bool has_cap(const Identity& who, int cap) { return (who.caps >> cap) & 1u; }

const std::string kRootDropIn = "run it as root: systemctl edit netbackd, [Service] User=root and "
                                "CapabilityBoundingSet= (README \"Least privilege\")";

Check hugetlbfs_check(const fs::path& root, const GlobalConfig& g, const Identity& who) {
    const std::string name = "hugetlbfs mount writable";
    if (has_arg(g, "--no-huge")) return skip(name, "EAL runs with --no-huge");
    if (has_arg(g, "--in-memory")) return skip(name, "EAL runs --in-memory (hugepages through memfd)");
    std::ifstream mounts(under(root, "/proc/mounts"));
    std::string dev, dir, type, line;
    std::vector<std::string> denied;
    while (mounts >> dev >> dir >> type) {
        std::getline(mounts, line);
        // A mount point that is not there is a faked host's leftover, not a mount.
        if (std::error_code ec; type != "hugetlbfs" || !fs::exists(under(root, dir), ec)) continue;
        if (may_use(under(root, dir), who)) return ok(name, fmt::format("{} by {}", dir, who_str(who)));
        denied.push_back(fmt::format("{} ({})", dir, mode_str(under(root, dir))));
    }
    if (denied.empty()) return skip(name, "no hugetlbfs mounted (see hugepages reserved)");
    std::string detail;
    for (const auto& d : denied) detail += (detail.empty() ? "" : ", ") + d;
    return fail(name, fmt::format("{} may not create files in {}", who_str(who), detail),
                "systemctl edit dev-hugepages.mount: [Mount] Options=mode=1770,gid=netbackd; or add "
                "\"--in-memory\" to [dpdk] eal_args (EAL then takes hugepages through memfd, no mount)");
}

// A PCI NIC under DPDK: vfio-pci through its group's node; uio through sysfs resource files and
// physical addresses, which only root has.
Check pci_access_check(const fs::path& root, const DpdkPort& port, const Identity& who) {
    const std::string name = fmt::format("device nodes of port {} ({}) usable", port.name, port.pci);
    if (who.uid == 0) return ok(name, "running as root");
    const std::string driver = pci_driver(root, port.pci);
    if (driver == "uio_pci_generic" || driver == "igb_uio")
        return fail(name,
                    fmt::format("{} is bound to {}: DPDK maps its BARs through /sys/bus/pci/devices/{}/"
                                "resource* and needs physical addresses, both root's only; {} is not root",
                                port.pci, driver, port.pci, who_str(who)),
                    kRootDropIn);
    if (driver != "vfio-pci") return skip(name, "not bound to vfio-pci or uio (see the binding check)");
    std::error_code ec;
    const auto group = fs::read_symlink(under(root, "/sys/bus/pci/devices/" + port.pci) / "iommu_group", ec);
    std::vector<fs::path> nodes{"/dev/vfio/vfio"};
    if (!ec) {
        const auto g = group.filename().string();
        nodes.push_back(fs::exists(under(root, "/dev/vfio/noiommu-" + g), ec) ? "/dev/vfio/noiommu-" + g
                                                                              : "/dev/vfio/" + g);
    }
    std::string denied;
    for (const auto& n : nodes)
        if (!may_use(under(root, n.string()), who))
            denied += fmt::format("{}{} ({})", denied.empty() ? "" : ", ", n.string(),
                                  mode_str(under(root, n.string())));
    if (denied.empty()) return ok(name, fmt::format("VFIO nodes usable by {}", who_str(who)));
    return fail(
        name, fmt::format("{} may not open {}", who_str(who), denied),
        "give the group netbackd the VFIO group: a udev rule SUBSYSTEM==\"vfio\", GROUP=\"netbackd\", "
        "MODE=\"0660\" in /etc/udev/rules.d, then udevadm trigger --subsystem-match=vfio; or " +
            kRootDropIn);
}

// The capabilities a vdev PMD over a kernel interface needs.
Check vdev_caps_check(const DpdkPort& port, const Identity& who) {
    const std::string name = fmt::format("capabilities of port {}", port.name);
    struct Need {
        int cap;
        const char* name;
    };
    std::vector<Need> needs;
    if (port.vdev.rfind("net_af_xdp", 0) == 0)
        needs = {{CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {CAP_NET_RAW, "CAP_NET_RAW"}, {CAP_BPF, "CAP_BPF"}};
    else if (port.vdev.rfind("net_af_packet", 0) == 0)
        needs = {{CAP_NET_RAW, "CAP_NET_RAW"}};
    else if (port.vdev.rfind("net_tap", 0) == 0)
        needs = {{CAP_NET_ADMIN, "CAP_NET_ADMIN"}};
    else
        return skip(name, "no kernel interface");
    std::string missing;
    for (const auto& n : needs)
        if (!has_cap(who, n.cap)) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", n.name);
    if (missing.empty()) return ok(name, fmt::format("{} has what {} needs", who_str(who), port.vdev));
    return fail(name, fmt::format("{} lacks {}", who_str(who), missing),
                "start it through netbackd.service, whose AmbientCapabilities= grant them (a drop-in "
                "that narrows CapabilityBoundingSet= must keep them), or run it as root");
}

} // namespace

Identity Identity::current() {
    Identity who;
    who.uid = ::geteuid();
    if (const passwd* pw = ::getpwuid(who.uid)) who.name = pw->pw_name;
    who.gids.push_back(::getegid());
    const int n = ::getgroups(0, nullptr);
    if (n > 0) {
        std::vector<gid_t> extra(static_cast<std::size_t>(n));
        if (::getgroups(n, extra.data()) == n) who.gids.insert(who.gids.end(), extra.begin(), extra.end());
    }
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("CapEff:", 0) == 0) who.caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    return who;
}

bool may_use(const fs::path& path, const Identity& who) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    if (who.uid == 0) return true;
    const bool dir = S_ISDIR(st.st_mode);
    // Owner, else group, else other: the first class that matches decides, as in the kernel.
    int shift = 0;
    if (st.st_uid == who.uid)
        shift = 6;
    else if (std::find(who.gids.begin(), who.gids.end(), st.st_gid) != who.gids.end())
        shift = 3;
    const unsigned bits = (st.st_mode >> shift) & 07;
    const unsigned need = dir ? 03 : 06; // directory: write and search; node: read and write
    return (bits & need) == need;
}

Check xen_device_check(const fs::path& root, std::string_view dev, std::string_view module,
                       const Identity& who) {
    const auto p = under(root, dev);
    const std::string name = fmt::format("{} usable", dev);
    std::error_code ec;
    if (!fs::exists(p, ec))
        return fail(name, "missing",
                    fmt::format("modprobe {} (and mount xenfs: mount -t xenfs xenfs /proc/xen); "
                                "not on Xen at all? use --platform sim",
                                module));
    if (!may_use(p, who))
        return fail(name, fmt::format("{} may not open it ({})", who_str(who), mode_str(p)),
                    "the package's udev rule (/lib/udev/rules.d/60-netbackd.rules) gives group netbackd "
                    "/dev/xen/{evtchn,gntdev,xenbus}: udevadm control --reload; udevadm trigger "
                    "--action=change --subsystem-match=misc; and run as user netbackd (netbackd.service "
                    "does), or as root");
    platform::Fd fd(::open(p.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) return fail(name, fmt::format("cannot open: {}", std::strerror(errno)), "run netbackd as root");
    return ok(name, "present");
}

std::vector<Check> access_checks(const fs::path& root, const GlobalConfig& g, const Identity& who) {
    std::vector<Check> out;
    out.push_back(hugetlbfs_check(root, g, who));
    for (const auto& p : g.ports)
        out.push_back(p.pci.empty() ? vdev_caps_check(p, who) : pci_access_check(root, p, who));
    return out;
}

} // namespace netbackd::control
