// netbackd doctor's host checks against a faked /sys and /proc, and the hook runner.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

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
    }
    ~FakeRoot() { fs::remove_all(root); }
    void write(const fs::path& rel, const std::string& text) const {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << text;
    }
    void mkdir(const fs::path& rel) const { fs::create_directories(root / rel); }
};

const Check& find(const std::vector<Check>& checks, std::string_view prefix) {
    for (const auto& c : checks)
        if (c.name.rfind(prefix, 0) == 0) return c;
    FAIL("no check named " << prefix);
    return checks.front();
}

GlobalConfig with_port(const std::string& pci) {
    GlobalConfig g;
    g.ports.push_back({.name = "uplink0", .pci = pci, .vdev = "", .mtu = std::nullopt});
    return g;
}

} // namespace

TEST_CASE("doctor: a clean host passes", "[control][doctor]") {
    FakeRoot r;
    r.mkdir("sys/bus/pci/devices/0000:03:00.0");
    fs::create_directory_symlink("../../../drivers/vfio-pci",
                                 r.root / "sys/bus/pci/devices/0000:03:00.0/driver");
    r.mkdir("sys/kernel/iommu_groups/7");
    const auto checks = host_checks(r.root, with_port("0000:03:00.0"), false);
    for (const auto& c : checks) {
        INFO(c.name << ": " << c.detail);
        CHECK(c.status == CheckStatus::ok);
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
