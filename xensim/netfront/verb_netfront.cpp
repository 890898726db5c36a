// xensim netfront: a process acting as guest <domain>'s xen-netfront for one vif. It connects,
// stays connected, re-initialises on SIGUSR1 (a guest reboot), and closes the device on
// SIGTERM/SIGINT. Every state it reaches is printed on stdout, one line each.
// Data modes on top (see netfront_io.hpp): --tap bridges a tap device in a network namespace
// to the rings; --generate/--sink move fixed-size frames for benchmarks and print one summary
// line per second and a final JSON line. --latency-peer pairs this vif with another vif of the
// same guest and times one frame bouncing between them (latency.hpp).
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/fd.hpp"
#include "backend/platform/options.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "xensim/cli/verbs.hpp"
#include "xensim/netfront/latency.hpp"
#include "xensim/netfront/netfront.hpp"
#include "xensim/netfront/netfront_io.hpp"
#include "xensim/netfront/tap.hpp"
#include "xensim/netfront/traffic.hpp"
#include "xensim/toolstack/toolstack.hpp"

namespace netbackd::xensim::cli {
namespace {

struct NetfrontCliOptions {
    std::string dir;
    std::string domain;
    std::uint32_t devid = 0;
    unsigned queues = 1;
    bool no_split = false;
    std::string flavour = "linux";
    bool rss = false; // a control ring with a Toeplitz key and table, as the Windows drivers set
    std::vector<std::string> mcast; // multicast filtering on, subscribed to these (MCAST_ADD)
    std::optional<std::uint32_t> xdp_headroom;
    bool staging = false; // a control ring; the backend maps the buffer pools (staging grants)
    // TAP mode
    std::string tap;
    std::string netns;
    std::string mac;
    // generator/sink mode
    std::size_t generate = 0;
    std::uint64_t count = 0;
    double pps = 0;
    std::string dst_mac;
    double seconds = 0;
    bool sink = false;
    bool csum_offload = false;
    std::size_t batch = 64;
    bool poll = false;
    std::optional<std::uint32_t> latency_peer;
};

using Clock = std::chrono::steady_clock;

struct DataMode {
    NetfrontIo io;
    std::optional<TapDevice> tap;
    std::optional<TapBridge> bridge;
    std::optional<Traffic> traffic;
    Clock::time_point started = Clock::now();
    Clock::time_point next_report = Clock::now() + std::chrono::seconds(1);
    TrafficStats last{};

