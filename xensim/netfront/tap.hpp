// TAP mode of the simulated netfront: a Linux tap device standing for the guest's NIC, inside
// a network namespace standing for the guest, bridged to the rings; so ping, iperf3 and
// tcpdump run "in the guest" with `ip netns exec`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/platform/fd.hpp"
#include "ring/tx_packet.hpp"
#include "xensim/netfront/netfront_io.hpp"

namespace netbackd::xensim {

// Whether taps and namespaces can be made here: /dev/net/tun opens and `ip netns` runs.
bool tap_supported(std::string* why = nullptr);

// `ip netns add name` unless /run/netns/name exists. Throws std::runtime_error on failure.
void ensure_netns(const std::string& name);
// `ip netns delete name`; no error if it is gone.
void delete_netns(const std::string& name) noexcept;

// Largest GSO frame the tap hands over (set as the tap's gso_max_size): a netif packet's
// length is 16 bits.
inline constexpr unsigned kMaxGsoSize = 62000;

class TapDevice {
public:
    // Creates tap `name` (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, non-blocking) inside netns `netns`
    // (empty: ours),
    // sets its MAC and MTU when given and brings it up. The namespace is entered by a
    // short-lived helper thread, so this process stays where it is. Throws std::system_error
    // on failure.
    static TapDevice open(const std::string& name, const std::string& netns, std::optional<ring::MacAddr> mac,
                          std::optional<unsigned> mtu = std::nullopt);

    int fd() const noexcept { return fd_.get(); }
    const std::string& name() const noexcept { return name_; }

private:
    TapDevice(platform::Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
    platform::Fd fd_;
    std::string name_;
};

struct TapCounters {
    std::uint64_t from_tap = 0;    // frames read from the tap and queued on the TX ring
    std::uint64_t to_tap = 0;      // RX frames written to the tap
    std::uint64_t dropped_tx = 0;  // tap frames the ring refused (too big, no sg)
    std::uint64_t dropped_rx = 0;  // RX frames with errors, or the tap refused them
    std::uint64_t csum_filled = 0; // RX frames with csum_blank completed in software
};

// Moves frames between a tap and the queues of a NetfrontIo (TX: one queue per flow). One
// syscall per frame on the tap side is the price of a tap; the ring side still batches its kicks.
class TapBridge {
public:
    TapBridge(NetfrontIo& io, TapDevice& tap);

    // Reads the tap until it is empty or the ring is full; returns frames queued. A frame the
    // ring could not take now is kept and retried first next time.
    std::size_t tap_to_ring();
    // Writes every received frame to the tap and reposts the buffers; returns frames written.
    // A frame whose checksum the sender left blank gets it filled first, as the guest kernel
    // would (the vnet header's NEEDS_CSUM would need a pseudo-header seed in the field).
    std::size_t ring_to_tap();
    // Whether a frame waits for ring room (then poll the event channel, not the tap).
    bool tx_blocked() const noexcept { return held_ != 0; }
    // Forgets a frame held for the old rings (after a reconnect).
    void reset() noexcept { held_ = 0; }

    const TapCounters& counters() const noexcept { return counters_; }

private:
    unsigned pick_queue(std::span<const std::byte> frame) const noexcept;
    // Tells the kernel which offloads (blank checksums, TSO) it may use on this tap, from the
    // features the backend negotiated; none until the rings are attached.
    void sync_offloads();

    NetfrontIo& io_;
    TapDevice& tap_;
    std::vector<std::byte> buf_;
    std::vector<std::byte> rx_buf_;
    std::size_t held_ = 0;
    int offloads_ = -1; // TUN_F_* last set; -1: never
    TapCounters counters_;
};

} // namespace netbackd::xensim
