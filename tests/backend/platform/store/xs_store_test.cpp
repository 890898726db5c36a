// The platform Store over real libxenstore, against the simulated xenstored.
#include <poll.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <thread>
#include <vector>

// libxenstore 4.17's header has no C++ linkage guard of its own.
extern "C" {
#include <xenstore.h>
}

#include <catch2/catch.hpp>

#include "backend/platform/store/xs_store.hpp"
#include "tests/support/xs_wire_client.hpp"
#include "xensim/xenstored/xenstored.hpp"

using namespace netbackd::platform;
using netbackd::test::TempDir;
using netbackd::xensim::Xenstored;

namespace {

// Appends rather than `"d" + std::to_string(id)`, which trips GCC 12's -O3 -Wrestrict false positive.
std::string domain_name(int id) {
    std::string name("d");
    name += std::to_string(id);
    return name;
}

struct Host {
    TempDir dir;
    Xenstored xsd{dir.path()};
    Host() {
        for (DomId id : {DomId{2}, DomId{5}, DomId{7}}) {
            xsd.create_domain_home(id, domain_name(id));
            xsd.introduce(id);
        }
        xsd.start();
    }
    std::unique_ptr<Store> store(DomId id) const {
        return open_xs_store(Xenstored::socket_path(dir.path(), id).string());
    }
};

int error_of(const auto& fn) {
    try {
        fn();
    } catch (const PlatformError& e) {
        return e.code();
    }
    return 0;
}

// Waits (bounded, so a lost event fails instead of hanging) for the next event.
WatchEvent next_event(Store& s) {
    static thread_local std::vector<WatchEvent> queued;
    for (;;) {
        if (auto more = s.read_watches(); !more.empty())
            queued.insert(queued.end(), more.begin(), more.end());
        if (!queued.empty()) {
            WatchEvent e = queued.front();
            queued.erase(queued.begin());
            return e;
        }
        pollfd p{s.watch_fd(), POLLIN, 0};
        REQUIRE(::poll(&p, 1, netbackd::test::kPatienceMs) == 1);
    }
}

bool same(const WatchEvent& e, std::string_view path, std::string_view token) {
    return e.path == path && e.token == token;
}

} // namespace

TEST_CASE("Store basics through libxenstore", "[store]") {
    Host h;
    auto s = h.store(0);
    CHECK(s->self_domid() == 0);
    s->write(0, "/tool/a/b", "v");
    CHECK(s->read(0, "/tool/a/b") == "v");
    CHECK(s->read(0, "/tool/a/missing") == std::nullopt);
    CHECK(s->directory(0, "/tool/a") == std::vector<std::string>{"b"});
    CHECK(s->directory(0, "/tool/none") == std::nullopt);
    s->mkdir(0, "/tool/dir");
    CHECK(s->read(0, "/tool/dir") == "");
    s->set_perms(0, "/tool/dir", std::vector<Perm>{{5, PermKind::none}, {7, PermKind::read}});
    CHECK(s->get_perms(0, "/tool/dir") == std::vector<Perm>{{5, PermKind::none}, {7, PermKind::read}});
    s->rm(0, "/tool/a");
    CHECK(s->read(0, "/tool/a/b") == std::nullopt);
    CHECK_NOTHROW(s->rm(0, "/tool/a")); // removing what is gone is not an error
    s->write(0, "/tool/bin", std::string("a\0b", 3));
    CHECK(s->read(0, "/tool/bin") == std::string("a\0b", 3));
}

TEST_CASE("Store: a listing too long for one message arrives whole", "[store]") {
    Host h;
    auto s = h.store(0);
    constexpr int kChildren = 400; // ~12 KiB of names: DIRECTORY says E2BIG, DIRECTORY_PART pages
    s->transaction([&](TxId tx) {
        for (int i = 0; i < kChildren; ++i)
            s->write(tx, "/tool/big/child-with-a-long-name-" + std::to_string(i), "");
    });
    auto names = s->directory(0, "/tool/big");
    REQUIRE(names);
    CHECK(names->size() == kChildren);
    CHECK(std::count(names->begin(), names->end(), "child-with-a-long-name-399") == 1);
}

