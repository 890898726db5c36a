// Grant pinning as Xen's grant_table.c does it (acquire_grant_for_copy / map_grant_ref with
// _set_status_v1, and their release): same order of checks, same GNTST_* codes.
#pragma once

#include <cstdint>

#include "backend/platform/sim/shared_state.hpp"

namespace netbackd::xensim {

struct Pin {
    std::int16_t status; // GNTST_okay or a GNTST_* error
    std::uint32_t frame; // valid when status == GNTST_okay
};

// Pins `ref` of the granting domain `st` for `caller`; on success the entry carries
// GTF_reading (and GTF_writing unless readonly) until the matching unpin().
// `mapping` adds Xen's map-only checks (no sub-page grants).
Pin pin_grant(DomainState& st, std::uint32_t ref, std::uint16_t caller, bool readonly, bool mapping) noexcept;
void unpin_grant(DomainState& st, std::uint32_t ref, bool readonly) noexcept;

} // namespace netbackd::xensim
