#include "backend/control/vif_control.hpp"

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "backend/control/hook_script.hpp"

namespace netbackd::control {
namespace {

// Longest `error` node written: well inside xenstored's 4096-byte value limit.
constexpr std::size_t kMaxErrorText = 1024;

// A reason to give up on this vif, in xenbus_dev_fatal() terms.
struct VifFatal {
    Fatal fatal;
};

// The backend dir vanished while we were about to write into it.
struct BackendGone {};

// connect() found the vif's NIC still on the old domain of a guest moving here; nothing is
// mapped yet, tick() tries again.
struct Postponed {};

[[noreturn]] void fatal(int err, std::string message) { throw VifFatal{Fatal{err, std::move(message)}}; }
// The attach is refused: hotplug-status=error as well, as after a failing vif script.
[[noreturn]] void refuse(int err, std::string message) {
    throw VifFatal{Fatal{err, std::move(message), true}};
}

int errno_of(const platform::PlatformError& e) {
    // Grant failures carry negative GNTST_* codes; xenbus_dev_fatal prints them negated too.
    const int c = e.code();
    return c < 0 ? -c : (c == 0 ? EIO : c);
}

std::string flag_list(const DataPlaneFeatures& f, bool split, unsigned queues) {
    std::string s = "feature-rx-copy";
    if (f.sg) s += " feature-sg";
    if (f.gso_tcpv4) s += " feature-gso-tcpv4";
    if (f.gso_tcpv6) s += " feature-gso-tcpv6";
    if (f.ipv6_csum_offload) s += " feature-ipv6-csum-offload";
    if (split) s += " feature-split-event-channels";
    s +=
        " feature-ctrl-ring feature-multicast-control feature-dynamic-multicast-control feature-xdp-headroom";
    return s + fmt::format(" multi-queue-max-queues={}", queues);
}

} // namespace

VifControl::VifControl(ControlContext& ctx, VifId id)
    : ctx_(ctx), id_(id), be_(backend_path(ctx.self, id)), fe_(frontend_path(id)) {}

VifControl::~VifControl() { release(); }

std::string VifControl::frontend_token() const { return fmt::format("nb:fe:{}:{}", id_.frontend, id_.devid); }

void VifControl::release() {
    ctrl_.reset();
    if (facts_.connected) {
        ctx_.sink.detach(id_);
        facts_.connected = false;
    }
    unwatch_frontend();
}

void VifControl::watch_frontend() {
    if (fe_watched_) return;
    // One watch on the whole frontend dir rather than one per node (state, and
    // request-multicast-control for feature-dynamic-multicast-control): a driver domain is
    // not dom0, xenstored holds it to a watch quota (128 by default), and the sizing in the
    // README counts one watch per vif. frontend_event() picks out the nodes we act on.
    ctx_.store.watch(fe_, frontend_token());
    fe_watched_ = true;
}

void VifControl::frontend_event(std::string_view path) {
    if (path.size() < fe_.size() || path.substr(0, fe_.size()) != fe_) return;
    const auto rel = path.substr(fe_.size());
    if (rel.empty() || rel == "/state")
        frontend_changed();
    else if (rel == "/request-multicast-control")
        multicast_control_changed();
}

void VifControl::unwatch_frontend() {
    if (!fe_watched_) return;
    fe_watched_ = false;
    try {
        ctx_.store.unwatch(fe_, frontend_token());
    } catch (const platform::PlatformError& e) {
        spdlog::debug("{}: unwatch {}: {}", id_.name(), fe_, e.what());
    }
}

void VifControl::refresh() {
    refresh_online();
    refresh_frontend();
}

void VifControl::refresh_online() {
    const auto online = ctx_.store.read(0, be_ + "/online");
    facts_.online = true;
    if (online) {
        const auto v = parse_flag(*online);
        if (v)
            facts_.online = *v;
        else // keeping the dir is the safe reading of a mangled flag
            spdlog::warn("{}: {}/online = \"{}\": {}; treating as 1", id_.name(), be_, *online, v.error());
    }
}

// Only frontend_changed() and the first look may call this: it is how a change of F/state is
// told apart from a repeated watch event.
void VifControl::refresh_frontend() {
    std::optional<std::string> fs;
    try {
        fs = ctx_.store.read(0, fe_ + "/state");
    } catch (const platform::PlatformError& e) {
        // A vanished frontend dir can leave only unreadable parents behind.
        spdlog::debug("{}: reading {}/state: {}", id_.name(), fe_, e.what());
    }
    facts_.frontend.reset();
    facts_.frontend_out_of_range.reset();
    if (fs) {
        const auto v = parse_state(*fs);
        if (v) {
            facts_.frontend = *v;
        } else if (const auto n = parse_unsigned(*fs, UINT64_MAX)) {
            facts_.frontend_out_of_range = *n; // a number, but no xenbus state: the FSM fails the vif
        } else {
            spdlog::warn("{}: {}/state = \"{}\": {}; treating as Unknown", id_.name(), fe_, *fs, v.error());
        }
    }
}

void VifControl::appeared(bool fresh) {
    if (!fresh) {
        const auto bs = ctx_.store.read(0, be_ + "/state");
        const auto v = bs ? parse_state(*bs) : Parsed<XenbusState>::fail("missing");
        facts_.backend = v ? *v : XenbusState::unknown;
    }
    refresh();
    if (fresh)
        spdlog::info("{}: new backend dir {} (online {}, frontend state {})", id_.name(), be_,
                     facts_.online ? 1 : 0, facts_.frontend ? to_int(*facts_.frontend) : 0);
    else
        spdlog::info("{}: found existing backend dir {} (state {}, online {}, frontend state {})", id_.name(),
                     be_, to_int(facts_.backend), facts_.online ? 1 : 0,
                     facts_.frontend ? to_int(*facts_.frontend) : 0);
    try {
        watch_frontend();
    } catch (const platform::PlatformError& e) {
        run(VifEvent{EventKind::failed, Fatal{errno_of(e), "watching " + fe_ + "/state: " + e.what()}});
        return;
    }
    if (!fresh && facts_.backend != XenbusState::unknown && facts_.backend != XenbusState::initialising &&
        facts_.online) {
        try {
            probe();
            adopt_advertised();
        } catch (const VifFatal& f) {
            run(VifEvent{EventKind::failed, f.fatal});
            return;
        } catch (const platform::PlatformError& e) {
            run(VifEvent{EventKind::failed,
                         Fatal{errno_of(e), fmt::format("probing {}: {}", be_, e.what())}});
            return;
        }
    }
    run(VifEvent{fresh ? EventKind::backend_appeared : EventKind::adopted});
}

void VifControl::backend_changed() {
    if (forgotten_) return;
    if (removal_due_) {
        if (!ctx_.store.read(0, be_ + "/state")) { // someone else removed it first
            removal_due_.reset();
            forgotten_ = true;
        }
        return;
    }
    // The toolstack writes state in the same transaction that creates the dir, so a missing
    // state node means the dir is gone (or going).
    const auto state = ctx_.store.read(0, be_ + "/state");
    if (!state) {
        spdlog::info("{}: backend dir {} removed", id_.name(), be_);
        run(VifEvent{EventKind::backend_removed});
        return;
    }
    if (*state == "1" && facts_.backend != XenbusState::unknown &&
        facts_.backend != XenbusState::initialising) {
        // We never write 1: the toolstack replaced the dir (libxl removes and re-creates it in
        // one transaction). This vif is over; the watcher starts a fresh one.
        spdlog::info("{}: backend dir {} re-created by the toolstack", id_.name(), be_);
        run(VifEvent{EventKind::backend_removed});
        return;
    }
    // libxl's detach writes state 5 itself and then waits for 6: where the backend stands is
    // what the store says, even after we had reached Closed (a guest that closed first).
    if (const auto v = parse_state(*state); v && *v != facts_.backend) facts_.backend = *v;
    const bool was_online = facts_.online;
    refresh_online();
    if (was_online && !facts_.online) {
        spdlog::info("{}: toolstack detach ({}/online = 0)", id_.name(), be_);
        run(VifEvent{EventKind::toolstack_changed});
    }
}

bool VifControl::frontend_exists() {
    // The frontend dir, not the domain's home: a driver domain may read only the former.
    try {
        return ctx_.store.directory(0, fe_).has_value();
    } catch (const platform::PlatformError&) {
        return true; // unreadable is not gone
    }
}

std::optional<std::chrono::steady_clock::time_point> VifControl::deadline() const {
    if (removal_due_ && retry_due_) return std::min(*removal_due_, *retry_due_);
    return removal_due_ ? removal_due_ : retry_due_;
}

std::optional<std::chrono::steady_clock::time_point> VifControl::next_due(std::chrono::seconds after) const {
    auto due = deadline();
    if (!forgotten_ && !wait_reported_) {
        const auto report = waiting_since_ + after;
        if (!due || report < *due) due = report;
    }
    return due;
}

void VifControl::tick(std::chrono::steady_clock::time_point now) {
    if (retry_due_ && now >= *retry_due_) {
        retry_due_.reset();
        // Only a connect postponed in InitWait: a vif failed or detached since stays so.
        if (!forgotten_ && !removal_due_ && !facts_.connected && facts_.backend == XenbusState::init_wait)
            run(VifEvent{EventKind::frontend_changed});
    }
    if (!removal_due_ || now < *removal_due_) return;
    removal_due_.reset();
    try {
        remove_backend_dir();
    } catch (const platform::PlatformError& e) {
        spdlog::error("{}: removing {}: {}", id_.name(), be_, e.what());
    }
    unwatch_frontend();
    forgotten_ = true;
    spdlog::info("{}: released", id_.name());
}

void VifControl::frontend_changed() {
    if (forgotten_ || removal_due_) return;
    const auto before = facts_.frontend;
    const auto before_raw = facts_.frontend_out_of_range;
    refresh();
    if (!facts_.frontend && !facts_.frontend_out_of_range && !frontend_exists()) {
        // The toolstack removes a dead domain's home; @releaseDomain may have come first.
        domain_released();
        return;
    }
    if (facts_.frontend == before && facts_.frontend_out_of_range == before_raw) return;
    if (facts_.frontend_out_of_range)
        spdlog::info("{}: frontend state {} (not a xenbus state)", id_.name(), *facts_.frontend_out_of_range);
    else
        spdlog::info("{}: frontend state {} ({})", id_.name(), facts_.frontend ? to_int(*facts_.frontend) : 0,
                     facts_.frontend ? to_string(*facts_.frontend) : "missing");
    note_progress();
    run(VifEvent{EventKind::frontend_changed});
}

void VifControl::rate_changed() {
    if (forgotten_ || removal_due_) return;
    const auto text = ctx_.store.read(0, be_ + "/rate");
    std::optional<Rate> rate;
    if (text) {
        const auto v = parse_rate(*text);
        if (!v) {
            // A running vif keeps its last good limit rather than dying over a toolstack typo.
            spdlog::error("{}: {}/rate = \"{}\": {}; keeping the previous limit", id_.name(), be_, *text,
                          v.error());
            return;
        }
        rate = *v;
    }
    if (rate == toolstack_rate_) return;
    toolstack_rate_ = rate;
    if (client_ && client_->rate) {
        spdlog::info("{}: {}/rate changed; the client file {} sets the limit", id_.name(), be_,
                     client_->source);
        return;
    }
    spdlog::info("{}: {}/rate changed to {}", id_.name(), be_, text.value_or("unlimited"));
    if (facts_.connected) {
        policy_.rate = rate;
        ctx_.sink.update_policy(id_, policy_);
    }
}

void VifControl::fail(const Fatal& reason) {
    if (forgotten_ || removal_due_) return;
    run(VifEvent{EventKind::failed, reason});
}

void VifControl::domain_released() {
    if (forgotten_ || removal_due_) return;
    spdlog::info("{}: domain {} is gone", id_.name(), id_.frontend);
    run(VifEvent{EventKind::domain_released});
}

void VifControl::note_progress() {
    waiting_since_ = std::chrono::steady_clock::now();
    wait_reported_ = false;
}

void VifControl::report_wait(std::chrono::steady_clock::time_point now, std::chrono::seconds after) {
    if (forgotten_ || wait_reported_ || now - waiting_since_ < after) return;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - waiting_since_).count();
    const std::string fe_state =
        facts_.frontend ? fmt::format("{} ({})", to_int(*facts_.frontend), to_string(*facts_.frontend))
                        : "missing";
    switch (facts_.backend) {
    case XenbusState::init_wait:
        spdlog::warn("{}: waiting {} s for the frontend to connect: {}/state is {}, want 4 (Connected) "
                     "after it writes its ring refs and event channels",
                     id_.name(), secs, fe_, fe_state);
        break;
    case XenbusState::closing:
        spdlog::warn("{}: waiting {} s for the frontend to close: {}/state is {}, want 6 (Closed) or 1",
                     id_.name(), secs, fe_, fe_state);
        break;
    case XenbusState::closed:
        if (!facts_.online) break;
        spdlog::info(
            "{}: closed for {} s; waiting for the frontend to re-initialise ({}/state is {}, want 1) "
            "or the toolstack to detach ({}/online = 0)",
            id_.name(), secs, fe_, fe_state, be_);
        break;
    default: break;
    }
    wait_reported_ = true;
}

