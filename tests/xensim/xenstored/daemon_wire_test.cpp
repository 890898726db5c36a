// The daemon over its sockets, spoken to in raw xs_wire messages.
#include <atomic>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/xs_wire_client.hpp"
#include "xensim/xenstored/xenstored.hpp"

using netbackd::test::Event;
using netbackd::test::RawClient;
using netbackd::test::TempDir;
using netbackd::xensim::Xenstored;

namespace {

// Appends rather than `"d" + std::to_string(id)`, which trips GCC 12's -O3 -Wrestrict false positive.
std::string domain_name(int id) {
    std::string name("d");
    name += std::to_string(id);
    return name;
}

// A running daemon with domains 2 (driver domain), 5 and 7 (guests), set up as libxl would.
struct Host {
    TempDir dir;
    Xenstored xsd{dir.path()};
    Host() {
        for (auto id : {2, 5, 7}) {
            xsd.create_domain_home(static_cast<netbackd::platform::DomId>(id), domain_name(id));
            xsd.introduce(static_cast<netbackd::platform::DomId>(id));
        }
        xsd.start();
    }
    std::filesystem::path sock(int id) const {
        return Xenstored::socket_path(dir.path(), static_cast<netbackd::platform::DomId>(id));
    }
};

// Writes a vif's frontend and backend directories with libxl's permissions.
void attach_vif(RawClient& dom0) {
    const std::string fe = "/local/domain/5/device/vif/0", be = "/local/domain/2/backend/vif/5/0";
    REQUIRE(dom0.mkdir(fe).ok());
    REQUIRE(dom0.set_perms(fe, {"n5", "r2"}).ok());
    REQUIRE(dom0.write(fe + "/state", "1").ok());
    REQUIRE(dom0.mkdir(be).ok());
    REQUIRE(dom0.set_perms(be, {"n2", "r5"}).ok());
    REQUIRE(dom0.write(be + "/state", "1").ok());
}

} // namespace

TEST_CASE("sockets: dom0's and one per introduced domain", "[xenstored][daemon]") {
    Host h;
    CHECK(std::filesystem::is_socket(h.dir.path() / "xenstored.sock"));
    CHECK(std::filesystem::is_socket(h.dir.path() / "domain/5/xenstored.sock"));
    CHECK(Xenstored::socket_path("/x", 0) == "/x/xenstored.sock");
    CHECK(Xenstored::socket_path("/x", 12) == "/x/domain/12/xenstored.sock");
}

TEST_CASE("each connection is its socket's domain", "[xenstored][daemon]") {
    Host h;
    RawClient dom0(h.sock(0)), dom5(h.sock(5));
    CHECK(dom0.read("domid").text() == "0");
    CHECK(dom5.read("domid").text() == "5");
    CHECK(dom5.request(XS_GET_DOMAIN_PATH, RawClient::z("5")).text() == "/local/domain/5");
    CHECK(dom5.read("/local/domain/5/name").text() == "d5");
}

TEST_CASE("permissions between guests and the driver domain", "[xenstored][daemon][perms]") {
    Host h;
    RawClient dom0(h.sock(0)), dd(h.sock(2)), fe(h.sock(5)), other(h.sock(7));
    attach_vif(dom0);

    SECTION("a guest cannot read another guest's nodes") {
        CHECK(other.read("/local/domain/5/device/vif/0/state").error() == "EACCES");
        CHECK(other.read("/local/domain/5/domid").error() == "EACCES");
        CHECK(other.read("/local/domain/5/no-such-node").error() == "EACCES");
        CHECK(other.directory("/local/domain/5").error() == "EACCES");
        CHECK(fe.read("/local/domain/5/device/vif/0/state").text() == "1");
    }
    SECTION("the driver domain writes its backend dir, reads but cannot write the frontend's") {
        CHECK(dd.write("/local/domain/2/backend/vif/5/0/state", "2").ok());
        CHECK(dd.write("/local/domain/2/backend/vif/5/0/feature-rx-copy", "1").ok());
        CHECK(dd.read("/local/domain/5/device/vif/0/state").text() == "1");
        CHECK(dd.write("/local/domain/5/device/vif/0/state", "4").error() == "EACCES");
        CHECK(dd.write("/local/domain/5/device/vif/0/new", "x").error() == "EACCES");
        // What the driver domain created stays readable by the frontend, as its parent was.
        CHECK(fe.read("/local/domain/2/backend/vif/5/0/feature-rx-copy").text() == "1");
        CHECK(other.read("/local/domain/2/backend/vif/5/0/state").error() == "EACCES");
    }
    SECTION("a guest owns what it creates in its writable dirs, not its home") {
        CHECK(fe.write("data/x", "1").ok());
        CHECK(fe.get_perms("data/x").payload == RawClient::z("n5"));
        CHECK(fe.write("x", "1").error() == "EACCES");
    }
    SECTION("perms and domains are for their owners and dom0") {
        CHECK(fe.set_perms("/local/domain/2/backend/vif/5/0", {"b5"}).error() == "EACCES");
        CHECK(dd.set_perms("/local/domain/2/backend/vif/5/0", {"n2", "r5", "r7"}).ok());
        CHECK(other.read("/local/domain/2/backend/vif/5/0").ok()); // perms are per node: only the dir changed
        CHECK(other.read("/local/domain/2/backend/vif/5/0/state").error() == "EACCES");
        CHECK(fe.request(XS_INTRODUCE, RawClient::z("9") + RawClient::z("0") + RawClient::z("0")).error() ==
              "EACCES");
        CHECK(fe.request(XS_RELEASE, RawClient::z("7")).error() == "EACCES");
    }
}

