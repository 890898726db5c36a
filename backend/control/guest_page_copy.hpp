#pragma once
// One grant copy to or from the start of a page a guest granted, for the control ring's
// messages (a hash key, a gref list): off the fast path, one page at a time.

#include <cstddef>
#include <span>

#include "backend/platform/platform.hpp"

namespace netbackd::control {

// False when the grant copy failed (not granted, foreign, too short): nothing was read.
inline bool copy_from_guest(platform::Grants& grants, platform::DomId from, grant_ref_t gref,
                            std::span<std::byte> out) {
    platform::CopySegment cs{};
    cs.source.foreign.ref = gref;
    cs.source.foreign.offset = 0;
    cs.source.foreign.domid = from;
    cs.dest.virt = out.data();
    cs.len = static_cast<std::uint16_t>(out.size());
    cs.flags = GNTCOPY_source_gref;
    cs.status = GNTST_general_error;
    grants.copy(std::span(&cs, 1));
    return cs.status == GNTST_okay;
}

inline bool copy_to_guest(platform::Grants& grants, platform::DomId to, grant_ref_t gref,
                          std::span<const std::byte> in) {
    platform::CopySegment cs{};
    // The copy only reads its source; the segment's field is not const.
    cs.source.virt = const_cast<std::byte*>(in.data());
    cs.dest.foreign.ref = gref;
    cs.dest.foreign.offset = 0;
    cs.dest.foreign.domid = to;
    cs.len = static_cast<std::uint16_t>(in.size());
    cs.flags = GNTCOPY_dest_gref;
    cs.status = GNTST_general_error;
    grants.copy(std::span(&cs, 1));
    return cs.status == GNTST_okay;
}

} // namespace netbackd::control
