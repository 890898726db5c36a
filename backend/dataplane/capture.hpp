// `netbackd capture`: the worker's side of a packet capture on one vif. While a capture runs,
// the vif's owning worker offers each burst's frames (guest TX after the grant copy, guest RX
// before the responses); those the BPF filter accepts are copied as pcapng Enhanced Packet
// Blocks (rte_pcapng_copy) into the tap's own small mempool and pushed into a fixed SPSC ring.
// A full ring or an empty pool drops the copy and counts it: a slow reader costs the capture
// frames, never the guests. With no capture the fast path pays one load and a predictable
// branch per burst (VifRuntime::capture).
//
// Threads (shared state): `ring` (producer: the vif's worker, consumer: the capture writer
// thread), `captured`/`dropped` (written by the worker, read by anyone), `ended` (set by the
// control thread when the vif goes away, read by the writer). The filter and pool are set once
// before the tap is published (VifRuntime::capture) and read-only after.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <pcap/pcap.h>

#include "backend/dataplane/counters.hpp"
#include "backend/dataplane/spsc_queue.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace netbackd::dataplane {

// As tcpdump on a Linux vif netdev sees it: what the guest sends arrives (inbound), what the
// backend delivers to the guest leaves (outbound).
enum class CaptureDirection : std::uint8_t { from_guest, to_guest };

struct CaptureOptions {
    std::uint32_t snaplen = 9216;
    std::string filter; // libpcap syntax; empty: every frame
    std::size_t ring = 1024;
};

class CaptureTap {
public:
    // Compiles the filter (libpcap's compiler, Ethernet link type) and creates the pool; throws
    // std::invalid_argument with libpcap's message for a bad filter, std::runtime_error when
    // DPDK has no memory for the pool.
    explicit CaptureTap(const CaptureOptions& options);
    ~CaptureTap();
    CaptureTap(const CaptureTap&) = delete;
    CaptureTap& operator=(const CaptureTap&) = delete;

    // ---- worker
    // Filters and copies one frame; never blocks or allocates beyond the tap's pool.
    void offer(const rte_mbuf* m, CaptureDirection dir, std::uint32_t queue) noexcept;

    // ---- writer thread
    // The next copy, an rte_mbuf holding one Enhanced Packet Block for interface 0 (the
    // caller frees it).
    std::optional<rte_mbuf*> take() noexcept { return ring_.pop(); }

    // ---- any thread
    const CaptureOptions& options() const noexcept { return options_; }
    std::uint64_t captured() const noexcept { return captured_.get(); }
    std::uint64_t dropped() const noexcept { return dropped_.get(); }
    bool ended() const noexcept { return ended_.load(std::memory_order_acquire); }
    // ---- control thread: the vif is gone (detached); the writer drains and stops.
    void end() noexcept { ended_.store(true, std::memory_order_release); }

private:
    CaptureOptions options_;
    std::optional<bpf_program> filter_;
    rte_mempool* pool_ = nullptr;
    std::uint64_t tsc_hz_;
    std::uint64_t tsc_base_;      // TSC when the tap was made
    std::uint64_t realtime_base_; // ns since the epoch at tsc_base_
    SpscQueue<rte_mbuf*> ring_;
    Counter captured_;
    Counter dropped_;
    std::atomic<bool> ended_{false};
};

} // namespace netbackd::dataplane
