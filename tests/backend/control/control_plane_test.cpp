// The driver (ControlPlane + VifControl) against an in-process store: every handshake path,
// every malformed key, and resource counts after each.
#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "backend/control/control_plane.hpp"
#include "tests/support/fake_platform.hpp"
#include "tests/support/logging_sink.hpp"

using namespace netbackd;
using namespace netbackd::control;
using netbackd::testing::FakeEvents;
using netbackd::testing::FakeGrants;
using netbackd::testing::FakeStore;
using netbackd::testing::FakeXenstore;

namespace {

constexpr DomId kSelf = 1;

struct World {
    std::shared_ptr<FakeXenstore> xs = std::make_shared<FakeXenstore>();
    FakeStore store{xs, kSelf};
    FakeGrants grants;
    FakeEvents events;
    LoggingSink sink{DataPlaneFeatures{false, false, false, false, true, 4}};
    std::shared_ptr<Config> config = std::make_shared<Config>();
    std::unique_ptr<ControlPlane> cp;

    World() {
        xs->write("/local/domain/1/domid", "1");
        start();
    }
    void start() {
        cp = std::make_unique<ControlPlane>(store, grants, events, sink, config);
        cp->start();
        pump();
    }
    void pump() {
        for (int i = 0; i < 16; ++i) {
            cp->process_watches();
            // Deferred removals are due half a second later; jump there.
            cp->tick(std::chrono::steady_clock::now() + std::chrono::seconds(1));
        }
    }
    static std::string be(DomId fe, unsigned dev) {
        return fmt::format("/local/domain/1/backend/vif/{}/{}", fe, dev);
    }
    static std::string fe(DomId fe, unsigned dev) {
        return fmt::format("/local/domain/{}/device/vif/{}", fe, dev);
    }
    std::string get(const std::string& p) const { return xs->get(p).value_or("<missing>"); }

    // What libxl writes for `xl network-attach <fe> mac=...,backend=<self>`.
    void attach(DomId f, unsigned dev, const std::string& mac = "00:16:3e:00:00:01") {
        xs->write(fmt::format("/local/domain/{}/name", f), fmt::format("guest{}", f));
        const auto F = fe(f, dev), B = be(f, dev);
        xs->write(F + "/backend", B);
        xs->write(F + "/backend-id", "1");
        xs->write(F + "/handle", std::to_string(dev));
        xs->write(F + "/mac", mac);
        xs->write(F + "/state", "1");
        for (auto [k, v] : {std::pair<std::string, std::string>{"frontend", F},
                            {"frontend-id", std::to_string(f)},
                            {"online", "1"},
                            {"mac", mac},
                            {"handle", std::to_string(dev)},
                            {"type", "vif"},
                            {"hotplug-status", ""}})
            xs->write(B + "/" + k, v);
        xs->write(B + "/state", "1");
        pump();
    }
    // What Linux netfront's talk_to_netback writes; grant refs and ports derive from f/dev.
    void frontend_connect(DomId f, unsigned dev, unsigned queues = 1, bool split = false) {
        const auto F = fe(f, dev);
        if (queues > 1 || xs->exists(be(f, dev) + "/multi-queue-max-queues"))
            xs->write(F + "/multi-queue-num-queues", std::to_string(queues));
        for (unsigned q = 0; q < queues; ++q) {
            const auto dir = queues == 1 ? F : fmt::format("{}/queue-{}", F, q);
            const unsigned base = f * 100 + dev * 10 + q * 4 + 8;
            xs->write(dir + "/tx-ring-ref", std::to_string(base));
            xs->write(dir + "/rx-ring-ref", std::to_string(base + 1));
            if (split) {
                xs->write(dir + "/event-channel-tx", std::to_string(base + 2));
                xs->write(dir + "/event-channel-rx", std::to_string(base + 3));
            } else {
                xs->write(dir + "/event-channel", std::to_string(base + 2));
            }
        }
        xs->write(F + "/request-rx-copy", "1");
        xs->write(F + "/feature-rx-notify", "1");
        xs->write(F + "/feature-sg", "1");
        xs->write(F + "/state", "4");
        pump();
    }
    void frontend_state(DomId f, unsigned dev, int s) {
        xs->write(fe(f, dev) + "/state", std::to_string(s));
        pump();
    }
    void detach(DomId f, unsigned dev) {
        xs->write(be(f, dev) + "/online", "0");
        xs->write(be(f, dev) + "/state", "5");
        pump();
    }
    std::string error(DomId f, unsigned dev) const {
        return get(fmt::format("/local/domain/1/error/backend/vif/{}/{}/error", f, dev));
    }
};

} // namespace

