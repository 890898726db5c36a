#include "backend/control/ctrl_channel.hpp"

#include <fmt/format.h>

#include "backend/control/guest_page_copy.hpp"

namespace netbackd::control {

namespace {

ring::Page page_of(platform::GrantMapping& m) { return ring::Page(m.page().first<ring::kPageSize>()); }

std::string_view to_string(ring::ProdError e) {
    switch (e) {
    case ring::ProdError::overflow: return "req_prod_overflow";
    case ring::ProdError::regressed: return "req_prod_regressed";
    case ring::ProdError::none: break;
    }
    return "none";
}

} // namespace

CtrlChannel::CtrlChannel(std::unique_ptr<platform::GrantMapping> page, BoundPort port,
                         platform::Grants& grants, platform::Events& events, platform::DomId frontend,
                         unsigned queues, std::unique_ptr<StagingTable> staging)
    : page_(std::move(page)),
      port_(std::move(port)),
      grants_(grants),
      events_(events),
      frontend_(frontend),
      // Where the last backend left off (restart with reconnect), as for the data rings.
      ring_(page_of(*page_), ring::BackRing<ring::CtrlRing>::attach_index(page_of(*page_))),
      server_(ring_, queues),
      staging_(std::move(staging)) {}

bool CtrlChannel::read_grant(grant_ref_t gref, std::span<std::byte> out) {
    return copy_from_guest(grants_, frontend_, gref, out);
}

CtrlChannel::Served CtrlChannel::serve(const Publish& publish, std::uint32_t budget) {
    Served s;
    auto read = [this](grant_ref_t gref, std::span<std::byte> out) { return read_grant(gref, out); };
    auto gref = [this](const xen_netif_ctrl_request& req) {
        return staging_ ? staging_->handle(req) : ring::NoGrefMapping{}(req);
    };
    const ring::CtrlResult r = server_.serve(cfg_, budget, read, gref);
    if (r.fatal != ring::ProdError::none) {
        s.fatal = fmt::format("ctrl ring: {}", to_string(r.fatal));
        return s;
    }
    s.answered = r.served;
    s.changed = r.changed;
    answered_ += r.served;
    if (r.changed) publish(cfg_);
    if (r.served != 0 && ring_.push_and_check_notify()) events_.notify(port_.port());
    // Nothing left: re-arm req_event so the guest's next request notifies us.
    const ring::Avail left = ring_.final_check();
    s.more = r.more || left.count != 0 || left.error != ring::ProdError::none;
    return s;
}

} // namespace netbackd::control
