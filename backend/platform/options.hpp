// The one switch every netbackd process offers: --platform=xen|sim (plus, for sim, which host
// directory and which domain this process runs in). Environment variables set by
// `xensim env <domid>` serve as defaults.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

// Path of the xenstored socket that binds a connection to `domid` on a simulated host.
std::string sim_store_socket(const std::string& sim_dir, DomId domid);

inline void add_platform_options(CLI::App& app, PlatformOptions& options) {
    app.add_option_function<std::string>(
           "--platform",
           [&options](const std::string& name) {
               auto kind = parse_platform_kind(name);
               if (!kind) throw CLI::ValidationError("--platform", "must be xen or sim, not " + name);
               options.kind = *kind;
           },
           "xen (real hypervisor) or sim (xensim host)")
        ->envname("NETBACKD_PLATFORM");
    app.add_option("--sim-dir", options.sim_dir, "simulated host directory (xensim up --dir)")
        ->envname("NETBACKD_SIM_DIR");
    app.add_option("--sim-domid", options.sim_domid, "simulated domain this process runs in")
        ->envname("NETBACKD_SIM_DOMID");
}

} // namespace netbackd::platform
