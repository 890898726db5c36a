// xensim's verbs. Each verb lives in its own file and adds one CLI11 subcommand; adding a verb
// is one file plus one line in the table in verbs.cpp.
#pragma once

#include <span>
#include <string>

#include <CLI/CLI.hpp>

namespace netbackd::xensim::cli {

struct Verb {
    // Adds the subcommand and its callback to the app.
    void (*install)(CLI::App& app);
};

std::span<const Verb> verbs();

// --dir, shared by every verb (defaults to $NETBACKD_SIM_DIR).
CLI::Option* add_dir_option(CLI::App& sub, std::string& dir);

// The verbs of this directory.
void install_up(CLI::App& app);
void install_down(CLI::App& app);
void install_domain(CLI::App& app);
void install_env(CLI::App& app);

// Verbs of the toolstack/ and netfront/ directories.
void install_attach(CLI::App& app);
void install_netfront(CLI::App& app);
void install_hostile(CLI::App& app);

} // namespace netbackd::xensim::cli
