// End to end on the simulated platform with real processes: xensim's host, the netbackd
// binary in driver domain 1, the toolstack's attach/detach, and Linux-like netfronts.
#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <csignal>
#include <fstream>
#include <iterator>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

xensim::NicSpec nic(platform::DomId fe, std::uint32_t devid) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = fmt::format("00:16:3e:00:{:02x}:{:02x}", fe & 0xff, devid & 0xff);
    return s;
}

// attach + netfront, until both ends are Connected.
void connect(SimWorld& w, platform::DomId fe, std::uint32_t devid, unsigned queues = 1) {
    xensim::nic_add(w.dom0(), nic(fe, devid));
    w.guest(fe).start_netfront(devid, queues);
    REQUIRE(w.wait_state(W::be(fe, devid) + "/state", "4"));
    REQUIRE(w.guest(fe).netfront->state() == 4);
}

} // namespace

TEST_CASE("e2e: attach connects, with hotplug-status written by netbackd", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();

    const auto t0 = std::chrono::steady_clock::now();
    const auto devid = xensim::nic_add(w.dom0(), nic(7, 0)); // returns at InitWait, as libxl does
    CHECK(devid == 0);
    w.guest(7).start_netfront(0, 2);
    REQUIRE(w.wait_state(W::be(7, 0) + "/state", "4"));
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    WARN("attach -> Connected took " << ms.count() << " ms");
    CHECK(w.dom0().read(0, W::be(7, 0) + "/hotplug-status") == "connected");
    CHECK(w.dom0().read(0, W::be(7, 0) + "/multi-queue-max-queues") == "4"); // [vif] max_queues default
    CHECK(w.guest(7).netfront->queues().size() == 2);
    CHECK(w.driver_ports_in_use() == 4); // two queues, split channels
    CHECK(w.netbackd_log().find("vif 7.0: backend state 4 (Connected)") != std::string::npos);
}

TEST_CASE("e2e: detach goes to Closed and removes the backend dir", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    connect(w, 7, 0);
    xensim::nic_remove(w.dom0(), 7, 0); // throws with libxl's message unless 6 and removal happen
    CHECK_FALSE(w.dom0().read(0, W::be(7, 0) + "/state"));
    CHECK_FALSE(w.dom0().read(0, W::fe(7, 0) + "/state"));
    CHECK_FALSE(w.dom0().directory(0, "/libxl/7/device/vif/0"));
    CHECK(w.driver_ports_in_use() == 0);
    w.guest(7).netfront->process_watches();
    CHECK(w.guest(7).netfront->leaked_grants() == 0);
}

TEST_CASE("e2e: attach fails like xl when no backend answers", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7); // no netbackd running
    const std::string log = w.dir() + "/attach.log";
    const int rc = run({XENSIM_BINARY, "attach", "web1", "--backend", "nicdom", "--mac", "00:16:3e:00:00:01",
                        "--timeout-ms", "300", "--dir", w.host_dir()},
                       log);
    CHECK(rc == 1);
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find("unable to add device with path /local/domain/1/backend/vif/7/0") != std::string::npos);
    CHECK(text.find("libxl_device_nic_add failed.") != std::string::npos);
}

TEST_CASE("e2e: the xensim attach/detach verbs drive netbackd", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    const std::string log = w.dir() + "/cli.log";
    REQUIRE(run({XENSIM_BINARY, "attach", "web1", "--backend", "nicdom", "--mac", "00:16:3e:00:00:01",
                 "--dir", w.host_dir()},
                log) == 0);
    CHECK(w.wait_state(W::be(7, 0) + "/state", "2"));
    REQUIRE(run({XENSIM_BINARY, "detach", "web1", "00:16:3e:00:00:01", "--dir", w.host_dir()}, log) == 0);
    CHECK_FALSE(w.dom0().read(0, W::be(7, 0) + "/state"));
}

TEST_CASE("e2e: frontend reboot reconnects", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    connect(w, 7, 0);
    auto& nf = *w.guest(7).netfront;
    nf.reinitialise();
    REQUIRE(w.wait_node(W::be(7, 0) + "/state", [&](auto&&) { return nf.state() == 4; }));
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    CHECK(w.driver_ports_in_use() == 2);
    CHECK(w.netbackd_log().find("vif 7.0: frontend state 1 (Initialising)") != std::string::npos);
}

