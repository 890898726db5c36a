// `netbackd doctor`: what the identity netbackd runs as may use. netbackd.service runs it as
// the user netbackd with a few ambient capabilities; these checks name the device node, mount
// or capability that identity lacks, with the fix. Permissions are judged from mode bits (no
// ACLs), so tests can fake any identity over a faked root.
#pragma once

#include <filesystem>
#include <vector>

#include "backend/control/doctor.hpp"

namespace netbackd::control {

// Whether `who` may read and write the node at `path` (a directory: write and search).
bool may_use(const std::filesystem::path& path, const Identity& who);

// The Xen device at `dev` (under root) exists, `who` may use it and it opens.
Check xen_device_check(const std::filesystem::path& root, std::string_view dev, std::string_view module,
                       const Identity& who);

// Hugetlbfs mount writable, the PCI ports' VFIO/uio access, the vdev PMDs' capabilities.
std::vector<Check> access_checks(const std::filesystem::path& root, const GlobalConfig& global,
                                 const Identity& who);

} // namespace netbackd::control
