// The L2 forwarding decision for one worker: configured vif MACs, learning on uplinks, aging,
// flooding within an uplink/VLAN domain, anti-spoofing on vif ingress.
//
// Each worker owns its own table (fed by control messages), so lookups take no lock and share no
// cache line with other cores; the one exception is a vif's multicast filter (SwitchPort::mcast),
// which its owner worker changes while other workers' switches read it. Nothing here allocates after
// construction.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/dataplane/mac.hpp"
#include "backend/dataplane/mcast_filter.hpp"

namespace netbackd::dataplane {

using SwitchPortId = std::uint16_t;
inline constexpr SwitchPortId kNoPort = 0xffff;

enum class PortKind : std::uint8_t { unused, vif, uplink };

struct SwitchPort {
    PortKind kind = PortKind::unused;
    // Which uplink this port belongs to (for an uplink: its own index). Flooding and unknown
    // unicast never leave this domain.
    std::uint16_t uplink = 0;
    // Access VLAN of a vif (0 = untagged). Frames from an uplink carry their VLAN in the call.
    std::uint16_t vlan = 0;
    // The only source MAC a vif may send from.
    MacAddr allowed_src{};
    // A vif's MTU (its `mtu` key): longer frames from other vifs are not forwarded to it, as a
    // bridge port drops them. 0: no limit (uplinks, whose MTU the port itself enforces).
    std::uint16_t mtu = 0;
    // A vif's multicast filter (its VifRuntime's; owned by the vif's worker, read here from any
    // worker, see mcast_filter.hpp). nullptr: every multicast frame is flooded to the port.
    const McastFilter* mcast = nullptr;
};

enum class Verdict : std::uint8_t {
    unicast,      // to `port`
    flood,        // to every port written into the caller's span
    drop_spoofed, // vif sent from a MAC it does not own
    drop_local,   // destination sits behind the ingress port itself, or nowhere
};

struct Decision {
    Verdict verdict;
    SwitchPortId port = kNoPort;
    std::uint16_t flood_count = 0;
};

class L2Switch {
public:
    // table_capacity is rounded up to a power of two; the table holds at most 3/4 of it.
    L2Switch(std::size_t max_ports, std::size_t table_capacity);

    // Control side (slow path, still allocation-free).
    SwitchPortId add_port(const SwitchPort& port); // kNoPort when full
    void remove_port(SwitchPortId id);             // also forgets every MAC behind it
    const SwitchPort& port(SwitchPortId id) const { return ports_[id]; }
    // Whether a frame of `frame_len` bytes (Ethernet header included; not a GSO frame, whose
    // segments are cut to size) fits the MTU of port `id`.
    bool fits_mtu(SwitchPortId id, std::uint32_t frame_len) const {
        const std::uint16_t mtu = ports_[id].mtu;
        return mtu == 0 || frame_len <= std::uint32_t{mtu} + kEthernetHeader;
    }
    static constexpr std::uint32_t kEthernetHeader = 14;

    // Fast path. `vlan` is the frame's VLAN for uplink ingress (ignored for vif ingress, which
    // uses the vif's access VLAN). `flood_out` must hold max_ports entries.
    Decision forward(SwitchPortId ingress, MacAddr dst, MacAddr src, std::uint16_t vlan, std::uint64_t now,
                     std::span<SwitchPortId> flood_out);

    // Forgets learned entries not seen since `now - max_age`. Configured vif MACs never age.
    std::size_t age(std::uint64_t now, std::uint64_t max_age);

    // Port behind (vlan, mac), or kNoPort.
    SwitchPortId lookup(std::uint16_t vlan, MacAddr mac) const;

    std::size_t entries() const { return used_; }
    std::size_t learned_dropped() const { return learn_full_; }

private:
    struct Entry {
        std::uint64_t key = 0; // vlan << 48 | mac; 0 = empty slot (vlan 0 + mac 0 is never valid)
        std::uint64_t seen = 0;
        SwitchPortId port = kNoPort;
        bool learned = false;
    };
    static std::uint64_t make_key(std::uint16_t vlan, MacAddr mac) {
        return (std::uint64_t{vlan} << 48) | mac.bits;
    }
    std::size_t slot_of(std::uint64_t key) const;
    Entry* find(std::uint64_t key);
    const Entry* find(std::uint64_t key) const;
    bool insert(std::uint64_t key, SwitchPortId port, bool learned, std::uint64_t now);
    void erase_at(std::size_t slot);
    void learn(std::uint16_t vlan, MacAddr src, SwitchPortId port, std::uint64_t now);
    std::uint16_t flood(SwitchPortId ingress, std::uint16_t uplink, std::uint16_t vlan, MacAddr dst,
                        std::span<SwitchPortId> out) const;

    std::vector<SwitchPort> ports_;
    // One past the highest port in use: flooding scans only that far, so a switch sized for
    // many vifs costs what is attached, not its capacity.
    std::size_t ports_end_ = 0;
    std::vector<SwitchPortId> uplink_port_; // uplink index -> its port id
    std::vector<Entry> table_;
    std::size_t mask_ = 0;
    std::size_t used_ = 0;
    std::size_t limit_ = 0;
    std::size_t learn_full_ = 0;
};

} // namespace netbackd::dataplane
