// platform::Events over libxenevtchn (/dev/xen/evtchn).
#pragma once

extern "C" {
#include <xenevtchn.h>
}

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

class XenEvents final : public Events {
public:
    // Throws PlatformError naming the missing device when not on Xen.
    XenEvents();
    ~XenEvents() override;
    XenEvents(const XenEvents&) = delete;
    XenEvents& operator=(const XenEvents&) = delete;

    EvtchnPort bind_interdomain(DomId remote, EvtchnPort remote_port) override;
    EvtchnPort alloc_unbound(DomId remote) override;
    void unbind(EvtchnPort local) override;
    void notify(EvtchnPort local) override;
    int fd() const override;
    std::optional<EvtchnPort> pending() override;
    void unmask(EvtchnPort local) override;

private:
    xenevtchn_handle* handle_;
};

} // namespace netbackd::platform
