#include "sim_grants.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "backend/platform/gntst.hpp"
#include "grant_checks.hpp"

namespace netbackd::xensim {

using platform::CopySegment;
using platform::PlatformError;

namespace {

class SimMapping final : public platform::GrantMapping {
public:
    SimMapping(std::shared_ptr<HvClient> client, DomId granter, std::uint32_t ref, bool writable, platform::Mmap page)
        : client_(std::move(client)), granter_(granter), ref_(ref), writable_(writable), page_(std::move(page)) {}
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

// One side of a copy segment once its grant is pinned; releases the pin when it goes.
class Claim {
public:
    Claim() = default;
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() {
        if (granter_ != nullptr) unpin_grant(*granter_->state, ref_, readonly_);
    }

    // GNTST_okay, or why the grant side is refused.
    std::int16_t acquire(HvClient& client, std::shared_ptr<DomainView>& cache, const decltype(platform::CopySegment::source)& ptr,
                         bool is_gref, bool readonly) {
        if (!is_gref) {
            base_ = static_cast<std::byte*>(ptr.virt);
            return GNTST_okay;
        }
        if (cache == nullptr || cache->domid != ptr.foreign.domid || !cache->alive()) {
            cache = client.domain(ptr.foreign.domid);
            if (cache == nullptr || !cache->alive()) return GNTST_bad_domain;
        }
        Pin pin = pin_grant(*cache->state, ptr.foreign.ref, client.domid(), readonly, false);
        if (pin.status != GNTST_okay) return pin.status;
        granter_ = cache.get();
        ref_ = ptr.foreign.ref;
        readonly_ = readonly;
        base_ = granter_->page(pin.frame) + ptr.foreign.offset;
        return GNTST_okay;
    }
    std::byte* address() const noexcept { return base_; }

private:
    DomainView* granter_ = nullptr;
    std::uint32_t ref_ = 0;
    bool readonly_ = true;
    std::byte* base_ = nullptr;
};

std::int16_t copy_one(HvClient& client, std::shared_ptr<DomainView>& src_cache, std::shared_ptr<DomainView>& dst_cache,
                      CopySegment& seg) {
    bool src_gref = (seg.flags & GNTCOPY_source_gref) != 0;
    bool dst_gref = (seg.flags & GNTCOPY_dest_gref) != 0;
    // gntdev refuses segments naming no grant at all; there is nothing foreign to check.
    if (!src_gref && !dst_gref) return GNTST_bad_copy_arg;

    // Xen's order: both domains, then source grant, then destination grant, then bounds.
    if (src_gref && (src_cache == nullptr || src_cache->domid != seg.source.foreign.domid)) {
        src_cache = client.domain(seg.source.foreign.domid);
        if (src_cache == nullptr) return GNTST_bad_domain;
    }
    if (dst_gref && (dst_cache == nullptr || dst_cache->domid != seg.dest.foreign.domid)) {
        dst_cache = client.domain(seg.dest.foreign.domid);
        if (dst_cache == nullptr) return GNTST_bad_domain;
    }
    Claim src;
    if (std::int16_t rc = src.acquire(client, src_cache, seg.source, src_gref, true); rc != GNTST_okay) return rc;
    Claim dst;
    if (std::int16_t rc = dst.acquire(client, dst_cache, seg.dest, dst_gref, false); rc != GNTST_okay) return rc;
    if ((src_gref && seg.source.foreign.offset + std::size_t{seg.len} > platform::kPageSize) ||
        (dst_gref && seg.dest.foreign.offset + std::size_t{seg.len} > platform::kPageSize))
        return GNTST_bad_copy_arg;
    std::memcpy(dst.address(), src.address(), seg.len);
    return GNTST_okay;
}

} // namespace

std::unique_ptr<platform::GrantMapping> SimGrants::map(DomId domid, platform::GrantRef ref, bool writable) {
    // Slow path by design: the hypervisor records the pin so a dying process releases it.
    std::uint32_t frame = client_->map_grant(domid, ref, writable);
    try {
        auto granter = client_->domain(domid);
        if (granter == nullptr) throw PlatformError(fmt::format("domain {} vanished while mapping", domid), ESRCH);
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
    std::shared_ptr<DomainView> src_cache;
    std::shared_ptr<DomainView> dst_cache;
    for (CopySegment& seg : segments) {
        try {
            seg.status = copy_one(*client_, src_cache, dst_cache, seg);
        } catch (const PlatformError&) {
            // Only a dead hypervisor connection gets here; report it per segment as promised.
            seg.status = GNTST_general_error;
        }
    }
}

} // namespace netbackd::xensim
