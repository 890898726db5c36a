#include "pmd/carrier.hpp"

namespace netbackd::pmd {

std::size_t publish_carrier(platform::Store& store, std::span<const std::string> backend_dirs,
                            const LinkStatus& link) {
    std::size_t written = 0;
    store.transaction([&](platform::TxId tx) {
        written = 0; // the body runs again after a conflict
        for (const auto& dir : backend_dirs) {
            // The "state" key exists as long as the vif's backend directory does.
            if (!store.read(tx, dir + "/state")) {
                continue;
            }
            store.write(tx, dir + "/carrier", carrier_value(link));
            ++written;
        }
    });
    return written;
}

} // namespace netbackd::pmd
