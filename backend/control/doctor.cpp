#include "backend/control/doctor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/control/backend_dirs.hpp"
#include "backend/control/doctor_access.hpp"
#include "backend/control/doctor_scale.hpp"
#include "backend/control/doctor_util.hpp"
#include "backend/control/vif_id.hpp"
#include "backend/platform/fd.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"

namespace netbackd::control {
namespace {

namespace fs = std::filesystem;
using namespace doctor_util;

std::string read_first_line(const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    std::getline(in, line);
    return line;
}

Check netback_check(const fs::path& root) {
    const std::string name = "in-kernel xen-netback not in the way";
    const std::string fix =
        "rmmod xen_netback; echo 'blacklist xen_netback' > /etc/modprobe.d/netbackd.conf; "
        "echo 'install xen_netback /bin/false' >> /etc/modprobe.d/netbackd.conf "
        "(it autoloads on xen-backend:vif and claims the vifs first); update-initramfs -u";
    std::error_code ec;
    const auto bound = under(root, "/sys/bus/xen-backend/drivers/vif");
    if (fs::exists(bound, ec)) {
        std::vector<std::string> vifs;
        for (const auto& e : fs::directory_iterator(bound, ec))
            if (e.path().filename().string().rfind("vif-", 0) == 0)
                vifs.push_back(e.path().filename().string());
        if (!vifs.empty())
            return fail(name,
                        fmt::format("xen-netback is bound to {} vif(s) ({}...)", vifs.size(), vifs.front()),
                        fix);
    }
    if (fs::exists(under(root, "/sys/module/xen_netback"), ec))
        return fail(name, "module xen_netback is loaded", fix);
    return ok(name, "xen_netback not loaded");
}

// The kernel interface a PCI NIC has while its Linux driver is bound, for the af_xdp advice.
std::string pci_netdev(const fs::path& root, const std::string& pci) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(under(root, "/sys/bus/pci/devices/" + pci) / "net", ec))
        return e.path().filename().string();
    return {};
}

