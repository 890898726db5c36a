// The simulated toolstack against xensim's xenstored, with this test playing the driver
// domain by hand: exactly libxl's nodes and permissions, its waits and its failures.
#include <catch2/catch.hpp>

#include <thread>

#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/store/xs_store.hpp"
#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using platform::Perm;
using platform::PermKind;

namespace {

xensim::NicSpec spec(std::optional<std::uint32_t> devid = std::nullopt) {
    xensim::NicSpec s;
    s.frontend = 7;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = "00:16:3e:00:00:07";
    s.rate = "125000,50000";
    return s;
}

// The driver domain's side, by hand: InitWait as soon as the dir appears.
std::thread fake_backend_to_initwait(SimWorld& w, std::uint32_t devid) {
    return std::thread([&w, devid] {
        auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
        const auto B = SimWorld::be(7, devid);
        for (int i = 0; i < 2000; ++i) {
            if (dd->read(0, B + "/state") == "1") {
                dd->write(0, B + "/state", "2");
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
}

} // namespace

TEST_CASE("toolstack: nic_add writes libxl's nodes with libxl's permissions", "[xensim][toolstack]") {
    SimWorld w;
    w.create_domain("web1", 7);
    auto backend = fake_backend_to_initwait(w, 0);
    CHECK(xensim::nic_add(w.dom0(), spec()) == 0);
    backend.join();
    auto& s = w.dom0();
    const auto F = SimWorld::fe(7, 0), B = SimWorld::be(7, 0);
    CHECK(s.read(0, F + "/backend") == B);
    CHECK(s.read(0, F + "/backend-id") == "1");
    CHECK(s.read(0, F + "/state") == "1");
    CHECK(s.read(0, F + "/handle") == "0");
    CHECK(s.read(0, F + "/mac") == "00:16:3e:00:00:07");
    CHECK(s.read(0, F + "/mtu") == "1500");
    CHECK(s.read(0, B + "/frontend") == F);
    CHECK(s.read(0, B + "/frontend-id") == "7");
    CHECK(s.read(0, B + "/online") == "1");
    CHECK(s.read(0, B + "/type") == "vif");
    CHECK(s.read(0, B + "/hotplug-status") == "");
    CHECK(s.read(0, B + "/rate") == "125000,50000");
    CHECK(s.read(0, "/libxl/7/device/vif/0/backend") == B);
    CHECK(s.get_perms(0, F) == std::vector<Perm>{{7, PermKind::none}, {1, PermKind::read}});
    CHECK(s.get_perms(0, B) == std::vector<Perm>{{1, PermKind::none}, {7, PermKind::read}});
    CHECK(s.get_perms(0, F + "/mtu") ==
          std::vector<Perm>{{0, PermKind::none}, {7, PermKind::read}, {1, PermKind::read}});

    // The guest may not change what is read-only for it; the driver domain may not touch F.
    auto& guest = *w.guest(7).store;
    CHECK_THROWS(guest.write(0, F + "/mtu", "9000"));
    auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
    CHECK_THROWS(dd->write(0, F + "/state", "4"));
}

TEST_CASE("toolstack: devids are allocated above the highest one in use", "[xensim][toolstack]") {
    SimWorld w;
    w.create_domain("web1", 7);
    auto b1 = fake_backend_to_initwait(w, 3);
    CHECK(xensim::nic_add(w.dom0(), spec(3)) == 3);
    b1.join();
    auto b2 = fake_backend_to_initwait(w, 4);
    CHECK(xensim::nic_add(w.dom0(), spec()) == 4);
    b2.join();
    CHECK(xensim::find_nic_by_mac(w.dom0(), 7, "00:16:3e:00:00:07").has_value());
    CHECK(xensim::find_domain(w.dom0(), "web1") == platform::DomId{7});
    CHECK(xensim::find_domain(w.dom0(), "7") == platform::DomId{7});
    CHECK_FALSE(xensim::find_domain(w.dom0(), "nosuch"));
}

TEST_CASE("toolstack: nic_add fails as libxl does", "[xensim][toolstack]") {
    SimWorld w;
    w.create_domain("web1", 7);
    try {
        xensim::nic_add(w.dom0(), spec(), std::chrono::milliseconds(200));
        FAIL("no backend answered, yet nic_add succeeded");
    } catch (const xensim::ToolstackError& e) {
        CHECK(std::string(e.what()) ==
              "device_backend_callback: Domain 7:unable to add device with path "
              "/local/domain/1/backend/vif/7/0 "
              "(backend /local/domain/1/backend/vif/7/0/state wanted state 2 timed out)");
    }
    auto bad = spec(1);
    bad.frontend = 42;
    CHECK_THROWS_WITH(xensim::nic_add(w.dom0(), bad), "Domain 42 does not exist");

    // A backend that reaches another state first keeps libxl waiting: exactly 2 counts.
    std::thread wrong([&w] {
        auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
        for (int i = 0; i < 2000 && dd->read(0, SimWorld::be(7, 2) + "/state") != "1"; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        dd->write(0, SimWorld::be(7, 2) + "/state", "5");
    });
    CHECK_THROWS_AS(xensim::nic_add(w.dom0(), spec(2), std::chrono::milliseconds(300)),
                    xensim::ToolstackError);
    wrong.join();
}

TEST_CASE("toolstack: nic_remove waits for Closed, then for the removal", "[xensim][toolstack]") {
    SimWorld w;
    w.create_domain("web1", 7);
    auto backend = fake_backend_to_initwait(w, 0);
    xensim::nic_add(w.dom0(), spec(0));
    backend.join();
    const auto B = SimWorld::be(7, 0);

    SECTION("a backend that closes and removes its dir") {
        std::thread dd_thread([&w, B] {
            auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
            for (int i = 0; i < 2000 && dd->read(0, B + "/online") != "0"; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            CHECK(dd->read(0, B + "/state") == "5");
            dd->write(0, B + "/state", "6");
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            dd->rm(0, B);
        });
        xensim::nic_remove(w.dom0(), 7, 0);
        dd_thread.join();
        CHECK_FALSE(w.dom0().read(0, SimWorld::fe(7, 0)));
        CHECK_FALSE(w.dom0().read(0, "/libxl/7/device/vif/0"));
    }
    SECTION("a backend that removes its dir without reaching Closed") {
        std::thread dd_thread([&w, B] {
            auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
            for (int i = 0; i < 2000 && dd->read(0, B + "/online") != "0"; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            dd->rm(0, B);
        });
        CHECK_THROWS_WITH(
            xensim::nic_remove(w.dom0(), 7, 0),
            Catch::Contains("unable to remove device with path /local/domain/1/backend/vif/7/0") &&
                Catch::Contains("wanted state 6 but it was removed"));
        dd_thread.join();
    }
    SECTION("a backend that reaches Closed but never removes its dir") {
        std::thread dd_thread([&w, B] {
            auto dd = platform::open_xs_store(platform::sim_store_socket(w.host_dir(), kDriverDomain));
            for (int i = 0; i < 2000 && dd->read(0, B + "/online") != "0"; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            dd->write(0, B + "/state", "6");
        });
        CHECK_THROWS_WITH(
            xensim::nic_remove(w.dom0(), 7, 0, false, std::chrono::milliseconds(300)),
            Catch::Contains("timed out while waiting for /local/domain/1/backend/vif/7/0 to be removed"));
        dd_thread.join();
    }
    SECTION("forced removal takes everything, backend dir included") {
        xensim::nic_remove(w.dom0(), 7, 0, true);
        CHECK_FALSE(w.dom0().read(0, B + "/state"));
        CHECK_FALSE(w.dom0().read(0, SimWorld::fe(7, 0) + "/state"));
    }
    CHECK_THROWS_WITH(xensim::nic_remove(w.dom0(), 7, 0), "Invalid argument: no vif 0 in domain 7");
}
