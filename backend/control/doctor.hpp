// `netbackd doctor`: the checks an operator needs before netbackd can serve vifs, each with
// the fix to apply when it fails. Host paths are read under `root` so tests can fake a host.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "backend/control/config.hpp"
#include "backend/platform/platform.hpp"

namespace netbackd::control {

enum class CheckStatus { ok, fail, skip };

struct Check {
    std::string name;
    CheckStatus status = CheckStatus::ok;
    std::string detail;
    std::string fix; // only for fail
};

// Who netbackd runs as, for the access checks (tests give a made-up one).
struct Identity {
    uid_t uid = 0;
    std::string name;        // user name, or empty
    std::vector<gid_t> gids; // effective and supplementary groups
    std::uint64_t caps = 0;  // effective capabilities, bit n = capability n
    static Identity current();
};

struct DoctorOptions {
    std::string config_path; // empty: /etc/netbackd/netbackd.toml if it exists
    platform::PlatformOptions platform;
    bool platform_given = false; // otherwise the config's platform
    std::filesystem::path root = "/";
    std::optional<Identity> identity; // empty: this process's
    // Guests this domain is to serve, for the xenstore quota and event-channel checks; empty:
    // the number of client files in the config, if any.
    std::optional<unsigned> guests;
};

// What /sys/hypervisor/guest_type says this domain is; xen_unknown: a Xen guest whose kernel
// does not say (no guest_type, /sys/hypervisor/type is "xen"); none: not a Xen guest.
enum class GuestType { pv, pvh, hvm, xen_unknown, none };
GuestType guest_type(const std::filesystem::path& root);

// Host checks that need no xenstore: the domain type, the xen-netback module, each port (a PCI
// NIC's binding as the domain type needs it, a vdev's kernel interface), hugepages, IOMMU, and
// what `who` may use (doctor_access.hpp). `sim`: the platform is simulated, so kernel Xen
// modules do not matter.
std::vector<Check> host_checks(const std::filesystem::path& root, const GlobalConfig& global, bool sim,
                               const Identity& who = Identity::current());

std::vector<Check> run_doctor(const DoctorOptions& options);

// Prints one line per check ("OK   ...", "FAIL ...", "     fix: ..."); returns whether none failed.
bool print_doctor(const std::vector<Check>& checks, bool failures_only, std::FILE* out);

} // namespace netbackd::control
