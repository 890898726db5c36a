// xensim netfront: a process acting as guest <domain>'s xen-netfront for one vif. It connects,
// stays connected, re-initialises on SIGUSR1 (a guest reboot), and closes the device on
// SIGTERM/SIGINT. Every state it reaches is printed on stdout, one line each.
#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/fd.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "backend/xensim/cli/verbs.hpp"
#include "backend/xensim/hypervisor/sim_events.hpp"
#include "backend/xensim/toolstack/toolstack.hpp"
#include "netfront.hpp"

namespace netbackd::xensim::cli {
namespace {

struct NetfrontCliOptions {
    std::string dir;
    std::string domain;
    std::uint32_t devid = 0;
    unsigned queues = 1;
    bool no_split = false;
    std::string flavour = "linux";
};

void run_netfront(const NetfrontCliOptions& o)
{
    platform::DomId domid = 0;
    {
        auto dom0 = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
        const auto d = find_domain(*dom0, o.domain);
        if (!d)
            throw std::runtime_error(fmt::format("no domain named or numbered '{}'", o.domain));
        domid = *d;
    }
    auto client = HvClient::connect(o.dir, domid);
    SimEvents events(client);
    GuestMemory memory(client);
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, domid));

    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1})
        sigaddset(&set, s);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    platform::Fd sigfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));

    NetfrontOptions nopt;
    nopt.self = domid;
    nopt.devid = o.devid;
    nopt.queues = o.queues;
    nopt.split_event_channels = !o.no_split;
    nopt.flavour = o.flavour == "unikraft" ? NetfrontFlavour::unikraft
                   : o.flavour == "windows" ? NetfrontFlavour::windows
                                            : NetfrontFlavour::linux_guest;
    Netfront nf(*store, events, memory, nopt);
    nf.start();

    int last = -1;
    for (;;) {
        if (nf.state() != last) {
            last = nf.state();
            std::printf("state %d queues %zu\n", last, nf.queues().size());
            std::fflush(stdout);
        }
        pollfd fds[2] = {{store->watch_fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
        poll(fds, 2, 1000);
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si{};
            while (read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (si.ssi_signo == SIGUSR1) {
                    nf.reinitialise();
                } else {
                    nf.close();
                    std::printf("state %d closed\n", nf.state());
                    std::fflush(stdout);
                    return;
                }
            }
        }
        nf.process_watches();
    }
}

} // namespace

void install_netfront(CLI::App& app)
{
    auto o = std::make_shared<NetfrontCliOptions>();
    auto* nf = app.add_subcommand("netfront", "run guest <domain>'s netfront for one vif (talk_to_netback)");
    add_dir_option(*nf, o->dir);
    nf->add_option("domain", o->domain, "guest domain (name or domid)")->required();
    nf->add_option("--devid", o->devid, "vif number");
    nf->add_option("--queues", o->queues, "queues wanted (capped by the backend)")->check(CLI::Range(1, 64));
    nf->add_flag("--no-split", o->no_split, "one event channel per queue even if split ones are offered");
    nf->add_option("--flavour", o->flavour, "linux | unikraft | windows")
        ->check(CLI::IsMember({"linux", "unikraft", "windows"}));
    nf->callback([o] { run_netfront(*o); });
}

} // namespace netbackd::xensim::cli