bool noiommu_enabled(const fs::path& root) {
    const auto v = read_first_line(under(root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"));
    return v == "Y" || v == "1";
}

std::string port_name(const DpdkPort& port) {
    return fmt::format("port {} ({})", port.name, port.pci.empty() ? port.vdev : port.pci);
}

Check missing_pci_check(const DpdkPort& port, const std::string& name) {
    return fail(name, "no such PCI device in this domain",
                fmt::format("pass it through: pci = [\"{}\"] in the driver domain's xl config "
                            "(after `xl pci-assignable-add {}` in dom0)",
                            port.pci, port.pci));
}

// A PV domain sees pseudo-physical frames and has no hugepages: a PCI PMD has no address it
// could give the NIC for DMA, so the only working uplink is the kernel's driver under af_xdp.
Check pv_pci_check(const fs::path& root, const DpdkPort& port) {
    const std::string name = port_name(port) + " usable by DPDK";
    std::string iface = pci_netdev(root, port.pci);
    const std::string note =
        iface.empty()
            ? fmt::format("; IFACE: the interface of {} once its kernel driver is bound (ip link)", port.pci)
            : "";
    if (iface.empty()) iface = "IFACE";
    return fail(
        name, "this is a PV domain: DPDK cannot DMA to a PCI device here (no hugepages, no IOVA as PA)",
        fmt::format(
            "keep the NIC on its kernel driver and use DPDK's af_xdp PMD on its interface "
            "(configs/netbackd.nicdom-pv.toml{}):\n"
            "[dpdk]\n"
            "eal_args = [\"--no-huge\", \"-m\", \"512\", \"--no-pci\", \"--file-prefix\", \"netbackd\"]\n"
            "[[dpdk.ports]]\n"
            "name = \"{}\"\n"
            "vdev = \"net_af_xdp0,iface={},xdp_prog=/usr/lib/x86_64-linux-gnu/bpf/xsk_def_xdp_prog.o\"",
            note, port.name, iface));
}

// An HVM domain (or PVH) sees no IOMMU of its own: vfio-pci works only in no-IOMMU mode, and
// uio needs none (Xen's IOMMU confines the device's DMA to the domain).
Check hvm_pci_check(const fs::path& root, const DpdkPort& port, std::string_view kind) {
    const std::string name = port_name(port) + " bound to a DPDK driver";
    std::error_code ec;
    if (!fs::exists(under(root, "/sys/bus/pci/devices/" + port.pci), ec)) {
        if (kind == "PVH")
            return fail(name, "no such PCI device in this PVH domain",
                        "Xen 4.17 passes no PCI device to a PVH domain: make the driver domain HVM "
                        "(configs/xl/nicdom-hvm.cfg) or PV with the af_xdp uplink "
                        "(configs/xl/nicdom-pv.cfg, configs/netbackd.nicdom-pv.toml)");
        return missing_pci_check(port, name);
    }
    const std::string driver = pci_driver(root, port.pci);
    const std::string bind_uio = fmt::format(
        "modprobe uio_pci_generic; echo uio_pci_generic > /sys/bus/pci/devices/{0}/driver_override; "
        "echo {0} > /sys/bus/pci/drivers_probe (or vfio-pci with "
        "echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode); "
        "EAL needs --iova-mode pa (configs/netbackd.nicdom-hvm.toml)",
        port.pci);
    if (driver == "uio_pci_generic" || driver == "igb_uio")
        return ok(name, fmt::format("driver {} ({} domain: no IOMMU needed)", driver, kind));
    if (driver == "vfio-pci") {
        if (noiommu_enabled(root))
            return ok(name, fmt::format("driver vfio-pci in no-IOMMU mode ({} domain)", kind));
        return fail(
            name,
            fmt::format("driver vfio-pci, but a {} domain has no IOMMU and vfio's no-IOMMU mode is off",
                        kind),
            "echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode (needs a kernel "
            "with CONFIG_VFIO_NOIOMMU; Debian's has not), or bind uio_pci_generic: " +
                bind_uio);
    }
    return fail(name, driver.empty() ? "no driver bound" : "bound to " + driver, bind_uio);
}

Check nic_check(const fs::path& root, const DpdkPort& port) {
    const std::string name = fmt::format("port {} ({}) bound to a DPDK driver", port.name, port.pci);
    std::error_code ec;
    const auto dev = under(root, "/sys/bus/pci/devices/" + port.pci);
    if (!fs::exists(dev, ec)) return missing_pci_check(port, name);
    const std::string driver = pci_driver(root, port.pci);
    static constexpr std::string_view good[] = {"vfio-pci", "uio_pci_generic", "igb_uio"};
    if (std::find(std::begin(good), std::end(good), driver) != std::end(good))
        return ok(name, "driver " + driver);
    return fail(name, driver.empty() ? "no driver bound" : "bound to " + driver,
                fmt::format("modprobe vfio-pci; dpdk-devbind.py --bind=vfio-pci {} "
                            "(or uio_pci_generic when there is no IOMMU)",
                            port.pci));
}

// `iface=` of a vdev PMD that runs over a kernel interface (af_xdp, af_packet); empty if none.
std::string vdev_iface(std::string_view vdev) {
    if (vdev.rfind("net_af_xdp", 0) != 0 && vdev.rfind("net_af_packet", 0) != 0) return {};
    std::size_t pos = 0;
    while ((pos = vdev.find(',', pos)) != std::string_view::npos) {
        ++pos;
        if (vdev.substr(pos, 6) == "iface=") {
            const auto end = vdev.find(',', pos);
            return std::string(vdev.substr(pos + 6, end == std::string_view::npos ? end : end - pos - 6));
        }
    }
    return {};
}

Check iface_check(const fs::path& root, const DpdkPort& port, const std::string& iface) {
    const std::string name = fmt::format("port {} interface {} up", port.name, iface);
    std::error_code ec;
    const auto dir = under(root, "/sys/class/net/" + iface);
    if (!fs::exists(dir, ec))
        return fail(
            name, "no such interface in this domain",
            fmt::format("set iface= to the NIC's interface (ip link); a passed-through NIC has one "
                        "once its kernel driver is bound (PV: xen-pcifront, then e.g. modprobe e1000)"));
    // IFF_UP is bit 0 of the interface flags.
    const auto flags = std::strtoul(read_first_line(dir / "flags").c_str(), nullptr, 16);
    if (!(flags & 0x1)) return fail(name, "interface is down", fmt::format("ip link set dev {} up", iface));
    return ok(name, "present and up");
}

std::string_view guest_kind(GuestType t) {
    switch (t) {
    case GuestType::pv: return "PV";
    case GuestType::pvh: return "PVH";
    case GuestType::hvm: return "HVM";
    case GuestType::xen_unknown: return "Xen guest of unknown type";
    case GuestType::none: break;
    }
    return "not a Xen guest";
}

Check domain_type_check(const fs::path& root, GuestType t) {
    const std::string name = "domain type";
    switch (t) {
    case GuestType::pv:
        return ok(name, "PV (no hugepages, no IOVA as PA: PCI uplinks need the kernel driver and af_xdp)");
    case GuestType::pvh: return ok(name, "PVH (Xen 4.17 passes no PCI device to PVH)");
    case GuestType::hvm: return ok(name, "HVM (DPDK's own PMD with uio_pci_generic or vfio no-IOMMU)");
    case GuestType::xen_unknown:
        return skip(name, "Xen guest, but " + under(root, "/sys/hypervisor/guest_type").string() +
                              " is missing (kernel older than 4.17?)");
    case GuestType::none: break;
    }
    return skip(name, "not a Xen guest (no /sys/hypervisor/guest_type)");
}

Check hugepage_check(const fs::path& root, const GlobalConfig& g, GuestType t) {
    const std::string name = "hugepages reserved";
    if (has_arg(g, "--no-huge")) return skip(name, "EAL runs with --no-huge");
    if (t == GuestType::pv)
        return fail(
            name, "a PV domain has no hugepages and EAL is not given --no-huge",
            "add \"--no-huge\", \"-m\", \"512\" to [dpdk] eal_args (configs/netbackd.nicdom-pv.toml)");
    // Per page size from sysfs; /proc/meminfo counts only the default size.
    long total = 0;
    std::vector<std::string> sizes;
    std::error_code ec;
    const auto sys = under(root, "/sys/kernel/mm/hugepages");
    const bool have_sys = fs::is_directory(sys, ec);
    if (have_sys) {
        for (const auto& e : fs::directory_iterator(sys, ec)) {
            const auto n = read_first_line(e.path() / "nr_hugepages");
            if (n.empty()) continue;
            const long pages = std::strtol(n.c_str(), nullptr, 10);
            total += pages;
            if (pages > 0) {
                const auto free_pages = read_first_line(e.path() / "free_hugepages");
                sizes.push_back(fmt::format("{} {} ({} free)", pages, e.path().filename().string(),
                                            free_pages.empty() ? "?" : free_pages));
            }
        }
        std::sort(sizes.begin(), sizes.end());
    } else {
        std::ifstream in(under(root, "/proc/meminfo"));
        std::string line;
        total = -1;
        while (std::getline(in, line)) {
            if (line.rfind("HugePages_Total:", 0) == 0) total = std::strtol(line.c_str() + 16, nullptr, 10);
            if (line.rfind("HugePages_Free:", 0) == 0)
                sizes.push_back(fmt::format("{} free", std::strtol(line.c_str() + 15, nullptr, 10)));
        }
        if (total < 0)
            return fail(name, "cannot read /sys/kernel/mm/hugepages nor /proc/meminfo", "mount /sys");
        if (total > 0) sizes.insert(sizes.begin(), fmt::format("{} total", total));
    }
    if (total == 0)
        return fail(name, "none",
                    "echo 1024 > /proc/sys/vm/nr_hugepages (2 MiB pages; persist with vm.nr_hugepages in "
                    "/etc/sysctl.d, or hugepages=N on the kernel command line), or run EAL with --no-huge "
                    "for tests");
    std::string detail;
    for (const auto& s : sizes) detail += (detail.empty() ? "" : ", ") + s;
    // EAL maps hugepages through a hugetlbfs mount unless it runs --in-memory (memfd).
    if (!has_arg(g, "--in-memory")) {
        std::ifstream mounts(under(root, "/proc/mounts"));
        std::string dev, dir, type, line;
        bool mounted = false;
        while (mounts >> dev >> dir >> type) {
            mounted |= type == "hugetlbfs";
            std::getline(mounts, line);
        }
        if (!mounted)
            return fail(name, detail + "; but no hugetlbfs is mounted",
                        "mkdir -p /dev/hugepages; mount -t hugetlbfs nodev /dev/hugepages (systemd's "
                        "dev-hugepages.mount does it at boot)");
        detail += "; hugetlbfs mounted";
    }
    return ok(name, detail);
}

Check iommu_check(const fs::path& root, const GlobalConfig& g) {
    const std::string name = "IOMMU usable for vfio-pci";
    const bool any_pci =
        std::any_of(g.ports.begin(), g.ports.end(), [](const DpdkPort& p) { return !p.pci.empty(); });
    if (!any_pci) return skip(name, "no PCI ports configured");
    std::error_code ec;
    // uio drivers do no DMA remapping at all: an IOMMU matters only for vfio-pci.
    const bool all_uio = std::all_of(g.ports.begin(), g.ports.end(), [&](const DpdkPort& p) {
        if (p.pci.empty()) return true;
        const auto d = pci_driver(root, p.pci);
        return d == "uio_pci_generic" || d == "igb_uio";
    });
    if (all_uio) return skip(name, "PCI ports use a uio driver, which needs no IOMMU");
    const auto groups = under(root, "/sys/kernel/iommu_groups");
    if (fs::exists(groups, ec) && !fs::is_empty(groups, ec)) return ok(name, "IOMMU groups present");
    if (noiommu_enabled(root))
        return ok(name, "no IOMMU; vfio in no-IOMMU mode (unsafe: DMA is not confined)");
    return fail(name, "no IOMMU groups (usual in a Xen guest)",
                "bind the NIC to uio_pci_generic, or enable vfio no-IOMMU mode: "
                "echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode; on bare metal boot with "
                "iommu=pt intel_iommu=on");
}

Check backend_write_check(platform::Store& store, DomId self) {
    const std::string name = "backend dirs writable";
    const std::string fix =
        "set driver_domain=1 in this domain's xl config and recreate it; libxl then creates "
        "each backend dir owned by this domain";
    const auto base = backend_base(self);
    std::optional<std::string> vif_dir;
    try {
        if (const auto dirs = backend_vif_dirs(store, self); !dirs.empty())
            vif_dir = fmt::format("{}/{}", base, dirs.front());
    } catch (const std::exception& e) {
        return fail(name, fmt::format("cannot list {}: {}", base, e.what()), fix);
    }
    if (!vif_dir) return ok(name, fmt::format("no vif under {} yet; nothing to check", base));
    try {
        // Written in a transaction that is then abandoned: the permission is checked,
        // nothing stays behind and no watch fires.
        const auto tx = store.transaction_start();
        try {
            store.write(tx, *vif_dir + "/netbackd-doctor", "1");
        } catch (...) {
            store.transaction_end(tx, false);
            throw;
        }
        store.transaction_end(tx, false);
        return ok(name, *vif_dir);
    } catch (const std::exception& e) {
        return fail(name, fmt::format("{}: {}", *vif_dir, e.what()), fix);
    }
}

// Vifs under this domain's backend dir whose backend is Connected (they hold their channels).
unsigned connected_vifs(platform::Store& store, DomId self) {
    unsigned n = 0;
    const auto base = backend_base(self);
    try {
        for (const auto& rel : backend_vif_dirs(store, self))
            n += store.read(0, fmt::format("{}/{}/state", base, rel)) == "4";
    } catch (const std::exception&) {
        // backend_write_check reports an unreadable backend dir.
    }
    return n;
}

} // namespace

GuestType guest_type(const fs::path& root) {
    const auto t = read_first_line(under(root, "/sys/hypervisor/guest_type"));
    if (t == "PV") return GuestType::pv;
    if (t == "PVH") return GuestType::pvh;
    if (t == "HVM") return GuestType::hvm;
    if (read_first_line(under(root, "/sys/hypervisor/type")) == "xen") return GuestType::xen_unknown;
    return GuestType::none;
}

std::vector<Check> host_checks(const fs::path& root, const GlobalConfig& g, bool sim, const Identity& who) {
    std::vector<Check> out;
    const GuestType type = guest_type(root);
    out.push_back(domain_type_check(root, type));
    if (sim)
        out.push_back(skip("in-kernel xen-netback not in the way", "simulated platform"));
    else
        out.push_back(netback_check(root));
    bool any_pci = false;
    for (const auto& p : g.ports) {
        if (p.pci.empty()) {
            if (const auto iface = vdev_iface(p.vdev); !iface.empty())
                out.push_back(iface_check(root, p, iface));
            continue;
        }
        any_pci = true;
        if (type == GuestType::pv)
            out.push_back(pv_pci_check(root, p));
        else if (type == GuestType::hvm || type == GuestType::pvh)
            out.push_back(hvm_pci_check(root, p, guest_kind(type)));
        else
            out.push_back(nic_check(root, p));
    }
    if (!any_pci) out.push_back(skip("NIC bound to a DPDK driver", "no PCI ports configured"));
    out.push_back(hugepage_check(root, g, type));
    // A Xen guest sees no IOMMU: the binding checks above already cover vfio's no-IOMMU mode.
    if (type == GuestType::none || type == GuestType::xen_unknown)
        out.push_back(iommu_check(root, g));
    else
        out.push_back(skip("IOMMU usable for vfio-pci",
                           fmt::format("{} domain: Xen's IOMMU confines the device, none is visible here",
                                       guest_kind(type))));
    auto access = access_checks(root, g, who);
    out.insert(out.end(), std::make_move_iterator(access.begin()), std::make_move_iterator(access.end()));
    return out;
}

std::vector<Check> run_doctor(const DoctorOptions& opt) {
    std::vector<Check> out;
    const Identity who = opt.identity ? *opt.identity : Identity::current();
    GlobalConfig global;
    std::optional<unsigned> guests = opt.guests;
    std::string cfg_path = opt.config_path;
    if (cfg_path.empty() && fs::exists("/etc/netbackd/netbackd.toml"))
        cfg_path = "/etc/netbackd/netbackd.toml";
    if (cfg_path.empty()) {
        out.push_back(skip("configuration valid", "no --config and no /etc/netbackd/netbackd.toml"));
    } else {
        try {
            const Config c = load_config(cfg_path);
            global = c.global;
            if (!guests && !c.clients.empty()) guests = static_cast<unsigned>(c.clients.size());
            out.push_back(
                ok("configuration valid", fmt::format("{} ({} client file(s))", cfg_path, c.clients.size())));
        } catch (const ConfigError& e) {
            out.push_back(fail("configuration valid", e.what(), "fix the lines named above"));
        }
    }

    platform::PlatformOptions popt = opt.platform;
    if (!opt.platform_given)
        popt.kind = global.platform == "sim" ? platform::PlatformKind::sim : platform::PlatformKind::xen;
    if (popt.sim_dir.empty()) popt.sim_dir = global.sim_dir;
    if (popt.sim_domid == 0) popt.sim_domid = global.sim_domid;
    const bool sim = popt.kind == platform::PlatformKind::sim;

    std::unique_ptr<platform::Store> store;
    std::unique_ptr<platform::Events> events;
    // Where xenstored's quota is asked: on the simulated host dom0's socket is at hand, as
    // `xenstore-control` in dom0 is on Xen; a driver domain on Xen has only its own connection.
    std::unique_ptr<platform::Store> dom0_store;
    if (sim) {
        const std::string name = "simulated host reachable";
        std::error_code ec;
        if (popt.sim_dir.empty())
            out.push_back(
                fail(name, "no simulated host directory", "pass --sim-dir DIR (as given to `xensim up`)"));
        else if (!fs::is_directory(popt.sim_dir, ec))
            out.push_back(fail(name, popt.sim_dir + " does not exist", "xensim up --dir " + popt.sim_dir));
        else {
            try {
                auto p = platform::open_platform(popt);
                out.push_back(ok(name, fmt::format("{} as domain {} (grants, event channels, xenstore)",
                                                   popt.sim_dir, popt.sim_domid)));
                store = std::move(p.store);
                events = std::move(p.events);
                try {
                    dom0_store = platform::open_xs_store(platform::sim_store_socket(popt.sim_dir, 0));
                } catch (const std::exception&) {
                    // The quota check then asks the domain's own connection and says why not.
                }
            } catch (const std::exception& e) {
                out.push_back(fail(name, e.what(),
                                   fmt::format("xensim up --dir {0}; xensim domain create --dir {0} {1} ...",
                                               popt.sim_dir, popt.sim_domid)));
            }
        }
    } else {
        out.push_back(xen_device_check(opt.root, "/dev/xen/evtchn", "xen-evtchn", who));
        out.push_back(xen_device_check(opt.root, "/dev/xen/gntdev", "xen-gntdev", who));
        // A driver domain reaches xenstore through xenbus (dom0 through xenstored's socket).
        if (std::error_code ec; fs::exists(under(opt.root, "/dev/xen/xenbus"), ec))
            out.push_back(xen_device_check(opt.root, "/dev/xen/xenbus", "xenfs", who));
        try {
            store = platform::open_xs_store("");
            out.push_back(ok("xenstore reachable", "connected"));
        } catch (const std::exception& e) {
            out.push_back(
                fail("xenstore reachable", e.what(),
                     "in a driver domain /dev/xen/xenbus must exist (modprobe xenfs; mount -t xenfs "
                     "xenfs /proc/xen); in dom0 start xenstored (systemctl start xenstored)"));
        }
        try {
            // The event channels, for the probe of how many this domain may still bind.
            events = std::move(platform::open_platform(popt).events);
        } catch (const std::exception&) {
            // The /dev/xen checks above say why.
        }
    }

    if (store) {
        std::optional<DomId> self;
        try {
            self = store->self_domid();
            out.push_back(ok("own domain id known", fmt::format("domid {}", *self)));
        } catch (const std::exception& e) {
            out.push_back(fail("own domain id known", e.what(),
                               "the toolstack writes /local/domain/<id>/domid when it creates the domain; "
                               "check the domain was created by xl (xenstore-read domid)"));
        }
        if (self) {
            out.push_back(backend_write_check(*store, *self));
            out.push_back(xenstore_quota_check(dom0_store ? *dom0_store : *store, *self, guests));
            const unsigned connected = connected_vifs(*store, *self);
            if (events)
                out.push_back(event_channel_check(*events, *self, guests, connected));
            else
                out.push_back(skip("event channels for the guests", "the event channel device did not open"));
        }
    } else {
        out.push_back(skip("own domain id known", "no xenstore"));
        out.push_back(skip("backend dirs writable", "no xenstore"));
        out.push_back(skip("xenstore quota for the guests", "no xenstore"));
        out.push_back(skip("event channels for the guests", "no xenstore"));
    }

    auto host = host_checks(opt.root, global, sim, who);
    out.insert(out.end(), std::make_move_iterator(host.begin()), std::make_move_iterator(host.end()));
    return out;
}

bool print_doctor(const std::vector<Check>& checks, bool failures_only, std::FILE* out) {
    bool all_ok = true;
    for (const auto& c : checks) {
        const bool failed = c.status == CheckStatus::fail;
        all_ok &= !failed;
        if (failures_only && !failed) continue;
        const char* tag = failed ? "FAIL" : c.status == CheckStatus::ok ? "OK  " : "SKIP";
        fmt::print(out, "{} {}: {}\n", tag, c.name, c.detail);
        if (!failed) continue;
        // A fix of several lines (config to paste) keeps its lines under "fix:".
        std::string fix = c.fix;
        for (std::size_t i = 0; (i = fix.find('\n', i)) != std::string::npos; i += 11)
            fix.insert(i + 1, 10, ' ');
        fmt::print(out, "     fix: {}\n", fix);
    }
    return all_ok;
}

} // namespace netbackd::control
