// Hidden (not run by ctest) throughput figures of the fast path on one core, the worker stepped
// in the test thread that also plays netfront, so the figure includes the guest's side:
//   dataplane_bench_test "[measure]"     (NETBACKD_BENCH_PACKETS, default 2000000)
#include <chrono>
#include <cstdlib>

#include <catch2/catch.hpp>

#include "tests/support/stepped_worker.hpp"

using namespace netbackd;
using namespace netbackd::dataplane;
using namespace netbackd::dataplane::test;

namespace {

std::uint64_t packets_wanted() {
    const char* env = std::getenv("NETBACKD_BENCH_PACKETS");
    return env != nullptr ? std::strtoull(env, nullptr, 10) : 2'000'000;
}

} // namespace

TEST_CASE("guest TX to the uplink, 64-byte frames", "[.][measure]") {
    for (const std::size_t size : {64u, 1500u}) {
        Rig rig({11});
        Netfront a(rig.world, 11);
        VifRuntime& va = rig.attach(a, mac(0xa));
        const Bytes f = frame(mac(0x99), mac(0xa), size - 54);
        const platform::GrantRef ref = a.granted_page(f, true);
        const std::uint64_t total = packets_wanted();
        std::uint64_t sent = 0;
        std::uint64_t out = 0;
        std::uint16_t id = 0;
        const auto t0 = std::chrono::steady_clock::now();
        while (out < total) {
            while (sent < total && !a.tx().full()) {
                a.tx().put_request(netif_tx_request_t{ref, 0, 0, id++, static_cast<std::uint16_t>(f.size())});
                ++sent;
            }
            a.tx().push();
            rig.worker->poll_once();
            out += rig.up.discard();
            const ring::Avail r = a.tx().poll();
            a.tx().consume(r.count);
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const VifStats st = snapshot(va.counters());
        WARN(size << "-byte frames guest->uplink: " << static_cast<double>(out) / s / 1e6 << " Mpps, "
                  << static_cast<double>(out) * static_cast<double>(size) * 8 / s / 1e9 << " Gbit/s; "
                  << static_cast<double>(st.copy_segments) / static_cast<double>(st.copy_batches)
                  << " segments per copy call");
        CHECK(out == total);
    }
}

TEST_CASE("uplink to guest RX, 64-byte frames", "[.][measure]") {
    for (const std::size_t size : {64u, 1500u}) {
        Rig rig({11});
        Netfront a(rig.world, 11);
        VifRuntime& va = rig.attach(a, mac(0xa));
        const Bytes f = frame(mac(0xa), mac(0x99), size - 54);
        std::vector<platform::GrantRef> bufs;
        for (int i = 0; i < 256; ++i) bufs.push_back(a.granted_page({}, false));
        const std::uint64_t total = packets_wanted() / 2;
        std::uint64_t injected = 0;
        std::uint64_t got = 0;
        std::uint16_t id = 0;
        std::array<rte_mbuf*, 32> burst{};
        const auto t0 = std::chrono::steady_clock::now();
        while (got < total) {
            while (!a.rx().full()) {
                netif_rx_request_t req{};
                req.id = id;
                req.gref = bufs[id % 256];
                ++id;
                a.rx().put_request(req);
            }
            a.rx().push();
            if (injected < total) {
                // What a port RX burst hands over: freshly filled buffers.
                if (rte_pktmbuf_alloc_bulk(rig.pool.get(), burst.data(), burst.size()) != 0) FAIL("pool dry");
                for (rte_mbuf* m : burst) {
                    std::memcpy(rte_pktmbuf_mtod(m, void*), f.data(), f.size());
                    m->data_len = static_cast<std::uint16_t>(f.size());
                    m->pkt_len = static_cast<std::uint32_t>(f.size());
                }
                for (rte_mbuf* m : burst) rig.up.inject_mbuf(m);
                injected += burst.size();
            }
            rig.worker->poll_once();
            const ring::Avail r = a.rx().poll();
            a.rx().consume(r.count);
            got += r.count;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const VifStats st = snapshot(va.counters());
        WARN(size << "-byte frames uplink->guest: " << static_cast<double>(got) / s / 1e6 << " Mpps; "
                  << st.dropped(Drop::rx_no_buffer) << " dropped for lack of buffers");
        CHECK(st.rx_packets >= total);
    }
}
