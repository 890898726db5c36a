#include "pmd/port.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/eventfd.h>

#include <rte_errno.h>

#include <fmt/format.h>

#include "pmd/dpdk_macros.hpp"
#include "pmd/error.hpp"
#include "pmd/mempool.hpp"
#include "pmd/tso_check.hpp"

namespace netbackd::pmd {

namespace {

void check(int rc, std::string_view what, std::string_view port) {
    if (rc < 0) {
        throw DpdkError(fmt::format("port {}: {}: {}", port, what, rte_strerror(-rc)), -rc);
    }
}

std::uint16_t find_port(std::string_view name) {
    std::uint16_t id = 0;
    const std::string n(name);
    if (rte_eth_dev_get_port_by_name(n.c_str(), &id) == 0) {
        return id;
    }
    std::string known;
    for (const auto p : ethdev_ports()) {
        known += known.empty() ? "" : ", ";
        known += ethdev_name(p).value_or("?");
    }
    throw DpdkError(fmt::format("no DPDK port named '{}' (ports: {}); a vdev needs --vdev or "
                                "VirtualDevice, a NIC needs binding to vfio-pci and an -a entry",
                                name, known.empty() ? "none" : known),
                    ENODEV);
}

// Many PMDs (net_tap, net_af_packet) leave max_mtu at UINT16_MAX and bound the frame by
// max_rx_pktlen only, which rte_eth_dev_configure then enforces with a bare EINVAL. The overhead
// is the one ethdev uses for that check.
std::uint16_t device_max_mtu(const rte_eth_dev_info& info) {
    std::uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
    if (info.max_mtu != UINT16_MAX && info.max_rx_pktlen > info.max_mtu)
        overhead = info.max_rx_pktlen - info.max_mtu;
    if (info.max_rx_pktlen <= overhead) return info.max_mtu;
    return static_cast<std::uint16_t>(std::min<std::uint32_t>(info.max_mtu, info.max_rx_pktlen - overhead));
}

} // namespace

Port::Port(std::string_view name, const PortConfig& config, const Mempool& pool)
    : id_(find_port(name)), name_(name) {
    try {
        rte_eth_dev_info info{};
        check(rte_eth_dev_info_get(id_, &info), "dev_info", name_);
        driver_ = info.driver_name != nullptr ? info.driver_name : "";
        offered_ = Offloads::from_capabilities(info.rx_offload_capa, info.tx_offload_capa);
        hardware_ = offered_ & config.wanted;

        if (config.rx_queues == 0 || config.rx_queues > info.max_rx_queues || config.tx_queues == 0 ||
            config.tx_queues > info.max_tx_queues) {
            throw DpdkError(fmt::format("port {}: {} rx / {} tx queues asked, device allows 1..{} "
                                        "/ 1..{}",
                                        name_, config.rx_queues, config.tx_queues, info.max_rx_queues,
                                        info.max_tx_queues),
                            EINVAL);
        }

        rte_eth_conf conf{};
        // Scatter is worth having only when a frame cannot fit one buffer.
        hardware_.rx_scatter = false;
        if (config.mtu) {
            const std::uint16_t max_mtu = device_max_mtu(info);
            if (*config.mtu < info.min_mtu || *config.mtu > max_mtu) {
                throw MtuError(fmt::format("port {}: MTU {} outside the device's {}..{}", name_, *config.mtu,
                                           info.min_mtu, max_mtu),
                               info.min_mtu, max_mtu);
            }
            conf.rxmode.mtu = *config.mtu;
            const std::uint32_t frame = std::uint32_t{*config.mtu} + kFrameOverhead;
            const std::uint32_t room = std::uint32_t{pool.data_room()} - RTE_PKTMBUF_HEADROOM;
            if (frame > room) {
                if (offered_.rx_scatter && config.wanted.rx_scatter) {
                    hardware_.rx_scatter = true;
                } else {
                    warnings_.push_back(
                        fmt::format("MTU {} needs {}-byte buffers but the pool has {} and the device offers "
                                    "no RX scatter: large frames may be dropped",
                                    *config.mtu, frame, room));
                }
            }
        }
        // With several RX queues, spread flows over them by the device's hash; without RSS a
        // NIC delivers everything to queue 0 and the other workers idle.
        const std::uint64_t rss_hf =
            info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
        if (config.rx_queues > 1 && rss_hf != 0) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = nullptr; // the device's default key
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            rss_ = true;
        } else if (config.rx_queues > 1) {
            warnings_.push_back(fmt::format(
                "{} RX queues but the device offers no RSS: traffic stays on queue 0", config.rx_queues));
        }
        conf.rxmode.offloads = hardware_.rx_mask();
        conf.txmode.offloads = hardware_.tx_mask();
        const bool lsc = config.link_interrupts && info.dev_flags != nullptr &&
                         (*info.dev_flags & RTE_ETH_DEV_INTR_LSC) != 0;
        conf.intr_conf.lsc = lsc ? 1 : 0;

        if (lsc) {
            // Registered before start, so the first "link up" is not missed.
            link_event_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
            if (!link_event_) {
                throw DpdkError(fmt::format("port {}: eventfd: {}", name_, std::strerror(errno)), errno);
            }
            check(rte_eth_dev_callback_register(id_, RTE_ETH_EVENT_INTR_LSC, &Port::on_link_change, this),
                  "register link callback", name_);
            callback_registered_ = true;
        }

        // RX interrupts are probed by trying: ethdev has no capability bit for them, and a PMD
        // without them fails configure or start. A stopped port may be configured again, so
        // the fallback needs no close (which would release a vdev for good).
        bool rxq = config.rx_interrupts;
        for (;;) {
            conf.intr_conf.rxq = rxq ? 1 : 0;
            try {
                configure_and_start(config, conf, info, pool);
                break;
            } catch (const DpdkError&) {
                if (!rxq) throw;
                rxq = false;
            }
        }
        if (rxq) {
            rx_interrupts_ = true;
            for (std::uint16_t q = 0; q < rx_queues_; ++q)
                rx_interrupts_ = rx_interrupts_ && rte_eth_dev_rx_intr_ctl_q_get_fd(id_, q) >= 0;
        }

        if (config.promiscuous) {
            const int rc = rte_eth_promiscuous_enable(id_);
            if (rc < 0 && rc != -ENOTSUP) {
                check(rc, "promiscuous mode", name_);
            }
        }
        check(rte_eth_dev_get_mtu(id_, &mtu_), "get MTU", name_);
    } catch (...) {
        release();
        throw;
    }
}

