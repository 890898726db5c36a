// The worker's side of `netbackd capture` on its own: the filter decides, the copy is an
// Enhanced Packet Block with the direction flag, and a reader that takes nothing costs the
// capture frames (counted), never more than the ring holds.
#include <cstring>

#include <catch2/catch.hpp>
#include <rte_mbuf.h>

#include "backend/dataplane/capture.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;

namespace {

std::uint32_t u32_at(const rte_mbuf* m, std::size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, rte_pktmbuf_mtod_offset(m, const char*, at), 4);
    return v;
}

struct Taken {
    std::size_t frames = 0;
    std::size_t inbound = 0;
};

// Takes every copy: each must be one whole EPB on interface 0.
Taken drain(CaptureTap& tap) {
    Taken t;
    while (auto m = tap.take()) {
        CHECK(u32_at(*m, 0) == 6);                       // Enhanced Packet Block
        CHECK(u32_at(*m, 4) == rte_pktmbuf_pkt_len(*m)); // the whole block in the mbuf
        CHECK(u32_at(*m, 8) == 0);                       // the vif's interface
        const std::uint32_t caplen = u32_at(*m, 20);
        const std::uint32_t opt = 28 + ((caplen + 3) & ~3u); // epb_flags follows the data
        CHECK(u32_at(*m, opt) == (4u << 16 | 2u));           // code 2, length 4
        t.inbound += u32_at(*m, opt + 4) == 1 ? 1 : 0;
        ++t.frames;
        rte_pktmbuf_free(*m);
    }
    return t;
}

} // namespace

TEST_CASE("a capture tap filters, flags the direction, and drops what a slow reader leaves",
          "[dataplane][capture]") {
    pmd::test::dataplane_eal();
    pmd::Mempool pool(pmd::test::small_pool(1023));
    const auto udp9 = pmd::mbuf_from_bytes(pool.get(), frame(mac(2), mac(1), 100));
    REQUIRE(udp9 != nullptr);

    SECTION("the filter decides") {
        CaptureTap tap({.snaplen = 9216, .filter = "ether src 02:16:3e:00:00:01", .ring = 64});
        CaptureTap other({.snaplen = 9216, .filter = "ether src 02:16:3e:00:00:09", .ring = 64});
        tap.offer(udp9.get(), CaptureDirection::from_guest, 0);
        tap.offer(udp9.get(), CaptureDirection::to_guest, 0);
        other.offer(udp9.get(), CaptureDirection::from_guest, 0);
        const Taken t = drain(tap);
        CHECK(t.frames == 2);
        CHECK(t.inbound == 1);
        CHECK(drain(other).frames == 0);
        CHECK(tap.captured() == 2);
        CHECK(other.captured() == 0);
    }

    SECTION("a full ring drops and counts, and takes again once read") {
        CaptureTap tap({.snaplen = 128, .filter = "", .ring = 64});
        for (int i = 0; i < 200; ++i) tap.offer(udp9.get(), CaptureDirection::from_guest, 0);
        CHECK(tap.captured() == 64);
        CHECK(tap.dropped() == 136);
        CHECK(drain(tap).frames == 64);
        tap.offer(udp9.get(), CaptureDirection::to_guest, 0);
        CHECK(tap.captured() == 65);
        CHECK(drain(tap).frames == 1);
    }

    SECTION("a filter libpcap cannot compile is refused with its reason") {
        CHECK_THROWS_WITH(CaptureTap({.snaplen = 9216, .filter = "udp prot 9", .ring = 64}),
                          Catch::Contains("filter 'udp prot 9'"));
    }
}
