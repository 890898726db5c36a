// Staging grants (netif.h "Static Grants", ADD/DEL_GREF_MAPPING) as the data plane sees them: per
// queue, the guest pages the control thread mapped for good, by grant reference.
//
// Shared state between the control thread and the vif's owner worker. The control thread owns the
// mappings (control::StagingTable) and builds a new StagedPages after each change; a published
// StagedPages is immutable. It reaches the worker only through a set_staging message, applied
// between bursts (a quiescent point, like the hash config); the worker alone reads and replaces
// its pointer (VifRuntime::staging), so the fast path looks pages up without atomics or locks.
// A page leaves the guest's mapping only after the worker has acknowledged a StagedPages without
// it (DataPlaneSink::set_staging returned true): the worker never touches an unmapped page.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/platform/platform.hpp"

namespace netbackd::control {

struct StagedPage {
    platform::GrantRef ref = 0;
    std::byte* page = nullptr; // kPageSize bytes, mapped from the frontend
    bool writable = false;     // mapped writable: usable for RX too; read-only: TX only
};

class StagedPages {
public:
    explicit StagedPages(std::vector<std::vector<StagedPage>> queues) : queues_(std::move(queues)) {
        for (auto& q : queues_)
            std::sort(q.begin(), q.end(),
                      [](const StagedPage& a, const StagedPage& b) { return a.ref < b.ref; });
    }

    // The page mapped for ref on queue q, or nullptr: one binary search, no allocation.
    const StagedPage* find(std::size_t q, platform::GrantRef ref) const noexcept {
        if (q >= queues_.size()) return nullptr;
        const auto& v = queues_[q];
        const auto it = std::lower_bound(v.begin(), v.end(), ref,
                                         [](const StagedPage& p, platform::GrantRef r) { return p.ref < r; });
        return it != v.end() && it->ref == ref ? &*it : nullptr;
    }
    std::size_t pages() const noexcept {
        std::size_t n = 0;
        for (const auto& q : queues_) n += q.size();
        return n;
    }
    std::size_t queues() const noexcept { return queues_.size(); }

private:
    std::vector<std::vector<StagedPage>> queues_;
};

} // namespace netbackd::control
