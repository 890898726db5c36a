#include "backend/control/control_plane.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "backend/control/backend_dirs.hpp"

namespace netbackd::control {
namespace {

constexpr std::string_view kBackendToken = "nb:backend";
constexpr std::string_view kReleaseToken = "nb:release";

// "<fe>/<devid>[/...]" relative to the backend base -> VifId; nullopt for anything else.
std::optional<VifId> parse_rel(std::string_view rel, std::string_view* rest) {
    const auto slash = rel.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto fe = parse_domid(rel.substr(0, slash));
    rel.remove_prefix(slash + 1);
    const auto slash2 = rel.find('/');
    const auto devid = parse_unsigned(rel.substr(0, slash2), UINT32_MAX);
    if (!fe || !devid) return std::nullopt;
    if (rest) *rest = slash2 == std::string_view::npos ? std::string_view{} : rel.substr(slash2 + 1);
    return VifId{*fe, static_cast<std::uint32_t>(*devid)};
}

} // namespace

ControlPlane::ControlPlane(platform::Store& store, platform::Grants& grants, platform::Events& events,
                           DataPlaneSink& sink, std::shared_ptr<const Config> config)
    : ctx_{store, grants, events, sink, nullptr, 0, std::move(config)} {}

ControlPlane::~ControlPlane() { release_all(); }

void ControlPlane::start() {
    ctx_.self = ctx_.store.self_domid();
    const auto base = backend_base(ctx_.self);
    spdlog::info("control: running in domain {}, watching {}", ctx_.self, base);
    ctx_.store.watch(base, kBackendToken);
    ctx_.store.watch("@releaseDomain", kReleaseToken);
    started_ = true;
    scan(true);
}

const VifControl* ControlPlane::find(VifId id) const {
    auto it = vifs_.find(id);
    return it == vifs_.end() ? nullptr : it->second.get();
}

VifControl& ControlPlane::add(VifId id) {
    auto& slot = vifs_[id];
    slot = std::make_unique<VifControl>(ctx_, id);
    return *slot;
}

void ControlPlane::scan(bool at_start) {
    for (const auto& rel : backend_vif_dirs(ctx_.store, ctx_.self)) {
        const auto id = parse_rel(rel, nullptr);
        if (!id) {
            spdlog::warn("control: ignoring {}/{}: not <domid>/<devid>", backend_base(ctx_.self), rel);
            continue;
        }
        if (vifs_.count(*id)) continue;
        const auto state = ctx_.store.read(0, backend_path(ctx_.self, *id) + "/state");
        if (!state) continue;
        const bool fresh = !at_start && *state == "1";
        add(*id).appeared(fresh);
    }
    reap();
}

void ControlPlane::process_watches() {
    changed();
    const auto base = backend_base(ctx_.self);
    for (const auto& ev : ctx_.store.read_watches()) {
        try {
            if (ev.token == kBackendToken) {
                on_backend_event(ev.path);
            } else if (ev.token == kReleaseToken) {
                on_release_domain();
            } else if (ev.token.rfind("nb:fe:", 0) == 0) {
                std::string rel = ev.token.substr(6);
                std::replace(rel.begin(), rel.end(), ':', '/');
                if (const auto id = parse_rel(rel, nullptr); id && vifs_.count(*id))
                    vifs_[*id]->frontend_event(ev.path);
            }
        } catch (const platform::PlatformError& e) {
            // A store failure outside any one vif's actions; the next event retries.
            spdlog::error("control: handling watch {} ({}): {}", ev.path, ev.token, e.what());
        } catch (const std::exception& e) {
            // Whatever one event does wrong, the other vifs keep being served.
            spdlog::error("control: handling watch {} ({}): unexpected: {}", ev.path, ev.token, e.what());
        }
    }
    reap();
}

void ControlPlane::on_backend_event(std::string_view path) {
    const auto base = backend_base(ctx_.self);
    if (path.size() <= base.size() + 1 || path.substr(0, base.size() + 1) != base + "/") {
        scan(false); // the base itself: initial watch event or a wholesale change
        return;
    }
    std::string_view rest;
    const auto rel = path.substr(base.size() + 1);
    const auto id = parse_rel(rel, &rest);
    if (!id) {
        // A per-domain dir (<fe>) appeared or vanished: re-check that domain's vifs.
        for (auto& [vid, vif] : vifs_) vif->backend_changed();
        scan(false);
        return;
    }
    auto it = vifs_.find(*id);
    if (it == vifs_.end()) {
        const auto state = ctx_.store.read(0, backend_path(ctx_.self, *id) + "/state");
        if (state) add(*id).appeared(*state == "1");
        return;
    }
    if (rest.empty() || rest == "online" || rest == "state") {
        it->second->backend_changed();
        if (it->second->finished()) {
            vifs_.erase(it);
            const auto state = ctx_.store.read(0, backend_path(ctx_.self, *id) + "/state");
            if (state) add(*id).appeared(*state == "1");
        }
    } else if (rest == "rate")
        it->second->rate_changed();
}

bool ControlPlane::fail_vif(VifId id, const Fatal& reason) {
    auto it = vifs_.find(id);
    if (it == vifs_.end()) return false;
    changed();
    it->second->fail(reason);
    reap();
    return true;
}

void ControlPlane::on_release_domain() {
    for (auto& [id, vif] : vifs_) {
        if (!vif->frontend_exists()) vif->domain_released();
    }
}

void ControlPlane::reap() {
    for (auto it = vifs_.begin(); it != vifs_.end();) {
        if (it->second->finished())
            it = vifs_.erase(it);
        else
            ++it;
    }
}

void ControlPlane::tick(std::chrono::steady_clock::time_point now) {
    if (due_known_ && (!due_ || now < *due_)) return;
    const auto after = std::chrono::seconds(ctx_.config->global.wait_report_seconds);
    for (auto& [id, vif] : vifs_) {
        vif->report_wait(now, after);
        vif->tick(now);
    }
    reap();
    ctrl_walk_ = true; // a tick may have run a vif's handshake on
    compute_due();
}

void ControlPlane::compute_due() {
    const auto after = std::chrono::seconds(ctx_.config->global.wait_report_seconds);
    due_.reset();
    deadline_.reset();
    for (const auto& [id, vif] : vifs_) {
        if (auto d = vif->next_due(after); d && (!due_ || *d < *due_)) due_ = d;
        if (auto d = vif->deadline(); d && (!deadline_ || *d < *deadline_)) deadline_ = d;
    }
    due_known_ = true;
}

std::optional<int> ControlPlane::ctrl_fd() const {
    if (ctx_.ctrl_events == nullptr) return std::nullopt;
    return ctx_.ctrl_events->fd();
}

bool ControlPlane::serve_ctrl() {
    bool fired = false;
    if (ctx_.ctrl_events != nullptr) {
        // Unmask before serving: a request published after the serve below fires again.
        try {
            while (const auto port = ctx_.ctrl_events->pending()) {
                ctx_.ctrl_events->unmask(*port);
                fired = true;
            }
        } catch (const platform::PlatformError& e) {
            spdlog::error("control: control-ring event channels: {}", e.what());
            fired = true;
        }
        // With channels of their own, the rings are looked at only when one fired, one had
        // requests left, or a vif may have connected one; without, on every call.
        if (!fired && !ctrl_more_ && !ctrl_walk_) return false;
    }
    ctrl_walk_ = false;
    due_known_ = false; // serving may fail a vif
    bool more = false;
    for (auto& [id, vif] : vifs_) {
        try {
            more = vif->serve_ctrl() || more;
        } catch (const std::exception& e) {
            // A store failure while failing the vif: the other vifs keep being served.
            spdlog::error("{}: control ring: {}", id.name(), e.what());
        }
    }
    reap();
    ctrl_more_ = more;
    return more;
}

std::optional<std::chrono::steady_clock::time_point> ControlPlane::next_deadline() {
    if (!due_known_) compute_due();
    return deadline_;
}

std::optional<std::chrono::steady_clock::time_point> ControlPlane::next_due() {
    if (!due_known_) compute_due();
    return due_;
}

void ControlPlane::reload(std::shared_ptr<const Config> config) {
    ctx_.config = std::move(config);
    changed();
    spdlog::info("control: configuration reloaded ({} client file(s)); connected vifs keep their policy",
                 ctx_.config->clients.size());
}

void ControlPlane::release_all() {
    for (auto& [id, vif] : vifs_) vif->release();
    vifs_.clear();
    if (started_) {
        started_ = false;
        try {
            ctx_.store.unwatch(backend_base(ctx_.self), kBackendToken);
            ctx_.store.unwatch("@releaseDomain", kReleaseToken);
        } catch (const platform::PlatformError& e) {
            spdlog::debug("control: unwatch: {}", e.what());
        }
    }
}

} // namespace netbackd::control
