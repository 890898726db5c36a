#include "backend/platform/sim/sim_grants.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "backend/platform/gntst.hpp"
#include "backend/platform/sim/grant_checks.hpp"
#include "backend/platform/sim/hypercall_cost.hpp"

namespace netbackd::xensim {

using platform::CopySegment;
using platform::PlatformError;

namespace {

class SimMapping final : public platform::GrantMapping {
public:
    SimMapping(std::shared_ptr<HvClient> client, DomId granter, std::uint32_t ref, bool writable,
               platform::Mmap page)
        : client_(std::move(client)),
          granter_(granter),
          ref_(ref),
          writable_(writable),
          page_(std::move(page)) {}
    ~SimMapping() override {
        page_.reset();
        client_->unmap_grant(granter_, ref_, writable_);
    }
    std::span<std::byte> page() override { return page_.bytes(); }

private:
    std::shared_ptr<HvClient> client_;
    DomId granter_;
    std::uint32_t ref_;
    bool writable_;
    platform::Mmap page_;
};

// One side's pinned grant, kept across consecutive segments naming the same grant, as Xen's
// gnttab_copy keeps its source and destination buffers: a packet copied in several pieces into
// one page pins that page once.
class Held {
public:
    Held() = default;
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { release(); }

    void release() noexcept {
        if (pinned_) unpin_grant(*granter_->state, ref_, readonly_);
        pinned_ = false;
    }

    // The granted page for (domain, ref), pinning it unless already held; nullptr with *status
    // set when refused.
    std::byte* page(HvClient& client, const std::shared_ptr<DomainView>& domain, std::uint32_t ref,
                    bool readonly, std::int16_t* status) {
        if (pinned_ && granter_ == domain && ref_ == ref && readonly_ == readonly) return page_;
        release();
        Pin pin = pin_grant(*domain->state, ref, client.domid(), readonly, false);
        if (pin.status != GNTST_okay) {
            *status = pin.status;
            return nullptr;
        }
        // The view is kept to the end of the batch: one refcount change per domain, not per grant.
        if (granter_ != domain) granter_ = domain;
        pinned_ = true;
        ref_ = ref;
        readonly_ = readonly;
        page_ = domain->page(pin.frame);
        return page_;
    }

private:
    std::shared_ptr<DomainView> granter_;
    bool pinned_ = false;
    std::uint32_t ref_ = 0;
    bool readonly_ = true;
    std::byte* page_ = nullptr;
};

struct CopyState {
    std::shared_ptr<DomainView> src_domain;
    std::shared_ptr<DomainView> dst_domain;
    Held src;
    Held dst;
};

// GNTST_okay, or why the domain is unusable; refreshes a cached view that died.
std::int16_t lookup(HvClient& client, std::shared_ptr<DomainView>& cache, DomId domid) {
    if (cache == nullptr || cache->domid != domid || !cache->alive()) {
        cache = client.domain(domid);
        if (cache == nullptr || !cache->alive()) return GNTST_bad_domain;
    }
    return GNTST_okay;
}

std::int16_t copy_one(HvClient& client, CopyState& st, CopySegment& seg) {
    bool src_gref = (seg.flags & GNTCOPY_source_gref) != 0;
    bool dst_gref = (seg.flags & GNTCOPY_dest_gref) != 0;
    // gntdev refuses segments naming no grant at all; there is nothing foreign to check.
    if (!src_gref && !dst_gref) return GNTST_bad_copy_arg;

    // Xen's order: both domains, then source grant, then destination grant, then bounds.
    std::int16_t rc = GNTST_okay;
    if (src_gref && (rc = lookup(client, st.src_domain, seg.source.foreign.domid)) != GNTST_okay) return rc;
    if (dst_gref && (rc = lookup(client, st.dst_domain, seg.dest.foreign.domid)) != GNTST_okay) return rc;

    const std::byte* from = static_cast<const std::byte*>(seg.source.virt);
    if (src_gref) {
        const std::byte* page = st.src.page(client, st.src_domain, seg.source.foreign.ref, true, &rc);
        if (page == nullptr) return rc;
        from = page + seg.source.foreign.offset;
    }
    std::byte* to = static_cast<std::byte*>(seg.dest.virt);
    if (dst_gref) {
        std::byte* page = st.dst.page(client, st.dst_domain, seg.dest.foreign.ref, false, &rc);
        if (page == nullptr) return rc;
        to = page + seg.dest.foreign.offset;
    }
    if ((src_gref && seg.source.foreign.offset + std::size_t{seg.len} > platform::kPageSize) ||
        (dst_gref && seg.dest.foreign.offset + std::size_t{seg.len} > platform::kPageSize))
        return GNTST_bad_copy_arg;
    std::memcpy(to, from, seg.len);
    return GNTST_okay;
}

} // namespace

std::unique_ptr<platform::GrantMapping> SimGrants::map(DomId domid, platform::GrantRef ref, bool writable) {
    // Slow path by design: the hypervisor records the pin so a dying process releases it.
    std::uint32_t frame = client_->map_grant(domid, ref, writable);
    try {
        auto granter = client_->domain(domid);
        if (granter == nullptr)
            throw PlatformError(fmt::format("domain {} vanished while mapping", domid), ESRCH);
        // A page of its own, with the protection the grant allows: a read-only grant really is.
        auto page = platform::Mmap::shared(granter->memory_fd, platform::kPageSize,
                                           std::size_t{frame} * platform::kPageSize, writable);
        return std::make_unique<SimMapping>(client_, domid, ref, writable, std::move(page));
    } catch (...) {
        client_->unmap_grant(domid, ref, writable);
        throw;
    }
}

void SimGrants::copy(std::span<CopySegment> segments) {
    CopyState st;
    for (CopySegment& seg : segments) {
        try {
            seg.status = copy_one(*client_, st, seg);
        } catch (const PlatformError&) {
            // Only a dead hypervisor connection gets here; report it per segment as promised.
            seg.status = GNTST_general_error;
        }
        if (seg.status != GNTST_okay) {
            // As Xen: a failed segment drops what it held, so a bad grant never stays pinned.
            st.src.release();
            st.dst.release();
        }
    }
    // The copy itself is real work above; what Xen adds (the hypercall, per-segment lookups
    // and p2m walks) is charged here when the host models it.
    spin_for(grant_copy_cost(client_->costs(), segments.size()));
}

} // namespace netbackd::xensim
