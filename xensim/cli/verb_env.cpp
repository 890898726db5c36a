// xensim env <domid>: the environment a process needs to run "in" a simulated domain: the
// platform options netbackd processes read, and XENSTORED_PATH for libxenstore / xenstore-*.
// Use: eval "$(xensim env 3 --dir /tmp/host)".
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/sim/client.hpp"
#include "xensim/cli/verbs.hpp"

namespace netbackd::xensim::cli {

namespace {

struct EnvOptions {
    std::string dir;
    unsigned domid = 0;
};

void run_env(const EnvOptions& o) {
    std::string dir = std::filesystem::absolute(o.dir).lexically_normal().string();
    auto admin = HvClient::connect_admin(dir);
    bool known = false;
    for (const auto& d : admin->list_domains()) known = known || d.domid == o.domid;
    if (!known) throw std::runtime_error(fmt::format("no domain {} on the host in {}", o.domid, dir));
    std::printf("export NETBACKD_PLATFORM=sim\n");
    std::printf("export NETBACKD_SIM_DIR='%s'\n", dir.c_str());
    std::printf("export NETBACKD_SIM_DOMID=%u\n", o.domid);
    std::printf("export XENSTORED_PATH='%s'\n",
                platform::sim_store_socket(dir, static_cast<platform::DomId>(o.domid)).c_str());
}

} // namespace

void install_env(CLI::App& app) {
    auto o = std::make_shared<EnvOptions>();
    auto* sub = app.add_subcommand("env", "print shell exports for running a process in a domain");
    add_dir_option(*sub, o->dir);
    sub->add_option("domid", o->domid, "domain id")->required();
    sub->callback([o] { run_env(*o); });
}

} // namespace netbackd::xensim::cli