    DataMode(GuestMemory& memory, platform::Events& events) : io(memory, events) {}
};

ring::MacAddr need_mac(const std::string& text, const char* what) {
    const auto m = parse_mac(text);
    if (!m)
        throw std::runtime_error(fmt::format("{} '{}' is not a MAC address (aa:bb:cc:dd:ee:ff)", what, text));
    return *m;
}

void report(DataMode& d, bool final) {
    TrafficStats s = d.traffic->stats();
    s.seconds = std::chrono::duration<double>(Clock::now() - d.started).count();
    if (final) {
        std::printf("%s\n", to_json(s).c_str());
        const IoCounters& c = d.io.counters();
        std::printf("{\"mcast_ok\":%llu,\"mcast_errors\":%llu,\"rx_headroom_errors\":%llu}\n",
                    static_cast<unsigned long long>(c.mcast_ok),
                    static_cast<unsigned long long>(c.mcast_errors),
                    static_cast<unsigned long long>(c.rx_headroom_errors));
    } else {
        std::printf("t=%.0fs tx_pps=%llu rx_pps=%llu tx_pkts=%llu rx_pkts=%llu tx_errors=%llu\n", s.seconds,
                    static_cast<unsigned long long>(s.tx_pkts - d.last.tx_pkts),
                    static_cast<unsigned long long>(s.rx_pkts - d.last.rx_pkts),
                    static_cast<unsigned long long>(s.tx_pkts), static_cast<unsigned long long>(s.rx_pkts),
                    static_cast<unsigned long long>(s.tx_errors));
        d.last = s;
    }
    std::fflush(stdout);
}

// One round of the data mode; returns false when the generator is done (count or seconds).
bool data_round(DataMode& d, Netfront& nf, const NetfrontCliOptions& o, platform::Store& store, int sigfd) {
    if (d.io.follow(nf)) {
        if (d.io.attached() && o.xdp_headroom)
            d.io.set_rx_headroom(static_cast<std::uint16_t>(*o.xdp_headroom));
        if (d.io.attached() && !o.mcast.empty()) {
            // The subscriptions, as a Windows guest sends its multicast list: one MCAST_ADD each.
            const auto give_up = Clock::now() + std::chrono::seconds(30);
            for (const auto& text : o.mcast) {
                const ring::MacAddr mac = need_mac(text, "--mcast");
                while (d.io.send_mcast(0, true, mac) == SendResult::busy) {
                    if (Clock::now() > give_up) throw std::runtime_error("--mcast: the TX ring stays full");
                    d.io.flush(0);
                    d.io.reap_tx(0);
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
            }
            d.io.flush(0);
        }
        if (d.io.attached() && nf.has_ctrl_ring() && o.rss) {
            // What the Windows drivers do once connected; the table's entries name our queues.
            std::printf("rss: %s\n", nf.configure_hash() ? "configured" : "refused by the backend");
            std::fflush(stdout);
        }
        if (d.io.attached() && o.staging) {
            // Before any traffic: the pools are granted once, so they can be mapped once.
            std::size_t pages = 0;
            for (unsigned q = 0; q < d.io.queue_count(); ++q) pages += d.io.stage_buffers(nf, q);
            std::printf("staging: %zu buffer pages mapped by the backend%s\n", pages,
                        nf.has_ctrl_ring() ? "" : " (no control ring offered)");
            std::fflush(stdout);
        }
        if (d.traffic && d.io.attached()) {
            if (const auto why = d.traffic->on_attach()) throw std::runtime_error(*why);
        }
        if (d.bridge) d.bridge->reset();
    }
    if (d.traffic) {
        const auto now = Clock::now();
        if (now >= d.next_report) {
            report(d, false);
            d.next_report += std::chrono::seconds(1);
        }
        if ((d.traffic->finished() && !o.sink) ||
            (o.seconds > 0 && now - d.started >= std::chrono::duration<double>(o.seconds)))
            return false;
        d.traffic->run_for(std::min<Clock::duration>(d.next_report - now, std::chrono::milliseconds(100)));
        return true;
    }
    // TAP mode: the ring side first, so RX buffers go back before the tap fills the TX ring.
    d.io.drain_events();
    d.bridge->ring_to_tap();
    d.bridge->tap_to_ring();
    for (unsigned q = 0; q < d.io.queue_count(); ++q) d.io.reap_tx(q);
    bool work = false;
    for (unsigned q = 0; q < d.io.queue_count(); ++q) work = d.io.prepare_to_sleep(q) || work;
    if (work) return true;
    pollfd fds[4] = {{store.watch_fd(), POLLIN, 0},
                     {sigfd, POLLIN, 0},
                     {d.io.event_fd(), POLLIN, 0},
                     // Not connected or the ring is full: the tap's frames wait in its queue.
                     {d.bridge->tx_blocked() || !d.io.attached() ? -1 : d.tap->fd(), POLLIN, 0}};
    poll(fds, 4, 1000);
    return true;
}

NetfrontOptions netfront_options(const NetfrontCliOptions& o, platform::DomId domid, std::uint32_t devid) {
    NetfrontOptions nopt;
    nopt.self = domid;
    nopt.devid = devid;
    nopt.queues = o.queues;
    nopt.split_event_channels = !o.no_split;
    nopt.staging = o.staging;
    nopt.flavour = o.flavour == "unikraft"  ? NetfrontFlavour::unikraft
                   : o.flavour == "windows" ? NetfrontFlavour::windows
                   : o.flavour == "closes"  ? NetfrontFlavour::closes
                                            : NetfrontFlavour::linux_guest;
    nopt.multicast_control = !o.mcast.empty();
    nopt.xdp_headroom = o.xdp_headroom;
    if (o.rss) {
        // Microsoft's default RSS key; a table spreading its 64 entries over the queues.
        HashOptions h;
        h.key = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
        h.flags = ring::kHashTypesSupported;
        for (std::uint32_t i = 0; i < 64; ++i) h.mapping.push_back(i % std::max(1u, o.queues));
        nopt.hash = std::move(h);
    }
    return nopt;
}

ring::MacAddr vif_mac(platform::Store& store, platform::DomId domid, std::uint32_t devid) {
    const auto m = store.read(0, fmt::format("/local/domain/{}/device/vif/{}/mac", domid, devid));
    if (!m) throw std::runtime_error(fmt::format("vif {} of domain {} has no mac key", devid, domid));
    return need_mac(*m, "the vif's mac");
}

// The backend's mtu key, which Linux netfront applies to its interface (xennet_read_mtu); none
// or garbage: the interface keeps its default.
std::optional<unsigned> backend_mtu(platform::Store& store, const std::string& fe) {
    const auto be = store.read(0, fe + "/backend");
    if (!be) return std::nullopt;
    const auto text = store.read(0, *be + "/mtu");
    if (!text) return std::nullopt;
    unsigned mtu = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), mtu);
    if (ec != std::errc{} || end != text->data() + text->size() || mtu < 68 || mtu > 65535)
        return std::nullopt;
    return mtu;
}

bool stop_requested(int sigfd) {
    signalfd_siginfo si{};
    bool stop = false;
    while (read(sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        stop = stop || si.ssi_signo != SIGUSR1;
    return stop;
}

// Latency mode: two vifs of this guest, one frame bouncing between them for --seconds once
// both are connected; prints the LatencyStats JSON line.
void run_latency(const NetfrontCliOptions& o, platform::DomId domid, platform::Store& store,
                 platform::Events& events, GuestMemory& memory, int sigfd) {
    if (*o.latency_peer == o.devid)
        throw std::runtime_error("--latency-peer must name another vif of this guest");
    Netfront a(store, events, memory, netfront_options(o, domid, o.devid));
    Netfront b(store, events, memory, netfront_options(o, domid, *o.latency_peer));
    NetfrontIo ia(memory, events);
    NetfrontIo ib(memory, events);
    PingPong pp(ia, ib, vif_mac(store, domid, o.devid), vif_mac(store, domid, *o.latency_peer),
                o.generate != 0 ? o.generate : 64);
    a.start();
    b.start();
    std::optional<Clock::time_point> timing_since;
    for (;;) {
        pollfd fds[2] = {{store.watch_fd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
        poll(fds, 2, timing_since ? 0 : 100);
        if ((fds[1].revents & POLLIN) && stop_requested(sigfd)) break;
        if (fds[0].revents & POLLIN) {
            a.process_watches();
            b.process_watches();
        }
        const bool changed = ia.follow(a);
        if (ib.follow(b) || changed) pp.on_attach();
        if (!ia.attached() || !ib.attached()) continue;
        const auto now = Clock::now();
        if (!timing_since) {
            // The backend hands a vif to its worker a little after Connected: warm up first.
            pp.run_for(std::chrono::milliseconds(300));
            pp.reset();
            timing_since = Clock::now();
            std::printf("state 4 latency\n");
            std::fflush(stdout);
        }
        const auto left = std::chrono::duration<double>(o.seconds) - (now - *timing_since);
        if (left.count() <= 0) break;
        pp.run_for(std::min<Clock::duration>(std::chrono::duration_cast<Clock::duration>(left),
                                             std::chrono::milliseconds(100)));
    }
    std::printf("%s\n", to_json(pp.stats()).c_str());
    std::fflush(stdout);
    a.close();
    b.close();
}

void run_netfront(const NetfrontCliOptions& o) {
    platform::DomId domid = 0;
    {
        auto dom0 = platform::open_xs_store(platform::sim_store_socket(o.dir, 0));
        const auto d = find_domain(*dom0, o.domain);
        if (!d) throw std::runtime_error(fmt::format("no domain named or numbered '{}'", o.domain));
        domid = *d;
    }
    auto client = HvClient::connect(o.dir, domid);
    SimEvents events(client);
    GuestMemory memory(client);
    auto store = platform::open_xs_store(platform::sim_store_socket(o.dir, domid));

    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&set, s);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    platform::Fd sigfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (o.latency_peer) {
        run_latency(o, domid, *store, events, memory, sigfd.get());
        return;
    }

    Netfront nf(*store, events, memory, netfront_options(o, domid, o.devid));

    std::unique_ptr<DataMode> data;
    if (!o.tap.empty() || o.generate != 0 || o.sink) {
        data = std::make_unique<DataMode>(memory, events);
        const std::string fe = fmt::format("/local/domain/{}/device/vif/{}", domid, o.devid);
        std::optional<ring::MacAddr> vif_mac;
        if (!o.mac.empty())
            vif_mac = need_mac(o.mac, "--mac");
        else if (const auto m = store->read(0, fe + "/mac"))
            vif_mac = need_mac(*m, "the vif's mac");
        if (!o.tap.empty()) {
            if (!o.netns.empty()) ensure_netns(o.netns);
            data->tap.emplace(TapDevice::open(o.tap, o.netns, vif_mac, backend_mtu(*store, fe)));
            data->bridge.emplace(data->io, *data->tap);
        } else {
            TrafficOptions t;
            t.generate = o.generate != 0;
            t.frame.size = o.generate;
            t.frame.src = vif_mac.value_or(ring::MacAddr{0x02, 0, 0, 0, 0, 0x02});
            if (!o.dst_mac.empty()) t.frame.dst = need_mac(o.dst_mac, "--dst-mac");
            t.count = o.count;
            t.pps = o.pps;
            t.csum_offload = o.csum_offload;
            t.batch = o.batch;
            t.sink = o.sink;
            t.poll = o.poll;
            data->traffic.emplace(data->io, t);
        }
    }
    nf.start();

    int last = -1;
    for (;;) {
        if (nf.state() != last) {
            last = nf.state();
            std::printf("state %d queues %zu\n", last, nf.queues().size());
            std::fflush(stdout);
        }
        pollfd fds[2] = {{store->watch_fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
        if (data && !data_round(*data, nf, o, *store, sigfd.get())) {
            report(*data, true);
            nf.close();
            std::printf("state %d closed\n", nf.state());
            std::fflush(stdout);
            return;
        }
        poll(fds, 2, data ? 0 : 1000);
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo si{};
            while (read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                if (si.ssi_signo == SIGUSR1) {
                    nf.reinitialise();
                } else {
                    if (data && data->traffic) report(*data, true);
                    nf.close();
                    std::printf("state %d closed\n", nf.state());
                    std::fflush(stdout);
                    return;
                }
            }
        }
        // In the data modes this loop spins per batch: ask the store only when it has news.
        if (!data || (fds[0].revents & POLLIN)) nf.process_watches();
    }
}

} // namespace

void install_netfront(CLI::App& app) {
    auto o = std::make_shared<NetfrontCliOptions>();
    auto* nf = app.add_subcommand("netfront", "run guest <domain>'s netfront for one vif (talk_to_netback)");
    add_dir_option(*nf, o->dir);
    nf->add_option("domain", o->domain, "guest domain (name or domid)")->required();
    nf->add_option("--devid", o->devid, "vif number");
    nf->add_option("--queues", o->queues, "queues wanted (capped by the backend)")->check(CLI::Range(1, 64));
    nf->add_flag("--no-split", o->no_split, "one event channel per queue even if split ones are offered");
    nf->add_flag(
        "--rss", o->rss,
        "use a control ring (if offered): Toeplitz, Microsoft's default key, a table over the queues");
    nf->add_flag("--staging", o->staging,
                 "use a control ring (if offered) to have the backend map the buffer pools once "
                 "(staging grants: ADD_GREF_MAPPING), so it copies with memcpy, not grant copies");
    nf->add_option("--flavour", o->flavour,
                   "linux | unikraft | windows | closes (straight to Closed, never connects)")
        ->check(CLI::IsMember({"linux", "unikraft", "windows", "closes"}));
    nf->add_option("--mcast", o->mcast,
                   "multicast filtering: request-multicast-control=1 and one MCAST_ADD per MAC given "
                   "(repeatable)");
    nf->add_option("--xdp-headroom", o->xdp_headroom,
                   "xdp-headroom to ask for (data modes check every received buffer starts there)");
    nf->add_option("--tap", o->tap, "TAP mode: bridge a tap device of this name to the rings");
    nf->add_option("--netns", o->netns, "network namespace for the tap (made if missing)");
    nf->add_option("--mac", o->mac, "the tap's MAC (default: the vif's mac key)");
    nf->add_option("--generate", o->generate, "generator mode: send IPv4/UDP frames of SIZE bytes")
        ->check(CLI::Range(std::size_t{kUdpFrameHeaders}, std::size_t{65535}));
    nf->add_option("--count", o->count, "frames to send (default: no limit)");
    nf->add_option(
          "--pps", o->pps,
          "frames per second the generator sends, evenly spaced (default: as fast as the ring takes them)")
        ->check(CLI::PositiveNumber);
    nf->add_option("--dst-mac", o->dst_mac, "destination MAC of generated frames");
    nf->add_option("--seconds", o->seconds, "stop after this long (default: count or signal)");
    nf->add_flag("--sink", o->sink, "post RX buffers and count what comes back");
    nf->add_flag("--csum-offload", o->csum_offload, "generated frames leave the UDP checksum to the backend");
    nf->add_option("--batch", o->batch, "frames per push")->check(CLI::Range(1, 256));
    nf->add_flag("--poll", o->poll,
                 "generator/sink: busy-poll the rings and ask for no events (a polling driver)");
    nf->add_option("--latency-peer", o->latency_peer,
                   "latency mode: bounce one frame (--generate SIZE, default 64) between this vif and "
                   "vif DEVID of the same guest for --seconds; prints p50/p99/p999")
        ->excludes("--tap")
        ->excludes("--sink");
    nf->callback([o] {
        if (o->latency_peer && o->seconds <= 0)
            throw CLI::ValidationError("--latency-peer", "needs --seconds");
        if (!o->tap.empty() && (o->generate != 0 || o->sink))
            throw CLI::ValidationError("--tap", "TAP mode and generator/sink mode exclude each other");
        run_netfront(*o);
    });
}

} // namespace netbackd::xensim::cli
