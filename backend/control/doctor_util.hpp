// Helpers shared by the doctor's check files (doctor.cpp, doctor_access.cpp).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "backend/control/doctor.hpp"

namespace netbackd::control::doctor_util {

inline Check ok(std::string name, std::string detail) {
    return {std::move(name), CheckStatus::ok, std::move(detail), {}};
}
inline Check skip(std::string name, std::string detail) {
    return {std::move(name), CheckStatus::skip, std::move(detail), {}};
}
inline Check fail(std::string name, std::string detail, std::string fix) {
    return {std::move(name), CheckStatus::fail, std::move(detail), std::move(fix)};
}

// A host path read under the doctor's root (a faked host in tests).
inline std::filesystem::path under(const std::filesystem::path& root, std::string_view abs) {
    return root / std::filesystem::path(abs).relative_path();
}

inline bool has_arg(const GlobalConfig& g, std::string_view arg) {
    return std::find(g.eal_args.begin(), g.eal_args.end(), arg) != g.eal_args.end();
}

// The driver a PCI device is bound to; empty if none.
inline std::string pci_driver(const std::filesystem::path& root, const std::string& pci) {
    std::error_code ec;
    const auto drv = std::filesystem::read_symlink(under(root, "/sys/bus/pci/devices/" + pci) / "driver", ec);
    return ec ? std::string() : drv.filename().string();
}

} // namespace netbackd::control::doctor_util
