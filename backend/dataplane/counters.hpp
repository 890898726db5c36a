// Per-vif counters, written by the one worker that owns the vif and read by the control thread
// (stats, telemetry) at any time. Each counter is an atomic touched with relaxed plain loads and
// stores: no locked instruction on the fast path, and no torn reads on the control side.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace netbackd::dataplane {

class Counter {
public:
    // Only the owning worker calls add(): a load plus a store is then exact.
    void add(std::uint64_t n = 1) noexcept {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }
    // A gauge: only the owning worker sets it.
    void set(std::uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

enum class Drop : std::uint8_t {
    tx_malformed,    // the TX assembler refused the packet (answered with errors)
    tx_copy_failed,  // a grant copy segment of the packet failed
    tx_no_mbuf,      // the pool ran dry
    tx_spoofed,      // source MAC is not the vif's
    tx_no_route,     // the switch had nowhere to send it
    tx_bad_gso,      // GSO requested on a frame that is not TCP over IP
    tx_uplink_full,  // the port did not take it
    rx_no_buffer,    // the guest posted no RX buffers and the backlog was full
    rx_too_big,      // needs more slots than the frontend negotiated (no SG) or accepts
    rx_copy_failed,  // a grant copy into a guest buffer failed
    tx_over_mtu,     // longer than the uplink's MTU + Ethernet header, and not GSO
    tx_over_vif_mtu, // to another vif, longer than that vif's MTU + Ethernet header, and not GSO
    rx_over_backlog, // the vif queue's or the vif's backlog would pass its byte or buffer cap
    rx_stalled,      // purged or refused while the guest's RX is stalled (carrier off)
    count,
};
inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(Drop::count);

constexpr std::string_view to_string(Drop d) noexcept {
    switch (d) {
    case Drop::tx_malformed: return "tx_malformed";
    case Drop::tx_copy_failed: return "tx_copy_failed";
    case Drop::tx_no_mbuf: return "tx_no_mbuf";
    case Drop::tx_spoofed: return "tx_spoofed";
    case Drop::tx_no_route: return "tx_no_route";
    case Drop::tx_bad_gso: return "tx_bad_gso";
    case Drop::tx_uplink_full: return "tx_uplink_full";
    case Drop::rx_no_buffer: return "rx_no_buffer";
    case Drop::rx_too_big: return "rx_too_big";
    case Drop::rx_copy_failed: return "rx_copy_failed";
    case Drop::tx_over_mtu: return "tx_over_mtu";
    case Drop::tx_over_vif_mtu: return "tx_over_vif_mtu";
    case Drop::rx_over_backlog: return "rx_over_backlog";
    case Drop::rx_stalled: return "rx_stalled";
    case Drop::count: break;
    }
    return "?";
}

// One cache-line-aligned block per vif, so two vifs' counters never share a line.
struct alignas(64) VifCounters {
    Counter tx_packets; // guest -> backend, accepted and copied
    Counter tx_bytes;
    Counter rx_packets; // backend -> guest, delivered
    Counter rx_bytes;
    Counter notifications; // event-channel notifies sent to the frontend
    Counter copy_batches;  // grant-copy calls
    Counter copy_segments; // segments in those calls
    Counter staged_copies; // segments copied with memcpy through a staging grant, no grant copy
    Counter staged_pages;  // pages mapped as staging grants now (set by the worker per set)
    Counter rx_throttled;  // times delivery paused on the RX token bucket
    Counter tx_throttled;
    Counter rx_stalls;     // times the guest's RX stalled (carrier off, backlog purged)
    Counter tx_held;       // frames that waited for room in another vif's backlog (back-pressure)
    Counter rx_waits_over; // times a sender's frame waited rx_wait for room here in vain
    // Multicast-control extras on the TX ring (netif.h MCAST_ADD/MCAST_DEL).
    Counter mcast_added;
    Counter mcast_deleted;
    Counter mcast_refused; // ADDs past McastFilter::kCapacity, answered NETIF_RSP_ERROR
    std::array<Counter, kDropReasons> drops;

    Counter& drop(Drop d) noexcept { return drops[static_cast<std::size_t>(d)]; }
    std::uint64_t dropped(Drop d) const noexcept { return drops[static_cast<std::size_t>(d)].get(); }
};

// A plain copy of the counters, for the control thread.
struct VifStats {
    std::uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
    std::uint64_t notifications = 0, copy_batches = 0, copy_segments = 0, staged_copies = 0, staged_pages = 0;
    std::uint64_t rx_throttled = 0, tx_throttled = 0, rx_stalls = 0, tx_held = 0, rx_waits_over = 0;
    std::uint64_t mcast_added = 0, mcast_deleted = 0, mcast_refused = 0;
    // From the vif's McastFilter (filled by whoever has it, not by snapshot()).
    std::uint64_t mcast_filtered = 0, mcast_subscribed = 0;
    bool mcast_filter = false;
    std::array<std::uint64_t, kDropReasons> drops{};

    std::uint64_t dropped(Drop d) const noexcept { return drops[static_cast<std::size_t>(d)]; }
};

inline VifStats snapshot(const VifCounters& c) noexcept {
    VifStats s;
    s.tx_packets = c.tx_packets.get();
    s.tx_bytes = c.tx_bytes.get();
    s.rx_packets = c.rx_packets.get();
    s.rx_bytes = c.rx_bytes.get();
    s.notifications = c.notifications.get();
    s.copy_batches = c.copy_batches.get();
    s.copy_segments = c.copy_segments.get();
    s.staged_copies = c.staged_copies.get();
    s.staged_pages = c.staged_pages.get();
    s.rx_throttled = c.rx_throttled.get();
    s.tx_throttled = c.tx_throttled.get();
    s.rx_stalls = c.rx_stalls.get();
    s.tx_held = c.tx_held.get();
    s.rx_waits_over = c.rx_waits_over.get();
    s.mcast_added = c.mcast_added.get();
    s.mcast_deleted = c.mcast_deleted.get();
    s.mcast_refused = c.mcast_refused.get();
    for (std::size_t i = 0; i < kDropReasons; ++i) s.drops[i] = c.drops[i].get();
    return s;
}

} // namespace netbackd::dataplane