void VifControl::run(const VifEvent& ev) {
    const auto actions = next(facts_, ev);
    for (const auto& a : actions) {
        try {
            apply(a);
            const Action one[] = {a};
            facts_ = after(facts_, one);
        } catch (const Postponed&) {
            retry_due_ = std::chrono::steady_clock::now() + kMoveRetry;
            return;
        } catch (const BackendGone&) {
            if (ev.kind == EventKind::backend_removed) return;
            spdlog::info("{}: backend dir {} removed under us", id_.name(), be_);
            run(VifEvent{EventKind::backend_removed});
            return;
        } catch (const VifFatal& f) {
            if (ev.kind == EventKind::failed) {
                spdlog::error("{}: while reporting a failure: {} {}", id_.name(), f.fatal.err,
                              f.fatal.message);
                return;
            }
            run(VifEvent{EventKind::failed, f.fatal});
            return;
        } catch (const platform::PlatformError& e) {
            if (ev.kind == EventKind::failed) {
                spdlog::error("{}: while reporting a failure: {}", id_.name(), e.what());
                return;
            }
            run(VifEvent{EventKind::failed,
                         Fatal{errno_of(e), fmt::format("{}: {}", to_string(a), e.what())}});
            return;
        }
    }
}

void VifControl::apply(const Action& a) {
    switch (a.kind) {
    case ActionKind::advertise: probe_and_advertise(); return;
    case ActionKind::connect: connect(); return;
    case ActionKind::disconnect: disconnect(); return;
    case ActionKind::write_state:
    case ActionKind::write_raw_state:
        if (!write_backend_key("state", std::to_string(to_int(a.state)))) throw BackendGone{};
        spdlog::info("{}: backend state {} ({})", id_.name(), to_int(a.state), to_string(a.state));
        note_progress();
        return;
    case ActionKind::write_error: {
        std::string text = fmt::format("{} {}", a.error.err, a.error.message);
        spdlog::error("{}: {}", id_.name(), text);
        // Messages quote what the guest wrote: a 4000-byte value would make the node larger than
        // xenstored takes and no error would be recorded at all. Cut as xenbus_dev_fatal's
        // fixed buffer does.
        if (text.size() > kMaxErrorText) text.resize(kMaxErrorText);
        try {
            ctx_.store.write(0, error_path(ctx_.self, id_) + "/error", text);
        } catch (const platform::PlatformError& e) {
            spdlog::error("{}: cannot write {}/error: {}", id_.name(), error_path(ctx_.self, id_), e.what());
        }
        return;
    }
    case ActionKind::write_hotplug_error:
        // What a failing vif script writes; the toolstack reads it as a failed attach.
        if (!write_backend_key("hotplug-status", "error")) throw BackendGone{};
        spdlog::info("{}: hotplug-status error", id_.name());
        return;
    case ActionKind::clear_error: ctx_.store.rm(0, error_path(ctx_.self, id_)); return;
    case ActionKind::remove_backend_dir:
        // libxl reads state 6 from its own watch event before it starts waiting for the
        // removal; removing at once would make it read "removed" instead of 6 and fail the
        // detach. xl devd leaves the same gap while its hotplug script runs.
        if (!removal_due_) {
            removal_due_ = std::chrono::steady_clock::now() + kRemovalGrace;
            spdlog::info("{}: removing backend dir {} in {} ms", id_.name(), be_, kRemovalGrace.count());
        }
        return;
    case ActionKind::forget:
        unwatch_frontend();
        if (!removal_due_) {
            forgotten_ = true;
            spdlog::info("{}: released", id_.name());
        }
        return;
    }
}

