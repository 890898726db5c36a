// Issue 14 item 4 (the XSA-423 class): a guest's GSO metadata never reaches a hardware-TSO port
// out of bounds. The uplink here reports TSO in hardware, so the worker hands it marked frames
// whole; every one it got must carry an MSS and header lengths a NIC can take.
#include <catch2/catch.hpp>
#include <rte_mbuf.h>

#include "pmd/checksum.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/tso_check.hpp"
#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;

namespace {

constexpr platform::DomId kA = 11;
const MacAddr kMacA = mac(0xa);
const MacAddr kOutside = mac(0x99);

// An IPv6 TCP frame whose TCP header sits behind a destination-options header of ext_len
// bytes (a multiple of 8): 40 + ext_len bytes of L3 header.
Bytes ipv6_with_dest_opts(std::size_t payload, std::size_t ext_len) {
    Bytes f = frame(kOutside, kMacA, payload, 6);
    constexpr std::size_t kIp6 = 14;
    Bytes ext(ext_len, std::byte{0});
    ext[0] = f[kIp6 + 6]; // next header: what followed IPv6 (TCP)
    ext[1] = static_cast<std::byte>(ext_len / 8 - 1);
    // PadN options fill the rest (content is not parsed; kept well-formed anyway).
    for (std::size_t off = 2; off < ext_len;) {
        const std::size_t left = ext_len - off;
        const std::size_t len = std::min<std::size_t>(left - 2, 255);
        ext[off] = std::byte{1};
        ext[off + 1] = static_cast<std::byte>(len);
        off += 2 + len;
    }
    f[kIp6 + 6] = std::byte{60}; // destination options
    const auto plen = static_cast<std::uint16_t>(
        (std::to_integer<unsigned>(f[kIp6 + 4]) << 8 | std::to_integer<unsigned>(f[kIp6 + 5])) + ext_len);
    f[kIp6 + 4] = static_cast<std::byte>(plen >> 8);
    f[kIp6 + 5] = static_cast<std::byte>(plen & 0xff);
    f.insert(f.begin() + kIp6 + 40, ext.begin(), ext.end());
    return f;
}

} // namespace

TEST_CASE("hardware TSO port: tiny MSS and over-long IPv6 headers never reach it, good TSO does",
          "[dataplane][tso]") {
    Rig rig({kA}, pmd::Offloads::all());
    Netfront a(rig.world, kA);
    VifRuntime& va = rig.attach(a, kMacA);
    a.post_rx_buffers(8);

    auto send_gso = [&](const Bytes& f, std::uint16_t mss, std::uint8_t type) {
        ring::TxExtras ex;
        ex.gso = ring::TxGso{mss, type, 0};
        a.send(f, ring::TxFrontFlags{.csum_blank = true}, ex);
    };
    // The hostile gso_tiny_mss shape: a big TCPv4 frame with an 8-byte MSS.
    send_gso(frame(kOutside, kMacA, 30000), 8, XEN_NETIF_GSO_TYPE_TCPV4);
    send_gso(frame(kOutside, kMacA, 30000), pmd::kMinTsoMss - 1, XEN_NETIF_GSO_TYPE_TCPV4);
    // 40 + 520 bytes of IPv6 header: more than rte_mbuf's 9-bit l3_len holds.
    const Bytes long_v6 = ipv6_with_dest_opts(20000, 520);
    REQUIRE(pmd::parse_frame(long_v6)->l3_len == 560);
    send_gso(long_v6, 1200, XEN_NETIF_GSO_TYPE_TCPV6);
    // Within bounds: a long but representable IPv6 header, and plain TCPv4 at the floor MSS.
    const Bytes ok_v6 = ipv6_with_dest_opts(20000, 424);
    send_gso(ok_v6, 1000, XEN_NETIF_GSO_TYPE_TCPV6);
    send_gso(frame(kOutside, kMacA, 20000), pmd::kMinTsoMss, XEN_NETIF_GSO_TYPE_TCPV4);
    a.push_tx();
    rig.poll(4);

    const auto sent = rig.up.sent_mbufs();
    std::size_t tso = 0;
    for (const auto& m : sent) {
        if ((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0) continue;
        ++tso;
        CHECK(m->tso_segsz >= pmd::kMinTsoMss);
        const auto layout = pmd::parse_frame(pmd::segment_bytes(m.get()));
        REQUIRE(layout.has_value());
        CHECK(m->l2_len == layout->l2_len);
        CHECK(m->l3_len == layout->l3_len);
        CHECK(m->l4_len == layout->l4_len);
        CHECK(pmd::tso_fault(m.get()) == pmd::TsoFault::none);
    }
    // The two good ones went out as TSO; the three bad ones were dropped and counted.
    CHECK(tso == 2);
    CHECK(sent.size() == 2);
    CHECK(snapshot(va.counters()).dropped(Drop::tx_bad_gso) == 3);
}
