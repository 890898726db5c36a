#include "backend/dataplane/l2_switch.hpp"

#include <algorithm>
#include <bit>
#include <utility>

namespace netbackd::dataplane {

L2Switch::L2Switch(std::size_t max_ports, std::size_t table_capacity)
    : ports_(max_ports),
      uplink_port_(max_ports, kNoPort),
      table_(std::bit_ceil(table_capacity < 16 ? std::size_t{16} : table_capacity)),
      mask_(table_.size() - 1),
      limit_(table_.size() / 4 * 3) {}

std::size_t L2Switch::slot_of(std::uint64_t key) const {
    // Fibonacci hashing spreads sequential MACs (vendor OUI + counter) across the table.
    return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> 20) & mask_;
}

L2Switch::Entry* L2Switch::find(std::uint64_t key) {
    return const_cast<Entry*>(std::as_const(*this).find(key));
}

const L2Switch::Entry* L2Switch::find(std::uint64_t key) const {
    // Key 0 marks empty slots: a frame to 00:00:00:00:00:00 in VLAN 0 must not "find" one.
    if (key == 0) return nullptr;
    for (std::size_t s = slot_of(key);; s = (s + 1) & mask_) {
        const Entry& e = table_[s];
        if (e.key == key) return &e;
        if (e.key == 0) return nullptr;
    }
}

bool L2Switch::insert(std::uint64_t key, SwitchPortId port, bool learned, std::uint64_t now) {
    if (Entry* e = find(key)) {
        e->port = port;
        e->learned = learned;
        e->seen = now;
        return true;
    }
    if (used_ >= limit_) return false;
    std::size_t s = slot_of(key);
    while (table_[s].key != 0) s = (s + 1) & mask_;
    table_[s] = Entry{key, now, port, learned};
    ++used_;
    return true;
}

// Backward-shift deletion keeps linear probing tombstone-free, so lookups stay short forever.
void L2Switch::erase_at(std::size_t hole) {
    table_[hole] = Entry{};
    --used_;
    for (std::size_t s = (hole + 1) & mask_; table_[s].key != 0; s = (s + 1) & mask_) {
        const std::size_t home = slot_of(table_[s].key);
        const bool movable = ((s - home) & mask_) >= ((s - hole) & mask_);
        if (movable) {
            table_[hole] = table_[s];
            table_[s] = Entry{};
            hole = s;
        }
    }
}

SwitchPortId L2Switch::add_port(const SwitchPort& port) {
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        if (ports_[i].kind != PortKind::unused) continue;
        const auto id = static_cast<SwitchPortId>(i);
        if (port.uplink >= uplink_port_.size()) return kNoPort;
        if (port.kind == PortKind::uplink && uplink_port_[port.uplink] != kNoPort) return kNoPort;
        if (port.kind == PortKind::vif && !port.allowed_src.is_zero()) {
            // Two vifs claiming one MAC in one VLAN would steal each other's traffic. A MAC only
            // learned from the wire yields: the vif is configured, and every worker's table
            // (each learns from its own share of the wire) must accept it alike.
            if (const Entry* e = find(make_key(port.vlan, port.allowed_src)); e != nullptr && !e->learned)
                return kNoPort;
            if (!insert(make_key(port.vlan, port.allowed_src), id, false, 0)) return kNoPort;
        }
        ports_[i] = port;
        if (port.kind == PortKind::uplink) uplink_port_[port.uplink] = id;
        ports_end_ = std::max(ports_end_, i + 1);
        return id;
    }
    return kNoPort;
}

void L2Switch::remove_port(SwitchPortId id) {
    if (id >= ports_.size()) return;
    if (ports_[id].kind == PortKind::uplink) uplink_port_[ports_[id].uplink] = kNoPort;
    ports_[id] = SwitchPort{};
    while (ports_end_ > 0 && ports_[ports_end_ - 1].kind == PortKind::unused) --ports_end_;
    for (std::size_t s = 0; s < table_.size();) {
        if (table_[s].key != 0 && table_[s].port == id) {
            erase_at(s); // a shifted entry may now sit at s: look at it again
        } else {
            ++s;
        }
    }
}

void L2Switch::learn(std::uint16_t vlan, MacAddr src, SwitchPortId port, std::uint64_t now) {
    if (src.is_group() || src.is_zero()) return;
    const std::uint64_t key = make_key(vlan, src);
    if (Entry* e = find(key)) {
        // A configured vif MAC seen on the wire must not pull the vif's traffic to the uplink.
        if (!e->learned) return;
        e->port = port;
        e->seen = now;
        return;
    }
    if (!insert(key, port, true, now)) ++learn_full_;
}

std::uint16_t L2Switch::flood(SwitchPortId ingress, std::uint16_t uplink, std::uint16_t vlan, MacAddr dst,
                              std::span<SwitchPortId> out) const {
    // Broadcast always floods; multicast skips vifs that filter and did not subscribe (as Linux
    // netback drops PACKET_MULTICAST, not PACKET_BROADCAST, in xenvif_start_xmit).
    const bool multicast = !dst.is_broadcast();
    std::uint16_t n = 0;
    for (std::size_t i = 0; i < ports_end_ && n < out.size(); ++i) {
        const SwitchPort& p = ports_[i];
        if (i == ingress || p.kind == PortKind::unused || p.uplink != uplink) continue;
        // An uplink trunks every VLAN; a vif hears only its own.
        if (p.kind == PortKind::vif && p.vlan != vlan) continue;
        if (multicast && p.mcast != nullptr && !p.mcast->accepts(dst)) continue;
        out[n++] = static_cast<SwitchPortId>(i);
    }
    return n;
}

Decision L2Switch::forward(SwitchPortId ingress, MacAddr dst, MacAddr src, std::uint16_t vlan,
                           std::uint64_t now, std::span<SwitchPortId> flood_out) {
    if (ingress >= ports_.size() || ports_[ingress].kind == PortKind::unused) {
        return {Verdict::drop_local};
    }
    const SwitchPort& in = ports_[ingress];
    if (in.kind == PortKind::vif) {
        if (src != in.allowed_src) return {Verdict::drop_spoofed};
        vlan = in.vlan;
    } else {
        learn(vlan, src, ingress, now);
    }

    if (dst.is_group()) {
        return {Verdict::flood, kNoPort, flood(ingress, in.uplink, vlan, dst, flood_out)};
    }
    if (const Entry* e = find(make_key(vlan, dst)); e != nullptr) {
        const SwitchPort& out = ports_[e->port];
        if (e->port == ingress || out.uplink != in.uplink) return {Verdict::drop_local};
        return {Verdict::unicast, e->port};
    }
    // Unknown unicast from a guest goes up to the wire; from the wire it belongs to nobody here.
    if (in.kind == PortKind::vif && uplink_port_[in.uplink] != kNoPort) {
        return {Verdict::unicast, uplink_port_[in.uplink]};
    }
    return {Verdict::drop_local};
}

SwitchPortId L2Switch::lookup(std::uint16_t vlan, MacAddr mac) const {
    const Entry* e = find(make_key(vlan, mac));
    return e == nullptr ? kNoPort : e->port;
}

std::size_t L2Switch::age(std::uint64_t now, std::uint64_t max_age) {
    std::size_t removed = 0;
    for (std::size_t s = 0; s < table_.size();) {
        const Entry& e = table_[s];
        if (e.key != 0 && e.learned && now - e.seen > max_age) {
            erase_at(s);
            ++removed;
        } else {
            ++s;
        }
    }
    return removed;
}

} // namespace netbackd::dataplane