TEST_CASE("Store: each domain's connection is that domain", "[store][perms]") {
    Host h;
    auto dom0 = h.store(0), dd = h.store(2), fe = h.store(5), other = h.store(7);
    CHECK(fe->self_domid() == 5);
    CHECK(dd->self_domid() == 2);

    const std::string fe_dir = "/local/domain/5/device/vif/0", be_dir = "/local/domain/2/backend/vif/5/0";
    dom0->mkdir(0, fe_dir);
    dom0->set_perms(0, fe_dir, std::vector<Perm>{{5, PermKind::none}, {2, PermKind::read}});
    dom0->write(0, fe_dir + "/state", "1");
    dom0->mkdir(0, be_dir);
    dom0->set_perms(0, be_dir, std::vector<Perm>{{2, PermKind::none}, {5, PermKind::read}});

    CHECK(error_of([&] { other->read(0, fe_dir + "/state"); }) == EACCES);
    CHECK(error_of([&] { other->directory(0, "/local/domain/5"); }) == EACCES);
    CHECK_NOTHROW(dd->write(0, be_dir + "/state", "2"));
    CHECK(dd->read(0, fe_dir + "/state") == "1");
    CHECK(error_of([&] { dd->write(0, fe_dir + "/state", "6"); }) == EACCES);
    CHECK(fe->read(0, be_dir + "/state") == "2");
    CHECK(error_of([&] { fe->write(0, be_dir + "/state", "6"); }) == EACCES);
}

TEST_CASE("Store: transactions", "[store][tx]") {
    Host h;
    auto a = h.store(0), b = h.store(0);
    a->write(0, "/tool/x", "1");

    SECTION("a conflict makes transaction_end report false") {
        TxId tx = a->transaction_start();
        CHECK(a->read(tx, "/tool/x") == "1");
        a->write(tx, "/tool/y", "from-tx");
        b->write(0, "/tool/x", "2");
        CHECK_FALSE(a->transaction_end(tx, true));
        CHECK(b->read(0, "/tool/y") == std::nullopt);
    }
    SECTION("transaction() retries the body until it commits") {
        int attempts = 0;
        a->transaction([&](TxId tx) {
            ++attempts;
            auto v = a->read(tx, "/tool/x");
            if (attempts == 1) b->write(0, "/tool/x", "meddled"); // forces one conflict
            a->write(tx, "/tool/copy", *v);
        });
        CHECK(attempts == 2);
        CHECK(b->read(0, "/tool/copy") == "meddled");
    }
    SECTION("transaction() aborts and rethrows when the body throws") {
        CHECK_THROWS_AS(a->transaction([&](TxId tx) {
            a->write(tx, "/tool/never", "1");
            throw std::runtime_error("body failed");
        }),
                        std::runtime_error);
        CHECK(b->read(0, "/tool/never") == std::nullopt);
    }
    SECTION("transaction() gives up after max_attempts") {
        int attempts = 0;
        const int code = error_of([&] {
            a->transaction(
                [&](TxId tx) {
                    ++attempts;
                    a->read(tx, "/tool/x");
                    b->write(0, "/tool/x", std::to_string(attempts));
                    a->write(tx, "/tool/z", "1");
                },
                3);
        });
        CHECK(code == EAGAIN);
        CHECK(attempts == 3);
    }
}

TEST_CASE("Store: watches", "[store][watch]") {
    Host h;
    auto dom0 = h.store(0), w = h.store(0);
    dom0->write(0, "/tool/w/a", "1");
    w->watch("/tool/w", "tok");
    CHECK(same(next_event(*w), "/tool/w", "tok")); // the initial event
    dom0->write(0, "/tool/w/a/b", "2");
    CHECK(same(next_event(*w), "/tool/w/a/b", "tok"));
    dom0->rm(0, "/tool/w");
    CHECK(same(next_event(*w), "/tool/w", "tok"));
    w->unwatch("/tool/w", "tok");
    w->watch("/tool/s", "sentinel");
    CHECK(same(next_event(*w), "/tool/s", "sentinel"));
    dom0->write(0, "/tool/w", "back");
    dom0->write(0, "/tool/s", "x");
    CHECK(same(next_event(*w), "/tool/s", "sentinel"));

    auto fe = h.store(5);
    fe->watch("device", "rel");
    CHECK(same(next_event(*fe), "device", "rel"));
    dom0->write(0, "/local/domain/5/device/vif/0/state", "1");
    CHECK(same(next_event(*fe), "device/vif/0/state", "rel"));
}

