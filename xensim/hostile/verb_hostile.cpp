// `xensim hostile <domain> --devid N --attack NAME`: a netfront connects cleanly to the live
// backend, then turns hostile and runs one attack; prints what the backend made of it (its state
// and `error` node), so a person or a script can judge it. --list names the attacks.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "backend/control/keys.hpp"
#include "backend/control/vif_id.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "xensim/cli/verbs.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/hostile/hostile_front.hpp"
#include "xensim/netfront/netfront.hpp"
#include "xensim/toolstack/toolstack.hpp"

namespace netbackd::xensim::cli {

namespace {

struct HostileCliOptions {
    std::string dir;
    std::string domain;
    std::uint32_t devid = 0;
    std::string attack;
    unsigned seconds = 2;
    std::uint64_t notifies = 0;
    bool list = false;
};

void run_hostile(const HostileCliOptions& o) {
    if (o.list) {
        for (const auto& a : hostile::attacks())
            std::printf("%-20s %s\n", std::string(a.name).c_str(), std::string(a.what).c_str());
        return;
    }
    const hostile::Attack* atk = hostile::find_attack(o.attack);
    if (atk == nullptr) throw std::runtime_error(fmt::format("no attack named '{}' (see --list)", o.attack));

    // dom0's view too: the verdict lives in the backend's home, which the guest may not read.
    auto dom0 = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
    const auto found = find_domain(*dom0, o.domain);
    if (!found) throw std::runtime_error(fmt::format("no domain named or numbered '{}'", o.domain));
    const platform::DomId domid = *found;
    auto client = HvClient::connect(o.dir, domid);
    SimEvents events(client);
    GuestMemory memory(client);
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, domid));

    NetfrontOptions nopt;
    nopt.self = domid;
    nopt.devid = o.devid;
    nopt.split_event_channels = false;
    Netfront nf(*store, events, memory, nopt);
    nf.start();
    if (!nf.wait_for_state(4, std::chrono::seconds(20)) || nf.queues().empty())
        throw std::runtime_error("the backend did not connect");

    const FrontQueue& q = nf.queues().front();
    hostile::HostileFront front(
        client, nf.backend_id(),
        hostile::HostileFront::Rings{q.tx_gfn, q.rx_gfn, q.tx_ref, q.rx_ref, q.tx_port}, events);
    hostile::AttackEnv env;
    if (const auto m = store->read(0, nf.frontend_path() + "/mac"))
        if (auto mac = control::parse_mac(*m)) env.own_mac = *mac;
    env.peer_mac = {0x02, 0, 0, 0, 0, 0x99};
    env.stranger = 0;
    env.duration = std::chrono::seconds(o.seconds);
    std::atomic<std::uint64_t> notified{0};
    env.storm_notifies = o.notifies;
    env.notified = &notified;
    std::printf("attack %s: %s\n", std::string(atk->name).c_str(), std::string(atk->what).c_str());
    std::fflush(stdout);
    atk->run(front, env);
    if (notified.load() != 0)
        std::printf("notifies sent %llu\n", static_cast<unsigned long long>(notified.load()));
    // The backend's verdict arrives through its control loop (faults are polled, not pushed).
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto state = dom0->read(0, nf.backend_path() + "/state");
    const auto error =
        dom0->read(0, control::error_path(nf.backend_id(), control::VifId{domid, o.devid}) + "/error");
    std::printf("backend state %s\nerror %s\n", state.value_or("(none)").c_str(),
                error.value_or("(none)").c_str());
    std::fflush(stdout);
    // Leave as a netfront would after its kernel died: the ring pages stay granted; the
    // toolstack's detach or a new netfront cleans up.
}

} // namespace

void install_hostile(CLI::App& app) {
    auto o = std::make_shared<HostileCliOptions>();
    auto* sub = app.add_subcommand("hostile", "connect a netfront, then run one hostile-guest attack");
    add_dir_option(*sub, o->dir);
    sub->add_option("domain", o->domain, "guest domain (name or id)");
    sub->add_option("--devid", o->devid, "vif device id");
    sub->add_option("--attack", o->attack, "attack name (see --list)");
    sub->add_option("--seconds", o->seconds, "how long thread attacks run (at least)");
    sub->add_option("--notifies", o->notifies, "evtchn_storm: go on until this many notifies were sent");
    sub->add_flag("--list", o->list, "list the attacks and exit");
    sub->callback([o] { run_hostile(*o); });
}

} // namespace netbackd::xensim::cli
