// netbackd-pmd-probe: start EAL, bring up one port, print what its device does in hardware and
// its link state. For operators checking a NIC or vdev before pointing netbackd at it.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pmd/dpdk_macros.hpp"
#include "pmd/eal.hpp"
#include "pmd/mempool.hpp"
#include "pmd/port.hpp"

namespace pmd = netbackd::pmd;

namespace {

nlohmann::json to_json(const pmd::Offloads& o) {
    return {{"tx_ipv4_cksum", o.tx_ipv4_cksum}, {"tx_udp_cksum", o.tx_udp_cksum},
            {"tx_tcp_cksum", o.tx_tcp_cksum},   {"tx_tcp_tso", o.tx_tcp_tso},
            {"tx_multi_segs", o.tx_multi_segs}, {"rx_ipv4_cksum", o.rx_ipv4_cksum},
            {"rx_udp_cksum", o.rx_udp_cksum},   {"rx_tcp_cksum", o.rx_tcp_cksum},
            {"rx_scatter", o.rx_scatter}};
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"Bring up one DPDK port and report its offloads and link state"};
    pmd::EalConfig eal;
    std::string port_name;
    std::uint16_t mtu = 0;
    unsigned wait_ms = 0;
    bool json = false;
    app.add_option("--vdev", eal.vdevs, "virtual device, e.g. net_null0 or net_tap0,iface=t0");
    app.add_option("-a,--pci", eal.pci_allow, "PCI address of a NIC bound to vfio-pci or uio");
    app.add_option("--port", port_name, "port to bring up (default: the first one)");
    app.add_flag("--huge", eal.hugepages, "use hugepages (default: --no-huge)");
    app.add_flag("--in-memory", eal.in_memory, "no shared runtime files (needs --huge)");
    app.add_option("-m,--memory", eal.memory_mb, "MB of memory for EAL")->capture_default_str();
    app.add_option("--file-prefix", eal.file_prefix, "EAL file prefix (default: unique)");
    app.add_option("--lcores", eal.lcores, "EAL --lcores (default: lcore 0 on any CPU)");
    app.add_option("--log-level", eal.log_level, "EAL --log-level")->capture_default_str();
    app.add_option("--mtu", mtu, "MTU to configure (default: the device's)");
    app.add_option("--wait-link", wait_ms, "milliseconds to wait for the link to come up");
    app.add_flag("--json", json, "print JSON");
    CLI11_PARSE(app, argc, argv);

    if (eal.file_prefix.empty()) {
        eal.file_prefix = fmt::format("netbackd-probe-{}", ::getpid());
    }
    try {
        pmd::Eal env(eal);
        const auto ports = pmd::ethdev_ports();
        if (ports.empty()) {
            fmt::print(stderr, "netbackd-pmd-probe: no ports (give --vdev or --pci)\n");
            return 2;
        }
        if (port_name.empty()) {
            port_name = pmd::ethdev_name(ports.front()).value_or("");
        }
        pmd::Mempool pool({.name = "probe", .mbufs = 4095, .cache = 64});
        pmd::PortConfig config;
        config.rx_desc = 512;
        config.tx_desc = 512;
        if (mtu != 0) {
            config.mtu = mtu;
        }
        pmd::Port port(port_name, config, pool);
        auto link = port.link();
        for (unsigned waited = 0; !link.up && waited < wait_ms; waited += 100) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            link = port.link();
        }
        if (json) {
            nlohmann::json j{
                {"port", port.name()},
                {"id", port.id()},
                {"driver", port.driver()},
                {"mtu", port.mtu()},
                {"rx_desc", port.rx_desc()},
                {"tx_desc", port.tx_desc()},
                {"offered", to_json(port.offered())},
                {"enabled", to_json(port.hardware())},
                {"link_interrupt", port.has_link_interrupt()},
                {"rx_interrupts", port.has_rx_interrupts()},
                {"link",
                 {{"up", link.up}, {"speed_mbps", link.speed_mbps}, {"full_duplex", link.full_duplex}}},
                {"carrier", pmd::carrier_value(link)},
                {"warnings", port.warnings()}};
            fmt::print("{}\n", j.dump(2));
        } else {
            fmt::print("port      {} (id {}, driver {})\n", port.name(), port.id(), port.driver());
            fmt::print("mtu       {}\n", port.mtu());
            fmt::print("queues    rx {}x{} tx {}x{}\n", port.rx_queues(), port.rx_desc(), port.tx_queues(),
                       port.tx_desc());
            fmt::print("hardware  {}\n", port.hardware().describe());
            fmt::print("software  {}\n",
                       port.hardware().tx_l4_cksum() && port.hardware().tx_tcp_tso
                           ? std::string("nothing")
                           : std::string(port.hardware().tx_l4_cksum() ? "" : "tx checksums ") +
                                 (port.hardware().tx_tcp_tso ? "" : "tcp segmentation ") +
                                 (port.hardware().rx_l4_cksum() ? "" : "rx checksum checks"));
            fmt::print("link      {} ({})\n", pmd::describe(link),
                       port.has_link_interrupt() ? "interrupt" : "polled");
            fmt::print("rx intr   {}\n", port.has_rx_interrupts() ? "yes (idle workers sleep until a frame)"
                                                                  : "no (idle workers poll it on a timer)");
            fmt::print("carrier   {}\n", pmd::carrier_value(link));
            for (const auto& w : port.warnings()) {
                fmt::print("warning   {}\n", w);
            }
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "netbackd-pmd-probe: {}\n", e.what());
        return 1;
    }
    return 0;
}
