// xensim domain create|destroy|list: simulated domains, as the toolstack makes them: the
// hypervisor domain (memory, grant table, event channels) plus its xenstore home
// /local/domain/<id> and its xenstored connection (INTRODUCE / RELEASE).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/sim/client.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "xensim/cli/verbs.hpp"
#include "xensim/toolstack/toolstack.hpp"

namespace netbackd::xensim::cli {

namespace {

struct DomainOptions {
    std::string dir;
    std::string name;
    unsigned domid = 0;
    unsigned memory_mib = 64;
    unsigned max_event_channels = 0; // 0: libxl's default
    std::string target;              // name or domid
};

void run_create(const DomainOptions& o) {
    if (o.domid == 0 || o.domid >= 0x7ff0)
        throw std::runtime_error(fmt::format("domid {} is not a guest domid", o.domid));
    auto admin = HvClient::connect_admin(o.dir);
    admin->create_domain(static_cast<DomId>(o.domid), o.name, std::uint64_t{o.memory_mib} << 20,
                         o.max_event_channels);
}

DomId resolve(HvClient& admin, const std::string& target) {
    auto domains = admin.list_domains();
    for (const auto& d : domains)
        if (d.name == target) return d.domid;
    if (!target.empty() && target.find_first_not_of("0123456789") == std::string::npos) {
        unsigned long id = std::stoul(target);
        for (const auto& d : domains)
            if (d.domid == id) return d.domid;
    }
    throw std::runtime_error(fmt::format("no domain named or numbered '{}'", target));
}

void run_destroy(const DomainOptions& o) {
    auto admin = HvClient::connect_admin(o.dir);
    DomId domid = resolve(*admin, o.target);
    if (domid == 0) throw std::runtime_error("Domain-0 cannot be destroyed");
    // As libxl's destroy: the devices first (backends told online=0 and state 5, frontends
    // removed, backends waited for), then the xenstore home, then the domain itself.
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
    for (const auto& w : nic_destroy_all(*store, domid)) std::fprintf(stderr, "%s\n", w.c_str());
    store->rm(0, fmt::format("/local/domain/{}", domid));
    admin->destroy_domain(domid);
}

void run_list(const DomainOptions& o) {
    auto admin = HvClient::connect_admin(o.dir);
    std::printf("%-6s %-24s %s\n", "ID", "NAME", "MEM(MiB)");
    for (const auto& d : admin->list_domains())
        std::printf("%-6u %-24s %llu\n", unsigned{d.domid}, d.name.c_str(),
                    static_cast<unsigned long long>(d.bytes >> 20));
}

} // namespace

void install_domain(CLI::App& app) {
    auto o = std::make_shared<DomainOptions>();
    auto* domain = app.add_subcommand("domain", "create, destroy or list simulated domains");
    domain->require_subcommand(1);

    auto* create = domain->add_subcommand("create", "create a domain with its xenstore home");
    add_dir_option(*create, o->dir);
    create->add_option("name", o->name, "domain name (/local/domain/<id>/name)")->required();
    create->add_option("--domid", o->domid, "domain id (1..32751)")->required();
    create->add_option("--memory", o->memory_mib, "guest memory in MiB (sparse)")->check(CLI::Range(1, 1024));
    create
        ->add_option("--max-event-channels", o->max_event_channels,
                     "highest event-channel port the domain may bind, as xl.cfg's max_event_channels "
                     "(default 1023; a driver domain needs two per vif with split channels)")
        ->check(CLI::Range(1, 4095));
    create->callback([o] { run_create(*o); });

    auto* destroy = domain->add_subcommand(
        "destroy", "destroy a domain as xl destroy does: its vifs (online=0, state 5, removal), xenstore "
                   "home, grants, channels");
    add_dir_option(*destroy, o->dir);
    destroy->add_option("domain", o->target, "name or domid")->required();
    destroy->callback([o] { run_destroy(*o); });

    auto* list = domain->add_subcommand("list", "list domains");
    add_dir_option(*list, o->dir);
    list->callback([o] { run_list(*o); });
}

} // namespace netbackd::xensim::cli
