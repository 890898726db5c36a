// A vif's control ring (netif.h "Control ring"), served on the control thread, off the fast path:
// the mapped page, its bound event channel, the ring::CtrlServer and the hash configuration the
// guest built. serve() answers a bounded number of requests per call, so a guest that floods its
// ring delays only its own answers; keys and mapping tables are read from the guest's grants
// with one grant copy each, through the control thread's Grants.
//
// What the data plane sees is a copy, published through serve()'s callback
// (DataPlaneSink::set_hash) before the answers that changed it reach the guest. The gref-mapping
// messages (staging grants) go to the channel's StagingTable, which publishes its own set.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backend/control/data_plane_sink.hpp"
#include "backend/control/staging_table.hpp"
#include "backend/platform/platform.hpp"
#include "ring/ctrl_ring.hpp"

namespace netbackd::control {

class CtrlChannel {
public:
    // Requests answered per serve() call, at most.
    static constexpr std::uint32_t kBudget = 64;

    // page: the mapped ctrl-ring-ref; port: event-channel-ctrl, bound. queues: the vif's queue
    // count, which every mapping entry must stay below.
    CtrlChannel(std::unique_ptr<platform::GrantMapping> page, BoundPort port, platform::Grants& grants,
                platform::Events& events, platform::DomId frontend, unsigned queues,
                std::unique_ptr<StagingTable> staging = nullptr);
    CtrlChannel(const CtrlChannel&) = delete;
    CtrlChannel& operator=(const CtrlChannel&) = delete;

    struct Served {
        std::uint32_t answered = 0;
        bool more = false;                // requests left for the next call
        bool changed = false;             // config() changed: publish it
        std::optional<std::string> fatal; // "ctrl ring: req_prod_overflow": the vif's error node
    };
    // publish: called with the new config before the answers that changed it are pushed, so a
    // guest that sees SUCCESS sees the data plane already using what it set.
    using Publish = std::function<void(const ring::HashConfig&)>;
    Served serve(const Publish& publish, std::uint32_t budget = kBudget);

    const ring::HashConfig& config() const noexcept { return cfg_; }
    platform::EvtchnPort port() const noexcept { return port_.port(); }
    std::uint64_t answered() const noexcept { return answered_; }
    // Pages mapped as staging grants, all queues.
    std::size_t staged_pages() const noexcept { return staging_ ? staging_->pages() : 0; }

private:
    bool read_grant(grant_ref_t gref, std::span<std::byte> out);

    std::unique_ptr<platform::GrantMapping> page_;
    BoundPort port_;
    platform::Grants& grants_;
    platform::Events& events_;
    platform::DomId frontend_;
    ring::BackRing<ring::CtrlRing> ring_;
    ring::CtrlServer server_;
    ring::HashConfig cfg_;
    std::uint64_t answered_ = 0;
    // Destroyed first (members go in reverse): it tells the data plane to let go, then unmaps.
    std::unique_ptr<StagingTable> staging_;
};

} // namespace netbackd::control
