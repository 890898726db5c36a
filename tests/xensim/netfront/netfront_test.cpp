// The simulated netfront against a backend played by hand through the driver domain's store:
// the keys of talk_to_netback in each layout, and how it follows the backend's states.
#include <catch2/catch.hpp>

#include <thread>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/netfront.hpp"
#include "xensim/netfront/netfront_io.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;

namespace {

using Features = std::vector<std::pair<std::string, std::string>>;

struct Rig {
    SimWorld w;
    std::unique_ptr<platform::Store> dd;
    std::string F = SimWorld::fe(7, 0);
    std::string B = SimWorld::be(7, 0);

    // Attach with a backend that only reaches InitWait once told to.
    explicit Rig(const Features& features) {
        w.create_domain("web1", 7);
        dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
        std::thread backend([&] {
            for (int i = 0; i < 2000 && dd->read(0, B + "/state") != "1"; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            for (const auto& [k, v] : features) dd->write(0, B + "/" + k, v);
            dd->write(0, B + "/state", "2");
        });
        xensim::NicSpec s;
        s.frontend = 7;
        s.backend = kDriverDomain;
        s.mac = "00:16:3e:00:00:07";
        xensim::nic_add(w.dom0(), s);
        backend.join();
    }
    std::optional<std::string> fe(const std::string& key) { return w.dom0().read(0, F + "/" + key); }
    xensim::Netfront& start(unsigned queues,
                            xensim::NetfrontFlavour flavour = xensim::NetfrontFlavour::linux_guest) {
        auto& g = w.guest(7);
        xensim::NetfrontOptions o;
        o.self = 7;
        o.queues = queues;
        o.flavour = flavour;
        g.netfront = std::make_unique<xensim::Netfront>(*g.store, *g.events, *g.memory, o);
        g.netfront->start();
        return *g.netfront;
    }
};

} // namespace

TEST_CASE("netfront: one queue, flat keys, one channel", "[xensim][netfront]") {
    Rig r(Features{{"feature-rx-copy", "1"}, {"multi-queue-max-queues", "4"}});
    auto& nf = r.start(1);
    REQUIRE(nf.state() == 4);
    CHECK(r.fe("state") == "4");
    CHECK(r.fe("multi-queue-num-queues") == "1");
    CHECK(r.fe("tx-ring-ref") == std::to_string(nf.queues()[0].tx_ref));
    CHECK(r.fe("rx-ring-ref") == std::to_string(nf.queues()[0].rx_ref));
    CHECK(r.fe("event-channel") == std::to_string(nf.queues()[0].tx_port));
    CHECK_FALSE(r.fe("event-channel-tx"));
    CHECK_FALSE(r.fe("queue-0/tx-ring-ref"));
    for (const char* k : {"request-rx-copy", "feature-rx-notify", "feature-sg", "feature-gso-tcpv4",
                          "feature-gso-tcpv6", "feature-ipv6-csum-offload"})
        CHECK(r.fe(k) == "1");
    // The ring pages are granted to the driver domain, which can map them.
    auto dd_platform = platform::open_platform({platform::PlatformKind::sim, r.w.host_dir(), kDriverDomain});
    auto page = dd_platform.grants->map(7, nf.queues()[0].tx_ref, true);
    CHECK(page->page().size() == 4096);
}

TEST_CASE("netfront: multi-queue with split channels uses queue-N dirs", "[xensim][netfront]") {
    Rig r(Features{
        {"feature-rx-copy", "1"}, {"multi-queue-max-queues", "2"}, {"feature-split-event-channels", "1"}});
    auto& nf = r.start(4); // capped to the backend's 2
    REQUIRE(nf.state() == 4);
    CHECK(r.fe("multi-queue-num-queues") == "2");
    REQUIRE(nf.queues().size() == 2);
    for (unsigned q = 0; q < 2; ++q) {
        const auto dir = fmt::format("queue-{}/", q);
        CHECK(r.fe(dir + "tx-ring-ref") == std::to_string(nf.queues()[q].tx_ref));
        CHECK(r.fe(dir + "event-channel-tx") == std::to_string(nf.queues()[q].tx_port));
        CHECK(r.fe(dir + "event-channel-rx") == std::to_string(nf.queues()[q].rx_port));
        CHECK(nf.queues()[q].tx_port != nf.queues()[q].rx_port);
    }
    CHECK_FALSE(r.fe("tx-ring-ref"));
}

TEST_CASE("netfront: a backend without multi-queue gets no num-queues key (Linux), Unikraft writes it",
          "[xensim][netfront]") {
    SECTION("linux") {
        Rig r(Features{{"feature-rx-copy", "1"}});
        r.start(4);
        CHECK_FALSE(r.fe("multi-queue-num-queues"));
        CHECK(r.fe("feature-rx-notify") == "1");
    }
    SECTION("unikraft") {
        Rig r(Features{{"feature-rx-copy", "1"}});
        r.start(1, xensim::NetfrontFlavour::unikraft);
        CHECK(r.fe("multi-queue-num-queues") == "1");
        CHECK_FALSE(r.fe("feature-rx-notify"));
        CHECK_FALSE(r.fe("feature-sg"));
    }
}

TEST_CASE("netfront: refuses a backend without rx-copy, as Linux does", "[xensim][netfront]") {
    Rig r(Features{});
    auto& nf = r.start(1);
    CHECK(nf.state() == 5);
    CHECK(r.w.dom0().read(0, "/local/domain/7/error/device/vif/0/error") ==
          "19 backend does not support copying receive path");
    CHECK(nf.queues().empty());
}

TEST_CASE("netfront: follows the backend to Closed and reconnects when it renegotiates",
          "[xensim][netfront]") {
    Rig r(Features{{"feature-rx-copy", "1"}});
    auto& nf = r.start(1);
    REQUIRE(nf.state() == 4);
    const auto first_ref = nf.queues()[0].tx_ref;
    r.dd->write(0, r.B + "/state", "5");
    REQUIRE(r.w.wait_node(r.F + "/state", [](auto& v) { return v == "6"; }));
    CHECK(nf.queues().empty());
    CHECK(nf.leaked_grants() == 0);
    CHECK_FALSE(r.w.guest(7).memory->in_use(first_ref));
    r.dd->write(0, r.B + "/state", "6");
    r.dd->write(0, r.B + "/state", "2"); // a backend restarting with forced renegotiation
    REQUIRE(r.w.wait_node(r.F + "/state", [](auto& v) { return v == "4"; }));
    CHECK(nf.queues().size() == 1);
}

TEST_CASE("netfront: the data half follows connects and lets go before a renegotiation frees the rings",
          "[xensim][netfront]") {
    Rig r(Features{{"feature-rx-copy", "1"}, {"feature-sg", "1"}, {"feature-gso-tcpv4", "1"}});
    auto& nf = r.start(1);
    REQUIRE(nf.state() == 4);
    auto& g = r.w.guest(7);
    xensim::NetfrontIo io(*g.memory, *g.events);
    CHECK(io.follow(nf));
    REQUIRE(io.attached());
    CHECK(io.features().sg);
    CHECK(io.features().gso_tcpv4);
    CHECK_FALSE(io.features().gso_tcpv6);
    CHECK(io.features().csum_offload);
    CHECK(io.rx_posted(0) == 256);
    CHECK_FALSE(io.follow(nf)); // nothing new

    r.dd->write(0, r.B + "/state", "5");
    REQUIRE(r.w.wait_node(r.F + "/state", [](auto& v) { return v == "6"; }));
    CHECK_FALSE(io.attached()); // dropped from inside the release, before the pages went
    CHECK(io.leaked_grants() == 0);
    CHECK(io.follow(nf));
    CHECK_FALSE(io.attached());

    r.dd->write(0, r.B + "/state", "6");
    r.dd->write(0, r.B + "/feature-no-csum-offload", "1");
    r.dd->write(0, r.B + "/state", "2");
    REQUIRE(r.w.wait_node(r.F + "/state", [](auto& v) { return v == "4"; }));
    CHECK(io.follow(nf));
    REQUIRE(io.attached());
    CHECK_FALSE(io.features().csum_offload);
    CHECK(io.rx_posted(0) == 256);
}
