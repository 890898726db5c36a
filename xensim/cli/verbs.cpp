#include "xensim/cli/verbs.hpp"

namespace netbackd::xensim::cli {

namespace {

constexpr Verb kVerbs[] = {
    {install_up},       {install_down},   {install_domain},
    {install_env},      {install_attach}, // toolstack/verb_attach.cpp: attach, detach
    {install_netfront},                   // netfront/verb_netfront.cpp
    {install_hostile},                    // hostile/verb_hostile.cpp
};

} // namespace

std::span<const Verb> verbs() { return kVerbs; }

CLI::Option* add_dir_option(CLI::App& sub, std::string& dir) {
    return sub.add_option("--dir", dir, "simulated host directory (sockets, pid file, log)")
        ->envname("NETBACKD_SIM_DIR")
        ->required();
}

} // namespace netbackd::xensim::cli
