#include "xensim/netfront/netfront.hpp"

#include <cerrno>
#include <cstring>
#include <thread>

#include <poll.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ring/sring.hpp"

namespace netbackd::xensim {

Netfront::Netfront(platform::Store& store, platform::Events& events, GuestMemory& memory,
                   NetfrontOptions options)
    : store_(store),
      events_(events),
      memory_(memory),
      opt_(options),
      fe_(fmt::format("/local/domain/{}/device/vif/{}", options.self, options.devid)),
      token_(fmt::format("netfront:{}", options.devid)) {}

Netfront::~Netfront() {
    if (watching_) {
        try {
            store_.unwatch(be_ + "/state", token_);
        } catch (...) {
            // Connection already gone.
        }
    }
    release_rings();
}

void Netfront::start() {
    const auto be = store_.read(0, fe_ + "/backend");
    const auto be_id = store_.read(0, fe_ + "/backend-id");
    if (!be || !be_id)
        throw platform::PlatformError(fmt::format("{}: no backend/backend-id: was the vif attached?", fe_),
                                      ENOENT);
    be_ = *be;
    backend_ = static_cast<platform::DomId>(std::stoul(*be_id));
    state_ = std::stoi(store_.read(0, fe_ + "/state").value_or("1"));
    store_.watch(be_ + "/state", token_);
    watching_ = true;
    process_watches();
}

std::optional<std::string> Netfront::read_backend(const std::string& key) {
    // Once the backend dir is gone, its toolstack-owned parent may be unreadable for a guest:
    // EACCES then means the same as ENOENT.
    try {
        return store_.read(0, be_ + "/" + key);
    } catch (const platform::PlatformError& e) {
        if (e.code() == EACCES) return std::nullopt;
        throw;
    }
}

void Netfront::process_watches() {
    store_.read_watches();
    const auto v = read_backend("state");
    std::optional<int> bs;
    if (v) {
        try {
            bs = std::stoi(*v);
        } catch (...) {
            bs = 0;
        }
    }
    on_backend_state(bs);
}

bool Netfront::wait_for_state(int want, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (state_ != want) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd pfd{store_.watch_fd(), POLLIN, 0};
        poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        process_watches();
    }
    return true;
}

void Netfront::set_state(int s) {
    // xenbus_switch_state: only while the node exists, so a removed device stays removed.
    bool present = false;
    store_.transaction([&](platform::TxId tx) {
        present = store_.read(tx, fe_ + "/state").has_value();
        if (present) store_.write(tx, fe_ + "/state", std::to_string(s));
    });
    if (present) state_ = s;
}

void Netfront::fatal(int err, const std::string& message) {
    spdlog::error("netfront {}: {} {}", fe_, err, message);
    store_.write(0, fmt::format("/local/domain/{}/error/device/vif/{}/error", opt_.self, opt_.devid),
                 fmt::format("{} {}", err, message));
    set_state(5);
}

void Netfront::on_backend_state(std::optional<int> bs) {
    if (!bs) { // backend dir gone: nothing left to talk to
        release_rings();
        return;
    }
    if (opt_.flavour == NetfrontFlavour::closes) {
        // No rings, no channels: the device is shut before it was ever used.
        if (state_ != 6) set_state(6);
        return;
    }
    if (opt_.flavour == NetfrontFlavour::windows && !close_cycle_done_) {
        // The Windows drivers reset the device before using it: Closing, Closed, then
        // Initialising again, each once the backend followed. A backend that only knows
        // InitWait -> Connected wedges them here.
        if (*bs == 2 && state_ == 1)
            set_state(5);
        else if (*bs == 5 && state_ == 5)
            set_state(6);
        else if (*bs == 6 && state_ == 6) {
            set_state(1);
            close_cycle_done_ = true;
        }
        return;
    }
    switch (*bs) {
    case 2: // InitWait
        if (state_ == 6 || state_ == 5) {
            // The backend renegotiates (it restarted or recovered): start over.
            release_rings();
            set_state(1);
        }
        if (state_ == 1) talk_to_netback();
        break;
    case 5: // Closing
    case 6: // Closed
        // While Initialising (a reboot), the backend passes through Closing and Closed on its
        // way back to InitWait; only a frontend with a live connection follows it down.
        if (state_ != 6 && state_ != 1) {
            // The backend unmapped and unbound before it left Connected; our pages are free.
            release_rings();
            set_state(6);
        }
        break;
    default: break;
    }
}