TEST_CASE("e2e: Windows-style close before connect, then connect", "[control][e2e]") {
    SimWorld w;
    w.create_domain("win", 9);
    w.start_netbackd();
    xensim::nic_add(w.dom0(), nic(9, 0));
    auto& store = *w.guest(9).store;
    for (auto [fe, be] : {std::pair{"5", "5"}, std::pair{"6", "6"}, std::pair{"1", "2"}}) {
        store.write(0, W::fe(9, 0) + "/state", fe);
        INFO("frontend " << fe);

        CHECK(w.wait_state(W::be(9, 0) + "/state", be));
    }
    w.guest(9).start_netfront(0);
    CHECK(w.wait_state(W::be(9, 0) + "/state", "4"));
}

TEST_CASE("e2e: netbackd restarted reconnects connected vifs without the guest noticing", "[control][e2e]") {
    for (int sig : {SIGTERM, SIGKILL}) {
        INFO("signal " << sig);
        SimWorld w;
        w.create_domain("a", 7);
        w.create_domain("b", 8);
        w.start_netbackd();
        connect(w, 7, 0, 2);
        connect(w, 8, 0);
        const int rc = w.stop_netbackd(sig);
        if (sig == SIGTERM) CHECK(rc == 0);
        CHECK(w.driver_ports_in_use() == 0); // a dead process's channels close
        CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
        w.start_netbackd();
        CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
        CHECK(w.driver_ports_in_use() == 6);
        CHECK(w.guest(7).netfront->state() == 4);
        CHECK(w.guest(8).netfront->state() == 4);
        CHECK(w.dom0().read(0, W::be(7, 0) + "/hotplug-status") == "connected");
        const auto log = w.netbackd_log();
        CHECK(log.find("vif 7.0: found existing backend dir") != std::string::npos);
        // Still a working vif: a reboot of the guest goes through a full handshake.
        w.guest(8).netfront->reinitialise();
        CHECK(w.wait_node(W::be(8, 0) + "/state", [&](auto&&) { return w.guest(8).netfront->state() == 4; }));
    }
}

