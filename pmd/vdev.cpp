#include "pmd/vdev.hpp"

#include <cstring>

#include <rte_bus_vdev.h>

#include <fmt/format.h>

#include "pmd/error.hpp"

namespace netbackd::pmd {

VirtualDevice::VirtualDevice(std::string name, const std::string& args) : name_(std::move(name)) {
    const int rc = rte_vdev_init(name_.c_str(), args.c_str());
    if (rc != 0) {
        const int err = rc < 0 ? -rc : EINVAL;
        throw DpdkError(fmt::format("cannot create virtual device {}{}{}: {}", name_, args.empty() ? "" : ",",
                                    args,
                                    err == EEXIST ? "a device of that name exists" : std::strerror(err)),
                        err);
    }
}

// Ports on the device must be closed first: Port's destructor does that.
VirtualDevice::~VirtualDevice() { rte_vdev_uninit(name_.c_str()); }

} // namespace netbackd::pmd
