// platform::Grants over libxengnttab (/dev/xen/gntdev).
#pragma once

#include <memory>
#include <vector>

extern "C" {
#include <xengnttab.h>
}

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

class XenGrants final : public Grants {
public:
    // Throws PlatformError naming the missing device when not on Xen.
    XenGrants();
    ~XenGrants() override;
    XenGrants(const XenGrants&) = delete;
    XenGrants& operator=(const XenGrants&) = delete;

    std::unique_ptr<GrantMapping> map(DomId domid, GrantRef ref, bool writable) override;
    void copy(std::span<CopySegment> segments) override;

private:
    xengnttab_handle* handle_;
    // Reused between batches so the fast path does not allocate.
    std::vector<CopySegment> good_;
    std::vector<std::size_t> good_index_;
};

} // namespace netbackd::platform
