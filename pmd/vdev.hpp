// A virtual device (net_null, net_ring, net_tap, net_memif, ...) created after EAL start, so
// that vifs or tests can add and remove ports at run time instead of fixing them on the EAL
// command line.
#pragma once

#include <string>

namespace netbackd::pmd {

class VirtualDevice {
public:
    // name: driver name plus a unique suffix ("net_null_test1"); args: "key=value,..." or "".
    VirtualDevice(std::string name, const std::string& args);
    ~VirtualDevice();
    VirtualDevice(const VirtualDevice&) = delete;
    VirtualDevice& operator=(const VirtualDevice&) = delete;
    VirtualDevice(VirtualDevice&&) = delete;
    VirtualDevice& operator=(VirtualDevice&&) = delete;

    // The ethdev port name, which for a vdev is the device name.
    const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
};

} // namespace netbackd::pmd