// Writes B/<key> only while B/state exists, as xenbus_switch_state() does, so a late write
// never resurrects a backend dir the toolstack removed.
bool VifControl::write_backend_key(std::string_view key, std::string_view value) {
    bool present = false;
    ctx_.store.transaction([&](platform::TxId tx) {
        present = ctx_.store.read(tx, be_ + "/state").has_value();
        if (present) ctx_.store.write(tx, be_ + "/" + std::string(key), value);
    });
    return present;
}

void VifControl::probe() {
    auto read_required = [&](const std::string& key) {
        auto v = ctx_.store.read(0, be_ + "/" + key);
        if (!v) fatal(ENOENT, fmt::format("reading {}/{}", be_, key));
        return *v;
    };
    auto bad = [&](const std::string& key, const std::string& value, const std::string& why) {
        fatal(EINVAL, fmt::format("{}/{} = \"{}\": {}", be_, key, value, why));
    };

    const auto fe_id = read_required("frontend-id");
    const auto fe_dom = parse_domid(fe_id);
    if (!fe_dom) bad("frontend-id", fe_id, fe_dom.error());
    if (*fe_dom != id_.frontend)
        bad("frontend-id", fe_id, fmt::format("does not match the backend dir's domain {}", id_.frontend));
    const auto frontend = read_required("frontend");
    if (frontend != frontend_path(id_)) bad("frontend", frontend, "expected " + frontend_path(id_));
    if (const auto h = ctx_.store.read(0, be_ + "/handle")) {
        const auto v = parse_unsigned(*h, UINT32_MAX);
        if (!v || *v != id_.devid)
            bad("handle", *h, v ? fmt::format("does not match devid {}", id_.devid) : v.error());
    }
    const auto mac = read_required("mac");
    const auto m = parse_mac(mac);
    if (!m) bad("mac", mac, m.error());
    toolstack_mac_ = *m;
    toolstack_rate_.reset();
    if (const auto r = ctx_.store.read(0, be_ + "/rate")) {
        const auto v = parse_rate(*r);
        if (!v) bad("rate", *r, v.error());
        toolstack_rate_ = *v;
    }
    mtu_ = 1500;
    if (const auto mtu = ctx_.store.read(0, be_ + "/mtu")) {
        const auto v = parse_mtu(*mtu);
        if (!v) bad("mtu", *mtu, v.error());
        mtu_ = *v;
    }
    // Xen's toolstack makes a guest's home readable by dom0 and the guest only, so a driver
    // domain usually cannot learn the name; clients are then matched by MAC.
    try {
        domain_name_ = ctx_.store.read(0, domain_path(id_.frontend) + "/name").value_or("");
    } catch (const platform::PlatformError& e) {
        domain_name_.clear();
        spdlog::debug("{}: cannot read {}/name ({}): matching client files by MAC only", id_.name(),
                      domain_path(id_.frontend), e.what());
    }

    const Config& cfg = *ctx_.config;
    const ClientConfig* client = match_client(cfg, domain_name_, id_.devid, toolstack_mac_);
    client_ = client ? std::optional<ClientConfig>(*client) : std::nullopt;

    advertised_ = ctx_.sink.features();
    max_queues_ = std::max(1u, std::min({advertised_.max_queues, cfg.global.max_queues,
                                         client_ && client_->queues ? *client_->queues : 64u}));
    split_ = advertised_.split_event_channels && cfg.global.split_event_channels;

    spdlog::info("{}: probed: frontend {} (domain \"{}\"), mac {}{}; policy from {}", id_.name(), frontend,
                 domain_name_, format_mac(*toolstack_mac_),
                 toolstack_rate_ ? fmt::format(", rate {},{}", toolstack_rate_->bytes, toolstack_rate_->usec)
                                 : "",
                 client_ ? client_->source : "defaults (no client file matched)");
}

