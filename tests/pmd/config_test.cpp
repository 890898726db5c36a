// EAL argument building, failure explanations, pool sizing and offload masks: no EAL needed.
#include <algorithm>
#include <cerrno>

#include <catch2/catch.hpp>

#include <rte_ethdev.h>

#include "pmd/eal.hpp"
#include "pmd/mempool.hpp"
#include "pmd/offloads.hpp"

using namespace netbackd::pmd;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
} // namespace

TEST_CASE("EAL arguments without hugepages", "[eal]") {
    EalConfig c;
    c.vdevs = {"net_null0", "net_ring0"};
    c.memory_mb = 256;
    c.file_prefix = "t1";
    const auto a = eal_arguments(c, "prog");
    REQUIRE(!a.empty());
    CHECK(a[0] == "prog");
    CHECK(has(a, "--no-huge"));
    CHECK(has(a, "--no-pci"));
    CHECK(has(a, "--no-telemetry"));
    CHECK(has(a, "--vdev=net_null0"));
    CHECK(has(a, "--vdev=net_ring0"));
    CHECK(has(a, "--file-prefix=t1"));
    CHECK(has(a, "--log-level=*:error"));
    const auto m = std::find(a.begin(), a.end(), "-m");
    REQUIRE(m != a.end());
    REQUIRE(m + 1 != a.end());
    CHECK(*(m + 1) == "256");
    CHECK_FALSE(has(a, "--in-memory"));
    // The main lcore floats over the allowed CPUs rather than being pinned to one.
    CHECK(has(a, "--lcores=0@(" + allowed_cpu_list() + ")"));
}

TEST_CASE("EAL arguments with hugepages and PCI devices", "[eal]") {
    EalConfig c;
    c.hugepages = true;
    c.in_memory = true;
    c.memory_mb = 0;
    c.pci_allow = {"0000:01:00.0", "0000:01:00.1"};
    c.lcores = "0-1";
    c.telemetry = true;
    c.extra = {"--huge-unlink"};
    const auto a = eal_arguments(c);
    CHECK_FALSE(has(a, "--no-huge"));
    CHECK_FALSE(has(a, "--no-pci"));
    CHECK_FALSE(has(a, "-m"));
    CHECK_FALSE(has(a, "--no-telemetry"));
    CHECK(has(a, "--in-memory"));
    CHECK(has(a, "--lcores=0-1"));
    CHECK(a.back() == "--huge-unlink");
    CHECK(std::count(a.begin(), a.end(), "-a") == 2);
    CHECK(has(a, "0000:01:00.1"));
}

TEST_CASE("contradictory EAL settings are refused", "[eal]") {
    EalConfig c;
    c.in_memory = true; // without hugepages
    CHECK_THROWS_AS(eal_arguments(c), EalError);
    c.in_memory = false;
    c.memory_mb = 0;
    CHECK_THROWS_WITH(eal_arguments(c), Catch::Contains("-m"));
}

TEST_CASE("EAL failures are explained with the likely cause", "[eal]") {
    EalConfig c;
    c.hugepages = true;
    HostFacts none;
    none.running_as_root = true;
    CHECK(contains(explain_eal_failure(ENOMEM, c, none), "--no-huge"));
    CHECK(contains(explain_eal_failure(ENOMEM, c, none), "no hugepages"));

    HostFacts busy = none;
    busy.hugepages_total = 512;
    busy.hugepages_free = 0;
    CHECK(contains(explain_eal_failure(ENOMEM, c, busy), "in use"));

    HostFacts plenty = none;
    plenty.hugepages_total = plenty.hugepages_free = 512;
    c.pci_allow = {"0000:01:00.0"};
    CHECK(contains(explain_eal_failure(EIO, c, plenty), "vfio-pci"));
    plenty.vfio = true;
    CHECK_FALSE(contains(explain_eal_failure(EIO, c, plenty), "vfio-pci"));

    c.file_prefix = "shared";
    CHECK(contains(explain_eal_failure(EALREADY, c, plenty), "file prefix 'shared'"));
}

