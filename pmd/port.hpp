// One ethdev port, configured with the offloads its device really offers, started, and stopped
// and closed on destruction.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rte_ethdev.h>

#include "backend/platform/fd.hpp"
#include "pmd/offloads.hpp"

namespace netbackd::pmd {

class Mempool;

struct PortConfig {
    std::uint16_t rx_queues = 1;
    std::uint16_t tx_queues = 1;
    std::uint16_t rx_desc = 1024; // adjusted to the device's limits
    std::uint16_t tx_desc = 1024;
    std::optional<std::uint16_t> mtu; // nullopt: the device default
    bool promiscuous = true;          // vifs have MACs of their own behind this port
    // Offloads we would use; the port enables the intersection with what the device offers.
    Offloads wanted = Offloads::all();
    // Ask for link-state-change interrupts when the PMD supports them; otherwise poll link().
    bool link_interrupts = true;
    // Ask for RX queue interrupts (intr_conf.rxq) so an idle worker can sleep until a frame
    // arrives; a PMD that refuses them is configured without, and has_rx_interrupts() says so.
    bool rx_interrupts = true;
};

struct PortStats {
    std::uint64_t rx_packets = 0;
    std::uint64_t tx_packets = 0;
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_bytes = 0;
    std::uint64_t rx_missed = 0; // dropped by the device for lack of descriptors
    std::uint64_t rx_errors = 0;
    std::uint64_t tx_errors = 0;
    std::uint64_t rx_no_mbuf = 0; // dropped for lack of buffers in the pool
    // Never handed to the device (Port::tx_burst): TSO requests out of bounds, and frames the
    // PMD's own rte_eth_tx_prepare refused.
    std::uint64_t tx_tso_rejected = 0;
    std::uint64_t tx_prepare_rejected = 0;
};

class Port {
public:
    // name: ethdev name, i.e. a vdev name ("net_null0") or a PCI address ("0000:01:00.0").
    // The pool must outlive the port: closing the port returns its RX buffers to the pool.
    // Destruction stops and closes the port, and closing releases the ethdev: a vdev's port is
    // gone afterwards (create the VirtualDevice anew), a NIC's until it is probed again.
    Port(std::string_view name, const PortConfig& config, const Mempool& pool);
    ~Port();
    // Not movable: the link-state callback holds this object's address.
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;
    Port(Port&&) = delete;
    Port& operator=(Port&&) = delete;

    std::uint16_t id() const noexcept { return id_; }
    const std::string& name() const noexcept { return name_; }
    const std::string& driver() const noexcept { return driver_; }
    // TSO segments must fit the MTU counting their Ethernet header too: net_tap (22.11) checks
    // mss + l2 + l3 + l4 <= MTU and refuses the rest of the burst otherwise, where a NIC
    // counts from the IP header as the MTU does.
    bool tso_mtu_counts_l2() const noexcept { return driver_ == "net_tap"; }
    // What the device offers, and what this port enabled: offered & wanted, except that RX
    // scatter is enabled only when the MTU needs it.
    const Offloads& offered() const noexcept { return offered_; }
    const Offloads& hardware() const noexcept { return hardware_; }
    std::uint16_t mtu() const noexcept { return mtu_; }
    std::uint16_t rx_queues() const noexcept { return rx_queues_; }
    std::uint16_t tx_queues() const noexcept { return tx_queues_; }
    std::uint16_t rx_desc() const noexcept { return rx_desc_; }
    std::uint16_t tx_desc() const noexcept { return tx_desc_; }
    // Whether RX traffic is spread over the RX queues by the device's hash (RSS).
    bool rss() const noexcept { return rss_; }
    // Things that work but not as asked (e.g. an MTU the pool's data room cannot hold whole).
    const std::vector<std::string>& warnings() const noexcept { return warnings_; }

    LinkStatus link() const;
    // For publishing a vif's "carrier": the link state if it differs from what the previous
    // call returned (the first call always returns it), else std::nullopt. Call it whenever
    // link_event_fd() is readable and also on a timer (once a second is plenty): some PMDs that
    // declare LSC interrupts never raise the event (net_tap in 22.11 updates its state from
    // netlink silently), and the others have no interrupt at all.
    std::optional<LinkStatus> link_change();
    // Readable (eventfd) when the PMD reported a link change; -1 when the PMD has no LSC
    // interrupt.
    int link_event_fd() const noexcept { return link_event_.get(); }
    bool has_link_interrupt() const noexcept { return static_cast<bool>(link_event_); }
    // Clears the eventfd; true when some change had been signalled.
    bool consume_link_event() const noexcept;

