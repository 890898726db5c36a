// xensim-xenstored: the simulated xenstored as a standalone process, for manual use.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "xensim/xenstored/xenstored.hpp"

namespace {

netbackd::xensim::Xenstored* g_daemon = nullptr;

extern "C" void on_signal(int) {
    if (g_daemon) g_daemon->stop();
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"Simulated xenstored: the xenstore wire protocol on per-domain unix sockets"};
    std::string dir;
    std::vector<unsigned> domains;
    app.add_option("--dir", dir, "Directory for the sockets (DIR/xenstored.sock is dom0's)")->required();
    app.add_option("--domain", domains,
                   "Domain to create and introduce at start (repeatable); its socket is "
                   "DIR/domain/<id>/xenstored.sock")
        ->check(CLI::Range(1, 0x7fef));
    CLI11_PARSE(app, argc, argv);

    try {
        netbackd::xensim::Xenstored daemon(dir);
        for (unsigned id : domains) {
            auto domid = static_cast<netbackd::platform::DomId>(id);
            daemon.create_domain_home(domid, "domain-" + std::to_string(id));
            daemon.introduce(domid);
        }
        g_daemon = &daemon;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::printf("xensim-xenstored: serving %s\n",
                    netbackd::xensim::Xenstored::socket_path(dir, 0).c_str());
        std::fflush(stdout);
        daemon.run();
        g_daemon = nullptr;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xensim-xenstored: %s\n", e.what());
        return 1;
    }
    return 0;
}