TEST_CASE("transactions: isolation, commit, conflict", "[xenstored][daemon][tx]") {
    Host h;
    RawClient a(h.sock(0)), b(h.sock(0));
    REQUIRE(a.write("/tool/x", "1").ok());

    SECTION("writes stay private until commit") {
        auto tx = a.start();
        CHECK(a.write("/tool/y", "in-tx", tx).ok());
        CHECK(a.read("/tool/y", tx).text() == "in-tx");
        CHECK(b.read("/tool/y").error() == "ENOENT");
        CHECK(a.end(tx, true).ok());
        CHECK(b.read("/tool/y").text() == "in-tx");
    }
    SECTION("a conflicting commit gets EAGAIN and changes nothing") {
        auto tx = a.start();
        CHECK(a.read("/tool/x", tx).text() == "1");
        CHECK(a.write("/tool/z", "lost", tx).ok());
        CHECK(b.write("/tool/x", "2").ok());
        CHECK(a.end(tx, true).error() == "EAGAIN");
        CHECK(b.read("/tool/z").error() == "ENOENT");
        CHECK(a.end(tx, true).error() == "ENOENT"); // the transaction is gone either way
    }
    SECTION("abort discards") {
        auto tx = a.start();
        CHECK(a.write("/tool/w", "1", tx).ok());
        CHECK(a.end(tx, false).ok());
        CHECK(b.read("/tool/w").error() == "ENOENT");
    }
    SECTION("another connection cannot use the transaction") {
        auto tx = a.start();
        CHECK(b.read("/tool/x", tx).error() == "ENOENT");
        CHECK(a.end(tx, false).ok());
    }
}

TEST_CASE("watches", "[xenstored][daemon][watch]") {
    Host h;
    RawClient dom0(h.sock(0)), w(h.sock(0));
    REQUIRE(dom0.write("/tool/w/a", "1").ok());

    SECTION("the initial event, then children, then removal") {
        CHECK(w.watch("/tool/w", "tok").ok());
        CHECK(w.next_event() == Event{"/tool/w", "tok"});
        CHECK(dom0.write("/tool/w/a/b", "2").ok());
        CHECK(w.next_event() == Event{"/tool/w/a/b", "tok"});
        CHECK(dom0.rm("/tool/w").ok());
        CHECK(w.next_event() == Event{"/tool/w", "tok"});
        CHECK(w.watch("/tool/w", "tok").error() == "EEXIST");
    }
    SECTION("removing an ancestor fires watches on the nodes beneath it") {
        CHECK(w.watch("/tool/w/a", "deep").ok());
        CHECK(w.next_event() == Event{"/tool/w/a", "deep"});
        CHECK(dom0.rm("/tool").ok());
        CHECK(w.next_event() == Event{"/tool/w/a", "deep"});
    }
    SECTION("unwatch stops events") {
        CHECK(w.watch("/tool/w", "t1").ok());
        CHECK(w.watch("/tool/s", "sentinel").ok());
        CHECK(w.next_event() == Event{"/tool/w", "t1"});
        CHECK(w.next_event() == Event{"/tool/s", "sentinel"});
        CHECK(w.unwatch("/tool/w", "t1").ok());
        CHECK(w.unwatch("/tool/w", "t1").error() == "ENOENT");
        CHECK(dom0.write("/tool/w/a", "3").ok());
        CHECK(dom0.write("/tool/s", "x").ok());
        CHECK(w.next_event() == Event{"/tool/s", "sentinel"});
    }
    SECTION("a transaction's changes fire at commit") {
        CHECK(w.watch("/tool/w", "tok").ok());
        CHECK(w.next_event() == Event{"/tool/w", "tok"});
        auto tx = dom0.start();
        CHECK(dom0.write("/tool/w/t", "1", tx).ok());
        CHECK(dom0.write("/tool/w/a", "2").ok());
        CHECK(w.next_event() == Event{"/tool/w/a", "tok"});
        CHECK(dom0.end(tx, true).ok());
        CHECK(w.next_event() == Event{"/tool/w/t", "tok"});
    }
    SECTION("relative watches report relative paths") {
        RawClient fe(h.sock(5));
        CHECK(fe.watch("data", "rel").ok());
        CHECK(fe.next_event() == Event{"data", "rel"});
        CHECK(fe.write("data/k", "v").ok());
        CHECK(fe.next_event() == Event{"data/k", "rel"});
    }
    SECTION("a watch only hears about nodes its domain may read") {
        RawClient spy(h.sock(7));
        CHECK(spy.watch("/local/domain/5", "spy").ok());
        CHECK(spy.next_event() == Event{"/local/domain/5", "spy"});
        CHECK(spy.watch("/local/domain/7/data", "own").ok());
        CHECK(spy.next_event() == Event{"/local/domain/7/data", "own"});
        CHECK(dom0.write("/local/domain/5/device/secret", "1").ok());
        CHECK(dom0.write("/local/domain/7/data/sentinel", "1").ok());
        CHECK(spy.next_event() == Event{"/local/domain/7/data/sentinel", "own"});
    }
}