TEST_CASE("e2e: each malformed frontend key writes the error node and other vifs are unaffected",
          "[control][e2e]") {
    SimWorld w;
    w.create_domain("good", 7);
    w.create_domain("bad", 8);
    w.start_netbackd();
    connect(w, 7, 0);
    const int good_ports = w.driver_ports_in_use();

    // Real ring pages and a real unbound channel, so that each case spoils exactly one key.
    auto& bad = w.guest(8);
    const auto tx_ref = bad.memory->grant_access(bad.memory->alloc_page(), kDriverDomain, false);
    const auto rx_ref = bad.memory->grant_access(bad.memory->alloc_page(), kDriverDomain, false);
    const auto port = bad.events->alloc_unbound(kDriverDomain);

    struct Case {
        const char* key;
        const char* value; // nullptr: remove the key
        const char* error; // "<errno> <text>": the text, with {} for the devid
    };
    const Case cases[] = {
        {"tx-ring-ref", nullptr, "2 reading /local/domain/8/device/vif/{}/tx-ring-ref"},
        {"rx-ring-ref", "abc",
         "22 /local/domain/8/device/vif/{}/rx-ring-ref = \"abc\": not a grant reference"},
        {"tx-ring-ref", "4000", "1 mapping in shared page 4000 from domain 8"},
        {"event-channel", "999", " binding event channel 999 of domain 8"},
        {"event-channel", "0", "22 /local/domain/8/device/vif/{}/event-channel = \"0\""},
        {"event-channel", nullptr, "2 reading /local/domain/8/device/vif/{}/event-channel"},
        {"multi-queue-num-queues", "99", "22 guest requested 99 queues, exceeding the maximum of 4"},
        {"request-rx-copy", nullptr, "95 /local/domain/8/device/vif/{}/request-rx-copy is absent or 0"},
        {"feature-sg", "on", "22 /local/domain/8/device/vif/{}/feature-sg = \"on\""},
    };
    std::uint32_t devid = 0;
    for (const auto& c : cases) {
        INFO(c.key << " = " << (c.value ? c.value : "<removed>"));
        xensim::nic_add(w.dom0(), nic(8, devid));
        auto& store = *bad.store;
        const auto F = W::fe(8, devid);
        // What a careless guest writes instead of talk_to_netback.
        store.transaction([&](platform::TxId tx) {
            store.write(tx, F + "/tx-ring-ref", std::to_string(tx_ref));
            store.write(tx, F + "/rx-ring-ref", std::to_string(rx_ref));
            store.write(tx, F + "/event-channel", std::to_string(port));
            store.write(tx, F + "/request-rx-copy", "1");
            if (c.value)
                store.write(tx, F + "/" + c.key, c.value);
            else
                store.rm(tx, F + "/" + c.key);
            store.write(tx, F + "/state", "4");
        });
        CHECK(w.wait_state(W::be(8, devid) + "/state", "5"));
        const auto err = w.dom0().read(0, W::error_node(8, devid));
        REQUIRE(err);
        INFO("error node: " << *err);
        const std::string want = fmt::format(fmt::runtime(c.error), devid);
        if (want[0] == ' ') // errno depends on the platform's refusal
            CHECK(err->find(want) != std::string::npos);
        else
            CHECK(err->rfind(want, 0) == 0);
        CHECK(std::isdigit(static_cast<unsigned char>((*err)[0])));
        CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
        CHECK(w.driver_ports_in_use() == good_ports); // nothing of the bad vif stays bound
        CHECK_FALSE(bad.memory->in_use(tx_ref));
        ++devid;
    }
    CHECK(w.guest(7).netfront->state() == 4);
    // Writing good keys to one of them afterwards connects it: the failure left nothing behind.
    const auto F = W::fe(8, 0);
    bad.store->write(0, F + "/tx-ring-ref", std::to_string(tx_ref));
    bad.store->write(0, F + "/state", "6");
    CHECK(w.wait_state(W::be(8, 0) + "/state", "6"));
    bad.store->write(0, F + "/state", "1");
    CHECK(w.wait_state(W::be(8, 0) + "/state", "2"));
    bad.store->write(0, F + "/state", "4");
    CHECK(w.wait_state(W::be(8, 0) + "/state", "4"));
    CHECK(bad.memory->in_use(tx_ref));
}

TEST_CASE("e2e: SIGHUP reload applies new client files and survives a broken one", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    connect(w, 7, 0);
    w.write_client_file("web.toml", "[match]\nmac = \"00:16:3e:00:07:01\"\n[vif]\nqueues = 2\n");
    kill(w.netbackd_pid(), SIGHUP);
    CHECK(w.wait_node(
        "/", [&](auto&&) { return w.netbackd_log().find("configuration reloaded") != std::string::npos; }));
    xensim::nic_add(w.dom0(), nic(7, 1));
    CHECK(w.dom0().read(0, W::be(7, 1) + "/multi-queue-max-queues") == "2");
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");

    w.write_client_file("broken.toml", "[match]\nmac = \"nope\"\n");
    kill(w.netbackd_pid(), SIGHUP);
    CHECK(w.wait_node("/",
                      [&](auto&&) { return w.netbackd_log().find("reload rejected") != std::string::npos; }));
    CHECK(w.netbackd_log().find("broken.toml:2: 'mac' = \"nope\"") != std::string::npos);
    CHECK(w.dom0().read(0, W::be(7, 0) + "/state") == "4");
}

