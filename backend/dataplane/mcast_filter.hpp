// A vif's multicast filter (netif.h "feature-multicast-control"): the group addresses its guest
// subscribed to with XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL extras on its TX ring, and whether the
// guest asked for filtering ("request-multicast-control"). While filtering is on, the switch
// floods a multicast frame (not a broadcast) to this vif only if it subscribed to the address.
//
// Threads (this is shared state):
//   - add()/del()/clear(): only the worker that owns the vif (the extras arrive on its TX ring);
//   - set_enabled(): the control thread (the frontend's key, sampled at connect and on watch);
//   - accepts(): any worker whose switch floods to this vif (vifs of other workers included),
//     concurrently with the owner's add()/del().
// Every slot is one atomic 64-bit word (the MAC's 48 bits and a used bit; 0 = free), written with one store
// and never moved, so a reader on another worker sees each address either subscribed or not, never torn, and
// never misses an address that is not being changed (Linux keeps an RCU list for the same reason). Capacity
// is fixed, as Linux's XEN_NETBK_MCAST_MAX: nothing allocates.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backend/dataplane/mac.hpp"

namespace netbackd::dataplane {

class McastFilter {
public:
    // Linux netback's XEN_NETBK_MCAST_MAX: the ADD past it is answered NETIF_RSP_ERROR.
    static constexpr std::size_t kCapacity = 64;

    // ---- owner worker
    // As xenvif_mcast_add: no duplicate check (each ADD takes a slot, each DEL frees one).
    // false: the filter is full, nothing changed.
    bool add(MacAddr mac) noexcept {
        if (count_ == kCapacity) return false;
        std::size_t i = 0;
        while (slots_[i].load(std::memory_order_relaxed) != 0) ++i;
        slots_[i].store(word(mac), std::memory_order_release);
        if (i >= end_.load(std::memory_order_relaxed))
            end_.store(static_cast<std::uint32_t>(i + 1), std::memory_order_release);
        ++count_;
        return true;
    }
    // As xenvif_mcast_del: frees one matching slot, if any; a DEL of nothing is no error.
    void del(MacAddr mac) noexcept {
        const std::size_t end = end_.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < end; ++i) {
            if (slots_[i].load(std::memory_order_relaxed) != word(mac)) continue;
            slots_[i].store(0, std::memory_order_release);
            --count_;
            // Readers scan up to end_: trailing free slots need not be scanned. A reader holding
            // the old end only reads zeros there.
            std::size_t e = end;
            while (e > 0 && slots_[e - 1].load(std::memory_order_relaxed) == 0) --e;
            end_.store(static_cast<std::uint32_t>(e), std::memory_order_release);
            return;
        }
    }
    void clear() noexcept {
        for (auto& s : slots_) s.store(0, std::memory_order_release);
        end_.store(0, std::memory_order_release);
        count_ = 0;
    }
    std::size_t size() const noexcept { return count_; }

    // ---- control thread
    void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }

    // ---- any thread
    bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
    bool contains(MacAddr mac) const noexcept {
        const std::size_t end = end_.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < end; ++i)
            if (slots_[i].load(std::memory_order_acquire) == word(mac)) return true;
        return false;
    }
    // Whether a frame to group address `dst` (multicast, not broadcast: the caller checks) may
    // be flooded to this vif. Counts the refusals (from any worker: the one locked add here,
    // paid only for a frame the vif does not get).
    bool accepts(MacAddr dst) const noexcept {
        if (!enabled() || contains(dst)) return true;
        filtered_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    // Frames accepts() refused.
    std::uint64_t filtered() const noexcept { return filtered_.load(std::memory_order_relaxed); }
    // Subscriptions, as another thread may see them (stats).
    std::size_t subscribed() const noexcept {
        std::size_t n = 0;
        for (const auto& s : slots_) n += s.load(std::memory_order_relaxed) != 0 ? 1 : 0;
        return n;
    }

private:
    // Any address may be subscribed (Linux checks none), 00:00:00:00:00:00 included.
    static constexpr std::uint64_t kUsed = std::uint64_t{1} << 63;
    static constexpr std::uint64_t word(MacAddr mac) noexcept { return mac.bits | kUsed; }

    std::array<std::atomic<std::uint64_t>, kCapacity> slots_{};
    std::atomic<std::uint32_t> end_{0}; // one past the highest slot in use
    std::size_t count_ = 0;             // owner only
    std::atomic<bool> enabled_{false};
    mutable std::atomic<std::uint64_t> filtered_{0};
};

} // namespace netbackd::dataplane
