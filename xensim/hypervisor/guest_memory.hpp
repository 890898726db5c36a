// The guest side of grant tables on the simulated hypervisor: a process running "in" a domain
// allocates pages of that domain's memory and grants them to other domains, as a frontend
// (netfront) does. Allocation state is shared by all processes of the domain.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "backend/platform/platform.hpp"
#include "backend/platform/sim/client.hpp"

namespace netbackd::xensim {

using Gfn = std::uint32_t;

class GuestMemory {
public:
    explicit GuestMemory(std::shared_ptr<HvClient> client);

    DomId domid() const noexcept { return client_->domid(); }

    // A zeroed page of the domain's memory; throws PlatformError when memory is exhausted.
    Gfn alloc_page();
    void free_page(Gfn gfn);
    std::span<std::byte> page(Gfn gfn) const;

    // Publishes grant entry: `grantee` may map/copy page `gfn` (read-only if asked).
    platform::GrantRef grant_access(Gfn gfn, DomId grantee, bool readonly);
    // Revokes a grant, as gnttab_end_foreign_access_ref(): false while the grantee still has
    // it mapped or is copying (GTF_reading/GTF_writing), and the grant then stays in place.
    bool end_access(platform::GrantRef ref);
    // Whether the grantee currently holds the grant (mapped or mid-copy).
    bool in_use(platform::GrantRef ref) const;

private:
    std::shared_ptr<HvClient> client_;
    std::shared_ptr<DomainView> self_;
};

} // namespace netbackd::xensim
