// xensim: build and tear down simulated Xen worlds (host, domains, devices) from scripts.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "netbackd_version.hpp"
#include "xensim/cli/verbs.hpp"

int main(int argc, char** argv) {
    CLI::App app{"xensim: a simulated Xen host (hypervisor + xenstored) for netbackd"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("xensim (netbackd) ") + netbackd::version::kFull);
    for (const auto& verb : netbackd::xensim::cli::verbs()) verb.install(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xensim: %s\n", e.what());
        return 1;
    }
    return 0;
}