TEST_CASE("e2e: 64 clients attached and detached 20 times leak nothing", "[control][e2e][soak]") {
    // Every vif puts ~20 nodes owned by the driver domain into xenstore; SimWorld raises the
    // per-domain node quota (1000 by default, as cxenstored) so that 64 fit.
    constexpr int kClients = 64;
    constexpr int kRounds = 20;
    SimWorld w;
    for (int i = 0; i < kClients; ++i)
        w.create_domain(fmt::format("c{}", i), static_cast<platform::DomId>(10 + i), 1);
    w.start_netbackd();

    int fds = -1, maps = -1;
    for (int round = 0; round < kRounds; ++round) {
        INFO("round " << round);
        for (int i = 0; i < kClients; ++i) {
            const auto fe = static_cast<platform::DomId>(10 + i);
            xensim::nic_add(w.dom0(), nic(fe, 0));
            w.guest(fe).start_netfront(0);
        }
        for (int i = 0; i < kClients; ++i)
            REQUIRE(w.wait_state(W::be(static_cast<platform::DomId>(10 + i), 0) + "/state", "4"));
        CHECK(w.driver_ports_in_use() == 2 * kClients); // split channels

        // Detach all at once, each on its own toolstack connection, as parallel xl calls do.
        std::vector<std::thread> detachers;
        std::atomic<int> failures{0};
        for (int i = 0; i < kClients; ++i)
            detachers.emplace_back([&, i] {
                try {
                    auto store = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), 0));
                    xensim::nic_remove(*store, static_cast<platform::DomId>(10 + i), 0);
                } catch (const std::exception&) {
                    ++failures;
                }
            });
        // The netfronts live on this thread; let them follow the backend while detaching.
        while (true) {
            bool all_done = true;
            for (int i = 0; i < kClients; ++i) {
                auto& g = w.guest(static_cast<platform::DomId>(10 + i));
                g.netfront->process_watches();
                all_done &= !w.dom0().read(0, W::fe(g.domid, 0) + "/state").has_value();
            }
            if (all_done) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        for (auto& t : detachers) t.join();
        REQUIRE(failures == 0);
        for (int i = 0; i < kClients; ++i) {
            auto& g = w.guest(static_cast<platform::DomId>(10 + i));
            g.netfront->process_watches();
            CHECK(g.netfront->leaked_grants() == 0);
            g.netfront.reset();
        }
        CHECK(w.driver_ports_in_use() == 0);
        CHECK(w.dom0()
                  .directory(0, "/local/domain/1/backend/vif")
                  .value_or(std::vector<std::string>{})
                  .empty());
        // After the first round every domain's memory is mapped once and stays; from then on
        // the process's descriptors and mappings must not grow.
        if (round == 0) {
            fds = w.netbackd_fds();
            maps = w.netbackd_maps();
            CHECK(maps > 0);
        } else {
            CHECK(w.netbackd_fds() == fds);
            CHECK(w.netbackd_maps() == maps);
        }
    }
    // A clean exit; under ASan, LeakSanitizer turns any leak into a non-zero status.
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}

TEST_CASE("e2e: netbackd doctor passes on a healthy simulated host", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd(fmt::format("[dpdk]\neal_args = [\"--no-huge\", \"--file-prefix=netbackd-doctor-{}\"]\n",
                                 ::getpid()));
    connect(w, 7, 0);
    const std::string log = w.dir() + "/doctor.log";
    CHECK(run({NETBACKD_BINARY, "doctor", "--config", w.dir() + "/netbackd.toml"}, log) == 0);
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(text);
    CHECK(text.find("OK   backend dirs writable: /local/domain/1/backend/vif/7/0") != std::string::npos);
    CHECK(text.find("FAIL") == std::string::npos);
    // And without a host, it says what to do.
    w.stop_netbackd(SIGTERM);
    CHECK(run({NETBACKD_BINARY, "doctor", "--platform", "sim", "--sim-dir", w.dir() + "/nohost"}, log) == 1);
}

