#include "backend/platform/platform.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "backend/platform/checked_grants.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "backend/platform/xen/xen_events.hpp"
#include "backend/platform/xen/xen_grants.hpp"

namespace netbackd::platform {

std::optional<PlatformKind> parse_platform_kind(std::string_view name) {
    if (name == "xen") return PlatformKind::xen;
    if (name == "sim") return PlatformKind::sim;
    return std::nullopt;
}

std::string sim_store_socket(const std::string& sim_dir, DomId domid) {
    if (domid == 0) return sim_dir + "/xenstored.sock";
    return fmt::format("{}/domain/{}/xenstored.sock", sim_dir, domid);
}

Platform open_platform(const PlatformOptions& options) {
    Platform p;
    if (options.kind == PlatformKind::xen) {
        // Devices first: their absence is the one-line answer to "is this Xen at all?".
        p.grants = std::make_unique<XenGrants>();
        p.events = std::make_unique<XenEvents>();
        p.control_events = std::make_unique<XenEvents>();
        p.store = open_xs_store("");
        p.open_worker_grants = [] { return std::make_unique<XenGrants>(); };
        return p;
    }
    if (options.sim_dir.empty())
        throw PlatformError(
            "--platform=sim needs the simulated host's directory (--sim-dir, as given to `xensim up`)",
            EINVAL);
    auto client = xensim::HvClient::connect(options.sim_dir, options.sim_domid);
    // Checked, so that a breach of the Threads contract fails every test on the simulated
    // platform rather than corrupting memory only on Xen.
    p.grants = std::make_unique<CheckedGrants>(std::make_unique<xensim::SimGrants>(client));
    p.events = std::make_unique<xensim::SimEvents>(client);
    // A second connection: its own eventfd, so control-ring events wake only the control thread.
    p.control_events =
        std::make_unique<xensim::SimEvents>(xensim::HvClient::connect(options.sim_dir, options.sim_domid));
    p.open_worker_grants = [client] {
        return std::make_unique<CheckedGrants>(std::make_unique<xensim::SimGrants>(client));
    };
    p.store = open_xs_store(sim_store_socket(options.sim_dir, options.sim_domid));
    return p;
}

} // namespace netbackd::platform