void VifControl::adopt_advertised() {
    // The frontend negotiated against what the previous netbackd advertised, not against
    // today's config: honour the keys as they are in the store.
    if (const auto v = ctx_.store.read(0, be_ + "/multi-queue-max-queues"))
        if (const auto q = parse_queue_count(*v, 64)) max_queues_ = *q;
    if (const auto v = ctx_.store.read(0, be_ + "/feature-split-event-channels"))
        if (const auto f = parse_flag(*v)) split_ = *f && advertised_.split_event_channels;
}

void VifControl::probe_and_advertise() {
    probe();
    // Whatever can be decided now fails the attach before the toolstack sees InitWait.
    admit(Admission::probe);
    bool present = false;
    ctx_.store.transaction([&](platform::TxId tx) {
        present = ctx_.store.read(tx, be_ + "/state").has_value();
        if (!present) return;
        auto put = [&](std::string_view key, bool on) {
            ctx_.store.write(tx, be_ + "/" + std::string(key), on ? "1" : "0");
        };
        put("feature-sg", advertised_.sg);
        put("feature-gso-tcpv4", advertised_.gso_tcpv4);
        put("feature-gso-tcpv6", advertised_.gso_tcpv6);
        put("feature-ipv6-csum-offload", advertised_.ipv6_csum_offload);
        put("feature-rx-copy", true);
        put("feature-rx-flip", false);
        put("feature-split-event-channels", split_);
        put("feature-ctrl-ring", true);
        put("feature-multicast-control", true);
        put("feature-dynamic-multicast-control", true);
        put("feature-xdp-headroom", true);
        ctx_.store.write(tx, be_ + "/multi-queue-max-queues", std::to_string(max_queues_));
    });
    if (!present) throw BackendGone{};
    spdlog::info("{}: advertised {}", id_.name(), flag_list(advertised_, split_, max_queues_));
}

