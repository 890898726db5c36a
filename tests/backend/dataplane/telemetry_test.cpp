// The /netbackd/* commands over DPDK's real telemetry socket, as dpdk-telemetry.py reads them.
// This binary starts its own EAL (telemetry on), so it is a test executable of its own.
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <rte_eal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/dataplane/dataplane.hpp"
#include "tests/support/dataplane_world.hpp"
#include "tests/support/dpdk_eal.hpp"
#include "tests/support/eventually.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;
using namespace std::chrono_literals;
using netbackd::testing::eventually;

namespace {

constexpr platform::DomId kA = 31;

class TelemetryClient {
public:
    TelemetryClient() {
        fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string path = std::string(rte_eal_get_runtime_dir()) + "/dpdk_telemetry.v2";
        REQUIRE(path.size() < sizeof addr.sun_path);
        std::copy(path.begin(), path.end(), addr.sun_path);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        (void)read(); // the greeting
    }
    ~TelemetryClient() { ::close(fd_); }
    nlohmann::json query(const std::string& cmd) {
        REQUIRE(::write(fd_, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size()));
        return nlohmann::json::parse(read());
    }

private:
    std::string read() {
        std::string buf(64 * 1024, '\0');
        const ssize_t n = ::read(fd_, buf.data(), buf.size());
        REQUIRE(n > 0);
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }
    int fd_ = -1;
};

} // namespace

TEST_CASE("vif and worker counters are readable over the telemetry socket", "[dataplane][telemetry]") {
    World world({kA}, 32u << 20, false);
    pmd::EalConfig ec;
    ec.file_prefix = "nbdptel-" + std::to_string(::getpid());
    ec.telemetry = true;
    pmd::Eal eal(ec);
    {
        pmd::Mempool pool({.name = "tel_pool", .mbufs = 4095, .cache = 32});
        pmd::Mempool indirect({.name = "tel_ind", .mbufs = 1023, .cache = 32, .data_room = 0});
        RingUplink up(pool);
        DataPlaneConfig c;
        c.pool = &pool;
        c.indirect_pool = &indirect;
        c.uplinks.push_back(UplinkBinding{"up0", &up});
        auto dp = std::make_unique<DataPlane>(c, world.worker_grants(), world.events);
        Netfront a(world, kA);
        dp->attach(a.handle(mac(0xa)));
        for (int i = 0; i < 3; ++i) a.send(frame(mac(0x99), mac(0xa), 100));
        a.push_tx();
        for (int i = 0; i < 1000 && dp->stats({kA, 0})->tx_packets < 3; ++i) std::this_thread::sleep_for(5ms);

        TelemetryClient client;
        // The worker counts a frame at the vif when the guest's burst completes and at the
        // uplink only after forwarding it: wait for the uplink's count too.
        for (int i = 0; i < 1000; ++i) {
            if (client.query("/netbackd/worker").at("/netbackd/worker").at("uplink_tx") == 3) break;
            std::this_thread::sleep_for(5ms);
        }
        const auto vifs = client.query("/netbackd/vifs");
        INFO(vifs.dump());
        const auto& v = vifs.at("/netbackd/vifs").at("vif31_0");
        CHECK(v.at("state") == "running");
        CHECK(v.at("tx_packets") == 3);
        CHECK(v.at("tx_bytes") == 3 * 154);
        CHECK(v.at("copy_batches").get<int>() >= 1);
        CHECK(v.at("drop_tx_spoofed") == 0);
        const auto one = client.query("/netbackd/vif,31.0");
        CHECK(one.at("/netbackd/vif").at("tx_packets") == 3);
        const auto w = client.query("/netbackd/worker");
        CHECK(w.at("/netbackd/worker").at("uplink_tx") == 3);
        CHECK(w.at("/netbackd/worker").at("workers") == 1);
        CHECK(v.at("worker") == 0);
        const auto ws = client.query("/netbackd/workers");
        const auto& w0 = ws.at("/netbackd/workers").at("worker0");
        CHECK(w0.at("uplink_tx") == 3);
        CHECK(w0.at("vifs") == 1);
        CHECK(w0.at("cross_out") == 0);
        CHECK(dp->detach({kA, 0}) != nullptr);
        const auto none = client.query("/netbackd/vifs");
        CHECK(none.at("/netbackd/vifs").empty());
    }
}

TEST_CASE("/netbackd/vifs pages 16 vifs at a time, so no reply outgrows DPDK's 16 KiB",
          "[dataplane][telemetry]") {
    // 20 vifs of one guest: more than one page, and about what a single 16 KiB reply held before
    // (36 vifs), so every vif has to come back through the pages.
    constexpr std::uint32_t kVifs = 20;
    World world({kA}, 64u << 20, false);
    pmd::EalConfig ec;
    ec.file_prefix = "nbdptelp-" + std::to_string(::getpid());
    ec.telemetry = true;
    pmd::Eal eal(ec);
    {
        pmd::Mempool pool({.name = "telp_pool", .mbufs = 4095, .cache = 32});
        pmd::Mempool indirect({.name = "telp_ind", .mbufs = 1023, .cache = 32, .data_room = 0});
        DataPlaneConfig c;
        c.pool = &pool;
        c.indirect_pool = &indirect;
        auto dp = std::make_unique<DataPlane>(c, world.worker_grants(), world.events);
        std::vector<std::unique_ptr<Netfront>> fronts;
        for (std::uint32_t v = 0; v < kVifs; ++v) {
            fronts.push_back(std::make_unique<Netfront>(world, kA, v));
            dp->attach(fronts.back()->handle(mac(static_cast<std::uint8_t>(0x10 + v))));
        }
        // Attaching is asynchronous: the two reads of page one below must see the same states.
        REQUIRE(eventually([&] {
            for (const auto& v : dp->telemetry_view())
                if (v.state != VifState::running) return false;
            return true;
        }));
        TelemetryClient client;
        const auto first = client.query("/netbackd/vifs").at("/netbackd/vifs");
        CHECK(first.size() == kVifsPerPage);
        CHECK(client.query("/netbackd/vifs,0").at("/netbackd/vifs") == first);
        const auto second = client.query("/netbackd/vifs,16").at("/netbackd/vifs");
        CHECK(second.size() == kVifs - kVifsPerPage);
        std::set<std::string> names;
        for (const auto& page : {first, second})
            for (const auto& [key, v] : page.items()) names.insert(key);
        CHECK(names.size() == kVifs);
        for (std::uint32_t v = 0; v < kVifs; ++v) CHECK(names.count(fmt::format("vif31_{}", v)) == 1);
        CHECK(client.query("/netbackd/vifs,32").at("/netbackd/vifs").empty());
        CHECK(client.query("/netbackd/vifs,junk").at("/netbackd/vifs").is_null());
        for (std::uint32_t v = 0; v < kVifs; ++v) CHECK(dp->detach({kA, v}) != nullptr);
    }
}
