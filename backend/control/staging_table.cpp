#include "backend/control/staging_table.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include <spdlog/spdlog.h>

#include "backend/control/guest_page_copy.hpp"

namespace netbackd::control {

StagingTable::StagingTable(platform::Grants& grants, platform::DomId frontend, unsigned queues,
                           std::uint32_t per_queue, Publish publish)
    : grants_(grants),
      frontend_(frontend),
      per_queue_(per_queue),
      publish_(std::move(publish)),
      queues_(queues) {}

StagingTable::~StagingTable() {
    if (pages() == 0) return;
    // Nothing is refused here (no `removed`): the worker drops every page unconditionally.
    bool let_go = false;
    try {
        let_go = publish_(nullptr, 0, {});
    } catch (...) {}
    if (!let_go) {
        // The worker did not answer: unmapping could pull pages from under it. Leave them mapped
        // (the process's exit unmaps them) rather than risk that.
        spdlog::error("domain {}: staging grants: the data plane did not let go of {} page(s); left mapped",
                      frontend_, pages());
        // Held forever from a global, never destroyed (nor reported as a leak).
        static auto* abandoned = new std::vector<std::unique_ptr<platform::GrantMapping>>();
        for (auto& q : queues_)
            for (auto& [ref, m] : q) abandoned->push_back(std::move(m.mapping));
    }
}

std::size_t StagingTable::pages() const noexcept {
    std::size_t n = 0;
    for (const auto& q : queues_) n += q.size();
    return n;
}

xen_netif_ctrl_response StagingTable::handle(const xen_netif_ctrl_request& req) noexcept {
    xen_netif_ctrl_response rsp{req.id, req.type, XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED, 0};
    if (per_queue_ == 0) return rsp;
    const std::uint32_t q = req.data[0];
    if (q >= queues_.size()) {
        rsp.status = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        return rsp;
    }
    try {
        switch (req.type) {
        case XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE:
            rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
            rsp.data = per_queue_;
            break;
        case XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: rsp.status = add(q, req.data[1], req.data[2]); break;
        case XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING:
            rsp.status = del(q, req.data[1], req.data[2], rsp.data);
            break;
        default: break;
        }
    } catch (...) {
        // Allocation failure: the request fails, nothing the guest can see half done.
        rsp.status = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    }
    if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS) rsp.data = 0;
    return rsp;
}

bool StagingTable::read_list(grant_ref_t list, std::span<xen_netif_gref> out) {
    return out.empty() || copy_from_guest(grants_, frontend_, list, std::as_writable_bytes(out));
}

void StagingTable::write_list(grant_ref_t list, std::span<const xen_netif_gref> entries) {
    // A list granted read-only gets no statuses; the response's status still says it all.
    if (!entries.empty()) copy_to_guest(grants_, frontend_, list, std::as_bytes(entries));
}

std::shared_ptr<const StagedPages> StagingTable::snapshot(const std::vector<Queue>& tables) const {
    std::vector<std::vector<StagedPage>> out(tables.size());
    for (std::size_t q = 0; q < tables.size(); ++q)
        for (const auto& [ref, m] : tables[q])
            out[q].push_back(StagedPage{ref, m.mapping->page().data(), m.writable});
    return std::make_shared<const StagedPages>(std::move(out));
}

std::uint32_t StagingTable::add(std::uint32_t q, grant_ref_t list, std::uint32_t count) {
    if (count == 0) return XEN_NETIF_CTRL_STATUS_SUCCESS;
    if (count > kListMax) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    std::vector<xen_netif_gref> entries(count);
    if (!read_list(list, entries)) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    Queue& table = queues_[q];
    // The table's room first: an overflowing list maps nothing at all.
    if (table.size() + count > per_queue_) {
        for (auto& e : entries) e.status = XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
        write_list(list, entries);
        return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    }
    Queue added;
    bool all = true;
    for (auto& e : entries) {
        // Copied out once; `e` is ours from here on.
        const platform::GrantRef ref = e.ref;
        const bool writable = (e.flags & XEN_NETIF_CTRLF_GREF_readonly) == 0;
        e.status = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        if ((e.flags & ~XEN_NETIF_CTRLF_GREF_readonly) != 0 || table.contains(ref) || added.contains(ref)) {
            all = false;
            continue;
        }
        try {
            added.emplace(ref, Mapped{grants_.map(frontend_, ref, writable), writable});
            e.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        } catch (const platform::PlatformError&) {
            all = false; // not granted, granted to another domain, or read-only asked writable
        }
    }
    if (!all) {
        for (auto& e : entries)
            if (e.status == XEN_NETIF_CTRL_STATUS_SUCCESS) e.status = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        write_list(list, entries);
        return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER; // `added` unmaps everything on the way out
    }
    table.merge(added);
    // Kept whatever the data plane answers: it may still apply this set late, so its pages must
    // stay mapped until a later set without them is acknowledged.
    publish_(snapshot(queues_), q, {});
    write_list(list, entries);
    return XEN_NETIF_CTRL_STATUS_SUCCESS;
}

std::uint32_t StagingTable::del(std::uint32_t q, grant_ref_t list, std::uint32_t count, std::uint32_t& data) {
    if (count == 0) return XEN_NETIF_CTRL_STATUS_SUCCESS;
    if (count > kListMax) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    std::vector<xen_netif_gref> entries(count);
    if (!read_list(list, entries)) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    Queue& table = queues_[q];
    std::vector<platform::GrantRef> removed;
    for (auto& e : entries) {
        const platform::GrantRef ref = e.ref;
        const bool known =
            table.contains(ref) && std::find(removed.begin(), removed.end(), ref) == removed.end();
        e.status = known ? XEN_NETIF_CTRL_STATUS_SUCCESS : XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        if (known) removed.push_back(ref);
    }
    if (!removed.empty()) {
        const auto gone = [&](std::size_t i, platform::GrantRef ref) {
            return i == q && std::find(removed.begin(), removed.end(), ref) != removed.end();
        };
        std::vector<std::vector<StagedPage>> keep(queues_.size());
        for (std::size_t i = 0; i < queues_.size(); ++i)
            for (const auto& [ref, m] : queues_[i])
                if (!gone(i, ref)) keep[i].push_back(StagedPage{ref, m.mapping->page().data(), m.writable});
        if (!publish_(std::make_shared<const StagedPages>(std::move(keep)), q, removed)) {
            // In flight (or the worker did not answer): nothing unmapped, the guest may retry.
            for (auto& e : entries) e.status = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            write_list(list, entries);
            return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        }
        for (const platform::GrantRef ref : removed) table.erase(ref); // unmaps
    }
    write_list(list, entries);
    data = static_cast<std::uint32_t>(removed.size());
    return XEN_NETIF_CTRL_STATUS_SUCCESS;
}

} // namespace netbackd::control