std::optional<std::string> VifControl::read_frontend(const std::string& path) {
    return ctx_.store.read(0, path);
}

std::string VifControl::require_frontend(const std::string& path) {
    auto v = read_frontend(path);
    if (!v) fatal(ENOENT, "reading " + path);
    return *v;
}

unsigned VifControl::read_queue_count() {
    const std::string path = fe_ + "/multi-queue-num-queues";
    const auto q = read_frontend(path);
    if (!q) return 1;
    const auto v = parse_unsigned(*q, UINT32_MAX);
    if (!v) fatal(EINVAL, fmt::format("{} = \"{}\": {}", path, *q, v.error()));
    if (*v == 0 || *v > max_queues_)
        fatal(EINVAL, fmt::format("guest requested {} queues, exceeding the maximum of {} ({})", *v,
                                  max_queues_, path));
    return static_cast<unsigned>(*v);
}

NegotiatedFeatures VifControl::read_features() {
    auto flag = [&](const std::string& key, bool dflt) {
        const auto path = fe_ + "/" + key;
        const auto v = read_frontend(path);
        if (!v) return dflt;
        const auto f = parse_flag(*v);
        if (!f) fatal(EINVAL, fmt::format("{} = \"{}\": {}", path, *v, f.error()));
        return *f;
    };
    if (!flag("request-rx-copy", false))
        fatal(EOPNOTSUPP,
              fmt::format("{}/request-rx-copy is absent or 0: this backend only does rx-copy", fe_));
    NegotiatedFeatures nf;
    nf.rx_notify = flag("feature-rx-notify", false);
    nf.sg = flag("feature-sg", false) && advertised_.sg;
    nf.gso_tcpv4 = flag("feature-gso-tcpv4", false) && advertised_.gso_tcpv4;
    nf.gso_tcpv6 = flag("feature-gso-tcpv6", false) && advertised_.gso_tcpv6;
    nf.ip_csum = !flag("feature-no-csum-offload", false);
    nf.ipv6_csum = flag("feature-ipv6-csum-offload", false) && advertised_.ipv6_csum_offload;
    nf.multicast_control = flag("request-multicast-control", false);
    nf.xdp_headroom = read_xdp_headroom();
    return nf;
}