TEST_CASE("INTRODUCE and RELEASE with their special watches", "[xenstored][daemon][domains]") {
    Host h;
    RawClient dom0(h.sock(0)), guest(h.sock(5));
    CHECK(dom0.watch("@introduceDomain", "intro").ok());
    CHECK(dom0.watch("@releaseDomain", "rel").ok());
    CHECK(dom0.next_event() == Event{"@introduceDomain", "intro"});
    CHECK(dom0.next_event() == Event{"@releaseDomain", "rel"});
    CHECK(guest.watch("@releaseDomain", "guest-rel").ok());
    CHECK(guest.next_event() == Event{"@releaseDomain", "guest-rel"});
    CHECK(guest.watch("data", "sentinel").ok());
    CHECK(guest.next_event() == Event{"data", "sentinel"});

    const auto sock9 = h.sock(9);
    CHECK_FALSE(std::filesystem::exists(sock9));
    CHECK(dom0.request(XS_IS_DOMAIN_INTRODUCED, RawClient::z("9")).text() == "F");
    CHECK(dom0.request(XS_INTRODUCE, RawClient::z("9") + RawClient::z("1234") + RawClient::z("1")).ok());
    CHECK(dom0.next_event() == Event{"@introduceDomain", "intro"});
    CHECK(dom0.request(XS_IS_DOMAIN_INTRODUCED, RawClient::z("9")).text() == "T");
    REQUIRE(std::filesystem::is_socket(sock9));

    RawClient d9(sock9);
    CHECK(d9.request(XS_GET_DOMAIN_PATH, RawClient::z("9")).text() == "/local/domain/9");

    CHECK(dom0.request(XS_RELEASE, RawClient::z("9")).ok());
    CHECK(dom0.next_event() == Event{"@releaseDomain", "rel"});
    CHECK(d9.closed_by_peer());
    CHECK_FALSE(std::filesystem::exists(sock9));
    CHECK(dom0.request(XS_RELEASE, RawClient::z("9")).error() == "ENOENT");

    // Guests do not hear about other domains unless dom0 grants it.
    CHECK(dom0.write("/local/domain/5/data/s", "1").ok());
    CHECK(guest.next_event() == Event{"data/s", "sentinel"});
    CHECK(dom0.set_perms("@releaseDomain", {"n0", "r5"}).ok());
    h.xsd.introduce(11);
    h.xsd.release(11);
    CHECK(guest.next_event() == Event{"@releaseDomain", "guest-rel"});
    CHECK(dom0.next_event() == Event{"@introduceDomain", "intro"});
    CHECK(dom0.next_event() == Event{"@releaseDomain", "rel"});
}

