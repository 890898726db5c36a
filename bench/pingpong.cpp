// netbackd-pingpong: the vhost-user peer's side of the latency scenario. One process plays both
// guests, as xensim's latency mode does: two virtio-user ports (guest A's and guest B's NIC),
// both attached to one testpmd vhost-user backend forwarding port 0 <-> port 1 (io mode). A
// frame goes A -> backend -> B, B sends it straight back (its MACs swapped, so that a switching
// backend such as Open vSwitch's NORMAL action sends it to A), and A times the round trip with
// the TSC; both ends busy-poll, as DPDK drivers do. Prints the same JSON line as
// `xensim netfront --latency-peer`.
//
// Usage: netbackd-pingpong <EAL args with two net_virtio_user vdevs> -- --size N --seconds S
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

namespace {

struct Eal {
    Eal(int argc, char** argv) : consumed(rte_eal_init(argc, argv)) {
        if (consumed < 0) throw std::runtime_error("rte_eal_init failed");
    }
    ~Eal() { rte_eal_cleanup(); }
    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
    int consumed;
};

struct PoolFree {
    void operator()(rte_mempool* p) const noexcept { rte_mempool_free(p); }
};
using Pool = std::unique_ptr<rte_mempool, PoolFree>;

struct MbufFree {
    void operator()(rte_mbuf* m) const noexcept { rte_pktmbuf_free(m); }
};
using Mbuf = std::unique_ptr<rte_mbuf, MbufFree>;

// A started port, stopped and closed on scope exit.
struct Port {
    Port(std::uint16_t id, rte_mempool* pool) : id(id) {
        rte_eth_conf conf{};
        if (rte_eth_dev_configure(id, 1, 1, &conf) != 0 ||
            rte_eth_rx_queue_setup(id, 0, 256, rte_eth_dev_socket_id(id), nullptr, pool) != 0 ||
            rte_eth_tx_queue_setup(id, 0, 256, rte_eth_dev_socket_id(id), nullptr) != 0 ||
            rte_eth_dev_start(id) != 0)
            throw std::runtime_error("setting up port " + std::to_string(id) + " failed");
    }
    ~Port() {
        rte_eth_dev_stop(id);
        rte_eth_dev_close(id);
    }
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;
    std::uint16_t id;
};

// IPv4/UDP between two locally administered MACs; testpmd's io mode does not look at it.
std::vector<std::uint8_t> make_frame(std::size_t size) {
    std::vector<std::uint8_t> f(size, 0);
    const std::uint8_t head[] = {0x02,
                                 0,
                                 0,
                                 0,
                                 0,
                                 0x0b,
                                 0x02,
                                 0,
                                 0,
                                 0,
                                 0,
                                 0x0a,
                                 0x08,
                                 0x00,
                                 0x45,
                                 0,
                                 static_cast<std::uint8_t>((size - 14) >> 8),
                                 static_cast<std::uint8_t>(size - 14),
                                 0,
                                 0,
                                 0,
                                 0,
                                 64,
                                 17};
    std::memcpy(f.data(), head, sizeof head);
    return f;
}

// The answer goes back to the sender: a switch forwards by destination MAC.
void swap_macs(rte_mbuf* m) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    std::swap(eth->dst_addr, eth->src_addr);
}

// Sends the one frame; false when the port will not take it before `deadline` (TSC).
bool send(std::uint16_t port, Mbuf& m, std::uint64_t deadline) {
    rte_mbuf* raw = m.get();
    while (rte_eth_tx_burst(port, 0, &raw, 1) == 0)
        if (rte_rdtsc() > deadline) return false;
    (void)m.release(); // the driver owns it now
    return true;
}

Mbuf receive(std::uint16_t port, std::uint64_t deadline) {
    rte_mbuf* raw = nullptr;
    while (rte_eth_rx_burst(port, 0, &raw, 1) == 0)
        if (rte_rdtsc() > deadline) return nullptr;
    return Mbuf(raw);
}

// Each round's number rides in the UDP payload: a frame that arrives after its round timed out
// (a process descheduled mid-round) is dropped, not taken as the answer of a later round.
constexpr std::size_t seq_offset = 14 + 20 + 8;

std::uint64_t seq_of(const rte_mbuf* m) {
    std::uint64_t seq = 0;
    if (rte_pktmbuf_data_len(m) >= seq_offset + sizeof seq)
        std::memcpy(&seq, rte_pktmbuf_mtod_offset(m, const char*, seq_offset), sizeof seq);
    return seq;
}

