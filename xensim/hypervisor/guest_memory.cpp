#include "xensim/hypervisor/guest_memory.hpp"

#include <bit>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace netbackd::xensim {

using platform::PlatformError;

namespace {

// Claims the lowest clear bit among the first `limit` bits at or above `first`; -1 if none.
std::int64_t claim_bit(std::span<std::atomic<std::uint64_t>> words, std::size_t first, std::size_t limit) {
    for (std::size_t w = first / 64; w * 64 < limit; ++w) {
        std::uint64_t seen = words[w].load(std::memory_order_relaxed);
        for (;;) {
            std::uint64_t free = ~seen;
            if (w == first / 64) free &= ~std::uint64_t{0} << (first % 64);
            std::size_t top = limit - w * 64;
            if (top < 64) free &= (std::uint64_t{1} << top) - 1;
            if (free == 0) break;
            std::uint64_t bit = free & -free;
            if (words[w].compare_exchange_weak(seen, seen | bit, std::memory_order_acq_rel))
                return static_cast<std::int64_t>(w * 64 + static_cast<std::size_t>(std::countr_zero(bit)));
        }
    }
    return -1;
}

void release_bit(std::span<std::atomic<std::uint64_t>> words, std::size_t index) {
    words[index / 64].fetch_and(~(std::uint64_t{1} << (index % 64)), std::memory_order_acq_rel);
}

} // namespace

GuestMemory::GuestMemory(std::shared_ptr<HvClient> client) : client_(std::move(client)) {
    self_ = client_->domain(client_->domid());
    if (self_ == nullptr)
        throw PlatformError(fmt::format("domain {} does not exist", client_->domid()), ESRCH);
}

Gfn GuestMemory::alloc_page() {
    std::int64_t gfn = claim_bit(self_->state->page_bitmap, 0, self_->state->nr_pages);
    if (gfn < 0) throw PlatformError(fmt::format("domain {} is out of memory", domid()), ENOMEM);
    std::memset(self_->page(static_cast<Gfn>(gfn)), 0, platform::kPageSize);
    return static_cast<Gfn>(gfn);
}

void GuestMemory::free_page(Gfn gfn) {
    if (gfn < self_->state->nr_pages) release_bit(self_->state->page_bitmap, gfn);
}

std::span<std::byte> GuestMemory::page(Gfn gfn) const {
    if (gfn >= self_->state->nr_pages)
        throw PlatformError(fmt::format("gfn {} beyond domain {}'s memory", gfn, domid()), EINVAL);
    return {self_->page(gfn), platform::kPageSize};
}

platform::GrantRef GuestMemory::grant_access(Gfn gfn, DomId grantee, bool readonly) {
    std::int64_t ref = claim_bit(self_->state->grant_bitmap, kFirstFreeGrant, kNrGrants);
    if (ref < 0) throw PlatformError(fmt::format("domain {} is out of grant references", domid()), ENOSPC);
    GrantEntry& e = self_->state->grants[ref];
    e.frame.store(gfn, std::memory_order_relaxed);
    // The release store orders frame and domid before the flags a grantee checks first.
    auto flags = static_cast<std::uint16_t>(GTF_permit_access | (readonly ? GTF_readonly : 0));
    e.combo.store(GrantEntry::pack(flags, grantee), std::memory_order_release);
    return static_cast<platform::GrantRef>(ref);
}

bool GuestMemory::end_access(platform::GrantRef ref) {
    if (ref < kFirstFreeGrant || ref >= kNrGrants) return false;
    GrantEntry& e = self_->state->grants[ref];
    std::uint32_t seen = e.combo.load(std::memory_order_acquire);
    do {
        if (GrantEntry::flags_of(seen) & (GTF_reading | GTF_writing)) return false;
    } while (!e.combo.compare_exchange_weak(seen, 0, std::memory_order_acq_rel));
    release_bit(self_->state->grant_bitmap, ref);
    return true;
}

bool GuestMemory::in_use(platform::GrantRef ref) const {
    if (ref >= kNrGrants) return false;
    return (GrantEntry::flags_of(self_->state->grants[ref].combo.load()) & (GTF_reading | GTF_writing)) != 0;
}

} // namespace netbackd::xensim
