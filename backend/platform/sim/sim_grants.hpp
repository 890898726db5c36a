// platform::Grants on the simulated hypervisor: the backend side of grant tables.
#pragma once

#include <memory>

#include "backend/platform/platform.hpp"
#include "backend/platform/sim/client.hpp"

namespace netbackd::xensim {

class SimGrants final : public platform::Grants {
public:
    explicit SimGrants(std::shared_ptr<HvClient> client) : client_(std::move(client)) {}
    std::unique_ptr<platform::GrantMapping> map(DomId domid, platform::GrantRef ref, bool writable) override;
    void copy(std::span<platform::CopySegment> segments) override;

private:
    std::shared_ptr<HvClient> client_;
};

} // namespace netbackd::xensim