TEST_CASE("pool sizing follows the documented formula", "[mempool]") {
    MempoolSizing s;
    s.vifs = 0;
    s.nic_queues = 1;
    s.rx_desc = 1024;
    s.tx_desc = 1024;
    s.lcores = 1;
    s.cache = 256;
    s.burst = 32;
    // 2048 + 384 + 64
    CHECK(mbufs_needed(s) == 2496);

    s.vifs = 8;
    s.queues_per_vif = 2;
    s.vif_ring_slots = 256;
    // 2048 + 8*2*256*2 = 10240, + 448 = 10688: not rounded up to 16383 (issue 19: every
    // buffer is page-fault time at start-up)
    CHECK(mbufs_needed(s) == 10688);

    // netbackd's frame pool: 64 vifs of one queue, one port, one worker.
    MempoolSizing frames;
    frames.vifs = 64;
    CHECK(mbufs_needed(frames) == 2048 + 64 * 512 + 448);

    // Chained jumbo frames multiply the queue part only.
    MempoolSizing jumbo = s;
    jumbo.segs_per_packet = 5;
    CHECK(mbufs_needed(jumbo) == 10240 * 5 + 448);
    CHECK(mbufs_needed(jumbo) > mbufs_needed(s));
}

TEST_CASE("data room for a jumbo MTU in one buffer", "[mempool]") {
    CHECK(data_room_for_mtu(1500) == 1500 + kFrameOverhead + RTE_PKTMBUF_HEADROOM);
    CHECK(kFrameOverhead == 26);
    CHECK(data_room_for_mtu(9000) >= 9000 + 14 + RTE_PKTMBUF_HEADROOM);
    CHECK(data_room_for_mtu(1500) <= kDefaultDataRoom);
    CHECK_THROWS(data_room_for_mtu(70000));
}

TEST_CASE("offload masks map to and from DPDK's bits", "[offloads]") {
    const std::uint64_t tx = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
                             RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_VLAN_INSERT;
    const std::uint64_t rx =
        RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_SCATTER | RTE_ETH_RX_OFFLOAD_VLAN_STRIP;
    const auto o = Offloads::from_capabilities(rx, tx);
    CHECK(o.tx_ipv4_cksum);
    CHECK(o.tx_tcp_cksum);
    CHECK_FALSE(o.tx_udp_cksum);
    CHECK(o.tx_tcp_tso);
    CHECK_FALSE(o.tx_multi_segs);
    CHECK(o.rx_udp_cksum);
    CHECK(o.rx_scatter);
    CHECK_FALSE(o.tx_l4_cksum());
    // Bits we do not model are dropped, the rest round-trip.
    CHECK(o.tx_mask() == (tx & ~RTE_ETH_TX_OFFLOAD_VLAN_INSERT));
    CHECK(o.rx_mask() == (rx & ~RTE_ETH_RX_OFFLOAD_VLAN_STRIP));
    CHECK((o & Offloads::none()) == Offloads::none());
    CHECK((o & Offloads::all()) == o);
    CHECK(o.describe() == "tx: ipv4-cksum tcp-cksum tcp-tso | rx: udp-cksum scatter");
    CHECK(Offloads::none().describe() == "tx: none | rx: none");
}

TEST_CASE("link status as a carrier value", "[offloads]") {
    LinkStatus up{.up = true, .speed_mbps = 10000, .full_duplex = true, .autoneg = false};
    CHECK(std::string(carrier_value(up)) == "1");
    CHECK(describe(up) == "up 10000 Mbps full-duplex");
    CHECK(std::string(carrier_value(LinkStatus{})) == "0");
    CHECK(describe(LinkStatus{}) == "down");
}

TEST_CASE("asking for hugepages where none are free fails before EAL starts", "[eal]") {
    if (probe_host().hugepages_free != 0) {
        WARN("this host has free hugepages: nothing to check");
        return;
    }
    EalConfig c;
    c.hugepages = true;
    c.file_prefix = "nbtest-nohuge";
    try {
        Eal eal(c);
        FAIL("EAL started without hugepages");
    } catch (const EalError& e) {
        CHECK(e.code() == ENOMEM);
        CHECK_THAT(e.what(), Catch::Contains("--no-huge"));
    }
}