TEST_CASE("attach: probe advertises in one go and reaches InitWait", "[control][driver]") {
    World w;
    w.attach(7, 0);
    const auto B = World::be(7, 0);
    CHECK(w.get(B + "/state") == "2");
    CHECK(w.get(B + "/feature-rx-copy") == "1");
    CHECK(w.get(B + "/feature-rx-flip") == "0");
    CHECK(w.get(B + "/feature-split-event-channels") == "1");
    CHECK(w.get(B + "/multi-queue-max-queues") == "4");
    CHECK(w.get(B + "/feature-sg") == "0"); // the stub data plane implements no SG
    CHECK(w.cp->vif_count() == 1);
}

TEST_CASE("connect: single queue maps both rings, binds one channel, writes hotplug-status",
          "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    const auto B = World::be(7, 0);
    CHECK(w.get(B + "/state") == "4");
    CHECK(w.get(B + "/hotplug-status") == "connected");
    CHECK(w.grants.live == 2);
    CHECK(w.events.bound.size() == 1);
    const VifHandle* h = w.sink.find({7, 0});
    REQUIRE(h);
    CHECK(h->queues.size() == 1);
    CHECK(h->queues[0].tx_ref == 708);
    CHECK(h->features.rx_notify);
    CHECK_FALSE(h->features.sg); // asked for, not advertised
    CHECK(format_mac(h->policy.guest_mac) == "00:16:3e:00:00:01");
}

TEST_CASE("connect: multi-queue with split event channels", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0, 3, true);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.grants.live == 6);
    CHECK(w.events.bound.size() == 6);
    const VifHandle* h = w.sink.find({7, 0});
    REQUIRE(h);
    CHECK(h->queues.size() == 3);
    CHECK(h->features.split_event_channels);
    CHECK(h->queues[2].rx_ref == 7 * 100 + 8 + 8 + 1);
}

TEST_CASE("detach: toolstack online=0 state=5 leads to 6 and the dir removed", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.detach(7, 0);
    CHECK_FALSE(w.xs->exists(World::be(7, 0)));
    CHECK_FALSE(w.xs->exists("/local/domain/1/backend/vif/7"));
    CHECK(w.grants.live == 0);
    CHECK(w.events.bound.empty());
    CHECK(w.cp->vif_count() == 0);
    CHECK(w.sink.size() == 0);
}

TEST_CASE("guest-initiated close while online keeps the dir and a reboot reconnects", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.frontend_state(7, 0, 5);
    CHECK(w.get(World::be(7, 0) + "/state") == "5");
    CHECK(w.grants.live == 0);
    w.frontend_state(7, 0, 6);
    CHECK(w.get(World::be(7, 0) + "/state") == "6");
    CHECK(w.xs->exists(World::be(7, 0)));
    w.frontend_state(7, 0, 1);
    CHECK(w.get(World::be(7, 0) + "/state") == "2");
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.grants.live == 2);
    CHECK(w.grants.total == 4);
}

TEST_CASE("frontend reboot straight from 4 to 1 reconnects cleanly", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.frontend_state(7, 0, 1);
    CHECK(w.get(World::be(7, 0) + "/state") == "2");
    CHECK(w.events.bound.empty());
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.events.bound.size() == 1);
}

TEST_CASE("windows-style close before connect, then connect", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_state(7, 0, 5);
    CHECK(w.get(World::be(7, 0) + "/state") == "5");
    w.frontend_state(7, 0, 6);
    CHECK(w.get(World::be(7, 0) + "/state") == "6");
    w.frontend_state(7, 0, 1);
    CHECK(w.get(World::be(7, 0) + "/state") == "2");
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
}

TEST_CASE("@releaseDomain releases the dead domain's vifs only", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.attach(8, 0);
    w.frontend_connect(8, 0);
    w.xs->rm("/local/domain/7");
    w.xs->release_domain();
    w.pump();
    CHECK_FALSE(w.xs->exists(World::be(7, 0)));
    CHECK(w.get(World::be(8, 0) + "/state") == "4");
    CHECK(w.grants.live == 2);
    CHECK(w.cp->vif_count() == 1);
}

