// A jumbo MTU on an uplink whose PMD cannot scatter a frame over several RX buffers (net_pcap
// here, like many NICs) still brings whole 9000-byte frames to a guest: netbackd gives that port
// a pool of one-frame buffers. Without it the port refuses to start.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <fstream>

#include "tests/support/guest_fleet.hpp"
#include "tests/support/held_resources.hpp"
#include "tests/support/netbackd_on_xensim.hpp"

using namespace netbackd;
using namespace netbackd::testing;

namespace {

template <class T>
void put(std::ofstream& out, T value) {
    out.write(reinterpret_cast<const char*>(&value), sizeof value);
}

// Classic pcap, one IPv4/UDP frame of `size` bytes to `dst`, zero-filled payload.
void write_pcap(const std::string& path, std::size_t size, const ring::MacAddr& dst) {
    std::ofstream out(path, std::ios::binary);
    put<std::uint32_t>(out, 0xa1b2c3d4);
    put<std::uint16_t>(out, 2);
    put<std::uint16_t>(out, 4);
    put<std::int32_t>(out, 0);
    put<std::uint32_t>(out, 0);
    put<std::uint32_t>(out, 65535);
    put<std::uint32_t>(out, 1); // Ethernet
    std::vector<std::uint8_t> frame(size, 0);
    std::copy(dst.begin(), dst.end(), frame.begin());
    const std::array<std::uint8_t, 6> src{0x02, 0, 0, 0, 0, 0x01};
    std::copy(src.begin(), src.end(), frame.begin() + 6);
    frame[12] = 0x08; // IPv4; the switch forwards by MAC, the rest only has to look like a frame
    frame[14] = 0x45;
    const std::size_t ip_len = size - 14;
    frame[16] = static_cast<std::uint8_t>(ip_len >> 8);
    frame[17] = static_cast<std::uint8_t>(ip_len);
    frame[22] = 64;
    frame[23] = 17;
    put<std::uint32_t>(out, 0);
    put<std::uint32_t>(out, 0);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(size));
    put<std::uint32_t>(out, static_cast<std::uint32_t>(size));
    out.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
}

} // namespace

TEST_CASE("9000-byte wire frames reach a guest whole through a jumbo uplink without RX scatter",
          "[service][mtu]") {
    constexpr std::size_t kFrame = 9000;
    SimWorld w;
    w.create_domain("a", 21);
    const std::string pcap = w.dir() + "/jumbo.pcap";
    write_pcap(pcap, kFrame, guest_mac(21, 0));
    w.start_netbackd(fmt::format("[[dpdk.ports]]\nname = \"uplink0\"\n"
                                 "vdev = \"net_pcap0,rx_pcap={},infinite_rx=1\"\nmtu = {}\n",
                                 pcap, kFrame - 14));

    GuestFleet fleet(w);
    FleetGuest& g = fleet.add(21, 0, std::nullopt);
    fleet.pump(std::chrono::milliseconds(500));

    const auto& c = g.io->counters();
    INFO(w.netbackd_log());
    REQUIRE(c.rx_pkts > 100);
    CHECK(c.rx_errors == 0);
    CHECK(c.protocol_errors == 0);
    CHECK(c.rx_bytes == c.rx_pkts * kFrame); // every frame whole, none cut at a buffer

    const Held held = netbackd_stats(w.netbackd_pid(), w.dir() + "/stats.log");
    INFO(held.raw);
    CHECK(held.mbufs_in_use.count("nb_rx0") == 1); // telemetry spells the pool nb-rx0 with "_"
}