    // RX queue interrupts: true when every RX queue has one (see PortConfig::rx_interrupts).
    bool has_rx_interrupts() const noexcept { return rx_interrupts_; }
    // Adds queue q's interrupt to the epoll instance epfd (rte_epoll_wait on it, or poll it and
    // then call rte_epoll_wait with timeout 0 so DPDK clears what needs clearing). False on
    // failure.
    bool add_rx_interrupt(std::uint16_t q, int epfd) noexcept;
    // Takes it out again (before epfd closes, or the port's stop complains about a stale fd).
    void remove_rx_interrupt(std::uint16_t q, int epfd) noexcept {
        (void)rte_eth_dev_rx_intr_ctl_q(id_, q, epfd, RTE_INTR_EVENT_DEL, nullptr);
    }
    // Arm before sleeping, disarm after: an armed queue interrupts on the next frame.
    bool enable_rx_interrupt(std::uint16_t q) noexcept { return rte_eth_dev_rx_intr_enable(id_, q) == 0; }
    void disable_rx_interrupt(std::uint16_t q) noexcept { (void)rte_eth_dev_rx_intr_disable(id_, q); }
    // Frames waiting in queue q, when the PMD can tell (0 when it cannot).
    std::uint32_t rx_pending(std::uint16_t q) const noexcept {
        const int n = rte_eth_rx_queue_count(id_, q);
        return n > 0 ? static_cast<std::uint32_t>(n) : 0;
    }

    // Administrative link up/down (rte_eth_dev_set_link_up/down); false when the PMD cannot.
    bool set_link(bool up);

    PortStats stats() const;
    void reset_stats();

    // Fast path: no checks beyond DPDK's own. Returns how many buffers were received / taken.
    std::uint16_t rx_burst(std::uint16_t queue, std::span<rte_mbuf*> out) noexcept {
        return rte_eth_rx_burst(id_, queue, out.data(), clamp(out.size()));
    }
    // TX screens what it sends: a TSO request out of bounds (tso_check.hpp) and a frame the PMD's
    // rte_eth_tx_prepare refuses never reach the device; they are counted (stats()) and moved
    // behind the frames sent, where the caller frees what was not taken, as for a full queue.
    std::uint16_t tx_burst(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept {
        const std::uint16_t n = screen_tx(queue, pkts.first(clamp(pkts.size())));
        return rte_eth_tx_burst(id_, queue, pkts.data(), n);
    }

private:
    static std::uint16_t clamp(std::size_t n) noexcept {
        return n > UINT16_MAX ? UINT16_MAX : static_cast<std::uint16_t>(n);
    }
    // Returns how many of pkts may go to the device; they come first, in their order.
    std::uint16_t screen_tx(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept;
    static int on_link_change(std::uint16_t port_id, rte_eth_event_type type, void* self, void* unused);
    void release() noexcept;
    // Configures queues and starts the port; throws on failure (the port is left stopped).
    void configure_and_start(const PortConfig& config, rte_eth_conf conf, const rte_eth_dev_info& info,
                             const Mempool& pool);

    std::uint16_t id_ = 0;
    std::string name_;
    std::string driver_;
    Offloads offered_;
    Offloads hardware_;
    std::uint16_t mtu_ = 0;
    std::uint16_t rx_queues_ = 0;
    std::uint16_t tx_queues_ = 0;
    std::uint16_t rx_desc_ = 0;
    std::uint16_t tx_desc_ = 0;
    std::vector<std::string> warnings_;
    platform::Fd link_event_;
    std::optional<LinkStatus> reported_link_;
    bool rss_ = false;
    bool rx_interrupts_ = false;
    bool callback_registered_ = false;
    bool configured_ = false;
    bool started_ = false;
    // Bumped only on a rejection, by whichever worker's queue saw it.
    std::atomic<std::uint64_t> tso_rejected_{0};
    std::atomic<std::uint64_t> prepare_rejected_{0};
};

} // namespace netbackd::pmd