TEST_CASE("e2e: netbackd doctor reads the simulated xenstored's quota and probes the driver domain's "
          "event channels against the guests expected",
          "[control][e2e]") {
    // 1000 nodes and 128 watches: C xenstored's defaults; the nicdom may bind 60 ports.
    SimWorld w(SimWorldOptions{.quota_nodes = 1000, .quota_watches = 128, .driver_event_channels = 60});
    w.create_domain("web1", 7);
    w.start_netbackd(fmt::format("[dpdk]\neal_args = [\"--no-huge\", \"--file-prefix=netbackd-doctor-{}\"]\n",
                                 ::getpid()));
    connect(w, 7, 0);
    const int ports = w.driver_ports_in_use();
    const std::string log = w.dir() + "/doctor.log";
    const auto doctor = [&](unsigned guests) {
        const int status = run({NETBACKD_BINARY, "doctor", "--config", w.dir() + "/netbackd.toml", "--guests",
                                std::to_string(guests)},
                               log);
        std::ifstream in(log);
        return std::pair{status,
                         std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
    };
    {
        const auto [status, text] = doctor(20);
        INFO(text);
        CHECK(status == 0);
        CHECK(text.find("OK   xenstore quota for the guests: quota nodes 1000, watches 128, transactions 10: "
                        "room for 39 guest(s), the nodes quota strikes first; 20 expected") !=
              std::string::npos);
        CHECK(text.find(
                  "OK   event channels for the guests: 20 guest(s) expected, 1 connected: 19 more need 38 "
                  "free event channel(s)") != std::string::npos);
    }
    {
        const auto [status, text] = doctor(40);
        INFO(text);
        CHECK(status == 1);
        CHECK(text.find(
                  "FAIL xenstore quota for the guests: quota nodes 1000, watches 128, transactions 10: "
                  "room for 39 guest(s), the nodes quota strikes first; 40 guest(s) need nodes >= 1024") !=
              std::string::npos);
        CHECK(text.find("fix: raise C xenstored's quotas in dom0: xenstore-control quota set nodes 1024") !=
              std::string::npos);
        // 60 ports, netbackd holds 2 (and the platform's own): 39 more guests need 78.
        CHECK(text.find(
                  "FAIL event channels for the guests: 40 guest(s) expected, 1 connected: 39 more need 78 "
                  "free event channel(s)") != std::string::npos);
        CHECK(text.find("max_event_channels = 144 in its xl config") != std::string::npos);
    }
    // The probe gave every port back.
    CHECK(w.driver_ports_in_use() == ports);
    CHECK(w.stop_netbackd(SIGTERM) == 0);
}

TEST_CASE("e2e: a vif left waiting says what it waits for and on which key", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd("", "wait_report_seconds = 1\n");
    xensim::nic_add(w.dom0(), nic(7, 0)); // no netfront ever answers
    const std::string want = "vif 7.0: waiting 1 s for the frontend to connect: "
                             "/local/domain/7/device/vif/0/state is 1 (Initialising)";
    CHECK(w.wait_node("/", [&](auto&&) { return w.netbackd_log().find(want) != std::string::npos; }));
}

TEST_CASE("e2e: the xensim netfront verb as a guest process", "[control][e2e]") {
    SimWorld w;
    w.create_domain("web1", 7);
    w.start_netbackd();
    xensim::nic_add(w.dom0(), nic(7, 0));
    const pid_t nf =
        spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--queues", "2", "--dir", w.host_dir()},
              w.dir() + "/netfront.log");
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/multi-queue-num-queues") == "2");
    // SIGUSR1: the guest reboots its vif; netbackd sees Initialising and reconnects.
    kill(nf, SIGUSR1);
    CHECK(w.wait_node("/", [&](auto&&) {
        return w.netbackd_log().find("vif 7.0: frontend state 1 (Initialising)") != std::string::npos;
    }));
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    CHECK(w.wait_state(W::fe(7, 0) + "/state", "4"));
    // SIGTERM: the guest closes the device; the backend follows, the dir stays (online=1).
    kill(nf, SIGTERM);
    CHECK(reap(nf) == 0);
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
    CHECK(w.wait_state(W::be(7, 0) + "/state", "6"));
    CHECK(w.driver_ports_in_use() == 0);
}

TEST_CASE("e2e: a Windows-flavoured netfront's close cycle ends connected", "[control][e2e]") {
    SimWorld w;
    w.create_domain("win", 9);
    w.start_netbackd();
    xensim::nic_add(w.dom0(), nic(9, 0));
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "win", "--flavour", "windows", "--dir", w.host_dir()},
                           w.dir() + "/netfront.log");
    CHECK(w.wait_state(W::fe(9, 0) + "/state", "4"));
    CHECK(w.wait_state(W::be(9, 0) + "/state", "4"));
    const auto log = w.netbackd_log();
    CHECK(log.find("vif 9.0: frontend state 5 (Closing)") != std::string::npos);
    CHECK(log.find("vif 9.0: frontend state 6 (Closed)") != std::string::npos);
    kill(nf, SIGTERM);
    CHECK(reap(nf) == 0);
}
