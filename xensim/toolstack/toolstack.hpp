// The simulated toolstack's network devices: what libxl writes and waits for on
// `xl network-attach` / `xl network-detach` with a driver domain backend, and how it fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim {

// A failure, worded as libxl logs it; `xl` itself then prints "libxl_device_nic_add failed."
// (or _remove).
class ToolstackError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct NicSpec {
    platform::DomId frontend = 0;
    platform::DomId backend = 0;
    std::optional<std::uint32_t> devid; // next free one when absent, as libxl picks
    std::string mac;                    // required: "00:16:3e:xx:xx:xx"
    std::string bridge = "xenbr0";
    std::string script = "vif-bridge";
    std::optional<std::string> rate; // already "<bytes>,<usec>"
    unsigned mtu = 1500;
};

// libxl's timeouts (LIBXL_INIT_TIMEOUT, LIBXL_DESTROY_TIMEOUT).
inline constexpr std::chrono::milliseconds kInitTimeout{10'000};
inline constexpr std::chrono::milliseconds kDestroyTimeout{10'000};

// `store` must be a dom0 (toolstack) connection. Returns the devid used once the backend
// reached InitWait; throws ToolstackError otherwise (the nodes written stay, as with libxl).
std::uint32_t nic_add(platform::Store& store, const NicSpec& spec,
                      std::chrono::milliseconds timeout = kInitTimeout);

// Online=0/state=5, wait for state 6, then for the driver domain to remove its backend dir;
// then the frontend and /libxl nodes go. `force` skips the waits (xl network-detach -f).
void nic_remove(platform::Store& store, platform::DomId frontend, std::uint32_t devid, bool force = false,
                std::chrono::milliseconds timeout = kDestroyTimeout);

// What `xl destroy` does to a dying domain's vifs (libxl__devices_destroy, forced): per vif,
// online=0 and state=5 on the backend with the frontend dir removed in the same transaction,
// then up to `timeout` for state 6 and for the driver domain to remove its backend dir, then
// the /libxl nodes go. A backend that does not answer does not stop a destroy: what timed out
// is returned, worded as libxl logs it. The domain's own home and the domain are left to the
// caller.
std::vector<std::string> nic_destroy_all(platform::Store& store, platform::DomId frontend,
                                         std::chrono::milliseconds timeout = kDestroyTimeout);

// The domid of a domain by name (or a decimal domid of an existing domain).
std::optional<platform::DomId> find_domain(platform::Store& store, const std::string& name_or_id);

// A vif's devid by its MAC, as `xl network-detach <dom> <mac>` accepts.
std::optional<std::uint32_t> find_nic_by_mac(platform::Store& store, platform::DomId frontend,
                                             const std::string& mac);

} // namespace netbackd::xensim