std::uint16_t VifControl::read_xdp_headroom() {
    // Linux netback clamps to XEN_NETIF_MAX_XDP_HEADROOM (0x7fff), more than a page, which
    // leaves no room for data; we refuse what leaves less than half a page instead.
    const std::string path = fe_ + "/xdp-headroom";
    const auto text = read_frontend(path);
    if (!text) return 0;
    const auto v = parse_unsigned(*text, UINT32_MAX);
    if (!v) fatal(EINVAL, fmt::format("{} = \"{}\": {}", path, *text, v.error()));
    if (*v > kMaxXdpHeadroom)
        fatal(EINVAL,
              fmt::format("{} = {}: above the maximum of {} bytes (half a page)", path, *v, kMaxXdpHeadroom));
    return static_cast<std::uint16_t>(*v);
}

void VifControl::multicast_control_changed() {
    if (forgotten_ || removal_due_ || !facts_.connected) return;
    const std::string path = fe_ + "/request-multicast-control";
    std::optional<std::string> text;
    try {
        text = read_frontend(path);
    } catch (const platform::PlatformError& e) {
        spdlog::debug("{}: reading {}: {}", id_.name(), path, e.what());
        return;
    }
    bool on = false;
    if (text) {
        const auto f = parse_flag(*text);
        // As xenbus_read_unsigned(..., 0) in Linux: what is not a flag turns filtering off.
        if (f)
            on = *f;
        else
            spdlog::warn("{}: {} = \"{}\": {}; multicast filtering off", id_.name(), path, *text, f.error());
    }
    spdlog::info("{}: request-multicast-control {}", id_.name(), on ? 1 : 0);
    ctx_.sink.set_multicast_control(id_, on);
}

QueueRings VifControl::connect_queue(unsigned q, const std::string& dir, bool& split_used,
                                     std::string& summary) {
    auto parsed = [&](const std::string& path, const std::string& text, auto parse) {
        const auto v = parse(text);
        if (!v) fatal(EINVAL, fmt::format("{} = \"{}\": {}", path, text, v.error()));
        return *v;
    };
    auto ref = [&](const char* key) {
        const auto path = dir + "/" + key;
        return parsed(path, require_frontend(path), parse_grant_ref);
    };
    auto port = [&](const char* key) {
        const auto path = dir + "/" + key;
        return parsed(path, require_frontend(path), parse_port);
    };
    auto map = [&](const char* key, platform::GrantRef r) {
        try {
            return ctx_.grants.map(id_.frontend, r, true);
        } catch (const platform::PlatformError& e) {
            fatal(errno_of(e), fmt::format("mapping in shared page {} from domain {} ({}/{}): {}", r,
                                           id_.frontend, dir, key, e.what()));
        }
    };
    auto bind = [&](const char* key, platform::EvtchnPort p) {
        try {
            return BoundPort(ctx_.events, ctx_.events.bind_interdomain(id_.frontend, p));
        } catch (const platform::PlatformError& e) {
            fatal(errno_of(e), fmt::format("binding event channel {} of domain {} ({}/{}): {}", p,
                                           id_.frontend, dir, key, e.what()));
        }
    };

    QueueRings rings;
    rings.tx_ref = ref("tx-ring-ref");
    rings.rx_ref = ref("rx-ring-ref");
    // Split channels only when offered and taken, as Linux decides by event-channel-tx.
    const bool split = split_ && read_frontend(dir + "/event-channel-tx").has_value();
    platform::EvtchnPort tx_port = 0, rx_port = 0;
    if (split) {
        tx_port = port("event-channel-tx");
        rx_port = port("event-channel-rx");
    } else {
        tx_port = port("event-channel");
    }
    rings.tx_ring = map("tx-ring-ref", rings.tx_ref);
    rings.rx_ring = map("rx-ring-ref", rings.rx_ref);
    if (split) {
        rings.tx_port = bind("event-channel-tx", tx_port);
        rings.rx_port = bind("event-channel-rx", rx_port);
    } else {
        rings.tx_port = bind("event-channel", tx_port);
    }
    split_used |= split;
    summary += fmt::format(" [queue {}: tx-ring-ref {} rx-ring-ref {} {}]", q, rings.tx_ref, rings.rx_ref,
                           split ? fmt::format("event-channel-tx {} -rx {}", tx_port, rx_port)
                                 : fmt::format("event-channel {}", tx_port));
    return rings;
}

