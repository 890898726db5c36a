// xensim attach / detach: `xl network-attach` and `xl network-detach` for a driver domain
// backend, on the simulated host, failing with libxl's messages.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "xensim/cli/verbs.hpp"
#include "xensim/toolstack/toolstack.hpp"

namespace netbackd::xensim::cli {
namespace {

struct AttachOptions {
    std::string dir;
    std::string client;
    std::string backend;
    std::string mac;
    std::optional<std::uint32_t> devid;
    std::string rate;
    std::string bridge = "xenbr0";
    unsigned mtu = 1500;
    unsigned timeout_ms = 10'000;
    std::string nic; // detach: devid or mac
    bool force = false;
};

platform::DomId domain_or_fail(platform::Store& store, const std::string& name) {
    const auto d = find_domain(store, name);
    if (!d) throw std::runtime_error(fmt::format("Domain {} does not exist.", name));
    return *d;
}

int run_attach(const AttachOptions& o) {
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
    NicSpec spec;
    spec.frontend = domain_or_fail(*store, o.client);
    spec.backend = domain_or_fail(*store, o.backend);
    spec.devid = o.devid;
    spec.mac = o.mac;
    spec.bridge = o.bridge;
    spec.mtu = o.mtu;
    if (!o.rate.empty()) spec.rate = o.rate;
    try {
        const auto devid = nic_add(*store, spec, std::chrono::milliseconds(o.timeout_ms));
        std::printf("%u\n", devid);
        return 0;
    } catch (const ToolstackError& e) {
        std::fprintf(stderr, "libxl: error: %s\nlibxl_device_nic_add failed.\n", e.what());
        return 1;
    }
}

int run_detach(const AttachOptions& o) {
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
    const auto fe = domain_or_fail(*store, o.client);
    std::optional<std::uint32_t> devid;
    if (!o.nic.empty() && o.nic.find(':') == std::string::npos)
        devid = static_cast<std::uint32_t>(std::stoul(o.nic));
    else
        devid = find_nic_by_mac(*store, fe, o.nic);
    if (!devid) {
        std::fprintf(stderr, "Unknown device %s.\n", o.nic.c_str());
        return 1;
    }
    try {
        nic_remove(*store, fe, *devid, o.force, std::chrono::milliseconds(o.timeout_ms));
        return 0;
    } catch (const ToolstackError& e) {
        std::fprintf(stderr, "libxl: error: %s\nlibxl_device_nic_del failed.\n", e.what());
        return 1;
    }
}

} // namespace

void install_attach(CLI::App& app) {
    auto o = std::make_shared<AttachOptions>();
    auto* attach =
        app.add_subcommand("attach", "xl network-attach: add a vif to <client>, served by --backend");
    add_dir_option(*attach, o->dir);
    attach->add_option("client", o->client, "guest domain (name or domid)")->required();
    attach->add_option("--backend", o->backend, "driver domain (name or domid)")->required();
    attach->add_option("--mac", o->mac, "guest MAC, e.g. 00:16:3e:00:00:01")->required();
    attach->add_option("--devid", o->devid, "vif number (default: next free)");
    attach->add_option("--rate", o->rate, "rate limit as xenstore spells it: <bytes>,<usec>");
    attach->add_option("--bridge", o->bridge, "bridge key (netbackd ignores it)");
    attach->add_option("--mtu", o->mtu, "mtu key");
    attach->add_option("--timeout-ms", o->timeout_ms, "wait for InitWait (libxl: 10000)");
    attach->callback([o] {
        if (const int rc = run_attach(*o)) throw CLI::RuntimeError(rc);
    });

    auto* detach = app.add_subcommand("detach", "xl network-detach: remove a vif of <client>");
    add_dir_option(*detach, o->dir);
    detach->add_option("client", o->client, "guest domain (name or domid)")->required();
    detach->add_option("nic", o->nic, "devid or MAC")->required();
    detach->add_flag("--force,-f", o->force, "do not wait for the backend (xl network-detach -f)");
    detach->add_option("--timeout-ms", o->timeout_ms, "wait for Closed and for the removal (libxl: 10000)");
    detach->callback([o] {
        if (const int rc = run_detach(*o)) throw CLI::RuntimeError(rc);
    });
}

} // namespace netbackd::xensim::cli