void Netfront::talk_to_netback() {
    const auto rx_copy = read_backend("feature-rx-copy");
    if (rx_copy != "1") {
        fatal(ENODEV, "backend does not support copying receive path");
        return;
    }
    const auto max_text = read_backend("multi-queue-max-queues");
    unsigned max_queues = 1;
    if (max_text) {
        try {
            max_queues = static_cast<unsigned>(std::stoul(*max_text));
        } catch (...) {
            max_queues = 1;
        }
    }
    const unsigned n = std::max(1u, std::min(opt_.queues, max_queues));
    const bool split = opt_.split_event_channels && read_backend("feature-split-event-channels") == "1";
    features_.sg = read_backend("feature-sg") == "1";
    features_.gso_tcpv4 = read_backend("feature-gso-tcpv4") == "1";
    features_.gso_tcpv6 = read_backend("feature-gso-tcpv6") == "1";
    features_.csum_offload = read_backend("feature-no-csum-offload") != "1";
    features_.multicast_control = read_backend("feature-multicast-control") == "1";
    features_.dynamic_multicast_control = read_backend("feature-dynamic-multicast-control") == "1";
    features_.xdp_headroom = read_backend("feature-xdp-headroom") == "1";

    release_rings();
    const bool ctrl = (opt_.hash.has_value() || opt_.staging) && read_backend("feature-ctrl-ring") == "1";
    try {
        if (ctrl) {
            const Gfn gfn = memory_.alloc_page();
            const ring::Page page(memory_.page(gfn).first<ring::kPageSize>());
            ring::init_shared_ring<ring::CtrlRing>(page);
            const platform::GrantRef ref = memory_.grant_access(gfn, backend_, false);
            ctrl_.emplace(
                Ctrl{gfn, ref, events_.alloc_unbound(backend_), ring::FrontRing<ring::CtrlRing>(page)});
        }
        for (unsigned q = 0; q < n; ++q) {
            FrontQueue fq;
            fq.tx_gfn = memory_.alloc_page();
            fq.rx_gfn = memory_.alloc_page();
            ring::init_shared_ring<ring::TxRing>(
                ring::Page(memory_.page(fq.tx_gfn).first<ring::kPageSize>()));
            ring::init_shared_ring<ring::RxRing>(
                ring::Page(memory_.page(fq.rx_gfn).first<ring::kPageSize>()));
            fq.tx_ref = memory_.grant_access(fq.tx_gfn, backend_, false);
            fq.rx_ref = memory_.grant_access(fq.rx_gfn, backend_, false);
            fq.tx_port = events_.alloc_unbound(backend_);
            fq.rx_port = split ? events_.alloc_unbound(backend_) : fq.tx_port;
            queues_.push_back(fq);
        }
    } catch (const platform::PlatformError& e) {
        release_rings();
        fatal(ENOMEM, fmt::format("allocating rings: {}", e.what()));
        return;
    }

    store_.transaction([&](platform::TxId tx) {
        auto put = [&](const std::string& key, const std::string& value) {
            store_.write(tx, fe_ + "/" + key, value);
        };
        if (max_text || opt_.flavour == NetfrontFlavour::unikraft)
            put("multi-queue-num-queues", std::to_string(n));
        for (unsigned q = 0; q < n; ++q) {
            const FrontQueue& fq = queues_[q];
            const std::string dir = n == 1 ? "" : fmt::format("queue-{}/", q);
            put(dir + "tx-ring-ref", std::to_string(fq.tx_ref));
            put(dir + "rx-ring-ref", std::to_string(fq.rx_ref));
            if (split) {
                put(dir + "event-channel-tx", std::to_string(fq.tx_port));
                put(dir + "event-channel-rx", std::to_string(fq.rx_port));
            } else {
                put(dir + "event-channel", std::to_string(fq.tx_port));
            }
        }
        if (ctrl_) {
            put("ctrl-ring-ref", std::to_string(ctrl_->ref));
            put("event-channel-ctrl", std::to_string(ctrl_->port));
        }
        put("request-rx-copy", "1");
        if (opt_.flavour == NetfrontFlavour::linux_guest) {
            put("feature-rx-notify", "1");
            put("feature-sg", "1");
        }
        put("feature-gso-tcpv4", "1");
        put("feature-gso-tcpv6", "1");
        put("feature-ipv6-csum-offload", "1");
        if (opt_.multicast_control && features_.multicast_control) put("request-multicast-control", "1");
        if (opt_.xdp_headroom && features_.xdp_headroom)
            put("xdp-headroom", std::to_string(*opt_.xdp_headroom));
    });
    ++generation_;
    spdlog::info("netfront {}: {} queue(s){}, connecting", fe_, n, split ? ", split event channels" : "");
    set_state(4);
}