TEST_CASE("netbackd restart reconnects connected frontends without renegotiation", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0, 2, true);
    w.attach(8, 0); // still waiting in InitWait
    w.cp.reset();   // SIGTERM: everything let go, xenstore untouched
    CHECK(w.grants.live == 0);
    CHECK(w.events.bound.empty());
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.store.watch_count() == 0);

    w.start();
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.grants.live == 4);
    CHECK(w.events.bound.size() == 4);
    CHECK(w.get(World::be(8, 0) + "/state") == "2");
    w.frontend_connect(8, 0);
    CHECK(w.get(World::be(8, 0) + "/state") == "4");
}

TEST_CASE("toolstack detach while netbackd was down completes on start", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.cp.reset();
    w.xs->write(World::be(7, 0) + "/online", "0");
    w.xs->write(World::be(7, 0) + "/state", "5");
    w.start();
    CHECK_FALSE(w.xs->exists(World::be(7, 0)));
}

namespace {
struct Malformed {
    const char* name;
    std::function<void(World&)> spoil; // runs after attach, before frontend_connect
    const char* error_prefix;
};
} // namespace

TEST_CASE("malformed control input: error node, Closing, other vifs unaffected", "[control][driver]") {
    const std::string F = World::fe(7, 0);
    const std::vector<Malformed> cases = {
        {"missing tx-ring-ref", [&](World& w) { w.xs->rm(F + "/tx-ring-ref"); },
         "2 reading /local/domain/7/device/vif/0/tx-ring-ref"},
        {"junk rx-ring-ref", [&](World& w) { w.xs->write(F + "/rx-ring-ref", "12x"); },
         "22 /local/domain/7/device/vif/0/rx-ring-ref = \"12x\": not a grant reference"},
        {"unmappable ring", [&](World& w) { w.grants.refused.insert(708); },
         "3 mapping in shared page 708 from domain 7"},
        {"unbindable channel", [&](World& w) { w.events.refused.insert(710); },
         "22 binding event channel 710 of domain 7"},
        {"event channel 0", [&](World& w) { w.xs->write(F + "/event-channel", "0"); },
         "22 /local/domain/7/device/vif/0/event-channel = \"0\": event channel port 0 is reserved"},
        {"missing event channel", [&](World& w) { w.xs->rm(F + "/event-channel"); },
         "2 reading /local/domain/7/device/vif/0/event-channel"},
        {"too many queues", [&](World& w) { w.xs->write(F + "/multi-queue-num-queues", "9"); },
         "22 guest requested 9 queues, exceeding the maximum of 4"},
        {"zero queues", [&](World& w) { w.xs->write(F + "/multi-queue-num-queues", "0"); },
         "22 guest requested 0 queues"},
        {"request-rx-copy absent", [&](World& w) { w.xs->rm(F + "/request-rx-copy"); },
         "95 /local/domain/7/device/vif/0/request-rx-copy is absent or 0"},
        {"junk feature flag", [&](World& w) { w.xs->write(F + "/feature-sg", "yes"); },
         "22 /local/domain/7/device/vif/0/feature-sg = \"yes\""},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        World w;
        w.attach(8, 0);
        w.frontend_connect(8, 0);
        w.attach(7, 0);
        // Connect once with good keys, so every key exists; then reboot the frontend, spoil
        // one key and announce state 4 again.
        w.frontend_connect(7, 0);
        w.frontend_state(7, 0, 1);
        REQUIRE(w.get(World::be(7, 0) + "/state") == "2");
        w.xs->write(F + "/request-rx-copy", "1");
        c.spoil(w);
        w.xs->write(F + "/state", "4");
        w.pump();
        CHECK(w.error(7, 0).rfind(c.error_prefix, 0) == 0);
        INFO("error node: " << w.error(7, 0));
        CHECK(w.get(World::be(7, 0) + "/state") == "5");
        CHECK(w.sink.find({7, 0}) == nullptr);
        // Nothing of the failed vif is held; the other vif is untouched.
        CHECK(w.get(World::be(8, 0) + "/state") == "4");
        CHECK(w.grants.live == 2);
        CHECK(w.events.bound.size() == 1);
        // The frontend sees Closing, closes; the vif stays, ready for another try.
        w.frontend_state(7, 0, 6);
        CHECK(w.get(World::be(7, 0) + "/state") == "6");
        CHECK(w.xs->exists(World::be(7, 0)));
    }
}

