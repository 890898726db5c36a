#include "backend/control/doctor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/control/vif_id.hpp"
#include "backend/platform/fd.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"

namespace netbackd::control {
namespace {

namespace fs = std::filesystem;

Check ok(std::string name, std::string detail) {
    return {std::move(name), CheckStatus::ok, std::move(detail), {}};
}
Check skip(std::string name, std::string detail) {
    return {std::move(name), CheckStatus::skip, std::move(detail), {}};
}
Check fail(std::string name, std::string detail, std::string fix) {
    return {std::move(name), CheckStatus::fail, std::move(detail), std::move(fix)};
}

fs::path under(const fs::path& root, std::string_view abs) { return root / fs::path(abs).relative_path(); }

Check device_check(const fs::path& root, std::string_view dev, std::string_view module) {
    const auto p = under(root, dev);
    const std::string name = fmt::format("{} usable", dev);
    std::error_code ec;
    if (!fs::exists(p, ec))
        return fail(name, "missing",
                    fmt::format("modprobe {} (and mount xenfs: mount -t xenfs xenfs /proc/xen); "
                                "not on Xen at all? use --platform sim",
                                module));
    platform::Fd fd(open(p.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) return fail(name, fmt::format("cannot open: {}", std::strerror(errno)), "run netbackd as root");
    return ok(name, "present");
}

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

Check nic_check(const fs::path& root, const DpdkPort& port) {
    const std::string name = fmt::format("port {} ({}) bound to a DPDK driver", port.name, port.pci);
    std::error_code ec;
    const auto dev = under(root, "/sys/bus/pci/devices/" + port.pci);
    if (!fs::exists(dev, ec))
        return fail(name, "no such PCI device in this domain",
                    fmt::format("pass it through: pci = [\"{}\"] in the driver domain's xl config "
                                "(after `xl pci-assignable-add {}` in dom0)",
                                port.pci, port.pci));
    const auto drv = fs::read_symlink(dev / "driver", ec);
    const std::string driver = ec ? std::string() : drv.filename().string();
    static constexpr std::string_view good[] = {"vfio-pci", "uio_pci_generic", "igb_uio"};
    if (std::find(std::begin(good), std::end(good), driver) != std::end(good))
        return ok(name, "driver " + driver);
    return fail(name, driver.empty() ? "no driver bound" : "bound to " + driver,
                fmt::format("modprobe vfio-pci; dpdk-devbind.py --bind=vfio-pci {} "
                            "(or uio_pci_generic when there is no IOMMU)",
                            port.pci));
}

Check hugepage_check(const fs::path& root, const GlobalConfig& g) {
    const std::string name = "hugepages reserved";
    for (const auto& a : g.eal_args)
        if (a == "--no-huge") return skip(name, "EAL runs with --no-huge");
    std::ifstream in(under(root, "/proc/meminfo"));
    std::string line;
    long total = -1, free_pages = -1;
    while (std::getline(in, line)) {
        if (line.rfind("HugePages_Total:", 0) == 0) total = std::strtol(line.c_str() + 16, nullptr, 10);
        if (line.rfind("HugePages_Free:", 0) == 0) free_pages = std::strtol(line.c_str() + 15, nullptr, 10);
    }
    if (total < 0) return fail(name, "cannot read /proc/meminfo", "mount /proc");
    if (total == 0)
        return fail(name, "none",
                    "echo 1024 > /proc/sys/vm/nr_hugepages (2 MiB pages; persist with vm.nr_hugepages in "
                    "/etc/sysctl.d), or run EAL with --no-huge for tests");
    return ok(name, fmt::format("{} total, {} free", total, free_pages));
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
        std::error_code e;
        const auto d =
            fs::read_symlink(under(root, "/sys/bus/pci/devices/" + p.pci) / "driver", e).filename();
        return !e && (d == "uio_pci_generic" || d == "igb_uio");
    });
    if (all_uio) return skip(name, "PCI ports use a uio driver, which needs no IOMMU");
    const auto groups = under(root, "/sys/kernel/iommu_groups");
    if (fs::exists(groups, ec) && !fs::is_empty(groups, ec)) return ok(name, "IOMMU groups present");
    if (read_first_line(under(root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")) == "Y")
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
        if (const auto fes = store.directory(0, base))
            for (const auto& fe : *fes) {
                if (const auto devs = store.directory(0, base + "/" + fe); devs && !devs->empty()) {
                    vif_dir = fmt::format("{}/{}/{}", base, fe, devs->front());
                    break;
                }
            }
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

} // namespace

std::vector<Check> host_checks(const fs::path& root, const GlobalConfig& g, bool sim) {
    std::vector<Check> out;
    if (sim)
        out.push_back(skip("in-kernel xen-netback not in the way", "simulated platform"));
    else
        out.push_back(netback_check(root));
    bool any_pci = false;
    for (const auto& p : g.ports) {
        if (p.pci.empty()) continue;
        any_pci = true;
        out.push_back(nic_check(root, p));
    }
    if (!any_pci) out.push_back(skip("NIC bound to a DPDK driver", "no PCI ports configured"));
    out.push_back(hugepage_check(root, g));
    out.push_back(iommu_check(root, g));
    return out;
}

std::vector<Check> run_doctor(const DoctorOptions& opt) {
    std::vector<Check> out;
    GlobalConfig global;
    std::string cfg_path = opt.config_path;
    if (cfg_path.empty() && fs::exists("/etc/netbackd/netbackd.toml"))
        cfg_path = "/etc/netbackd/netbackd.toml";
    if (cfg_path.empty()) {
        out.push_back(skip("configuration valid", "no --config and no /etc/netbackd/netbackd.toml"));
    } else {
        try {
            const Config c = load_config(cfg_path);
            global = c.global;
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
            } catch (const std::exception& e) {
                out.push_back(fail(name, e.what(),
                                   fmt::format("xensim up --dir {0}; xensim domain create --dir {0} {1} ...",
                                               popt.sim_dir, popt.sim_domid)));
            }
        }
    } else {
        out.push_back(device_check(opt.root, "/dev/xen/evtchn", "xen-evtchn"));
        out.push_back(device_check(opt.root, "/dev/xen/gntdev", "xen-gntdev"));
        try {
            store = platform::open_xs_store("");
            out.push_back(ok("xenstore reachable", "connected"));
        } catch (const std::exception& e) {
            out.push_back(
                fail("xenstore reachable", e.what(),
                     "in a driver domain /dev/xen/xenbus must exist (modprobe xenfs; mount -t xenfs "
                     "xenfs /proc/xen); in dom0 start xenstored (systemctl start xenstored)"));
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
        if (self) out.push_back(backend_write_check(*store, *self));
    } else {
        out.push_back(skip("own domain id known", "no xenstore"));
        out.push_back(skip("backend dirs writable", "no xenstore"));
    }

    auto host = host_checks(opt.root, global, sim);
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
        if (failed) fmt::print(out, "     fix: {}\n", c.fix);
    }
    return all_ok;
}

} // namespace netbackd::control
