// netbackd doctor's host checks against a faked /sys and /proc, and the hook runner.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>
#include <unistd.h>

#include "backend/control/doctor.hpp"
#include "backend/control/hook_script.hpp"

using namespace netbackd::control;
namespace fs = std::filesystem;

namespace {

struct FakeRoot {
    fs::path root;
    FakeRoot() {
        std::string t = (fs::temp_directory_path() / "netbackd-doctor-XXXXXX").string();
        REQUIRE(mkdtemp(t.data()));
        root = t;
        write("proc/meminfo", "MemTotal: 1000 kB\nHugePages_Total:     512\nHugePages_Free:      500\n");
        write("proc/mounts",
              "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n");
        mkdir("dev/hugepages");
    }
    ~FakeRoot() { fs::remove_all(root); }
    void write(const fs::path& rel, const std::string& text) const {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << text;
    }
    void mkdir(const fs::path& rel) const { fs::create_directories(root / rel); }
    void bind(const std::string& pci, const std::string& driver) const {
        mkdir("sys/bus/pci/devices/" + pci);
        const auto link = root / "sys/bus/pci/devices" / pci / "driver";
        fs::remove(link);
        fs::create_directory_symlink("../../../drivers/" + driver, link);
    }
    void guest(const std::string& type) const {
        write("sys/hypervisor/type", "xen\n");
        write("sys/hypervisor/guest_type", type + "\n");
    }
    void hugepages(int pages) const {
        write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", std::to_string(pages) + "\n");
        write("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", std::to_string(pages) + "\n");
        write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "0\n");
    }
};

const Check& find(const std::vector<Check>& checks, std::string_view prefix) {
    for (const auto& c : checks)
        if (c.name.rfind(prefix, 0) == 0) return c;
    FAIL("no check named " << prefix);
    return checks.front();
}

GlobalConfig with_port(const std::string& pci) {
    GlobalConfig g;
    DpdkPort port;
    port.name = "uplink0";
    port.pci = pci;
    g.ports.push_back(port);
    return g;
}

