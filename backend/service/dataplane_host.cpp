#include "backend/service/dataplane_host.hpp"

#include <algorithm>

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/control/backend_dirs.hpp"
#include "backend/control/vif_id.hpp"
#include "pmd/carrier.hpp"
#include "pmd/error.hpp"

namespace netbackd::service {
namespace {

pmd::EalConfig eal_config_from(const control::GlobalConfig& config) {
    pmd::EalConfig eal;
    if (config.eal_args.empty()) {
        // Nothing configured (the simulated platform's usual case): no hugepages, no PCI scan.
        eal.hugepages = false;
        eal.memory_mb = 512;
        eal.file_prefix = fmt::format("netbackd-{}", ::getpid());
        eal.telemetry = true; // `netbackd stats` reads the counters through it
    } else {
        eal = pmd::parse_eal_args(config.eal_args);
    }
    std::vector<pmd::UplinkSpec> specs;
    for (const auto& p : config.ports) specs.push_back({p.name, p.pci, p.vdev});
    pmd::add_uplinks(eal, specs);
    if (eal.lcores.empty()) {
        // Keep EAL from pinning the control thread (and the worker it starts) to one CPU.
        eal.lcores = pmd::lcores_for_workers(config.worker_cores, pmd::allowed_cpus());
    }
    return eal;
}

// Wire frames of a jumbo port wait in its RX descriptors, then for guest RX slots: one ring's
// worth per worker, not per vif, since a busy guest backs up into drops, not into this pool.
pmd::MempoolSizing jumbo_rx_sizing(const dataplane::DataPlaneConfig& dc) {
    pmd::MempoolSizing sizing;
    sizing.vifs = 1;
    sizing.queues_per_vif = dc.workers;
    sizing.nic_queues = dc.workers;
    sizing.lcores = dc.workers;
    sizing.burst = dc.worker.uplink_burst;
    return sizing;
}

pmd::Mempool jumbo_rx_pool(std::size_t port_index, std::uint32_t mtu, const dataplane::DataPlaneConfig& dc) {
    return pmd::Mempool({.name = fmt::format("nb-rx{}", port_index),
                         .mbufs = pmd::mbufs_needed(jumbo_rx_sizing(dc)),
                         .data_room = pmd::data_room_for_mtu(mtu)});
}

// Backend vif dirs this driver domain has in xenstore now (a restart's vifs to re-adopt).
std::size_t vifs_in_store(platform::Store& store) {
    try {
        return control::backend_vif_dirs(store, store.self_domid()).size();
    } catch (const platform::PlatformError&) {
        return 0; // the control plane reports the store; the pools then grow as vifs attach
    }
}

} // namespace

std::unique_ptr<pmd::Eal> DataPlaneHost::start_eal(const control::GlobalConfig& config) {
    return std::make_unique<pmd::Eal>(eal_config_from(config));
}

DataPlaneHost::DataPlaneHost(const control::GlobalConfig& config, platform::Platform& platform,
                             std::unique_ptr<pmd::Eal> eal, StartClock& clock)
    : eal_(std::move(eal)) {
    const auto eal_config = eal_config_from(config);

    dataplane::DataPlaneConfig dc;
    dc.max_queues = std::max(1u, config.max_queues);
    dc.worker.busy_poll = config.polling == control::Polling::busy;
    // One worker per configured core; none configured: one floating worker.
    dc.workers = static_cast<unsigned>(std::max<std::size_t>(1, config.worker_cores.size()));
    dc.worker_cpus = config.worker_cores;
    if (config.burst) dc.worker.tx_burst = dc.worker.rx_burst = dc.worker.uplink_burst = *config.burst;
    dc.worker.max_vifs = config.max_vifs;
    dc.worker.rx_queue_bytes = config.rx_queue_bytes;
    dc.worker.rx_vif_bytes = config.rx_vif_bytes;
    dc.worker.rx_stall_timeout = std::chrono::milliseconds(config.rx_stall_timeout_ms);
    dc.worker.rx_wait = std::chrono::milliseconds(config.rx_wait_ms);
    dc.worker.rx_merge = config.rx_merge;
    // Room for every vif's MAC at 3/4 load plus as many learned from the wire.
    dc.worker.mac_table = std::max<std::size_t>(dc.worker.mac_table, std::size_t{4} * config.max_vifs);
    // The vifs in xenstore are re-adopted before any is served: run() releases the workers.
    dc.start_held = true;

    // Pools for the vifs attached, grown as more attach (growing_frame_pools.hpp), up to 64:
    // a pool for 1,024 full rings would take gigabytes, most never in flight, so vifs beyond
    // 64 busy ones share these buffers (a dry pool drops, counted as tx_no_mbuf). Queues of
    // one vif share its traffic, so one queue's worth per vif.
    FramePoolPlan plan;
    plan.per_vif.queues_per_vif = 1;
    plan.nic_queues = static_cast<std::uint32_t>(std::max<std::size_t>(1, config.ports.size()));
    plan.vif_cap = std::min(64u, config.max_vifs);
    // A restart re-adopts every vif in xenstore at once: one pool for them all, not one per
    // doubling while the guests wait (each pool took 0.1-0.3 s in the lab).
    plan.first_vifs = static_cast<std::uint32_t>(vifs_in_store(*platform.store));
    // Sized from the memory EAL has: a small -m costs buffers, never a failed try and a retry
    // (each took seconds in the lab's EAL memory, all of it outage on a restart).
    const std::uint64_t free = pmd::eal_free_memory(eal_config.hugepages && eal_config.memory_mb == 0);
    plan.eal_grows_on_demand = eal_config.hugepages && eal_config.memory_mb == 0;
    plan.page_size = pmd::pool_page_size();
    std::uint64_t jumbo_bytes = 0;
    for (const auto& p : config.ports) {
        if (p.mtu && pmd::data_room_for_mtu(*p.mtu) > pmd::kDefaultDataRoom)
            jumbo_bytes += std::uint64_t{pmd::mbufs_needed(jumbo_rx_sizing(dc))} *
                           pmd::mbuf_footprint(pmd::data_room_for_mtu(*p.mtu), plan.page_size);
    }
    // A quarter of what is left stays for ports' rings, workers' queues and EAL itself.
    const std::uint64_t quarter = free > jumbo_bytes ? (free - jumbo_bytes) / 4 : 0;
    plan.keep_free_bytes = jumbo_bytes + quarter;
    pools_ = std::make_unique<GrowingFramePools>(plan);
    clock.mark("frame pools");
    dc.pools = &pools_->pools();
    dc.grow_pools = [pools = pools_.get()](std::size_t vifs) { pools->reserve_for(vifs); };
    spdlog::info(
        "guest RX backlog: at most {} KiB per vif queue, {} KiB per vif, and half of the frame "
        "buffers shared by the vifs; other guests' frames wait up to {} ms for room; stalled after {} ms "
        "without buffers",
        config.rx_queue_bytes / 1024, config.rx_vif_bytes / 1024, config.rx_wait_ms,
        config.rx_stall_timeout_ms);

    for (const auto& p : config.ports) {
        UplinkPort up;
        up.name = p.name;
        const std::string ethdev = pmd::ethdev_name_of({p.name, p.pci, p.vdev});
        // Each worker sends on a TX queue of its own. On RX, one queue per worker spread by the
        // device's RSS; where the device has fewer queues, one RX queue that worker 0 polls.
        pmd::PortConfig pc;
        pc.tx_queues = static_cast<std::uint16_t>(dc.workers);
        pc.rx_queues = static_cast<std::uint16_t>(dc.workers);
        pc.mtu = p.mtu;
        if (p.mtu && pmd::data_room_for_mtu(*p.mtu) > pools_->base().data_room()) {
            up.rx_pool = std::make_unique<pmd::Mempool>(jumbo_rx_pool(uplinks_.size(), *p.mtu, dc));
            spdlog::info("uplink {}: MTU {}: {} RX buffers of {} bytes", p.name, *p.mtu,
                         up.rx_pool->capacity(), up.rx_pool->data_room());
        }
        // The first pool: the one whose buffers the RX backlogs may hold only half of.
        const pmd::Mempool& rx_pool = up.rx_pool ? *up.rx_pool : pools_->base();
        try {
            up.port = std::make_unique<pmd::Port>(ethdev, pc, rx_pool);
        } catch (const pmd::MtuError& e) {
            throw pmd::DpdkError(fmt::format("{}: 'mtu' = {} for port {} ({}): the device takes at most {} "
                                             "(at least {}); lower the MTU or use another port",
                                             p.mtu_source.empty() ? "[[dpdk.ports]]" : p.mtu_source, *p.mtu,
                                             p.name, ethdev, e.max_mtu, e.min_mtu),
                                 e.code());
        } catch (const pmd::DpdkError& e) {
            if (dc.workers == 1) throw;
            pc.rx_queues = 1;
            try {
                up.port = std::make_unique<pmd::Port>(ethdev, pc, rx_pool);
            } catch (const pmd::DpdkError&) {
                throw pmd::DpdkError(fmt::format("{} ({} workers need {} TX queues on every port; a "
                                                 "net_af_packet vdev needs qpairs={})",
                                                 e.what(), dc.workers, dc.workers, dc.workers),
                                     e.code());
            }
        }
        for (const auto& w : up.port->warnings()) spdlog::warn("uplink {}: {}", p.name, w);
        // Software GSO segments for a port without MULTI_SEGS go out in its jumbo buffers.
        up.uplink =
            std::make_unique<dataplane::PortUplink>(*up.port, up.rx_pool ? up.rx_pool->get() : nullptr);
        spdlog::info(
            "uplink {}: port {} up, MTU {}, {} RX / {} TX queue(s){}, {}", p.name, ethdev, up.port->mtu(),
            up.port->rx_queues(), up.port->tx_queues(), up.port->rss() ? " (RSS)" : "",
            up.port->has_rx_interrupts() ? "RX interrupts" : "no RX interrupts (idle polling on a timer)");
        uplinks_.push_back(std::move(up));
    }
    if (!uplinks_.empty()) clock.mark("uplink ports");
    pools_->keep_free(quarter); // the jumbo pools are made
    for (auto& up : uplinks_) dc.uplinks.push_back({up.name, up.uplink.get()});
    if (uplinks_.empty()) spdlog::warn("no [[dpdk.ports]] configured: vifs switch only among themselves");

    dataplane_ = dataplane::make_dataplane(dc, platform);
    clock.mark("workers");
    spdlog::info(
        "data plane: {} MiB EAL memory, {} frame buffers for {} vif(s) so far, {} worker(s), {} polling",
        eal_config.memory_mb, pools_->capacity(), pools_->vifs_provided(), dc.workers,
        dc.worker.busy_poll ? "busy" : "adaptive");
}

DataPlaneHost::~DataPlaneHost() = default;

void DataPlaneHost::publish_link(control::ControlPlane& cp, platform::Store& store, UplinkPort& up,
                                 bool force) {
    const auto change = up.port->link_change();
    if (!change && !force) return;
    const pmd::LinkStatus link = change ? *change : up.port->link();
    if (change && (!up.last_link_up || *up.last_link_up != link.up)) {
        spdlog::info("uplink {}: link {}", up.name, link.up ? "up" : "down");
    }
    up.last_link_up = link.up;
    std::vector<std::string> dirs;
    for (const auto& id : dataplane_->vif_ids()) dirs.push_back(control::backend_path(cp.self(), id));
    pmd::publish_carrier(store, dirs, link);
}

void DataPlaneHost::poll(control::ControlPlane& cp, platform::Store& store,
                         std::chrono::steady_clock::time_point now) {
    for (const auto& fault : dataplane_->take_faults()) {
        spdlog::error("{}: disabled by the data plane: {}", fault.id.name(), fault.message);
        cp.fail_vif(fault.id, control::Fatal{EIO, fault.message});
    }
    for (const auto& c : dataplane_->take_carrier_changes()) {
        if (c.on)
            spdlog::info("{}: guest RX ready: carrier on (stalled {} time(s) so far)", c.id.name(), c.stalls);
        else
            spdlog::warn("{}: guest RX stalled (no usable RX buffers for rx_stall_timeout_ms): carrier off, "
                         "backlog dropped",
                         c.id.name());
    }
    // Link state is polled once a second (see pmd::Port::link_change): some PMDs never raise
    // the event. Newly attached vifs get the current carrier on the same tick.
    if (now < next_link_check_) return;
    next_link_check_ = now + std::chrono::seconds(1);
    const std::size_t vifs = dataplane_->vif_count();
    const bool new_vifs = vifs != carrier_vifs_;
    carrier_vifs_ = vifs;
    for (auto& up : uplinks_) publish_link(cp, store, up, new_vifs);
}

} // namespace netbackd::service