void Netfront::set_multicast_control(bool on) {
    store_.write(0, fe_ + "/request-multicast-control", on ? "1" : "0");
}

void Netfront::release_rings() {
    if (!queues_.empty()) {
        ++generation_;
        if (release_hook_) release_hook_();
    }
    for (const auto& q : queues_) {
        for (auto [ref, gfn] : {std::pair{q.tx_ref, q.tx_gfn}, std::pair{q.rx_ref, q.rx_gfn}}) {
            if (memory_.end_access(ref))
                memory_.free_page(gfn);
            else
                stuck_refs_.emplace_back(ref, gfn); // still mapped: the page must not be reused
        }
        for (auto port : {q.tx_port, q.rx_port}) {
            try {
                events_.unbind(port);
            } catch (const platform::PlatformError&) {
                // rx_port == tx_port without split channels: already closed.
            }
            if (q.rx_port == q.tx_port) break;
        }
    }
    queues_.clear();
    if (ctrl_) {
        if (memory_.end_access(ctrl_->ref))
            memory_.free_page(ctrl_->gfn);
        else
            stuck_refs_.emplace_back(ctrl_->ref, ctrl_->gfn);
        try {
            events_.unbind(ctrl_->port);
        } catch (const platform::PlatformError&) {
            // Already closed.
        }
        ctrl_.reset();
    }
    for (auto [ref, gfn] : data_pages_) {
        if (memory_.end_access(ref))
            memory_.free_page(gfn);
        else
            stuck_refs_.emplace_back(ref, gfn);
    }
    data_pages_.clear();
    // Retry grants the backend held last time; they may be free by now.
    std::erase_if(stuck_refs_, [&](const std::pair<platform::GrantRef, Gfn>& s) {
        if (!memory_.end_access(s.first)) return false;
        memory_.free_page(s.second);
        return true;
    });
}

platform::GrantRef Netfront::grant_bytes(std::span<const std::byte> bytes, bool writable) {
    const Gfn gfn = memory_.alloc_page();
    auto page = memory_.page(gfn);
    std::memset(page.data(), 0, page.size());
    std::memcpy(page.data(), bytes.data(), std::min(bytes.size(), page.size()));
    const platform::GrantRef ref = memory_.grant_access(gfn, backend_, !writable);
    data_pages_.emplace_back(ref, gfn);
    return ref;
}

