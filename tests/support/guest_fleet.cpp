#include "tests/support/guest_fleet.hpp"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include <poll.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "xensim/toolstack/toolstack.hpp"

namespace netbackd::testing {

// Byte 3 holds the domid's high byte (0 below 256), so hosts of 1,000+ guests keep MACs unique.
ring::MacAddr guest_mac(platform::DomId domid, std::uint32_t devid) {
    return {0x00,
            0x16,
            0x3e,
            static_cast<std::uint8_t>((domid >> 8) & 0xff),
            static_cast<std::uint8_t>(domid & 0xff),
            static_cast<std::uint8_t>(devid & 0xff)};
}

std::string guest_mac_text(platform::DomId domid, std::uint32_t devid) {
    return fmt::format("00:16:3e:{:02x}:{:02x}:{:02x}", (domid >> 8) & 0xff, domid & 0xff, devid & 0xff);
}

void attach_vif(SimWorld& world, platform::DomId domid, std::uint32_t devid) {
    xensim::NicSpec s;
    s.frontend = domid;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = guest_mac_text(domid, devid);
    xensim::nic_add(world.dom0(), s);
}

FleetGuest& GuestFleet::add(platform::DomId domid, std::uint32_t devid, std::optional<ring::MacAddr> dst,
                            std::size_t frame_size) {
    attach_vif(world_, domid, devid);
    FleetGuest& ref = join(domid, devid, dst, frame_size);
    REQUIRE(world_.wait_state(SimWorld::be(domid, devid) + "/state", "4"));
    follow(ref);
    REQUIRE(ref.connected());
    return ref;
}

bool GuestFleet::settle(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    // Only guests whose store has watch events are looked at (a store round trip each): with
    // hundreds of guests, polling them all would keep xenstored busy answering the test.
    std::vector<FleetGuest*> waiting;
    for (auto& g : guests_) waiting.push_back(g.get());
    for (auto* g : waiting) follow(*g);
    for (;;) {
        std::erase_if(waiting, [](const FleetGuest* g) { return g->connected(); });
        if (waiting.empty()) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::vector<pollfd> fds;
        for (const auto* g : waiting) fds.push_back(pollfd{g->guest->store->watch_fd(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), 200) == 0) {
            for (auto* g : waiting) follow(*g); // a quiet spell: look at everyone once
            continue;
        }
        for (std::size_t i = 0; i < fds.size(); ++i)
            if (fds[i].revents != 0) follow(*waiting[i]);
    }
}

FleetGuest& GuestFleet::join(platform::DomId domid, std::uint32_t devid, std::optional<ring::MacAddr> dst,
                             std::size_t frame_size) {
    auto g = std::make_unique<FleetGuest>();
    g->domid = domid;
    g->devid = devid;
    g->guest = &world_.guest(domid);
    xensim::TrafficOptions o;
    o.generate = dst.has_value();
    o.sink = true;
    o.frame.size = frame_size;
    o.frame.src = guest_mac(domid, devid);
    if (dst) o.frame.dst = *dst;
    o.batch = 32;
    g->options = o;
    g->io = std::make_unique<xensim::NetfrontIo>(*g->guest->memory, *g->guest->events);
    g->traffic = std::make_unique<xensim::Traffic>(*g->io, o);
    g->guest->start_netfront(devid, 1, true);
    guests_.push_back(std::move(g));
    return *guests_.back();
}

void GuestFleet::restart(FleetGuest& g) {
    g.rx_before = g.rx_pkts();
    g.tx_before = g.tx_pkts();
    // The old data half lets go of the old rings first, as netfront's release hook would.
    if (g.io) g.io->detach();
    g.traffic.reset();
    g.io = std::make_unique<xensim::NetfrontIo>(*g.guest->memory, *g.guest->events);
    g.traffic = std::make_unique<xensim::Traffic>(*g.io, g.options);
    g.guest->start_netfront(g.devid, 1, true);
}

void GuestFleet::drop(FleetGuest& g) {
    g.rx_before = g.rx_pkts();
    g.tx_before = g.tx_pkts();
    g.traffic.reset();
    g.io.reset();
    g.guest = nullptr;
}

void GuestFleet::follow(FleetGuest& g) {
    if (!g.guest || !g.guest->netfront || !g.io) return;
    g.guest->netfront->process_watches();
    if (g.io->follow(*g.guest->netfront) && g.io->attached()) (void)g.traffic->on_attach();
}

void GuestFleet::pump(std::chrono::milliseconds span) {
    const auto end = std::chrono::steady_clock::now() + span;
    do {
        const auto now = std::chrono::steady_clock::now();
        // Watches are slow (a store round trip each): every 20 ms is plenty to follow the backend.
        const bool watch = now >= next_watch_;
        if (watch) next_watch_ = now + std::chrono::milliseconds(20);
        for (auto& g : guests_) {
            if (!g->guest || !g->io) continue;
            if (watch) follow(*g);
            if (g->io->attached()) g->traffic->run_for(std::chrono::microseconds(50));
        }
    } while (std::chrono::steady_clock::now() < end);
}

std::uint64_t GuestFleet::pump_until_received(const std::vector<const FleetGuest*>& receivers,
                                              std::uint64_t frames, std::chrono::seconds cap) {
    std::vector<std::uint64_t> start;
    for (const FleetGuest* r : receivers) start.push_back(r->rx_pkts());
    auto fewest = [&] {
        std::uint64_t n = UINT64_MAX;
        for (std::size_t i = 0; i < receivers.size(); ++i)
            n = std::min(n, receivers[i]->rx_pkts() - start[i]);
        return receivers.empty() ? 0 : n;
    };
    const auto end = std::chrono::steady_clock::now() + cap;
    while (fewest() < frames && std::chrono::steady_clock::now() < end) pump(std::chrono::milliseconds(10));
    return fewest();
}

double GuestFleet::rate(const FleetGuest& receiver, std::chrono::milliseconds window) {
    const auto before = receiver.rx_pkts();
    const auto t0 = std::chrono::steady_clock::now();
    pump(window);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(receiver.rx_pkts() - before) / s;
}

std::chrono::nanoseconds process_cpu_time(pid_t pid, bool except_main) {
    std::chrono::nanoseconds total{0};
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        if (except_main && task.path().filename() == std::to_string(pid)) continue;
        std::ifstream in(task.path() / "schedstat");
        std::int64_t ns = 0;
        if (in >> ns) total += std::chrono::nanoseconds(ns);
    }
    return total;
}