GlobalConfig with_vdev(const std::string& vdev) {
    GlobalConfig g;
    g.eal_args = {"--no-huge", "-m", "512", "--no-pci"};
    DpdkPort port;
    port.name = "uplink0";
    port.vdev = vdev;
    g.ports.push_back(port);
    return g;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("doctor: a clean host passes", "[control][doctor]") {
    FakeRoot r;
    r.mkdir("sys/bus/pci/devices/0000:03:00.0");
    fs::create_directory_symlink("../../../drivers/vfio-pci",
                                 r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    r.mkdir("sys/kernel/iommu_groups/7");
    Identity root;
    root.caps = ~0ull;
    const auto checks = host_checks(r.root, with_port("0000:03:00.0"), false, root);
    // Not a Xen guest: the domain type is skipped, every other check passes.
    CHECK(find(checks, "domain type").status == CheckStatus::skip);
    for (const auto& c : checks) {
        INFO(c.name << ": " << c.detail);
        if (c.name != "domain type") CHECK(c.status == CheckStatus::ok);
    }
    CHECK(print_doctor(checks, false, stdout));
}

TEST_CASE("doctor: xen-netback loaded or bound is a failure with the blacklist fix", "[control][doctor]") {
    FakeRoot r;
    r.mkdir("sys/module/xen_netback");
    auto c = find(host_checks(r.root, {}, false), "in-kernel xen-netback");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.fix.find("blacklist xen_netback") != std::string::npos);
    r.mkdir("sys/bus/xen-backend/drivers/vif/vif-7-0");
    c = find(host_checks(r.root, {}, false), "in-kernel xen-netback");
    CHECK(c.detail.find("bound to 1 vif(s) (vif-7-0") != std::string::npos);
    // On the simulated platform the kernel module does not matter.
    CHECK(find(host_checks(r.root, {}, true), "in-kernel xen-netback").status == CheckStatus::skip);
}

TEST_CASE("doctor: NIC driver, hugepages and IOMMU failures say how to fix them", "[control][doctor]") {
    FakeRoot r;
    auto c = find(host_checks(r.root, with_port("0000:03:00.0"), false), "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.fix.find("pci = [\"0000:03:00.0\"]") != std::string::npos);

    r.mkdir("sys/bus/pci/devices/0000:03:00.0");
    fs::create_directory_symlink("../../../drivers/ixgbe",
                                 r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    c = find(host_checks(r.root, with_port("0000:03:00.0"), false), "port uplink0");
    CHECK(c.detail == "bound to ixgbe");
    CHECK(c.fix.find("dpdk-devbind.py --bind=vfio-pci 0000:03:00.0") != std::string::npos);

    r.write("proc/meminfo", "HugePages_Total:       0\nHugePages_Free:        0\n");
    c = find(host_checks(r.root, {}, false), "hugepages");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.fix.find("nr_hugepages") != std::string::npos);
    GlobalConfig nohuge;
    nohuge.eal_args = {"--no-huge"};
    CHECK(find(host_checks(r.root, nohuge, false), "hugepages").status == CheckStatus::skip);

    c = find(host_checks(r.root, with_port("0000:03:00.0"), false), "IOMMU");
    CHECK(c.status == CheckStatus::fail);
    fs::remove(r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    fs::create_directory_symlink("../../../drivers/uio_pci_generic",
                                 r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    CHECK(find(host_checks(r.root, with_port("0000:03:00.0"), false), "IOMMU").status == CheckStatus::skip);
    CHECK(find(host_checks(r.root, with_port("0000:03:00.0"), false), "port uplink0").status ==
          CheckStatus::ok);
    fs::remove(r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    fs::create_directory_symlink("../../../drivers/ixgbe",
                                 r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    r.write("sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    c = find(host_checks(r.root, with_port("0000:03:00.0"), false), "IOMMU");
    CHECK(c.status == CheckStatus::ok);
    CHECK(c.detail.find("no-IOMMU") != std::string::npos);
}

TEST_CASE("doctor: the domain type comes from /sys/hypervisor/guest_type", "[control][doctor]") {
    FakeRoot r;
    CHECK(guest_type(r.root) == GuestType::none);
    CHECK(contains(find(host_checks(r.root, {}, false), "domain type").detail, "not a Xen guest"));
    r.write("sys/hypervisor/type", "xen\n");
    CHECK(guest_type(r.root) == GuestType::xen_unknown);
    for (const auto& [text, type] : {std::pair{"PV", GuestType::pv}, std::pair{"PVH", GuestType::pvh},
                                     std::pair{"HVM", GuestType::hvm}}) {
        r.guest(text);
        CHECK(guest_type(r.root) == type);
        const auto c = find(host_checks(r.root, {}, false), "domain type");
        CHECK(c.status == CheckStatus::ok);
        CHECK(c.detail.rfind(std::string(text) + " (", 0) == 0);
    }
}

TEST_CASE("doctor: a PCI uplink in a PV domain fails with the af_xdp configuration that works",
          "[control][doctor]") {
    FakeRoot r;
    r.guest("PV");
    r.bind("0000:00:00.0", "e1000");
    r.mkdir("sys/bus/pci/devices/0000:00:00.0/net/eth1");
    auto checks = host_checks(r.root, with_port("0000:00:00.0"), false);
    auto c = find(checks, "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "PV domain: DPDK cannot DMA"));
    CHECK(contains(c.fix, "\nvdev = \"net_af_xdp0,iface=eth1,xdp_prog="));
    CHECK(contains(c.fix, "\neal_args = [\"--no-huge\", \"-m\", \"512\", \"--no-pci\""));
    CHECK(contains(c.fix, "\nname = \"uplink0\""));
    // Not the uio/vfio advice of a bare-metal host, a dead end in PV.
    CHECK_FALSE(contains(c.fix, "devbind"));
    CHECK(find(checks, "IOMMU").status == CheckStatus::skip);
    // No hugepages in PV: the fix is --no-huge, not nr_hugepages.
    c = find(checks, "hugepages");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.fix, "--no-huge"));
    // Without its kernel driver the NIC has no interface yet: a placeholder, said so.
    fs::remove_all(r.root / "sys/bus/pci/devices/0000:00:00.0/net");
    c = find(host_checks(r.root, with_port("0000:00:00.0"), false), "port uplink0");
    CHECK(contains(c.fix, "iface=IFACE,"));
    CHECK(print_doctor({c}, false, stdout) == false);
}

TEST_CASE("doctor: the af_xdp uplink of a PV domain passes when its interface is up", "[control][doctor]") {
    FakeRoot r;
    r.guest("PV");
    const auto g = with_vdev("net_af_xdp0,iface=eth0,xdp_prog=/x.o");
    auto c = find(host_checks(r.root, g, false), "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.name == "port uplink0 interface eth0 up");
    CHECK(c.detail == "no such interface in this domain");
    r.write("sys/class/net/eth0/flags", "0x1002\n");
    c = find(host_checks(r.root, g, false), "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.fix == "ip link set dev eth0 up");
    r.write("sys/class/net/eth0/flags", "0x1003\n");
    const auto checks = host_checks(r.root, g, false);
    CHECK(find(checks, "port uplink0").status == CheckStatus::ok);
    CHECK(find(checks, "hugepages").status == CheckStatus::skip);
    CHECK(find(checks, "NIC bound").status == CheckStatus::skip);
    // af_packet runs over a kernel interface too; a tap vdev creates its own.
    CHECK(find(host_checks(r.root, with_vdev("net_af_packet0,iface=eth0"), false), "port uplink0").status ==
          CheckStatus::ok);
    for (const auto& ch : host_checks(r.root, with_vdev("net_tap0,iface=nbtap0"), false))
        CHECK(ch.name.rfind("port uplink0", 0) != 0);
}

TEST_CASE("doctor: HVM with uio_pci_generic and hugepages passes", "[control][doctor]") {
    FakeRoot r;
    r.guest("HVM");
    r.hugepages(512);
    r.bind("0000:00:03.0", "uio_pci_generic");
    const auto checks = host_checks(r.root, with_port("0000:00:03.0"), false);
    for (const auto& c : checks) {
        INFO(c.name << ": " << c.detail);
        CHECK(c.status != CheckStatus::fail);
    }
    CHECK(find(checks, "port uplink0").status == CheckStatus::ok);
    const auto h = find(checks, "hugepages");
    CHECK(h.status == CheckStatus::ok);
    CHECK(h.detail == "512 hugepages-2048kB (512 free); hugetlbfs mounted");
    CHECK(find(checks, "IOMMU").status == CheckStatus::skip);
}

TEST_CASE("doctor: HVM with vfio-pci needs vfio's no-IOMMU mode", "[control][doctor]") {
    FakeRoot r;
    r.guest("HVM");
    r.hugepages(512);
    r.bind("0000:00:03.0", "vfio-pci");
    auto c = find(host_checks(r.root, with_port("0000:00:03.0"), false), "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "no-IOMMU mode is off"));
    CHECK(contains(c.fix, "enable_unsafe_noiommu_mode"));
    r.write("sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    c = find(host_checks(r.root, with_port("0000:00:03.0"), false), "port uplink0");
    CHECK(c.status == CheckStatus::ok);
    CHECK(contains(c.detail, "no-IOMMU"));
}

TEST_CASE("doctor: HVM with the NIC on its kernel driver fails with the uio binding", "[control][doctor]") {
    FakeRoot r;
    r.guest("HVM");
    r.hugepages(512);
    r.bind("0000:00:03.0", "e1000");
    auto c = find(host_checks(r.root, with_port("0000:00:03.0"), false), "port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.detail == "bound to e1000");
    CHECK(contains(c.fix, "echo uio_pci_generic > /sys/bus/pci/devices/0000:00:03.0/driver_override"));
    CHECK(contains(c.fix, "--iova-mode pa"));
    // Not passed through at all.
    c = find(host_checks(r.root, with_port("0000:00:04.0"), false), "port uplink0");
    CHECK(c.detail == "no such PCI device in this domain");
    // PVH gets no PCI device from Xen 4.17: the fix is another domain type.
    r.guest("PVH");
    c = find(host_checks(r.root, with_port("0000:00:04.0"), false), "port uplink0");
    CHECK(contains(c.fix, "Xen 4.17 passes no PCI device to a PVH domain"));
}

TEST_CASE("doctor: HVM without hugepages or without hugetlbfs mounted fails", "[control][doctor]") {
    FakeRoot r;
    r.guest("HVM");
    r.bind("0000:00:03.0", "uio_pci_generic");
    r.hugepages(0);
    auto c = find(host_checks(r.root, with_port("0000:00:03.0"), false), "hugepages");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.detail == "none");
    CHECK(contains(c.fix, "nr_hugepages"));
    r.hugepages(256);
    r.write("proc/mounts", "sysfs /sys sysfs rw 0 0\n");
    c = find(host_checks(r.root, with_port("0000:00:03.0"), false), "hugepages");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "no hugetlbfs is mounted"));
    CHECK(contains(c.fix, "mount -t hugetlbfs"));
}

TEST_CASE("doctor: on xen without devices, the device checks fail with modprobe fixes", "[control][doctor]") {
    FakeRoot r;
    DoctorOptions o;
    o.root = r.root;
    o.platform.kind = netbackd::platform::PlatformKind::xen;
    o.platform_given = true;
    o.config_path = "/nonexistent/netbackd.toml";
    const auto checks = run_doctor(o);
    CHECK(find(checks, "configuration valid").status == CheckStatus::fail);
    const auto& ev = find(checks, "/dev/xen/evtchn");
    CHECK(ev.status == CheckStatus::fail);
    CHECK(ev.fix.find("modprobe xen-evtchn") != std::string::npos);
    CHECK_FALSE(print_doctor(checks, true, stdout));
}

namespace {

// The user netbackd.service runs as, with no capability unless given. The faked nodes belong to
// whoever runs the test: `in_group` puts the user in their group, as the udev rule's GROUP= does.
Identity netbackd_user(std::uint64_t caps = 0, bool in_group = false) {
    Identity who;
    who.uid = ::geteuid() == 4242 ? 4343 : 4242;
    who.name = "netbackd";
    who.gids = {in_group ? ::getegid() : static_cast<gid_t>(4244)};
    who.caps = caps;
    return who;
}

void set_mode(const fs::path& p, mode_t mode) { REQUIRE(::chmod(p.c_str(), mode) == 0); }

std::string owned(mode_t mode) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "mode %04o, owner %u:%u", static_cast<unsigned>(mode), ::geteuid(),
                  ::getegid());
    return buf;
}

} // namespace

TEST_CASE("doctor: a user that may not open Xen's devices is told the udev rule", "[control][doctor]") {
    FakeRoot r;
    for (const char* dev : {"dev/xen/evtchn", "dev/xen/gntdev", "dev/xen/xenbus"}) {
        r.write(dev, "");
        set_mode(r.root / dev, 0600);
    }
    DoctorOptions o;
    o.root = r.root;
    o.platform.kind = netbackd::platform::PlatformKind::xen;
    o.platform_given = true;
    o.config_path = "/nonexistent/netbackd.toml";
    o.identity = netbackd_user();
    auto checks = run_doctor(o);
    for (const char* dev : {"/dev/xen/evtchn", "/dev/xen/gntdev", "/dev/xen/xenbus"}) {
        const auto& c = find(checks, dev);
        INFO(c.name << ": " << c.detail);
        CHECK(c.status == CheckStatus::fail);
        CHECK(contains(c.detail, "(netbackd) may not open it (" + owned(0600) + ")"));
        CHECK(contains(c.fix, "60-netbackd.rules"));
    }
    // What the udev rule does: group netbackd, 0660.
    for (const char* dev : {"dev/xen/evtchn", "dev/xen/gntdev", "dev/xen/xenbus"})
        set_mode(r.root / dev, 0660);
    o.identity = netbackd_user(0, true);
    checks = run_doctor(o);
    CHECK(find(checks, "/dev/xen/gntdev").status == CheckStatus::ok);
    CHECK(find(checks, "/dev/xen/xenbus").status == CheckStatus::ok);
    // Root may open them whatever their mode.
    for (const char* dev : {"dev/xen/evtchn", "dev/xen/gntdev", "dev/xen/xenbus"})
        set_mode(r.root / dev, 0600);
    o.identity = Identity{};
    CHECK(find(run_doctor(o), "/dev/xen/evtchn").status == CheckStatus::ok);
}

TEST_CASE("doctor: a hugetlbfs mount the user may not write fails with the mount options",
          "[control][doctor]") {
    FakeRoot r;
    r.guest("HVM");
    r.hugepages(256);
    set_mode(r.root / "dev/hugepages", 0755);
    auto g = with_port("0000:00:03.0");
    auto c = find(host_checks(r.root, g, false, netbackd_user()), "hugetlbfs mount writable");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "/dev/hugepages (" + owned(0755) + ")"));
    CHECK(contains(c.fix, "gid=netbackd"));
    CHECK(contains(c.fix, "--in-memory"));
    set_mode(r.root / "dev/hugepages", 01770);
    CHECK(find(host_checks(r.root, g, false, netbackd_user(0, true)), "hugetlbfs mount").status ==
          CheckStatus::ok);
    // Sticky and world-writable, as some setups mount it, works too.
    set_mode(r.root / "dev/hugepages", 01777);
    CHECK(find(host_checks(r.root, g, false, netbackd_user()), "hugetlbfs mount").status == CheckStatus::ok);
    set_mode(r.root / "dev/hugepages", 0755);
    g.eal_args = {"--in-memory"};
    CHECK(find(host_checks(r.root, g, false, netbackd_user()), "hugetlbfs mount").status ==
          CheckStatus::skip);
    // The simulated platform runs DPDK too: the mount matters there as well.
    g.eal_args.clear();
    CHECK(find(host_checks(r.root, g, true, netbackd_user()), "hugetlbfs mount").status == CheckStatus::fail);
}

TEST_CASE("doctor: the uplink PMD's capabilities and device nodes, as a user", "[control][doctor]") {
    FakeRoot r;
    auto c = find(host_checks(r.root, with_vdev("net_af_xdp0,iface=eth0"), false, netbackd_user()),
                  "capabilities of port uplink0");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "lacks CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF"));
    CHECK(contains(c.fix, "AmbientCapabilities="));
    // What netbackd.service's AmbientCapabilities= give.
    const std::uint64_t unit_caps = (1ull << 12) | (1ull << 13) | (1ull << 14) | (1ull << 39);
    c = find(host_checks(r.root, with_vdev("net_af_xdp0,iface=eth0"), false, netbackd_user(unit_caps)),
             "capabilities of port uplink0");
    CHECK(c.status == CheckStatus::ok);
    c = find(host_checks(r.root, with_vdev("net_af_packet0,iface=eth0"), false, netbackd_user(1ull << 12)),
             "capabilities of port uplink0");
    CHECK(contains(c.detail, "(netbackd) lacks CAP_NET_RAW"));

    // uio needs root; vfio needs the group's node.
    r.bind("0000:00:03.0", "uio_pci_generic");
    c = find(host_checks(r.root, with_port("0000:00:03.0"), false, netbackd_user(unit_caps)),
             "device nodes of port uplink0 (0000:00:03.0)");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.fix, "User=root"));
    r.bind("0000:00:03.0", "vfio-pci");
    fs::create_directory_symlink("../../../kernel/iommu_groups/7",
                                 r.root / "sys/bus/pci/devices/0000:00:03.0/iommu_group");
    r.write("dev/vfio/vfio", "");
    r.write("dev/vfio/7", "");
    set_mode(r.root / "dev/vfio/vfio", 0666);
    set_mode(r.root / "dev/vfio/7", 0600);
    c = find(host_checks(r.root, with_port("0000:00:03.0"), false, netbackd_user(unit_caps)),
             "device nodes of port uplink0 (0000:00:03.0)");
    CHECK(c.status == CheckStatus::fail);
    CHECK(contains(c.detail, "/dev/vfio/7 (" + owned(0600) + ")"));
    CHECK_FALSE(contains(c.detail, "/dev/vfio/vfio"));
    set_mode(r.root / "dev/vfio/7", 0660);
    c = find(host_checks(r.root, with_port("0000:00:03.0"), false, netbackd_user(unit_caps, true)),
             "device nodes of port uplink0 (0000:00:03.0)");
    CHECK(c.status == CheckStatus::ok);
}

TEST_CASE("hook scripts: output captured, exit code and timeout reported", "[control][hook]") {
    FakeRoot r;
    r.write("ok.sh", "#!/bin/sh\necho \"up $1 $2 $3\"\necho oops >&2\n");
    r.write("fail.sh", "#!/bin/sh\nexit 3\n");
    r.write("hang.sh", "#!/bin/sh\nexec sleep 30\n");
    for (const char* f : {"ok.sh", "fail.sh", "hang.sh"}) fs::permissions(r.root / f, fs::perms::owner_all);
    auto res = run_hook(r.root / "ok.sh", {"online", "7", "0"}, std::chrono::seconds(10));
    CHECK(res.exit_code == 0);
    CHECK(res.output == "up online 7 0\noops");
    CHECK(run_hook(r.root / "fail.sh", {}, std::chrono::seconds(10)).exit_code == 3);
    res = run_hook(r.root / "hang.sh", {}, std::chrono::milliseconds(100));
    CHECK(res.error == "timed out");
    res = run_hook(r.root / "missing.sh", {}, std::chrono::seconds(1));
    CHECK(res.exit_code != 0);
}
