// `netbackd doctor`'s checks of what a host of many guests needs from Xen beyond netbackd:
// xenstored's quota for the driver domain (nodes and watches per vif) and the driver domain's
// event channels (xl.cfg max_event_channels). What each vif costs is in backend/control/README.md
// ("Sizing a host").
#pragma once

#include <optional>
#include <string_view>

#include "backend/control/doctor.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::control {

// xenstore nodes a driver domain owns per vif (the toolstack's backend dir, netbackd's keys),
// counted on the simulated host with libxl's layout (tests/e2e/scale_test.cpp reports it).
inline constexpr unsigned kXenstoreNodesPerVif = 24;
// Nodes the driver domain owns with no vif (its home's subdirectories and a margin for the
// domain's own tools).
inline constexpr unsigned kXenstoreNodesBase = 64;
// Watches netbackd holds: one per vif (the frontend's state) plus the backend dir and
// @releaseDomain; doctor's own connection and a margin for other tools in the domain.
inline constexpr unsigned kXenstoreWatchesBase = 2 + 8;

inline unsigned xenstore_nodes_needed(unsigned guests) {
    return kXenstoreNodesBase + kXenstoreNodesPerVif * guests;
}
inline unsigned xenstore_watches_needed(unsigned guests) { return kXenstoreWatchesBase + guests; }
// Event channels: two per vif queue with split channels (feature-split-event-channels), as
// netbackd offers; counted for one queue per guest.
inline unsigned event_channels_needed(unsigned guests) { return 2 * guests; }

// The parsed answer of `xenstore-control quota` (C xenstored's "Quota settings:" lines).
struct XenstoreQuota {
    std::optional<unsigned> nodes, watches, transactions;
};
XenstoreQuota parse_xenstore_quota(std::string_view text);

// xenstored's quota against `guests` vifs served by domain `self`, read with XS_CONTROL quota
// on `ask` (a connection of dom0's on the simulated host, else this domain's own: C xenstored
// answers dom0 only, so a driver domain is told it cannot be read and what dom0's
// `xenstore-control quota` must show). `guests` empty: the needs per guest only.
Check xenstore_quota_check(platform::Store& ask, platform::DomId self, std::optional<unsigned> guests);

// Probes the domain's free event channels: allocates unbound ports (to itself) until the
// `guests` still to come are covered or the hypervisor refuses, then frees them all.
// `connected`: vifs already holding their channels.
Check event_channel_check(platform::Events& events, platform::DomId self, std::optional<unsigned> guests,
                          unsigned connected);

} // namespace netbackd::control