Mbuf receive_round(std::uint16_t port, std::uint64_t seq, std::uint64_t deadline) {
    for (;;) {
        Mbuf m = receive(port, deadline);
        if (!m || seq_of(m.get()) == seq) return m;
    }
}

double percentile_us(const std::vector<double>& sorted_us, double p) {
    if (sorted_us.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted_us.size())));
    return sorted_us[std::min(sorted_us.size() - 1, rank == 0 ? 0 : rank - 1)];
}

int run(int argc, char** argv) {
    Eal eal(argc, argv);
    std::size_t size = 64;
    double seconds = 5;
    for (int i = eal.consumed + 1; i + 1 < argc; i += 2) {
        const std::string_view k = argv[i];
        if (k == "--size")
            size = std::strtoul(argv[i + 1], nullptr, 10);
        else if (k == "--seconds")
            seconds = std::strtod(argv[i + 1], nullptr);
        else
            throw std::runtime_error("unknown option " + std::string(k));
    }
    if (size < 60 || size > 1514) throw std::runtime_error("--size must be 60..1514");
    if (rte_eth_dev_count_avail() != 2)
        throw std::runtime_error("needs exactly two ports (two net_virtio_user vdevs)");
    Pool pool(rte_pktmbuf_pool_create("pingpong", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                      static_cast<int>(rte_socket_id())));
    if (!pool) throw std::runtime_error("mempool");
    Port a(0, pool.get());
    Port b(1, pool.get());
    const auto frame = make_frame(size);
    const std::uint64_t hz = rte_get_tsc_hz();
    const std::uint64_t loss_timeout = hz / 10; // as xensim's latency mode: 100 ms

    // The vhost backend forwards only once both virtio-user ports are connected and up.
    rte_eth_link link{};
    const std::uint64_t link_deadline = rte_rdtsc() + 10 * hz;
    for (std::uint16_t p : {a.id, b.id}) {
        do {
            rte_eth_link_get_nowait(p, &link);
        } while (link.link_status != RTE_ETH_LINK_UP && rte_rdtsc() < link_deadline);
    }

    std::vector<double> rtt_us;
    rtt_us.reserve(1 << 20);
    std::uint64_t lost = 0;
    // Warm-up as in xensim's latency mode: the first 300 ms are not counted.
    const std::uint64_t warm = rte_rdtsc() + 3 * hz / 10;
    const std::uint64_t end = warm + static_cast<std::uint64_t>(seconds * static_cast<double>(hz));
    std::uint64_t seq = 0;
    for (bool counting = false;;) {
        const std::uint64_t t0 = rte_rdtsc();
        if (t0 >= end) break;
        if (!counting && t0 >= warm) {
            counting = true;
            rtt_us.clear();
            lost = 0;
        }
        const std::uint64_t deadline = t0 + loss_timeout;
        Mbuf m(rte_pktmbuf_alloc(pool.get()));
        if (!m) throw std::runtime_error("out of mbufs");
        auto* data = rte_pktmbuf_append(m.get(), static_cast<std::uint16_t>(size));
        std::memcpy(data, frame.data(), size);
        ++seq;
        std::memcpy(data + seq_offset, &seq, sizeof seq);
        Mbuf back;
        bool ok = send(a.id, m, deadline);
        if (ok) {
            Mbuf at_b = receive_round(b.id, seq, deadline);
            if (at_b) swap_macs(at_b.get());
            ok = at_b && send(b.id, at_b, deadline) && (back = receive_round(a.id, seq, deadline));
        }
        if (!ok) {
            ++lost;
            continue;
        }
        rtt_us.push_back(static_cast<double>(rte_rdtsc() - t0) * 1e6 / static_cast<double>(hz));
    }
    std::sort(rtt_us.begin(), rtt_us.end());
    std::printf(
        "{\"rounds\":%zu,\"lost\":%llu,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"min_us\":%.2f,"
        "\"max_us\":%.2f}\n",
        rtt_us.size(), static_cast<unsigned long long>(lost), percentile_us(rtt_us, 0.5),
        percentile_us(rtt_us, 0.99), percentile_us(rtt_us, 0.999), rtt_us.empty() ? 0 : rtt_us.front(),
        rtt_us.empty() ? 0 : rtt_us.back());
    std::fflush(stdout);
    return rtt_us.empty() ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netbackd-pingpong: %s\n", e.what());
        return 1;
    }
}