std::unique_ptr<CtrlChannel> VifControl::connect_ctrl(unsigned queues) {
    // Optional for frontends (Linux netfront has none); both keys or neither.
    const std::string ref_path = fe_ + "/ctrl-ring-ref";
    const std::string port_path = fe_ + "/event-channel-ctrl";
    const auto ref_text = read_frontend(ref_path);
    if (!ref_text) return nullptr;
    const auto ref = parse_grant_ref(*ref_text);
    if (!ref) fatal(EINVAL, fmt::format("{} = \"{}\": {}", ref_path, *ref_text, ref.error()));
    const std::string port_text = require_frontend(port_path);
    const auto port = parse_port(port_text);
    if (!port) fatal(EINVAL, fmt::format("{} = \"{}\": {}", port_path, port_text, port.error()));
    std::unique_ptr<platform::GrantMapping> page;
    try {
        page = ctx_.grants.map(id_.frontend, *ref, true);
    } catch (const platform::PlatformError& e) {
        fatal(errno_of(e), fmt::format("mapping in shared page {} from domain {} ({}): {}", *ref,
                                       id_.frontend, ref_path, e.what()));
    }
    platform::Events& ev = ctx_.ctrl_events != nullptr ? *ctx_.ctrl_events : ctx_.events;
    BoundPort bound;
    try {
        bound = BoundPort(ev, ev.bind_interdomain(id_.frontend, *port));
    } catch (const platform::PlatformError& e) {
        fatal(errno_of(e), fmt::format("binding event channel {} of domain {} ({}): {}", *port, id_.frontend,
                                       port_path, e.what()));
    }
    spdlog::info("{}: control ring: ctrl-ring-ref {} event-channel-ctrl {}", id_.name(), *ref, *port);
    const unsigned per_queue = ctx_.config->global.staging_pages_per_vif / std::max(1u, queues);
    auto staging =
        std::make_unique<StagingTable>(ctx_.grants, id_.frontend, queues, per_queue,
                                       [this](std::shared_ptr<const StagedPages> pages, unsigned q,
                                              std::span<const platform::GrantRef> removed) {
                                           return ctx_.sink.set_staging(id_, std::move(pages), q, removed);
                                       });
    return std::make_unique<CtrlChannel>(std::move(page), std::move(bound), ctx_.grants, ev, id_.frontend,
                                         queues, std::move(staging));
}

bool VifControl::serve_ctrl() {
    if (!ctrl_ || !facts_.connected) return false;
    const CtrlChannel::Served s = ctrl_->serve([&](const ring::HashConfig& h) {
        spdlog::debug("{}: hash algorithm {} flags {:#x} mapping size {}", id_.name(), h.algorithm, h.flags,
                      h.mapping_size);
        ctx_.sink.set_hash(id_, std::make_shared<const ring::HashConfig>(h));
    });
    if (s.fatal) {
        spdlog::error("{}: {}", id_.name(), *s.fatal);
        ctrl_.reset();
        fail(Fatal{EIO, *s.fatal});
        return false;
    }
    return s.more;
}

std::optional<platform::EvtchnPort> VifControl::ctrl_port() const {
    if (!ctrl_) return std::nullopt;
    return ctrl_->port();
}

VifPolicy VifControl::make_policy() const {
    VifPolicy pol;
    pol.guest_mac = client_ && client_->mac ? *client_->mac : toolstack_mac_.value_or(Mac{});
    pol.uplink = client_ ? client_->uplink : std::nullopt;
    pol.vlan = client_ ? client_->vlan : std::nullopt;
    pol.rate = client_ && client_->rate ? client_->rate : toolstack_rate_;
    pol.mtu = mtu_;
    pol.client_source = client_ ? client_->source : "";
    return pol;
}