std::chrono::nanoseconds this_thread_cpu_time() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

Throughput GuestFleet::measure(const FleetGuest& receiver, std::chrono::milliseconds window) {
    return measure(std::vector<const FleetGuest*>{&receiver}, window);
}

Throughput GuestFleet::measure(const std::vector<const FleetGuest*>& receivers,
                               std::chrono::milliseconds window) {
    auto received = [&] {
        std::uint64_t n = 0;
        for (const auto* r : receivers) n += r->rx_pkts();
        return n;
    };
    const auto before = received();
    const pid_t nb = backend_pid_ > 0 ? backend_pid_ : world_.netbackd_pid();
    const auto cpu0 = this_thread_cpu_time() + process_cpu_time(nb, true);
    const auto t0 = std::chrono::steady_clock::now();
    pump(window);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu =
        std::chrono::duration<double>(this_thread_cpu_time() + process_cpu_time(nb, true) - cpu0).count();
    const auto n = static_cast<double>(received() - before);
    return Throughput{n / s, cpu > 0 ? n / cpu : 0};
}

Throughput GuestFleet::best(const FleetGuest& receiver, std::chrono::milliseconds window, int n) {
    return best(std::vector<const FleetGuest*>{&receiver}, window, n);
}

Throughput GuestFleet::best(const std::vector<const FleetGuest*>& receivers, std::chrono::milliseconds window,
                            int n) {
    Throughput b;
    for (int i = 0; i < n; ++i) {
        const Throughput t = measure(receivers, window);
        b.wall = std::max(b.wall, t.wall);
        b.per_cpu = std::max(b.per_cpu, t.per_cpu);
    }
    return b;
}

void GuestFleet::receive_only(std::chrono::milliseconds span) {
    const auto end = std::chrono::steady_clock::now() + span;
    do {
        for (auto& g : guests_) {
            if (!g->guest || !g->io || !g->io->attached()) continue;
            auto& io = *g->io;
            io.drain_events();
            for (unsigned q = 0; q < io.queue_count(); ++q) {
                io.reap_tx(q);
                xensim::RxFrame f;
                bool got = false;
                while (io.next_rx(q, f)) got = true;
                if (got) io.refill(q);
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    } while (std::chrono::steady_clock::now() < end);
}

double GuestFleet::best_rate(const FleetGuest& receiver, std::chrono::milliseconds window, int n) {
    double best = 0;
    for (int i = 0; i < n; ++i) best = std::max(best, rate(receiver, window));
    return best;
}

} // namespace netbackd::testing
