#include "backend/control/doctor_scale.hpp"

#include <cerrno>
#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "backend/control/doctor_util.hpp"

namespace netbackd::control {
namespace {

using namespace doctor_util;

constexpr std::string_view kQuotaName = "xenstore quota for the guests";
constexpr std::string_view kEvtchnName = "event channels for the guests";

std::string needs(unsigned guests) {
    return fmt::format("{} guest(s) need nodes >= {} and watches >= {} for this domain "
                       "({} + {} nodes and {} + 1 watch per vif)",
                       guests, xenstore_nodes_needed(guests), xenstore_watches_needed(guests),
                       kXenstoreNodesBase, kXenstoreNodesPerVif, kXenstoreWatchesBase);
}

std::string quota_fix(unsigned guests) {
    return fmt::format("raise C xenstored's quotas in dom0: xenstore-control quota set nodes {} and "
                       "xenstore-control quota set watches {} (now), and XENSTORED_ARGS=\"-E {} -W {}\" "
                       "in /etc/default/xencommons (at boot; oxenstored: quota-maxentity and "
                       "quota-maxwatch in /etc/xen/oxenstored.conf)",
                       xenstore_nodes_needed(guests), xenstore_watches_needed(guests),
                       xenstore_nodes_needed(guests), xenstore_watches_needed(guests));
}

} // namespace

XenstoreQuota parse_xenstore_quota(std::string_view text) {
    XenstoreQuota q;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        // "nodes            :     1000 Nodes per domain"
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        std::string_view rest = line.substr(colon + 1);
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        unsigned v = 0;
        const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
        if (ec != std::errc{} || end == rest.data()) continue;
        if (name == "nodes") q.nodes = v;
        if (name == "watches") q.watches = v;
        if (name == "transactions") q.transactions = v;
    }
    return q;
}

Check xenstore_quota_check(platform::Store& ask, platform::DomId self, std::optional<unsigned> guests) {
    const std::string name(kQuotaName);
    std::string text;
    try {
        text = ask.control("quota");
    } catch (const platform::PlatformError& e) {
        const std::string why =
            e.code() == EACCES
                ? fmt::format("xenstored's quota is not readable from domain {}: xenstored answers "
                              "XS_CONTROL to dom0 only (EACCES)",
                              self)
                : fmt::format("xenstored's quota is not readable: it does not answer `xenstore-control "
                              "quota` ({}; oxenstored and C xenstored before 4.17 have no such command)",
                              e.what());
        return skip(name, why + (guests ? "; check in dom0 that " + needs(*guests)
                                        : fmt::format("; in dom0, `xenstore-control quota` must show nodes "
                                                      ">= {} + {} per guest and watches >= {} + 1 per guest",
                                                      kXenstoreNodesBase, kXenstoreNodesPerVif,
                                                      kXenstoreWatchesBase)));
    }
    const XenstoreQuota q = parse_xenstore_quota(text);
    if (!q.nodes || !q.watches)
        return skip(name, "xenstored answered `quota` without nodes and watches lines: " + text);
    // How many guests each quota allows: the smaller strikes first. dom0 has no node quota.
    const unsigned by_nodes =
        self == 0
            ? ~0u
            : (*q.nodes > kXenstoreNodesBase ? (*q.nodes - kXenstoreNodesBase) / kXenstoreNodesPerVif : 0);
    const unsigned by_watches = *q.watches > kXenstoreWatchesBase ? *q.watches - kXenstoreWatchesBase : 0;
    const bool nodes_first = by_nodes <= by_watches;
    const std::string limits = fmt::format(
        "quota nodes {}{}, watches {}, transactions {}: room for {} guest(s), the {} quota strikes first",
        *q.nodes, self == 0 ? " (dom0 is exempt)" : "", *q.watches,
        q.transactions ? std::to_string(*q.transactions) : "?", std::min(by_nodes, by_watches),
        nodes_first ? "nodes" : "watches");
    if (!guests) return ok(name, limits + " (pass --guests N to check a number of guests)");
    if (std::min(by_nodes, by_watches) >= *guests)
        return ok(name, fmt::format("{}; {} expected", limits, *guests));
    return fail(name, limits + "; " + needs(*guests), quota_fix(*guests));
}

Check event_channel_check(platform::Events& events, platform::DomId self, std::optional<unsigned> guests,
                          unsigned connected) {
    const std::string name(kEvtchnName);
    if (!guests)
        return skip(name, "no number of guests: pass --guests N (each takes 2 event channels per queue "
                          "in this domain)");
    const unsigned to_come = *guests > connected ? *guests - connected : 0;
    const unsigned want = event_channels_needed(to_come);
    // A driver domain cannot read its own max_event_channels (`xl list -l` is dom0's), so
    // count what the hypervisor still gives: take ports until covered or refused, free them.
    std::vector<platform::EvtchnPort> taken;
    taken.reserve(want);
    std::string refusal;
    while (taken.size() < want) {
        try {
            taken.push_back(events.alloc_unbound(self));
        } catch (const std::exception& e) {
            refusal = e.what();
            break;
        }
    }
    for (const auto port : taken) {
        try {
            events.unbind(port);
        } catch (...) {
            // Closed with the handle anyway when doctor exits.
        }
    }
    const std::string counted =
        fmt::format("{} guest(s) expected, {} connected: {} more need {} free event channel(s) (2 each, "
                    "one queue, split channels)",
                    *guests, connected, to_come, want);
    if (refusal.empty()) return ok(name, fmt::format("{}; probed {} free", counted, taken.size()));
    return fail(name, fmt::format("{}; only {} free ({})", counted, taken.size(), refusal),
                fmt::format("raise the driver domain's event channels: max_event_channels = {} in its xl "
                            "config (libxl's default is 1023; 2 per vif queue and a margin), then recreate "
                            "the domain",
                            event_channels_needed(*guests) + 64));
}

} // namespace netbackd::control