void VifControl::admit(Admission when) {
    auto r = ctx_.sink.refusal(id_, make_policy());
    if (!r) {
        move_wait_since_.reset();
        return;
    }
    // The same NIC (devid and MAC) on another domain: a guest migrating to this host. libxl
    // creates the new domain's devices while the old, suspended domain still has its own, and
    // destroys the old one only after the new one runs; refusing here would fail the migration.
    // The new vif goes to InitWait and connects once the old one has gone, or is refused after
    // kMoveWait (two guests given one MAC by mistake). Linux netback, behind a bridge, never
    // refuses a MAC at all.
    if (r->holder && r->holder->devid == id_.devid && r->holder->frontend != id_.frontend) {
        if (when == Admission::probe) {
            spdlog::info("{}: {}: the same NIC as {}, a guest moving here? It connects once {} has gone",
                         id_.name(), r->message, r->holder->name(), r->holder->name());
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!move_wait_since_) {
            move_wait_since_ = now;
            spdlog::info("{}: {}: waiting up to {} s for it to go before connecting", id_.name(), r->message,
                         kMoveWait.count());
        }
        if (now - *move_wait_since_ < kMoveWait) throw Postponed{};
        r->message += fmt::format(" (waited {} s for it to go)", kMoveWait.count());
    }
    refuse(r->err, std::move(r->message));
}

void VifControl::run_client_hook() {
    if (!client_ || !client_->script) return;
    const auto& script = *client_->script;
    const auto r = run_hook(script, {"online", std::to_string(id_.frontend), std::to_string(id_.devid)},
                            std::chrono::seconds(10));
    if (!r.output.empty()) spdlog::info("{}: {}: {}", id_.name(), script.string(), r.output);
    if (!r.error.empty()) refuse(EIO, fmt::format("hotplug script {}: {}", script.string(), r.error));
    if (r.exit_code != 0)
        refuse(EIO, fmt::format("hotplug script {} exited {}", script.string(), r.exit_code));
}

void VifControl::connect() {
    // Other vifs may have attached since InitWait: ask again, before anything is mapped.
    admit(Admission::connect);
    if (client_ && client_->mac && toolstack_mac_ && *client_->mac != *toolstack_mac_)
        spdlog::warn("{}: client file {} allows mac {} but the toolstack assigned {}: the guest's frames "
                     "from {} will be dropped",
                     id_.name(), client_->source, format_mac(*client_->mac), format_mac(*toolstack_mac_),
                     format_mac(*toolstack_mac_));
    const unsigned queues = read_queue_count();
    auto handle = std::make_unique<VifHandle>();
    handle->id = id_;
    handle->features = read_features();
    std::string summary;
    for (unsigned q = 0; q < queues; ++q) {
        const std::string dir = queues == 1 ? fe_ : fmt::format("{}/queue-{}", fe_, q);
        handle->queues.push_back(connect_queue(q, dir, handle->features.split_event_channels, summary));
    }
    auto ctrl = connect_ctrl(queues);
    handle->policy = make_policy();
    run_client_hook();

    const NegotiatedFeatures& nf = handle->features;
    policy_ = handle->policy;
    spdlog::info("{}: connected {} queue(s){}; rx-notify {} sg {} gso-v4 {} gso-v6 {} csum {} ipv6-csum {} "
                 "multicast-control {} xdp-headroom {}",
                 id_.name(), queues, summary, nf.rx_notify, nf.sg, nf.gso_tcpv4, nf.gso_tcpv6, nf.ip_csum,
                 nf.ipv6_csum, nf.multicast_control, nf.xdp_headroom);
    ctx_.sink.attach(std::move(handle));
    ctrl_ = std::move(ctrl);
    try {
        if (!write_backend_key("hotplug-status", "connected")) throw BackendGone{};
        ctx_.store.rm(0, error_path(ctx_.self, id_));
    } catch (...) {
        ctrl_.reset();
        ctx_.sink.detach(id_);
        throw;
    }
    move_wait_since_.reset();
    spdlog::info("{}: hotplug-status connected", id_.name());
}

void VifControl::disconnect() {
    ctrl_.reset();
    ctx_.sink.detach(id_); // destroying the handle unmaps the rings and unbinds the channels
    spdlog::info("{}: disconnected: rings unmapped, event channels unbound", id_.name());
}

void VifControl::remove_backend_dir() {
    ctx_.store.rm(0, be_);
    // Leave no empty per-domain dir behind, as libxl's path cleanup does. The toolstack may
    // own that dir, in which case it stays: not worth failing the detach for.
    const std::string parent = fmt::format("{}/{}", backend_base(ctx_.self), id_.frontend);
    try {
        ctx_.store.transaction([&](platform::TxId tx) {
            const auto left = ctx_.store.directory(tx, parent);
            if (left && left->empty()) ctx_.store.rm(tx, parent);
        });
    } catch (const platform::PlatformError& e) {
        spdlog::debug("{}: leaving {}: {}", id_.name(), parent, e.what());
    }
    try {
        ctx_.store.rm(0, error_path(ctx_.self, id_));
    } catch (const platform::PlatformError& e) {
        spdlog::debug("{}: leaving {}: {}", id_.name(), error_path(ctx_.self, id_), e.what());
    }
    spdlog::info("{}: backend dir {} removed", id_.name(), be_);
}

} // namespace netbackd::control