TEST_CASE("malformed toolstack keys fail the probe with the key and value named", "[control][driver]") {
    const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
        {{"mac", "00:16:3e:00:00"}, "22 /local/domain/1/backend/vif/7/0/mac = \"00:16:3e:00:00\": not a MAC"},
        {{"rate", "100"}, "22 /local/domain/1/backend/vif/7/0/rate = \"100\": not a rate"},
        {{"frontend-id", "8"}, "22 /local/domain/1/backend/vif/7/0/frontend-id = \"8\": does not match"},
        {{"frontend", "/local/domain/0/device/vif/0"}, "22 /local/domain/1/backend/vif/7/0/frontend = "},
        {{"mtu", "9"}, "22 /local/domain/1/backend/vif/7/0/mtu = \"9\": MTU 9 below 68"},
        {{"handle", "3"}, "22 /local/domain/1/backend/vif/7/0/handle = \"3\": does not match devid 0"},
    };
    for (const auto& [kv, want] : cases) {
        INFO(kv.first);
        World w;
        const auto B = World::be(7, 0);
        // The toolstack writes everything in one transaction: emulate by writing the bad key
        // before state=1 appears.
        w.xs->write("/local/domain/7/name", "guest7");
        w.xs->write(World::fe(7, 0) + "/state", "1");
        for (auto [k, v] : {std::pair<std::string, std::string>{"frontend", World::fe(7, 0)},
                            {"frontend-id", "7"},
                            {"online", "1"},
                            {"mac", "00:16:3e:00:00:01"},
                            {"handle", "0"}})
            w.xs->write(B + "/" + k, v);
        w.xs->write(B + "/" + kv.first, kv.second);
        w.xs->write(B + "/state", "1");
        w.pump();
        CHECK(w.error(7, 0).rfind(want, 0) == 0);
        INFO(w.error(7, 0));
        CHECK(w.get(B + "/state") == "5");
    }
}

TEST_CASE("a fresh probe clears the previous error", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.xs->write(World::fe(7, 0) + "/multi-queue-num-queues", "99");
    w.frontend_state(7, 0, 4);
    CHECK(w.error(7, 0) != "<missing>");
    w.frontend_state(7, 0, 6);
    w.xs->rm(World::fe(7, 0) + "/multi-queue-num-queues");
    w.frontend_state(7, 0, 1);
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.error(7, 0) == "<missing>");
}

TEST_CASE("a backend dir removed under a connected vif releases it", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.xs->rm(World::be(7, 0));
    w.pump();
    CHECK(w.grants.live == 0);
    CHECK(w.cp->vif_count() == 0);
    CHECK_FALSE(w.xs->exists(World::be(7, 0))); // not resurrected by a late state write
}

TEST_CASE("client config shapes the policy and caps the queues", "[control][driver]") {
    World w;
    w.config->clients.push_back(parse_client(
        "[match]\ndomain = \"guest7\"\n[vif]\nvlan = 42\nqueues = 2\nmac = \"00:16:3e:00:00:01\"\n",
        "c.toml"));
    w.xs->write(World::be(7, 0) + "/rate", "1000,20000");
    w.attach(7, 0);
    CHECK(w.get(World::be(7, 0) + "/multi-queue-max-queues") == "2");
    w.frontend_connect(7, 0, 2, false);
    const VifHandle* h = w.sink.find({7, 0});
    REQUIRE(h);
    CHECK(h->policy.vlan == 42);
    CHECK(h->policy.rate == Rate{1000, 20000});
    CHECK(h->policy.client_source == "c.toml:1");
    CHECK_FALSE(h->features.split_event_channels);
}

TEST_CASE("a vif waiting on the frontend says which key it waits on", "[control][driver]") {
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
    auto logger = std::make_shared<spdlog::logger>("test", ring);
    auto old = spdlog::default_logger();
    spdlog::set_default_logger(logger);
    World w;
    w.attach(7, 0);
    w.cp->tick(std::chrono::steady_clock::now() + std::chrono::seconds(6));
    spdlog::set_default_logger(old);
    bool found = false;
    for (const auto& line : ring->last_formatted())
        found |= line.find("vif 7.0: waiting 6 s for the frontend to connect: "
                           "/local/domain/7/device/vif/0/state is 1") != std::string::npos;
    CHECK(found);
}

TEST_CASE("detach: state 6 stays readable for a moment before the dir goes", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.xs->write(World::be(7, 0) + "/online", "0");
    w.xs->write(World::be(7, 0) + "/state", "5");
    w.cp->process_watches();
    CHECK(w.get(World::be(7, 0) + "/state") == "6");
    CHECK(w.grants.live == 0);
    REQUIRE(w.cp->next_deadline());
    w.cp->tick(*w.cp->next_deadline() - std::chrono::milliseconds(1));
    CHECK(w.xs->exists(World::be(7, 0)));
    w.cp->tick(*w.cp->next_deadline());
    CHECK_FALSE(w.xs->exists(World::be(7, 0)));
    CHECK(w.cp->vif_count() == 0);
}

