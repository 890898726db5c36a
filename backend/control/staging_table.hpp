// A vif's staging grants (netif.h "Static Grants"), on the control thread: the answers to
// GET_GREF_MAPPING_SIZE, ADD_GREF_MAPPING and DEL_GREF_MAPPING, and the mappings they make.
//
// Per queue, at most `per_queue` pages (config staging_pages_per_vif / queues). ADD reads the
// guest's list (xen_netif_gref entries at offset 0 of the granted page) with one grant copy, maps
// every entry (read-only when the entry says XEN_NETIF_CTRLF_GREF_readonly: TX only; writable
// otherwise: TX and RX), and keeps them all or none: one bad, foreign, ungranted or duplicate gref,
// or a list past the table's room, maps nothing. Each entry's status is written back to the list
// (netif.h says ADD's are not used; they tell the guest which entry failed). DEL unmaps the entries
// that were added, once the data plane has let go of them (DataPlaneSink::set_staging), and
// refuses the whole request while one of them is in flight. Every mapping is RAII: destroying the
// table (disconnect, control ring fault, domain death) first publishes "no pages" to the data
// plane, then unmaps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "backend/control/staged_pages.hpp"
#include "backend/platform/platform.hpp"
#include "ring/sring.hpp"

namespace netbackd::control {

class StagingTable {
public:
    // Entries one list page holds.
    static constexpr std::uint32_t kListMax = platform::kPageSize / sizeof(xen_netif_gref);

    // Publishes a new set to the data plane; false when it refused (see DataPlaneSink::set_staging).
    using Publish = std::function<bool(std::shared_ptr<const StagedPages>, unsigned queue,
                                       std::span<const platform::GrantRef> removed)>;

    // per_queue 0: staging grants not offered (every message answered NOT_SUPPORTED).
    StagingTable(platform::Grants& grants, platform::DomId frontend, unsigned queues, std::uint32_t per_queue,
                 Publish publish);
    StagingTable(const StagingTable&) = delete;
    StagingTable& operator=(const StagingTable&) = delete;
    ~StagingTable();

    // One gref-mapping request; never throws.
    xen_netif_ctrl_response handle(const xen_netif_ctrl_request& req) noexcept;

    std::size_t pages() const noexcept;
    std::uint32_t per_queue() const noexcept { return per_queue_; }

private:
    struct Mapped {
        std::unique_ptr<platform::GrantMapping> mapping;
        bool writable = false;
    };
    using Queue = std::map<platform::GrantRef, Mapped>;

    std::uint32_t add(std::uint32_t queue, grant_ref_t list, std::uint32_t count);
    std::uint32_t del(std::uint32_t queue, grant_ref_t list, std::uint32_t count, std::uint32_t& data);
    bool read_list(grant_ref_t list, std::span<xen_netif_gref> out);
    void write_list(grant_ref_t list, std::span<const xen_netif_gref> entries);
    std::shared_ptr<const StagedPages> snapshot(const std::vector<Queue>& tables) const;

    platform::Grants& grants_;
    platform::DomId frontend_;
    std::uint32_t per_queue_;
    Publish publish_;
    std::vector<Queue> queues_;
};

} // namespace netbackd::control
