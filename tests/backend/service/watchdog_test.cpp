// The systemd watchdog: WATCHDOG=1 reaches NOTIFY_SOCKET while the workers iterate (idle ones
// too, woken by the check), and stops while a worker is wedged inside a grant copy.
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "backend/platform/fd.hpp"
#include "backend/service/watchdog.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;
using netbackd::service::Watchdog;

namespace {

constexpr platform::DomId kA = 31;
constexpr platform::DomId kB = 32;

// Once armed, the next grant copy (on any worker) blocks until released: a worker stuck in
// a hypercall, as far as the watchdog can tell.
struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool armed = false;
    bool entered = false;
    bool released = false;

    void pass() {
        std::unique_lock lock(m);
        if (!armed || released) return;
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
    }
    bool wait_entered(std::chrono::milliseconds limit) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, limit, [&] { return entered; });
    }
    void arm() {
        const std::lock_guard lock(m);
        armed = true;
    }
    void release() {
        const std::lock_guard lock(m);
        released = true;
        cv.notify_all();
    }
};

class GatedGrants final : public platform::Grants {
public:
    GatedGrants(std::unique_ptr<platform::Grants> inner, Gate& gate)
        : inner_(std::move(inner)), gate_(gate) {}
    std::unique_ptr<platform::GrantMapping> map(platform::DomId d, platform::GrantRef r, bool w) override {
        return inner_->map(d, r, w);
    }
    void copy(std::span<platform::CopySegment> segs) override {
        gate_.pass();
        inner_->copy(segs);
    }

private:
    std::unique_ptr<platform::Grants> inner_;
    Gate& gate_;
};

// The test's end of NOTIFY_SOCKET.
struct NotifySocket {
    NotifySocket() {
        char tmpl[] = "/tmp/nb-watchdog-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        path = dir + "/notify";
        fd = platform::Fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        REQUIRE(fd.get() >= 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        path.copy(sa.sun_path, sizeof sa.sun_path - 1);
        REQUIRE(bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
    }
    ~NotifySocket() {
        unlink(path.c_str());
        rmdir(dir.c_str());
    }
    // Every WATCHDOG=1 received so far (the socket never blocks).
    int take_pings() {
        int n = 0;
        char buf[512];
        for (;;) {
            const ssize_t got = recv(fd.get(), buf, sizeof buf, 0);
            if (got < 0) return n;
            if (std::string_view(buf, static_cast<std::size_t>(got)).find("WATCHDOG=1") !=
                std::string_view::npos)
                ++n;
        }
    }
    std::string dir;
    std::string path;
    platform::Fd fd;
};

// Ticks the watchdog on the real clock until `done`; a deadlock guard, not a speed check.
template <class F>
bool tick_until(Watchdog& wd, F&& done) {
    const auto limit = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < limit) {
        wd.tick(std::chrono::steady_clock::now());
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

// Waits until worker w iterated past `beat`; a deadlock guard, not a speed check.
bool tick_until_beat(DataPlane& dp, std::size_t w, std::uint64_t beat) {
    const auto limit = std::chrono::steady_clock::now() + 60s;
    while (dp.worker_heartbeat(w) == beat && std::chrono::steady_clock::now() < limit)
        std::this_thread::sleep_for(1ms);
    return dp.worker_heartbeat(w) != beat;
}

} // namespace

TEST_CASE("the watchdog interval is half of WATCHDOG_USEC, and none without it", "[service][watchdog]") {
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    CHECK_FALSE(Watchdog::interval_from_environment().has_value());
    setenv("WATCHDOG_USEC", "30000000", 1);
    CHECK(Watchdog::interval_from_environment() == std::chrono::microseconds(15'000'000));
    // Meant for another process (systemd sets WATCHDOG_PID to the main pid).
    setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
    CHECK_FALSE(Watchdog::interval_from_environment().has_value());
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
}

TEST_CASE("the watchdog is pinged while the workers iterate and not while one is wedged",
          "[service][watchdog]") {
    NotifySocket sock;
    setenv("NOTIFY_SOCKET", sock.path.c_str(), 1);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "200000", 1);
    const auto interval = Watchdog::interval_from_environment();
    REQUIRE(interval == std::chrono::microseconds(100'000));

    Gate gate;
    World world({kA, kB});
    pmd::Mempool pool(pmd::test::small_pool(4095));
    pmd::Mempool indirect(pmd::test::small_pool(2047, 0));
    DataPlaneConfig c;
    c.pool = &pool;
    c.indirect_pool = &indirect;
    c.workers = 2;
    c.worker.idle_before_sleep = 100us;
    // No uplink: idle workers sleep without any timer, so only the watchdog's wake-up makes
    // them iterate.
    auto grants = [&, inner = world.worker_grants()] { return std::make_unique<GatedGrants>(inner(), gate); };
    auto dp = std::make_unique<DataPlane>(c, grants, world.events);
    Netfront a(world, kA);
    Netfront b(world, kB);
    dp->attach(a.handle(mac(0xa)));
    dp->attach(b.handle(mac(0xb)));
    // Also when a check fails: the wedged worker is let go and the vifs leave before their
    // netfronts do.
    struct Cleanup {
        Gate& g;
        DataPlane& dp;
        ~Cleanup() {
            g.release();
            for (auto id : {kA, kB}) (void)dp.detach({id, 0});
        }
    } cleanup{gate, *dp};
    const auto wa = dp->worker_of({kA, 0});
    REQUIRE(wa.has_value());
    REQUIRE(dp->worker_of({kB, 0}) != wa);

    Watchdog wd(*dp, *interval);
    int pings = 0;
    REQUIRE(tick_until(wd, [&] {
        pings += sock.take_pings();
        return pings >= 5;
    }));
    CHECK(static_cast<std::uint64_t>(pings) <= wd.pings());

    // Worker wa blocks in the grant copy of a's TX burst.
    gate.arm();
    b.post_rx_buffers(4);
    a.send(frame(mac(0xb), mac(0xa), 200));
    a.push_tx();
    REQUIRE(gate.wait_entered(60s));
    // (Reading the socket as we go: sd_notify blocks on a full one.)
    REQUIRE(tick_until(wd, [&] {
        (void)sock.take_pings();
        return !wd.wedged().empty();
    }));
    CHECK(wd.wedged() == std::vector<std::size_t>{*wa});

    // From here on no check pings: the socket holds only what came before.
    (void)sock.take_pings();
    const auto sent = wd.pings();
    const auto checks = wd.checks();
    // Checks on a clock of our own, each once the healthy worker answered the previous one's
    // wake-up: only the wedged worker can be found stuck.
    const std::size_t healthy = 1 - *wa;
    auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) {
        t += *interval;
        wd.tick(t);
        REQUIRE(tick_until_beat(*dp, healthy, wd.seen(healthy)));
    }
    CHECK(wd.checks() == checks + 5);
    CHECK(wd.pings() == sent);
    CHECK(sock.take_pings() == 0);
    CHECK(wd.wedged() == std::vector<std::size_t>{*wa});

    // Released, the worker finishes its burst and the pings resume.
    gate.release();
    pings = 0;
    REQUIRE(tick_until(wd, [&] {
        pings += sock.take_pings();
        return pings >= 1 && wd.wedged().empty();
    }));
    std::size_t got = 0;
    CHECK(tick_until(wd, [&] {
        got += b.receive().size();
        return got == 1;
    }));
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}