TEST_CASE("a destroyed domain's vif is released even when @releaseDomain came first", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.xs->release_domain(); // domain still has its home: nothing happens
    w.pump();
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    w.xs->rm("/local/domain/7"); // the toolstack removes the home afterwards
    w.pump();
    CHECK_FALSE(w.xs->exists(World::be(7, 0)));
    CHECK(w.grants.live == 0);
}

TEST_CASE("a rate change reaches the data plane of a connected vif", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    w.xs->write(World::be(7, 0) + "/rate", "5000,10000");
    w.pump();
    const VifHandle* h = w.sink.find({7, 0});
    REQUIRE(h);
    CHECK(h->policy.rate == Rate{5000, 10000});
    w.xs->write(World::be(7, 0) + "/rate", "junk"); // kept, not fatal
    w.pump();
    CHECK(w.sink.find({7, 0})->policy.rate == Rate{5000, 10000});
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    w.xs->rm(World::be(7, 0) + "/rate");
    w.pump();
    CHECK_FALSE(w.sink.find({7, 0})->policy.rate);
}

TEST_CASE("a client hook runs before hotplug-status and its failure is fatal", "[control][driver]") {
    std::string dir = (std::filesystem::temp_directory_path() / "netbackd-hook-XXXXXX").string();
    REQUIRE(mkdtemp(dir.data()));
    const std::string ok = dir + "/ok.sh", bad = dir + "/bad.sh";
    std::ofstream(ok) << "#!/bin/sh\necho \"vif up $2.$3\"\n";
    std::ofstream(bad) << "#!/bin/sh\necho no bridge >&2\nexit 3\n";
    std::filesystem::permissions(ok, std::filesystem::perms::owner_all);
    std::filesystem::permissions(bad, std::filesystem::perms::owner_all);

    World w;
    w.config->clients.push_back(
        parse_client("[match]\nmac = \"00:16:3e:00:00:01\"\n[vif]\nscript = \"" + ok + "\"\n", "ok.toml"));
    w.config->clients.push_back(
        parse_client("[match]\nmac = \"00:16:3e:00:00:02\"\n[vif]\nscript = \"" + bad + "\"\n", "bad.toml"));
    w.attach(7, 0, "00:16:3e:00:00:01");
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    w.attach(8, 0, "00:16:3e:00:00:02");
    w.frontend_connect(8, 0);
    CHECK(w.get(World::be(8, 0) + "/state") == "5");
    CHECK(w.error(8, 0) == "5 hotplug script " + bad + " exited 3");
    // What a failing vif script leaves for the toolstack: the attach failed.
    CHECK(w.get(World::be(8, 0) + "/hotplug-status") == "error");
    CHECK(w.grants.live == 2); // only vif 7.0's rings
    std::filesystem::remove_all(dir);
}

TEST_CASE("a data plane fault closes the vif with an error node", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    CHECK(w.cp->fail_vif({7, 0}, Fatal{EIO, "fatal error on tx ring: 20 slots in one packet"}));
    CHECK_FALSE(w.cp->fail_vif({9, 0}, Fatal{EIO, "x"}));
    CHECK(w.get(World::be(7, 0) + "/state") == "5");
    CHECK(w.error(7, 0) == "5 fatal error on tx ring: 20 slots in one packet");
    CHECK(w.grants.live == 0);
    w.frontend_state(7, 0, 6);
    w.frontend_state(7, 0, 1);
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
}

TEST_CASE("a backend dir re-created by the toolstack starts a fresh handshake", "[control][driver]") {
    World w;
    w.attach(7, 0);
    w.frontend_connect(7, 0);
    // libxl's nic_add removes and re-creates both dirs in one transaction; here the removal
    // is not observed separately either: state simply reads 1 again.
    w.xs->write(World::be(7, 0) + "/state", "1");
    w.xs->write(World::fe(7, 0) + "/state", "1");
    w.pump();
    CHECK(w.get(World::be(7, 0) + "/state") == "2");
    CHECK(w.grants.live == 0);
    w.frontend_connect(7, 0);
    CHECK(w.get(World::be(7, 0) + "/state") == "4");
    CHECK(w.cp->vif_count() == 1);
}
