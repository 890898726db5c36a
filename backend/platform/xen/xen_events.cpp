#include "backend/platform/xen/xen_events.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>

#include <fmt/format.h>

#include "backend/platform/xen/device_check.hpp"

namespace netbackd::platform {

namespace {

[[noreturn]] void fail(std::string_view what) {
    int err = errno;
    throw PlatformError(fmt::format("{}: {}", what, std::strerror(err)), err);
}

} // namespace

XenEvents::XenEvents() {
    require_xen_device("/dev/xen/evtchn");
    handle_ = xenevtchn_open(nullptr, 0);
    if (handle_ == nullptr) fail("xenevtchn_open");
    // pending() must never block the worker: it is called after poll() or speculatively.
    int fd = xenevtchn_fd(handle_);
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        xenevtchn_close(handle_);
        fail("evtchn O_NONBLOCK");
    }
}

XenEvents::~XenEvents() { xenevtchn_close(handle_); }

EvtchnPort XenEvents::bind_interdomain(DomId remote, EvtchnPort remote_port) {
    xenevtchn_port_or_error_t port = xenevtchn_bind_interdomain(handle_, remote, remote_port);
    if (port < 0) fail(fmt::format("evtchn bind to d{} port {}", remote, remote_port));
    return static_cast<EvtchnPort>(port);
}

EvtchnPort XenEvents::alloc_unbound(DomId remote) {
    xenevtchn_port_or_error_t port = xenevtchn_bind_unbound_port(handle_, remote);
    if (port < 0) fail(fmt::format("evtchn alloc_unbound for d{}", remote));
    return static_cast<EvtchnPort>(port);
}

void XenEvents::unbind(EvtchnPort local) {
    if (xenevtchn_unbind(handle_, local) != 0) fail(fmt::format("evtchn unbind {}", local));
}

void XenEvents::notify(EvtchnPort local) {
    if (xenevtchn_notify(handle_, local) != 0) fail(fmt::format("evtchn notify {}", local));
}

int XenEvents::fd() const { return xenevtchn_fd(handle_); }

std::optional<EvtchnPort> XenEvents::pending() {
    xenevtchn_port_or_error_t port = xenevtchn_pending(handle_);
    if (port >= 0) return static_cast<EvtchnPort>(port);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    fail("evtchn pending");
}

void XenEvents::unmask(EvtchnPort local) {
    if (xenevtchn_unmask(handle_, local) != 0) fail(fmt::format("evtchn unmask {}", local));
}

} // namespace netbackd::platform
