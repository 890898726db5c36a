#include "pmd/mempool.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <fmt/format.h>

#include "pmd/eal.hpp"

namespace netbackd::pmd {

#ifdef NETBACKD_TSAN
namespace {
// ThreadSanitizer sees no ordering inside DPDK's prebuilt libraries: a buffer one thread frees
// into the stock ring driver and another takes out looks like a race on its bytes. Under TSan
// the pools use this driver instead: an rte_ring behind a mutex, compiled here where TSan sees
// it. (The lock also orders producers among themselves, which rte_ring's multi-producer tail
// hand-off only does by a relaxed wait that TSan rightly does not count.)
struct TsanPool {
    rte_ring* ring = nullptr;
    std::mutex lock;
};
TsanPool& tsan_pool(const rte_mempool* mp) { return *static_cast<TsanPool*>(mp->pool_data); }

int tsan_alloc(rte_mempool* mp) {
    const std::string name = fmt::format("TS_{}", mp->name);
    auto pool = std::make_unique<TsanPool>();
    pool->ring = rte_ring_create(name.c_str(), rte_align32pow2(mp->size + 1), mp->socket_id,
                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (pool->ring == nullptr) return -rte_errno;
    mp->pool_data = pool.release();
    return 0;
}
void tsan_free(rte_mempool* mp) {
    std::unique_ptr<TsanPool> pool(&tsan_pool(mp));
    rte_ring_free(pool->ring);
}
int tsan_enqueue(rte_mempool* mp, void* const* objs, unsigned n) {
    TsanPool& p = tsan_pool(mp);
    std::lock_guard guard(p.lock);
    return rte_ring_sp_enqueue_bulk(p.ring, objs, n, nullptr) == 0 ? -ENOBUFS : 0;
}
int tsan_dequeue(rte_mempool* mp, void** objs, unsigned n) {
    TsanPool& p = tsan_pool(mp);
    std::lock_guard guard(p.lock);
    return rte_ring_sc_dequeue_bulk(p.ring, objs, n, nullptr) == 0 ? -ENOBUFS : 0;
}
unsigned tsan_count(const rte_mempool* mp) {
    TsanPool& p = tsan_pool(mp);
    std::lock_guard guard(p.lock);
    return rte_ring_count(p.ring);
}

constexpr const char* kTsanOps = "netbackd_tsan";
// Constant-initialized: the registration runs as a constructor, before dynamic initialization.
constexpr rte_mempool_ops kTsanOpsTable = {.name = "netbackd_tsan",
                                           .alloc = tsan_alloc,
                                           .free = tsan_free,
                                           .enqueue = tsan_enqueue,
                                           .dequeue = tsan_dequeue,
                                           .get_count = tsan_count};
RTE_MEMPOOL_REGISTER_OPS(kTsanOpsTable);
} // namespace
#endif

std::uint32_t mbufs_needed(const MempoolSizing& s) {
    const std::uint64_t nic = std::uint64_t{s.nic_queues} * (std::uint64_t{s.rx_desc} + s.tx_desc);
    const std::uint64_t vifs = std::uint64_t{s.vifs} * s.queues_per_vif * s.vif_ring_slots * 2;
    const std::uint64_t work = std::uint64_t{s.lcores} * (s.cache * 3ull / 2 + 2ull * s.burst);
    const std::uint64_t total = (nic + vifs) * std::max<std::uint32_t>(1, s.segs_per_packet) + work;
    if (total > std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("mbufs_needed: configuration needs more than 2^32 buffers");
    }
    return static_cast<std::uint32_t>(total);
}

std::uint64_t mbuf_footprint(std::uint16_t data_room, std::uint64_t page_size) {
    rte_mempool_objsz sz{};
    const std::uint64_t obj =
        rte_mempool_calc_obj_size(static_cast<std::uint32_t>(sizeof(rte_mbuf)) + data_room, 0, &sz);
    std::uint64_t bytes = obj;
    if (page_size != 0 && obj <= page_size) bytes = page_size / (page_size / obj);
    return bytes + sizeof(void*); // the ring holds a pointer per buffer
}

std::uint64_t eal_page_size() {
    std::uint64_t page = 0;
    rte_memseg_list_walk(
        [](const rte_memseg_list* msl, void* arg) {
            *static_cast<std::uint64_t*>(arg) = msl->page_sz;
            return 1; // the first is enough: EAL uses one page size unless told otherwise
        },
        &page);
    return page;
}

std::uint64_t pool_page_size() {
    // IOVA as VA: an IO address is the virtual one, so a virtually contiguous buffer is
    // contiguous for the device too, whatever pages lie under it. Physical IO addresses: a
    // buffer must stay within a page (DPDK's default for every pool).
    return rte_eal_iova_mode() == RTE_IOVA_VA ? 0 : eal_page_size();
}

std::uint64_t eal_free_memory(bool grows_on_demand) {
    std::uint64_t free = 0;
    for (unsigned i = 0; i < rte_socket_count(); ++i) {
        rte_malloc_socket_stats st{};
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0) free += st.heap_freesz_bytes;
    }
    if (grows_on_demand) {
        const HostFacts host = probe_host();
        free += host.hugepages_free * host.hugepage_kb * 1024;
    }
    return free;
}

std::uint32_t frame_pool_size(std::uint32_t wanted, std::uint64_t budget_bytes, std::uint64_t bytes_per_mbuf,
                              std::uint32_t floor) {
    if (bytes_per_mbuf == 0) return wanted;
    const std::uint64_t fit = budget_bytes / bytes_per_mbuf;
    if (fit >= wanted) return wanted;
    return static_cast<std::uint32_t>(std::max<std::uint64_t>(fit, std::min(floor, wanted)));
}

std::uint16_t data_room_for_mtu(std::uint32_t mtu) {
    const std::uint32_t room = mtu + kFrameOverhead + RTE_PKTMBUF_HEADROOM;
    if (room > std::numeric_limits<std::uint16_t>::max()) {
        throw std::length_error("data_room_for_mtu: MTU too large for one mbuf");
    }
    return static_cast<std::uint16_t>(room);
}

namespace {
// rte_pktmbuf_init, giving each buffer its IO address first where the pool's memory has none:
// DPDK takes a chunk's address from its memzone, which --no-huge leaves without one, and only
// looks pages up one by one (which gives the virtual address as IOVA) for page-bound pools.
void init_mbuf(rte_mempool* mp, void* arg, void* obj, unsigned index) {
    rte_mempool_objhdr* hdr = rte_mempool_get_header(obj);
    if (hdr->iova == RTE_BAD_IOVA && rte_eal_iova_mode() == RTE_IOVA_VA)
        hdr->iova = reinterpret_cast<std::uintptr_t>(obj);
    rte_pktmbuf_init(mp, arg, obj, index);
}

// rte_pktmbuf_pool_create, plus RTE_MEMPOOL_F_NO_IOVA_CONTIG where buffers may straddle pages
// (see pool_page_size): on 4 KiB pages (--no-huge) that packs 1.7 frame buffers per page instead
// of one, and writing the pool's pages (a page fault and, in a VM, a shadow page-table fill each)
// is what creating it costs: 0.9 -> 0.5 s for 65,535 buffers here. Null with rte_errno set.
rte_mempool* create_pktmbuf_pool(const std::string& name, std::uint32_t n, std::uint32_t cache,
                                 std::uint16_t data_room, int socket) {
    rte_pktmbuf_pool_private priv{};
    priv.mbuf_data_room_size = data_room;
    priv.mbuf_priv_size = 0;
    const unsigned flags = pool_page_size() == 0 ? RTE_MEMPOOL_F_NO_IOVA_CONTIG : 0;
    rte_mempool* mp =
        rte_mempool_create_empty(name.c_str(), n, static_cast<unsigned>(sizeof(rte_mbuf)) + data_room, cache,
                                 sizeof(priv), socket, flags);
    if (mp == nullptr) return nullptr;
#ifdef NETBACKD_TSAN
    const char* ops = kTsanOps;
#else
    const char* ops = rte_mbuf_best_mempool_ops();
#endif
    int ret = rte_mempool_set_ops_byname(mp, ops, nullptr);
    if (ret == 0) {
        rte_pktmbuf_pool_init(mp, &priv);
        ret = rte_mempool_populate_default(mp);
        ret = ret < 0 ? ret : 0;
    }
    if (ret != 0) {
        rte_mempool_free(mp);
        rte_errno = -ret;
        return nullptr;
    }
    rte_mempool_obj_iter(mp, init_mbuf, nullptr);
    return mp;
}
} // namespace

Mempool::Mempool(const MempoolConfig& c) : data_room_(c.data_room), capacity_(c.mbufs) {
    if (c.name.empty() || c.name.size() >= RTE_MEMPOOL_NAMESIZE) {
        throw EalError(
            fmt::format("mempool name '{}' must have 1..{} characters", c.name, RTE_MEMPOOL_NAMESIZE - 1),
            EINVAL);
    }
    // DPDK refuses a cache larger than RTE_MEMPOOL_CACHE_MAX_SIZE or n / 1.5.
    const std::uint32_t cache =
        std::min({c.cache, std::uint32_t{RTE_MEMPOOL_CACHE_MAX_SIZE}, c.mbufs * 2 / 3});
    pool_ = create_pktmbuf_pool(c.name, c.mbufs, cache, c.data_room, c.socket);
    if (pool_ == nullptr) {
        const int err = rte_errno;
        throw EalError(fmt::format("mempool '{}' ({} mbufs of {} bytes): {}{}", c.name, c.mbufs, c.data_room,
                                   rte_strerror(err),
                                   err == ENOMEM ? " (raise EAL -m or lower the pool size)" : ""),
                       err);
    }
}

Mempool::~Mempool() {
    // Every mbuf must be back by now: the ports and queues holding them were closed first.
    rte_mempool_free(pool_);
}

Mempool::Mempool(Mempool&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), data_room_(other.data_room_), capacity_(other.capacity_) {}

Mempool& Mempool::operator=(Mempool&& other) noexcept {
    if (this != &other) {
        rte_mempool_free(pool_);
        pool_ = std::exchange(other.pool_, nullptr);
        data_room_ = other.data_room_;
        capacity_ = other.capacity_;
    }
    return *this;
}

std::uint32_t Mempool::available() const noexcept {
    return pool_ == nullptr ? 0 : rte_mempool_avail_count(pool_);
}

} // namespace netbackd::pmd