void Port::configure_and_start(const PortConfig& config, rte_eth_conf conf, const rte_eth_dev_info& info,
                               const Mempool& pool) {
    check(rte_eth_dev_configure(id_, config.rx_queues, config.tx_queues, &conf), "configure", name_);
    configured_ = true;
    rx_queues_ = config.rx_queues;
    tx_queues_ = config.tx_queues;
    rx_desc_ = config.rx_desc;
    tx_desc_ = config.tx_desc;
    check(rte_eth_dev_adjust_nb_rx_tx_desc(id_, &rx_desc_, &tx_desc_), "adjust descriptors", name_);

    int socket = rte_eth_dev_socket_id(id_);
    if (socket < 0) {
        socket = SOCKET_ID_ANY;
    }
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    for (std::uint16_t q = 0; q < rx_queues_; ++q) {
        check(rte_eth_rx_queue_setup(id_, q, rx_desc_, static_cast<unsigned>(socket), &rxconf, pool.get()),
              fmt::format("rx queue {} setup", q), name_);
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (std::uint16_t q = 0; q < tx_queues_; ++q) {
        check(rte_eth_tx_queue_setup(id_, q, tx_desc_, static_cast<unsigned>(socket), &txconf),
              fmt::format("tx queue {} setup", q), name_);
    }
    check(rte_eth_dev_start(id_), "start", name_);
    started_ = true;
}

bool Port::add_rx_interrupt(std::uint16_t q, int epfd) noexcept {
    return rx_interrupts_ && rte_eth_dev_rx_intr_ctl_q(id_, q, epfd, RTE_INTR_EVENT_ADD, nullptr) == 0;
}

Port::~Port() { release(); }

void Port::release() noexcept {
    if (started_) {
        rte_eth_dev_stop(id_);
        started_ = false;
    }
    if (callback_registered_) {
        // -EAGAIN: the callback is running on the interrupt thread right now.
        while (rte_eth_dev_callback_unregister(id_, RTE_ETH_EVENT_INTR_LSC, &Port::on_link_change, this) ==
               -EAGAIN) {}
        callback_registered_ = false;
    }
    if (configured_) {
        rte_eth_dev_close(id_);
        configured_ = false;
    }
}

// Runs on DPDK's interrupt thread: only an eventfd write, which is thread-safe and cannot block
// for long.
int Port::on_link_change(std::uint16_t, rte_eth_event_type, void* self, void*) {
    const std::uint64_t one = 1;
    const auto* port = static_cast<const Port*>(self);
    [[maybe_unused]] const auto n = ::write(port->link_event_.get(), &one, sizeof one);
    return 0;
}

bool Port::consume_link_event() const noexcept {
    std::uint64_t count = 0;
    return link_event_ && ::read(link_event_.get(), &count, sizeof count) == sizeof count && count > 0;
}

LinkStatus Port::link() const {
    rte_eth_link l{};
    check(rte_eth_link_get_nowait(id_, &l), "link status", name_);
    LinkStatus s;
    s.up = l.link_status == RTE_ETH_LINK_UP;
    s.speed_mbps = l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : l.link_speed;
    s.full_duplex = l.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    s.autoneg = l.link_autoneg == RTE_ETH_LINK_AUTONEG;
    return s;
}

std::optional<LinkStatus> Port::link_change() {
    consume_link_event();
    const LinkStatus now = link();
    if (reported_link_ == now) {
        return std::nullopt;
    }
    reported_link_ = now;
    return now;
}

bool Port::set_link(bool up) {
    const int rc = up ? rte_eth_dev_set_link_up(id_) : rte_eth_dev_set_link_down(id_);
    if (rc == -ENOTSUP) {
        return false;
    }
    check(rc, up ? "set link up" : "set link down", name_);
    return true;
}

PortStats Port::stats() const {
    rte_eth_stats st{};
    check(rte_eth_stats_get(id_, &st), "stats", name_);
    PortStats s;
    s.rx_packets = st.ipackets;
    s.tx_packets = st.opackets;
    s.rx_bytes = st.ibytes;
    s.tx_bytes = st.obytes;
    s.rx_missed = st.imissed;
    s.rx_errors = st.ierrors;
    s.tx_errors = st.oerrors;
    s.rx_no_mbuf = st.rx_nombuf;
    s.tx_tso_rejected = tso_rejected_.load(std::memory_order_relaxed);
    s.tx_prepare_rejected = prepare_rejected_.load(std::memory_order_relaxed);
    return s;
}

std::uint16_t Port::screen_tx(std::uint16_t queue, std::span<rte_mbuf*> pkts) noexcept {
    // Bad TSO requests to the back; the good frames keep their order (swap partition).
    std::size_t good = 0;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        if ((pkts[i]->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0 &&
            (!hardware_.tx_tcp_tso || tso_fault(pkts[i]) != TsoFault::none)) {
            tso_rejected_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        std::swap(pkts[good++], pkts[i]);
    }
    // A PMD without a prepare callback takes everything here at the cost of one check.
    std::size_t ok = rte_eth_tx_prepare(id_, queue, pkts.data(), static_cast<std::uint16_t>(good));
    while (ok < good) {
        prepare_rejected_.fetch_add(1, std::memory_order_relaxed);
        std::rotate(pkts.begin() + static_cast<std::ptrdiff_t>(ok),
                    pkts.begin() + static_cast<std::ptrdiff_t>(ok) + 1,
                    pkts.begin() + static_cast<std::ptrdiff_t>(good));
        --good;
        ok += rte_eth_tx_prepare(id_, queue, pkts.data() + ok, static_cast<std::uint16_t>(good - ok));
    }
    return static_cast<std::uint16_t>(good);
}

void Port::reset_stats() { check(rte_eth_stats_reset(id_), "stats reset", name_); }

} // namespace netbackd::pmd