TEST_CASE("Store: @introduceDomain and @releaseDomain from libxl's calls", "[store][domains]") {
    Host h;
    auto dom0 = h.store(0);
    dom0->watch("@introduceDomain", "i");
    dom0->watch("@releaseDomain", "r");
    CHECK(same(next_event(*dom0), "@introduceDomain", "i"));
    CHECK(same(next_event(*dom0), "@releaseDomain", "r"));

    // The toolstack's side, as libxl calls it.
    setenv("XENSTORED_PATH", Xenstored::socket_path(h.dir.path(), 0).c_str(), 1);
    xs_handle* tool = xs_open(XS_OPEN_SOCKETONLY);
    unsetenv("XENSTORED_PATH");
    REQUIRE(tool != nullptr);
    CHECK(xs_introduce_domain(tool, 12, 0xfeffe, 3));
    CHECK(same(next_event(*dom0), "@introduceDomain", "i"));
    CHECK(xs_is_domain_introduced(tool, 12));
    char* path = xs_get_domain_path(tool, 12);
    REQUIRE(path != nullptr);
    CHECK(std::string(path) == "/local/domain/12");
    free(path);

    auto d12 = h.store(12);
    CHECK_THROWS_AS(d12->self_domid(), PlatformError); // nobody wrote its home yet
    CHECK(xs_release_domain(tool, 12));
    CHECK(same(next_event(*dom0), "@releaseDomain", "r"));
    CHECK_FALSE(xs_is_domain_introduced(tool, 12));
    CHECK_THROWS_AS(d12->read(0, "/tool"), PlatformError); // its connection was dropped
    xs_close(tool);
}

TEST_CASE("Store: 16 concurrent connections", "[store][concurrency]") {
    Host h;
    constexpr int kThreads = 16, kWrites = 50;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
            try {
                auto s = h.store(i % 2 ? 5 : 0);
                const std::string base = (i % 2 ? "data/t" : "/tool/t") + std::to_string(i);
                s->watch(base, "t");
                int events = 0;
                next_event(*s);
                for (int k = 0; k < kWrites; ++k) {
                    s->transaction(
                        [&](TxId tx) { s->write(tx, base + "/k" + std::to_string(k), std::to_string(i)); });
                    // Every thread also bumps one shared counter, so transactions really conflict.
                    s->transaction(
                        [&](TxId tx) {
                            auto v = s->read(tx, "/local/domain/5/data/counter");
                            int n = v ? std::stoi(*v) : 0;
                            s->write(tx, "/local/domain/5/data/counter", std::to_string(n + 1));
                        },
                        100000); // 16 threads on one key: unlucky ones retry a lot
                }
                while (events < kWrites) {
                    auto e = next_event(*s);
                    if (e.path.starts_with(base + "/k")) ++events;
                }
            } catch (const std::exception& e) {
                UNSCOPED_INFO("thread " << i << ": " << e.what());
                ++failures;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    auto dom0 = h.store(0);
    CHECK(dom0->read(0, "/local/domain/5/data/counter") == std::to_string(kThreads * kWrites));
    for (int i = 0; i < kThreads; ++i) {
        const std::string base = (i % 2 ? "/local/domain/5/data/t" : "/tool/t") + std::to_string(i);
        CHECK(dom0->directory(0, base)->size() == kWrites);
    }
}

TEST_CASE("open_xs_store names what is missing", "[store][open]") {
    TempDir dir;
    const std::string missing = (dir.path() / "nope.sock").string();
    try {
        open_xs_store(missing);
        FAIL("opened a socket that does not exist");
    } catch (const PlatformError& e) {
        CHECK(std::string(e.what()).find(missing) != std::string::npos);
        CHECK(e.code() == ENOENT);
    }
}

TEST_CASE("open_xs_store refuses a path that is not a socket", "[store][open]") {
    TempDir dir;
    const auto file = dir.path() / "plain-file";
    std::ofstream(file) << "not a daemon";
    try {
        open_xs_store(file.string());
        FAIL("opened a plain file as xenstore");
    } catch (const PlatformError& e) {
        CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
        CHECK(e.code() == ENOTSOCK);
    }
}

TEST_CASE("open_xs_store(\"\") off Xen says so in one line", "[store][open]") {
    if (std::getenv("XENSTORED_PATH") || std::filesystem::exists("/dev/xen/xenbus") ||
        std::filesystem::exists("/proc/xen/xenbus") || std::filesystem::exists(xs_daemon_socket()))
        return; // on a Xen host this opens the real store instead
    try {
        open_xs_store("");
        FAIL("opened xenstore without Xen");
    } catch (const PlatformError& e) {
        const std::string what = e.what();
        CHECK(what.find("/dev/xen/xenbus") != std::string::npos);
        CHECK(what.find('\n') == std::string::npos);
    }
}