std::span<const std::byte> Netfront::granted_page(platform::GrantRef ref) const {
    for (const auto& [r, gfn] : data_pages_)
        if (r == ref) return memory_.page(gfn);
    return {};
}

std::optional<xen_netif_ctrl_response> Netfront::gref_call(std::uint16_t type, unsigned q,
                                                           std::span<const xen_netif_gref> entries,
                                                           std::vector<std::uint16_t>* statuses,
                                                           std::chrono::milliseconds timeout) {
    const platform::GrantRef list = grant_bytes(std::as_bytes(entries), true);
    const auto r = ctrl_call(type, q, list, static_cast<std::uint32_t>(entries.size()), timeout);
    if (statuses != nullptr) {
        statuses->clear();
        const auto page = granted_page(list);
        for (std::size_t i = 0; i < entries.size(); ++i) {
            xen_netif_gref e{};
            std::memcpy(&e, page.data() + i * sizeof(e), sizeof(e));
            statuses->push_back(e.status);
        }
    }
    return r;
}

std::optional<xen_netif_ctrl_response> Netfront::ctrl_call(std::uint16_t type, std::uint32_t d0,
                                                           std::uint32_t d1, std::uint32_t d2,
                                                           std::chrono::milliseconds timeout) {
    if (!ctrl_ || ctrl_->front.full()) return std::nullopt;
    const std::uint16_t id = next_ctrl_id_++;
    ctrl_->front.put_request(xen_netif_ctrl_request{id, type, {d0, d1, d2}});
    if (ctrl_->front.push_and_check_notify()) events_.notify(ctrl_->port);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // Like the Windows drivers: one request at a time, polled until answered.
    while (std::chrono::steady_clock::now() < deadline) {
        const ring::Avail a = ctrl_->front.poll();
        if (a.error != ring::ProdError::none) return std::nullopt;
        if (a.count != 0) {
            const auto rsp = ctrl_->front.copy_response(0);
            ctrl_->front.consume(1);
            if (rsp.id == id) return rsp;
            continue; // an answer to a request someone else put on the ring
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::nullopt;
}

bool Netfront::configure_hash(std::chrono::milliseconds timeout) {
    if (!ctrl_ || !opt_.hash) return false;
    const HashOptions& h = *opt_.hash;
    auto ok = [&](std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0, std::uint32_t d2 = 0) {
        const auto r = ctrl_call(type, d0, d1, d2, timeout);
        if (!r || r->status != XEN_NETIF_CTRL_STATUS_SUCCESS) {
            spdlog::warn("netfront {}: control message {} failed: {}", fe_, type,
                         r ? fmt::format("status {}", r->status) : std::string("no answer"));
            return false;
        }
        return true;
    };
    if (!ok(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ)) return false;
    const platform::GrantRef key = grant_bytes(std::as_bytes(std::span(h.key)));
    if (!ok(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, key, static_cast<std::uint32_t>(h.key.size()))) return false;
    if (!h.mapping.empty()) {
        if (!ok(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, static_cast<std::uint32_t>(h.mapping.size())))
            return false;
        const platform::GrantRef table = grant_bytes(std::as_bytes(std::span(h.mapping)));
        if (!ok(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, table, static_cast<std::uint32_t>(h.mapping.size()), 0))
            return false;
    }
    // Flags last: hashing starts with the key and table in place.
    return ok(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, h.flags);
}

void Netfront::close() {
    set_state(5);
    // Linux's xennet_remove waits for the backend to follow before tearing down.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (state_ != 6 && std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{store_.watch_fd(), POLLIN, 0};
        poll(&pfd, 1, 100);
        store_.read_watches();
        const auto v = read_backend("state");
        if (!v || *v == "5" || *v == "6") {
            release_rings();
            set_state(6);
        }
    }
}

void Netfront::reinitialise() {
    set_state(1);
    // The new handshake starts when the backend is back in InitWait.
    process_watches();
}

} // namespace netbackd::xensim
