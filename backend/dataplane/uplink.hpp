// The wire side of a worker: a port's RX/TX queue pair. An interface (one virtual call per
// burst) so that the worker runs over a DPDK port in production and over plain rte_rings in
// tests, where the test must see exactly what went out.
#pragma once

#include <cstdint>
#include <span>

#include "pmd/offloads.hpp"
#include "pmd/port.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace netbackd::dataplane {

class Uplink {
public:
    virtual ~Uplink() = default;
    virtual std::uint16_t rx_burst(std::uint16_t queue, std::span<rte_mbuf*> out) noexcept = 0;
    // Takes what it returns; the caller still owns the rest.
    virtual std::uint16_t tx_burst(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept = 0;
    // Offloads enabled on the device: what the worker may ask of it, and do itself otherwise.
    virtual const pmd::Offloads& hardware() const noexcept = 0;
    // L3 MTU of the wire: software segmentation cuts to this.
    virtual std::uint16_t mtu() const noexcept = 0;
    // A TSO segment's Ethernet header counts against the MTU (see pmd::Port).
    virtual bool tso_mtu_counts_l2() const noexcept { return false; }
    // Buffers that hold a whole MTU-sized frame, for software GSO segments on a port without
    // MULTI_SEGS (nullptr: none; segments are then cut to fit the frame pool's buffers).
    virtual rte_mempool* contiguous_pool() const noexcept { return nullptr; }
    // RX queues to poll (RSS spreads the wire's flows over them).
    virtual std::uint16_t rx_queues() const noexcept { return 1; }
    // TX queues: each worker sends on its own, so a data plane needs one per worker.
    virtual std::uint16_t tx_queues() const noexcept { return 1; }
    // RX interrupts (see pmd::Port): add queue q's to an epoll fd; false: the queue has none and
    // must be polled on a timer. arm before sleeping, disarm after.
    virtual bool add_rx_interrupt(std::uint16_t, int) noexcept { return false; }
    virtual void remove_rx_interrupt(std::uint16_t, int) noexcept {}
    virtual void arm_rx_interrupt(std::uint16_t) noexcept {}
    virtual void disarm_rx_interrupt(std::uint16_t) noexcept {}
    // Frames already waiting on queue q (0 when unknown).
    virtual std::uint32_t rx_pending(std::uint16_t) const noexcept { return 0; }
};

class PortUplink final : public Uplink {
public:
    explicit PortUplink(pmd::Port& port, rte_mempool* contiguous = nullptr) noexcept
        : port_(port), contiguous_(contiguous) {}
    std::uint16_t rx_burst(std::uint16_t queue, std::span<rte_mbuf*> out) noexcept override {
        return port_.rx_burst(queue, out);
    }
    std::uint16_t tx_burst(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept override {
        return port_.tx_burst(queue, pkts);
    }
    const pmd::Offloads& hardware() const noexcept override { return port_.hardware(); }
    std::uint16_t mtu() const noexcept override { return port_.mtu(); }
    bool tso_mtu_counts_l2() const noexcept override { return port_.tso_mtu_counts_l2(); }
    rte_mempool* contiguous_pool() const noexcept override { return contiguous_; }
    std::uint16_t rx_queues() const noexcept override { return port_.rx_queues(); }
    std::uint16_t tx_queues() const noexcept override { return port_.tx_queues(); }
    bool add_rx_interrupt(std::uint16_t q, int epfd) noexcept override {
        return port_.add_rx_interrupt(q, epfd);
    }
    void remove_rx_interrupt(std::uint16_t q, int epfd) noexcept override {
        port_.remove_rx_interrupt(q, epfd);
    }
    void arm_rx_interrupt(std::uint16_t q) noexcept override { (void)port_.enable_rx_interrupt(q); }
    void disarm_rx_interrupt(std::uint16_t q) noexcept override { port_.disable_rx_interrupt(q); }
    std::uint32_t rx_pending(std::uint16_t q) const noexcept override { return port_.rx_pending(q); }

private:
    pmd::Port& port_;
    rte_mempool* contiguous_;
};

} // namespace netbackd::dataplane
