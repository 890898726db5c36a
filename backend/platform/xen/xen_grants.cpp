#include "backend/platform/xen/xen_grants.hpp"

#include <cerrno>
#include <cstring>
#include <sys/mman.h>

#include <fmt/format.h>

#include "backend/platform/xen/device_check.hpp"

namespace netbackd::platform {

namespace {

class XenMapping final : public GrantMapping {
public:
    XenMapping(xengnttab_handle* handle, void* addr) : handle_(handle), addr_(addr) {}
    ~XenMapping() override { xengnttab_unmap(handle_, addr_, 1); }
    XenMapping(const XenMapping&) = delete;
    XenMapping& operator=(const XenMapping&) = delete;
    std::span<std::byte> page() override { return {static_cast<std::byte*>(addr_), kPageSize}; }

private:
    xengnttab_handle* handle_;
    void* addr_;
};

// gntdev rejects a whole batch for one segment that crosses its page; vet them first so one
// bad request cannot fail its neighbours.
bool segment_valid(const CopySegment& seg) {
    bool src_gref = (seg.flags & GNTCOPY_source_gref) != 0;
    bool dst_gref = (seg.flags & GNTCOPY_dest_gref) != 0;
    if (!src_gref && !dst_gref) return false;
    if (src_gref && seg.source.foreign.offset + std::size_t{seg.len} > kPageSize) return false;
    if (dst_gref && seg.dest.foreign.offset + std::size_t{seg.len} > kPageSize) return false;
    return true;
}

} // namespace

XenGrants::XenGrants() {
    require_xen_device("/dev/xen/gntdev");
    handle_ = xengnttab_open(nullptr, 0);
    if (handle_ == nullptr)
        throw PlatformError(fmt::format("xengnttab_open: {}", std::strerror(errno)), errno);
}

XenGrants::~XenGrants() { xengnttab_close(handle_); }

std::unique_ptr<GrantMapping> XenGrants::map(DomId domid, GrantRef ref, bool writable) {
    void* addr = xengnttab_map_grant_ref(handle_, domid, ref, writable ? PROT_READ | PROT_WRITE : PROT_READ);
    if (addr == nullptr)
        throw PlatformError(fmt::format("grant map of d{} ref {}: {}", domid, ref, std::strerror(errno)),
                            errno);
    return std::make_unique<XenMapping>(handle_, addr);
}

void XenGrants::copy(std::span<CopySegment> segments) {
    good_.clear();
    good_index_.clear();
    for (std::size_t i = 0; i < segments.size(); ++i) {
        if (segment_valid(segments[i])) {
            good_.push_back(segments[i]);
            good_index_.push_back(i);
        } else {
            segments[i].status = GNTST_bad_copy_arg;
        }
    }
    if (good_.empty()) return;
    bool all_good = good_.size() == segments.size();
    CopySegment* batch = all_good ? segments.data() : good_.data();
    if (xengnttab_grant_copy(handle_, static_cast<std::uint32_t>(good_.size()), batch) != 0) {
        // The ioctl itself failed (e.g. EFAULT): no segment can be trusted to have completed.
        for (std::size_t i : good_index_) segments[i].status = GNTST_general_error;
        return;
    }
    if (!all_good)
        for (std::size_t k = 0; k < good_.size(); ++k) segments[good_index_[k]].status = good_[k].status;
}

} // namespace netbackd::platform
