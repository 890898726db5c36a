// Packet buffer pools and how many buffers a configuration needs.
#pragma once

#include <cstdint>
#include <string>

struct rte_mempool;

namespace netbackd::pmd {

struct MempoolSizing {
    std::uint32_t vifs = 1;
    std::uint32_t queues_per_vif = 1;
    std::uint32_t vif_ring_slots = 256; // one netif ring page holds 256 slots
    std::uint32_t nic_queues = 1;       // rx queues (tx queues are assumed to be as many)
    std::uint32_t rx_desc = 1024;
    std::uint32_t tx_desc = 1024;
    std::uint32_t burst = 32;
    std::uint32_t cache = 256;         // per-lcore mempool cache
    std::uint32_t lcores = 1;          // lcores that allocate or free from the pool
    std::uint32_t segs_per_packet = 1; // >1 when frames are chained (jumbo without a big data room)
};

// How many mbufs a pool must hold so that no queue can starve for buffers:
//
//   nic  = nic_queues * (rx_desc + tx_desc)             every RX descriptor holds a buffer,
//                                                       and every TX descriptor may until reaped
//   vifs = vifs * queues_per_vif * vif_ring_slots * 2   a full ring of guest TX packets in flight
//                                                       to the NIC, plus a full ring's worth
//                                                       waiting for guest RX slots
//   work = lcores * (cache * 3 / 2 + 2 * burst)         buffers parked in per-lcore caches (a
//                                                       cache fills to 1.5x its size before it
//                                                       flushes), and an rx plus a tx burst in
//                                                       hand
//   total = (nic + vifs) * segs_per_packet + work
//
// Not rounded up to 2^k - 1 (DPDK's advice for the ring under a pool, whose 2^k slots keep one
// free): the ring costs 8 bytes a slot whatever the count, a buffer 2.4 KiB, and creating a pool
// costs a page fault per page of buffers, so rounding 35,264 up to 65,535 nearly doubled
// netbackd's start-up on a restart (issue 19).
std::uint32_t mbufs_needed(const MempoolSizing& s);

// What a frame adds to its MTU: Ethernet header, two VLAN tags and the CRC (which some NICs
// leave in the buffer), as rte_eth_dev_configure counts it.
inline constexpr std::uint32_t kFrameOverhead = 14 + 2 * 4 + 4;

// Data room for a frame of `mtu` bytes of L3 payload in one buffer, mbuf headroom included.
std::uint16_t data_room_for_mtu(std::uint32_t mtu);

inline constexpr std::uint16_t kDefaultDataRoom = 2048 + 128; // RTE_MBUF_DEFAULT_BUF_SIZE

// Bytes of EAL memory one buffer of a pool with `data_room` costs: the object with its mempool
// header and trailer, and its slot in the pool's ring. A buffer never straddles a page of
// `page_size` (0: no pages to respect), so on 4 KiB pages (--no-huge) a 2 KiB buffer takes a
// whole page.
std::uint64_t mbuf_footprint(std::uint16_t data_room, std::uint64_t page_size = 0);

// The page size of EAL's memory (its first memseg list): a hugepage size, or the system page
// with --no-huge. 0 before EAL starts.
std::uint64_t eal_page_size();

// The page a buffer of a Mempool must not straddle, for mbuf_footprint: 0 when EAL runs with
// IOVA as VA (the pools then pack buffers across pages), else eal_page_size(). After EAL starts.
std::uint64_t pool_page_size();

// EAL heap memory free now on all sockets (rte_malloc_get_socket_stats). With -m or --no-huge
// that is all EAL will ever have; with hugepages and no -m EAL grows on demand, so the free
// hugepages of the system are added.
std::uint64_t eal_free_memory(bool grows_on_demand);

// The frame pool's size at start, from what EAL actually has: `wanted` (mbufs_needed), unless
// `budget_bytes` cannot hold that many buffers of `bytes_per_mbuf`; then as many as fit, and
// never below `floor` (the pool creation then fails with EAL's own reason).
// Pure, so that the start-up never has to try, fail and retry in a small EAL memory.
std::uint32_t frame_pool_size(std::uint32_t wanted, std::uint64_t budget_bytes, std::uint64_t bytes_per_mbuf,
                              std::uint32_t floor = 4095);

struct MempoolConfig {
    std::string name; // unique per process, shorter than RTE_MEMPOOL_NAMESIZE (26)
    std::uint32_t mbufs = 8191;
    std::uint32_t cache = 256;
    // Bytes per buffer including headroom. kDefaultDataRoom fits a 1500-byte MTU; a 9000-byte
    // frame then spans 5 segments (the port needs MULTI_SEGS/SCATTER), or use
    // data_room_for_mtu(9000) for one buffer per frame at four times the memory.
    std::uint16_t data_room = kDefaultDataRoom;
    int socket = -1; // -1: any NUMA node
};

class Mempool {
public:
    explicit Mempool(const MempoolConfig& config);
    ~Mempool();
    Mempool(const Mempool&) = delete;
    Mempool& operator=(const Mempool&) = delete;
    Mempool(Mempool&& other) noexcept;
    Mempool& operator=(Mempool&& other) noexcept;

    rte_mempool* get() const noexcept { return pool_; }
    std::uint16_t data_room() const noexcept { return data_room_; }
    std::uint32_t capacity() const noexcept { return capacity_; }
    // Buffers currently free (in the pool ring or in lcore caches).
    std::uint32_t available() const noexcept;

private:
    rte_mempool* pool_ = nullptr;
    std::uint16_t data_room_ = 0;
    std::uint32_t capacity_ = 0;
};

} // namespace netbackd::pmd
