#include "backend/platform/sim/grant_checks.hpp"

namespace netbackd::xensim {

namespace {

// Xen retries a moving entry a few times, then blames the guest.
constexpr int kCmpxchgRetries = 5;

std::int16_t set_status(GrantEntry& e, bool pinned, std::uint16_t caller, bool readonly,
                        bool mapping) noexcept {
    std::uint16_t mask = GTF_type_mask | (mapping ? GTF_sub_page : 0);
    std::uint32_t seen = e.combo.load(std::memory_order_acquire);
    for (int attempt = 0;; ++attempt) {
        std::uint16_t flags = GrantEntry::flags_of(seen);
        if (!pinned && ((flags & mask) != GTF_permit_access || GrantEntry::domid_of(seen) != caller))
            return GNTST_general_error;
        std::uint16_t next = flags | GTF_reading;
        if (!readonly) {
            if (flags & GTF_readonly) return GNTST_general_error;
            next |= GTF_writing;
        }
        if (e.combo.compare_exchange_strong(seen, GrantEntry::pack(next, GrantEntry::domid_of(seen)),
                                            std::memory_order_acq_rel))
            return GNTST_okay;
        if (attempt + 1 == kCmpxchgRetries) return GNTST_general_error;
    }
}

void clear_flags(GrantEntry& e, const ActiveGrant& a) noexcept {
    std::uint32_t clear = 0;
    if (a.write_pins == 0) clear |= GTF_writing;
    if (a.write_pins == 0 && a.read_pins == 0) clear |= GTF_reading;
    if (clear != 0) e.combo.fetch_and(~clear, std::memory_order_release);
}

} // namespace

Pin pin_grant(DomainState& st, std::uint32_t ref, std::uint16_t caller, bool readonly,
              bool mapping) noexcept {
    if (ref >= kNrGrants) return {GNTST_bad_gntref, 0};
    GrantEntry& e = st.grants[ref];
    ActiveGrant& a = st.active[ref];
    ActiveLock lock(a);

    bool pinned = a.read_pins + a.write_pins != 0;
    // An existing pin belongs to one grantee; a refcount near overflow is refused, as in Xen.
    if (pinned && (a.domid != caller || a.read_pins == 0xffff || a.write_pins == 0xffff))
        return {GNTST_general_error, 0};

    bool need_status = !pinned || (!readonly && a.write_pins == 0);
    if (need_status) {
        if (std::int16_t rc = set_status(e, pinned, caller, readonly, mapping); rc != GNTST_okay)
            return {rc, 0};
    }
    if (!pinned) {
        a.domid = caller;
        a.frame = e.frame.load(std::memory_order_acquire);
        if (a.frame >= st.nr_pages) {
            clear_flags(e, a);
            return {GNTST_bad_page, 0};
        }
    }
    if (readonly)
        ++a.read_pins;
    else
        ++a.write_pins;
    return {GNTST_okay, a.frame};
}

void unpin_grant(DomainState& st, std::uint32_t ref, bool readonly) noexcept {
    if (ref >= kNrGrants) return;
    ActiveGrant& a = st.active[ref];
    ActiveLock lock(a);
    if (readonly) {
        if (a.read_pins != 0) --a.read_pins;
    } else {
        if (a.write_pins != 0) --a.write_pins;
    }
    clear_flags(st.grants[ref], a);
}

} // namespace netbackd::xensim
