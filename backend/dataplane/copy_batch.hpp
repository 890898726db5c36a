// One batched grant copy, shared by the TX and RX paths (Linux netback's copy ops and their one
// GNTTABOP_copy; xenvif_rx_copy_add / xenvif_rx_copy_flush on RX). A path adds a segment per
// piece of a guest page and a local buffer, notes where each packet's segments start, flushes
// the whole burst in one platform call, then reads each packet's verdict from its segments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "backend/dataplane/counters.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::dataplane {

class CopyBatch {
public:
    explicit CopyBatch(std::size_t capacity) : segs_(capacity) {}

    std::size_t capacity() const noexcept { return segs_.size(); }
    std::size_t size() const noexcept { return n_; }
    void clear() noexcept { n_ = 0; }

    // Guest page -> local buffer (TX). The caller keeps within capacity().
    void add_from_guest(platform::DomId dom, platform::GrantRef ref, std::uint32_t offset, void* dest,
                        std::uint32_t len) noexcept {
        platform::CopySegment& cs = segs_[n_++];
        cs.source.foreign.ref = ref;
        cs.source.foreign.offset = static_cast<std::uint16_t>(offset);
        cs.source.foreign.domid = dom;
        cs.dest.virt = dest;
        cs.len = static_cast<std::uint16_t>(len);
        cs.flags = GNTCOPY_source_gref;
        cs.status = GNTST_general_error;
    }

    // Local buffer -> guest page (RX).
    void add_to_guest(void* src, platform::DomId dom, platform::GrantRef ref, std::uint32_t offset,
                      std::uint32_t len) noexcept {
        platform::CopySegment& cs = segs_[n_++];
        cs.source.virt = src;
        cs.dest.foreign.ref = ref;
        cs.dest.foreign.offset = static_cast<std::uint16_t>(offset);
        cs.dest.foreign.domid = dom;
        cs.len = static_cast<std::uint16_t>(len);
        cs.flags = GNTCOPY_dest_gref;
        cs.status = GNTST_general_error;
    }

    // The one grant-copy call for everything added, counted against the vif it served.
    void flush(platform::Grants& grants, VifCounters& c) noexcept {
        const std::span<platform::CopySegment> segs(segs_.data(), n_);
        try {
            grants.copy(segs);
        } catch (...) {
            // The seam promises per-segment statuses; should a platform throw anyway, every
            // segment of the batch counts as failed and the packets are answered with errors.
            for (auto& s : segs) s.status = GNTST_general_error;
        }
        c.copy_batches.add();
        c.copy_segments.add(n_);
    }

    // Whether every segment in [first, last) completed.
    bool ok(std::size_t first, std::size_t last) const noexcept {
        bool good = true;
        for (std::size_t s = first; s < last; ++s) good &= segs_[s].status == GNTST_okay;
        return good;
    }

private:
    std::vector<platform::CopySegment> segs_;
    std::size_t n_ = 0;
};

} // namespace netbackd::dataplane
