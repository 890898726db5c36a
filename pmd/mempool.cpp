#include "pmd/mempool.hpp"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <fmt/format.h>

#include "pmd/eal.hpp"

namespace netbackd::pmd {

std::uint32_t mbufs_needed(const MempoolSizing& s) {
    const std::uint64_t nic = std::uint64_t{s.nic_queues} * (std::uint64_t{s.rx_desc} + s.tx_desc);
    const std::uint64_t vifs = std::uint64_t{s.vifs} * s.queues_per_vif * s.vif_ring_slots * 2;
    const std::uint64_t work = std::uint64_t{s.lcores} * (s.cache * 3ull / 2 + 2ull * s.burst);
    const std::uint64_t total = (nic + vifs) * std::max<std::uint32_t>(1, s.segs_per_packet) + work;
    const std::uint64_t rounded = std::bit_ceil(total + 1) - 1;
    if (rounded > std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("mbufs_needed: configuration needs more than 2^32 buffers");
    }
    return static_cast<std::uint32_t>(rounded);
}

std::uint16_t data_room_for_mtu(std::uint32_t mtu) {
    const std::uint32_t room = mtu + kFrameOverhead + RTE_PKTMBUF_HEADROOM;
    if (room > std::numeric_limits<std::uint16_t>::max()) {
        throw std::length_error("data_room_for_mtu: MTU too large for one mbuf");
    }
    return static_cast<std::uint16_t>(room);
}

Mempool::Mempool(const MempoolConfig& c) : data_room_(c.data_room), capacity_(c.mbufs) {
    if (c.name.empty() || c.name.size() >= RTE_MEMPOOL_NAMESIZE) {
        throw EalError(
            fmt::format("mempool name '{}' must have 1..{} characters", c.name, RTE_MEMPOOL_NAMESIZE - 1),
            EINVAL);
    }
    // DPDK refuses a cache larger than RTE_MEMPOOL_CACHE_MAX_SIZE or n / 1.5.
    const std::uint32_t cache =
        std::min({c.cache, std::uint32_t{RTE_MEMPOOL_CACHE_MAX_SIZE}, c.mbufs * 2 / 3});
    pool_ = rte_pktmbuf_pool_create(c.name.c_str(), c.mbufs, cache, 0, c.data_room, c.socket);
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
