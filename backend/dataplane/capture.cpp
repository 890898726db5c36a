#include "backend/dataplane/capture.hpp"

#include <atomic>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fmt/format.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pcapng.h>

namespace netbackd::dataplane {
namespace {

std::uint64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

bpf_program compile(const std::string& expr, std::uint32_t snaplen) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen));
    if (dead == nullptr) throw std::runtime_error("capture: pcap_open_dead failed");
    bpf_program prog{};
    const int rc = pcap_compile(dead, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN);
    const std::string err = rc != 0 ? pcap_geterr(dead) : "";
    pcap_close(dead);
    if (rc != 0) throw std::invalid_argument(fmt::format("filter '{}': {}", expr, err));
    return prog;
}

} // namespace

CaptureTap::CaptureTap(const CaptureOptions& options)
    : options_(options),
      tsc_hz_(rte_get_tsc_hz()),
      tsc_base_(rte_get_tsc_cycles()),
      realtime_base_(realtime_ns()),
      ring_(options.ring) {
    if (options_.snaplen < 64) options_.snaplen = 64;
    if (options_.snaplen > 65535) options_.snaplen = 65535;
    if (!options_.filter.empty()) filter_ = compile(options_.filter, options_.snaplen);
    static std::atomic<unsigned> serial{0};
    const std::string name = fmt::format("nb-cap{}", serial.fetch_add(1));
    // As many copies as the ring holds, plus what the writer has in hand.
    const auto size = static_cast<std::uint16_t>(
        std::min<std::uint32_t>(rte_pcapng_mbuf_size(options_.snaplen), UINT16_MAX));
    pool_ = rte_pktmbuf_pool_create(name.c_str(), static_cast<unsigned>(ring_.capacity() + 63), 0, 0, size,
                                    SOCKET_ID_ANY);
    if (pool_ == nullptr) {
        if (filter_) pcap_freecode(&*filter_);
        throw std::runtime_error(
            fmt::format("capture: no memory for its buffers: {}", rte_strerror(rte_errno)));
    }
}

CaptureTap::~CaptureTap() {
    while (auto m = ring_.pop()) rte_pktmbuf_free(*m);
    rte_mempool_free(pool_);
    if (filter_) pcap_freecode(&*filter_);
}

void CaptureTap::offer(const rte_mbuf* m, CaptureDirection dir, std::uint32_t queue) noexcept {
    if (filter_) {
        // The filter sees the first segment: the headers a filter names are there.
        pcap_pkthdr hdr{};
        hdr.caplen = rte_pktmbuf_data_len(m);
        hdr.len = rte_pktmbuf_pkt_len(m);
        if (pcap_offline_filter(&*filter_, &hdr, rte_pktmbuf_mtod(m, const u_char*)) == 0) return;
    }
    const std::uint64_t now = rte_get_tsc_cycles();
    rte_mbuf* c = rte_pcapng_copy(0, queue, m, pool_, options_.snaplen, now,
                                  dir == CaptureDirection::from_guest ? RTE_PCAPNG_DIRECTION_IN
                                                                      : RTE_PCAPNG_DIRECTION_OUT);
    if (c == nullptr) {
        dropped_.add();
        return;
    }
    // The block's interface and time are ours: interface 0 is the vif (the writer's IDB), and
    // the time is the wall clock in ns (the IDB says if_tsresol 9).
    auto* epb = rte_pktmbuf_mtod(c, std::uint8_t*);
    const std::uint32_t iface = 0;
    const std::uint64_t delta = now - tsc_base_;
    const std::uint64_t ns =
        realtime_base_ + delta / tsc_hz_ * 1'000'000'000u + delta % tsc_hz_ * 1'000'000'000u / tsc_hz_;
    const auto hi = static_cast<std::uint32_t>(ns >> 32);
    const auto lo = static_cast<std::uint32_t>(ns);
    std::memcpy(epb + 8, &iface, 4);
    std::memcpy(epb + 12, &hi, 4);
    std::memcpy(epb + 16, &lo, 4);
    if (!ring_.push(c)) {
        rte_pktmbuf_free(c);
        dropped_.add();
        return;
    }
    captured_.add();
}

} // namespace netbackd::dataplane
