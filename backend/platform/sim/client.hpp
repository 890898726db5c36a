// A process's connection to the simulated hypervisor, and its cache of other domains' memory
// and state. Each domain's memfds are fetched and mapped once; after that, grant and event
// operations on that domain are plain memory accesses.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/platform/fd.hpp"
#include "backend/platform/platform.hpp"
#include "backend/platform/sim/protocol.hpp"
#include "backend/platform/sim/shared_state.hpp"

namespace netbackd::xensim {

using platform::DomId;

// Another domain (or our own) as this process sees it.
struct DomainView {
    DomId domid;
    std::uint64_t bytes;
    platform::Fd memory_fd;
    platform::Mmap memory;
    platform::Mmap state_map;
    DomainState* state;

    bool alive() const noexcept { return state->alive.load(std::memory_order_acquire) != 0; }
    std::byte* page(std::uint32_t frame) const noexcept {
        return memory.data() + std::size_t{frame} * platform::kPageSize;
    }
};

struct DomainInfo {
    DomId domid;
    std::string name;
    std::uint64_t bytes;
};

class HvClient {
public:
    // A process running in `domid`: gets an owner token for event channels.
    static std::shared_ptr<HvClient> connect(const std::string& dir, DomId domid);
    // A toolstack connection (domain management only).
    static std::shared_ptr<HvClient> connect_admin(const std::string& dir);

    DomId domid() const noexcept { return domid_; }
    std::uint32_t token() const noexcept { return token_; }
    int eventfd() const noexcept { return eventfd_.get(); }
    // What the host charges for simulated hypercalls (zero on an admin connection).
    const wire::CostModel& costs() const noexcept { return costs_; }
    // The eventfd has one reader: the first SimEvents on this connection claims it.
    bool claim_events() noexcept { return !events_claimed_.exchange(true); }

    // nullptr when the domain does not exist; a cached view of a destroyed domain is refreshed.
    // Fetching a view drops every cached view of a destroyed domain, so a long-lived backend
    // does not keep dead guests' memory mapped (their users still hold their shared_ptr).
    std::shared_ptr<DomainView> domain(DomId domid);
    // The eventfd of the process holding `token`, or -1 if it is gone. Each successful call
    // takes a reference that release_eventfd() gives back; the last one closes the fd.
    int eventfd_of(std::uint32_t token);
    void release_eventfd(std::uint32_t token) noexcept;

    // max_event_channels: as xl.cfg's, the highest port the domain may bind (0: libxl's default).
    void create_domain(DomId domid, const std::string& name, std::uint64_t bytes,
                       std::uint32_t max_event_channels = 0);
    void destroy_domain(DomId domid);
    std::vector<DomainInfo> list_domains();

    platform::EvtchnPort alloc_unbound(DomId remote);
    platform::EvtchnPort bind_interdomain(DomId remote, platform::EvtchnPort remote_port);
    void unbind(platform::EvtchnPort port);

    // Pins a grant for mapping on the hypervisor's books (released if this process dies):
    // returns the granted frame, or throws PlatformError whose code is the GNTST_* status.
    std::uint32_t map_grant(DomId granter, platform::GrantRef ref, bool writable);
    // Best effort: a vanished hypervisor has already let go of everything.
    void unmap_grant(DomId granter, platform::GrantRef ref, bool writable) noexcept;

private:
    struct Answer {
        wire::Reply reply;
        std::string text;
        std::vector<platform::Fd> fds;
    };
    HvClient(platform::Fd sock, std::string dir) : sock_(std::move(sock)), dir_(std::move(dir)) {}
    Answer call(const wire::Request& req, std::span<const int> fds = {});
    // Throws PlatformError with the server's message when it refused.
    Answer call_checked(const wire::Request& req, std::string_view what, std::span<const int> fds = {});

    std::mutex call_mutex_;
    platform::Fd sock_;
    std::string dir_;
    DomId domid_ = 0;
    std::uint32_t token_ = 0;
    platform::Fd eventfd_;
    wire::CostModel costs_;
    std::atomic<bool> events_claimed_{false};

    std::mutex cache_mutex_;
    std::unordered_map<DomId, std::shared_ptr<DomainView>> domains_;
    struct SharedEventfd {
        platform::Fd fd;
        std::uint32_t users = 0;
    };
    std::unordered_map<std::uint32_t, SharedEventfd> eventfds_;
};

} // namespace netbackd::xensim