TEST_CASE("EAL arguments as an operator writes them become a configuration", "[eal]") {
    const auto c =
        parse_eal_args({"--file-prefix", "netbackd", "--in-memory", "-l", "0-3", "--vdev=net_null0", "-a",
                        "0000:03:00.0", "-n", "4", "--log-level=*:info", "-m512", "--no-telemetry"});
    CHECK(c.hugepages);
    CHECK(c.in_memory);
    CHECK(c.file_prefix == "netbackd");
    CHECK(c.lcores == "0-3");
    CHECK(c.vdevs == std::vector<std::string>{"net_null0"});
    CHECK(c.pci_allow == std::vector<std::string>{"0000:03:00.0"});
    CHECK(c.log_level == "*:info");
    CHECK(c.memory_mb == 512);
    CHECK_FALSE(c.telemetry);
    CHECK(c.extra == std::vector<std::string>{"-n", "4"});

    // And back: what comes out says the same.
    const auto a = eal_arguments(c);
    CHECK(has(a, "--in-memory"));
    CHECK(has(a, "--file-prefix=netbackd"));
    CHECK(has(a, "--lcores=0-3"));
    CHECK(has(a, "--vdev=net_null0"));
    CHECK(has(a, "512"));
    CHECK_FALSE(has(a, "--no-huge"));
    CHECK_FALSE(has(a, "--no-pci"));
}

TEST_CASE("EAL arguments without hugepages get a default memory size", "[eal]") {
    const auto c = parse_eal_args({"--no-huge", "--file-prefix=x"});
    CHECK_FALSE(c.hugepages);
    CHECK(c.memory_mb == 256);
    CHECK(c.telemetry);
    CHECK(c.file_prefix == "x");
    CHECK_NOTHROW(eal_arguments(c));

    CHECK_THROWS_WITH(parse_eal_args({"--file-prefix"}), Catch::Contains("needs a value"));
    CHECK_THROWS_WITH(parse_eal_args({"-c", "0x3"}), Catch::Contains("-l"));
    CHECK_THROWS_AS(parse_eal_args({"-m", "lots"}), EalError);
    // --in-memory without hugepages is caught when the arguments are built.
    CHECK_THROWS_AS(eal_arguments(parse_eal_args({"--no-huge", "--in-memory"})), EalError);
}

TEST_CASE("uplinks become EAL devices and port names", "[eal]") {
    EalConfig c;
    const std::vector<UplinkSpec> uplinks{
        {"uplink0", "03:00.0", ""}, {"uplink1", "0000:04:00.1", ""}, {"test", "", "net_tap0,iface=nbtap0"}};
    add_uplinks(c, uplinks);
    CHECK(c.pci_allow == std::vector<std::string>{"03:00.0", "0000:04:00.1"});
    CHECK(c.vdevs == std::vector<std::string>{"net_tap0,iface=nbtap0"});
    CHECK(ethdev_name_of(uplinks[0]) == "0000:03:00.0");
    CHECK(ethdev_name_of(uplinks[1]) == "0000:04:00.1");
    CHECK(ethdev_name_of(uplinks[2]) == "net_tap0");
}

TEST_CASE("lcores for workers keep the control thread off the workers' CPUs", "[eal]") {
    const std::vector<unsigned> allowed{0, 1, 2, 3, 4, 6};
    CHECK(lcores_for_workers(std::vector<unsigned>{2, 3}, allowed) == "0@(0-1,4,6),1@2,2@3");
    CHECK(lcores_for_workers(std::vector<unsigned>{}, allowed) == "0@(0-4,6)");
    // Every CPU a worker: the control thread shares them all.
    const std::vector<unsigned> two{0, 1};
    CHECK(lcores_for_workers(two, two) == "0@(0-1),1@0,2@1");
    CHECK_THROWS_AS(lcores_for_workers(std::vector<unsigned>{5}, allowed), EalError);
    // This process's own CPUs in the same notation as the default --lcores uses.
    CHECK(lcores_for_workers(std::vector<unsigned>{}, allowed_cpus()) == "0@(" + allowed_cpu_list() + ")");
}