TEST_CASE("malformed input costs only the sender its connection", "[xenstored][daemon][robust]") {
    Host h;
    RawClient good(h.sock(0));

    SECTION("a length beyond XENSTORE_PAYLOAD_MAX") {
        RawClient bad(h.sock(0));
        xsd_sockmsg m{XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1};
        bad.send_raw(std::string(reinterpret_cast<const char*>(&m), sizeof(m)));
        CHECK(bad.closed_by_peer());
    }
    SECTION("arguments without their NUL, or too few of them") {
        RawClient bad(h.sock(0));
        CHECK(bad.request(XS_READ, "/tool").error() == "EINVAL");
        CHECK(bad.request(XS_WRITE, "/tool/no-nul").error() == "EINVAL");
        CHECK(bad.request(XS_WATCH, RawClient::z("/tool")).error() == "EINVAL");
        CHECK(bad.request(XS_READ, "").error() == "EINVAL");
        CHECK(bad.request(XS_SET_PERMS, RawClient::z("/tool") + RawClient::z("q1")).error() == "EINVAL");
        CHECK(bad.request(XS_TYPE_COUNT + 5, RawClient::z("x")).error() == "EINVAL");
        CHECK(bad.request(XS_WATCH_EVENT, RawClient::z("x")).error() == "EINVAL");
        CHECK(bad.read("domid").text() == "0"); // still served
    }
    SECTION("random garbage and half messages") {
        std::mt19937 rng(1234);
        for (int i = 0; i < 50; ++i) {
            RawClient bad(h.sock(7)); // a guest's socket: junk must not reach dom0's privileges
            std::string junk(static_cast<std::size_t>(rng() % 200), '\0');
            for (auto& c : junk) c = static_cast<char>(rng());
            bad.send_raw(junk);
        }
    }
    CHECK(good.read("domid").text() == "0");
    CHECK(good.write("/tool/after", "ok").ok());
}

TEST_CASE("many concurrent clients writing and watching", "[xenstored][daemon][concurrency]") {
    Host h;
    constexpr int kClients = 16, kWrites = 100;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            // Half the clients are dom0, half the guest domain 5 in its own data dir.
            const bool guest = i % 2 == 1;
            RawClient c(h.sock(guest ? 5 : 0));
            const std::string base = (guest ? "/local/domain/5/data/c" : "/tool/c") + std::to_string(i);
            if (!c.watch(base, "t").ok()) ++failures;
            int events = 0;
            if (c.next_event()) ++events; // initial
            for (int k = 0; k < kWrites; ++k)
                if (!c.write(base + "/k" + std::to_string(k), std::to_string(k * i)).ok()) ++failures;
            while (events < kWrites + 1 && c.next_event()) ++events;
            if (events != kWrites + 1) ++failures;
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failures == 0);

    RawClient dom0(h.sock(0));
    for (int i = 0; i < kClients; ++i) {
        const std::string base = (i % 2 ? "/local/domain/5/data/c" : "/tool/c") + std::to_string(i);
        auto listing = dom0.directory(base);
        REQUIRE(listing.ok());
        CHECK(std::count(listing.payload.begin(), listing.payload.end(), '\0') == kWrites);
        CHECK(dom0.read(base + "/k7").text() == std::to_string(7 * i));
    }
}

TEST_CASE("stop() ends run() and the destructor removes the sockets", "[xenstored][daemon]") {
    TempDir dir;
    {
        Xenstored xsd(dir.path());
        xsd.introduce(3);
        std::thread loop([&] { xsd.run(); });
        RawClient c(Xenstored::socket_path(dir.path(), 3));
        CHECK(c.request(XS_GET_DOMAIN_PATH, RawClient::z("3")).text() == "/local/domain/3");
        xsd.stop();
        loop.join();
    }
    CHECK_FALSE(std::filesystem::exists(dir.path() / "xenstored.sock"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "domain/3/xenstored.sock"));
}

TEST_CASE("a second daemon on the same directory is refused", "[xenstored][daemon]") {
    Host h;
    CHECK_THROWS_AS(Xenstored(h.dir.path()), std::system_error);
    RawClient still(h.sock(0));
    CHECK(still.read("domid").text() == "0");
}

TEST_CASE("quotas reach the wire as xenstored's errors", "[xenstored][daemon][quota]") {
    TempDir dir;
    Xenstored xsd(dir.path(), {.max_value_bytes = 64,
                               .max_nodes_per_domain = 12,
                               .max_watches_per_connection = 2,
                               .max_transactions_per_connection = 1});
    xsd.create_domain_home(4, "q"); // 7 nodes owned by domain 4 (its writable subdirs)
    xsd.introduce(4);
    xsd.start();
    RawClient c(Xenstored::socket_path(dir.path(), 4));
    CHECK(c.write("data/v", std::string(65, 'x')).error() == "E2BIG");
    CHECK(c.write("data/v", std::string(64, 'x')).ok());
    for (int i = 0; i < 4; ++i) CHECK(c.write("data/n" + std::to_string(i), "").ok());
    CHECK(c.write("data/one-too-many", "").error() == "ENOSPC");
    CHECK(c.rm("data/n0").ok());
    CHECK(c.write("data/fits-again", "").ok());
    CHECK(c.watch("data", "a").ok());
    CHECK(c.watch("data", "b").ok());
    CHECK(c.watch("data", "c").error() == "E2BIG");
    c.start();
    CHECK(c.request(XS_TRANSACTION_START, RawClient::z("")).error() == "ENOSPC");
}
