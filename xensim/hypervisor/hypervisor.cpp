#include "xensim/hypervisor/hypervisor.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xen/xen.h>

#include "backend/platform/platform.hpp"
#include "backend/platform/sim/grant_checks.hpp"
#include "backend/platform/sim/seqpacket.hpp"

namespace netbackd::xensim {

using platform::Fd;
using platform::Mmap;
using platform::PlatformError;

namespace {

constexpr std::uint64_t kDom0Bytes = 16u << 20;

Hypervisor::Outcome fail(int error, std::string text) {
    Hypervisor::Outcome out;
    out.error = error;
    out.text = std::move(text);
    return out;
}

Hypervisor::Outcome value(std::uint32_t v) {
    Hypervisor::Outcome out;
    out.val0 = v;
    return out;
}

std::uint64_t round_to_pages(std::uint64_t bytes) { return (bytes + 4095) & ~std::uint64_t{4095}; }

// epoll data of the stop eventfd and the listener; connections use their token (from 1, 32-bit).
constexpr std::uint64_t kStopKey = 0;
constexpr std::uint64_t kListenerKey = UINT64_MAX;

void epoll_add(int epoll_fd, int fd, std::uint64_t key) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        throw PlatformError(fmt::format("epoll_ctl: {}", std::strerror(errno)), errno);
}

} // namespace

Hypervisor::Hypervisor(std::string dir, wire::CostModel costs)
    : dir_(std::move(dir)),
      costs_(costs),
      socket_path_(dir_ + "/" + wire::kSocketName),
      listener_(listen_seqpacket(socket_path_)),
      stop_fd_(platform::make_eventfd()),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) throw PlatformError(fmt::format("epoll_create1: {}", std::strerror(errno)), errno);
    epoll_add(epoll_.get(), stop_fd_.get(), kStopKey);
    epoll_add(epoll_.get(), listener_.get(), kListenerKey);
    create_domain(0, "Domain-0", kDom0Bytes);
}

Hypervisor::~Hypervisor() { ::unlink(socket_path_.c_str()); }

void Hypervisor::stop() noexcept { platform::signal_eventfd(stop_fd_.get()); }

Hypervisor::Domain& Hypervisor::create_domain(std::uint16_t domid, std::string name, std::uint64_t bytes,
                                              std::uint32_t max_event_channels) {
    Domain d;
    d.domid = domid;
    d.name = std::move(name);
    d.bytes = round_to_pages(bytes);
    d.memory = platform::make_memfd(fmt::format("xensim-dom{}-memory", domid), d.bytes);
    d.state_fd = platform::make_memfd(fmt::format("xensim-dom{}-state", domid), kStateBytes);
    d.state_map = Mmap::shared(d.state_fd, kStateBytes);
    // The memfd starts zeroed, which is a valid all-free state for every atomic in it.
    d.state = new (d.state_map.data()) DomainState;
    d.state->magic = kStateMagic;
    d.state->domid = domid;
    d.state->nr_pages = static_cast<std::uint32_t>(d.bytes / 4096);
    d.state->max_port = max_event_channels;
    d.state->alive.store(1, std::memory_order_release);
    d.generation = next_generation_++;
    auto [it, inserted] = domains_.emplace(domid, std::move(d));
    return it->second;
}

Hypervisor::Domain* Hypervisor::find(std::uint32_t domid) {
    auto it = domains_.find(static_cast<std::uint16_t>(domid));
    return (domid <= 0xffff && it != domains_.end()) ? &it->second : nullptr;
}

void Hypervisor::close_port(Domain& d, std::uint32_t port) {
    EventPort& p = d.state->ports[port];
    if (p.state.load() == static_cast<std::uint32_t>(PortState::interdomain)) {
        if (Domain* r = find(p.remote_dom.load())) {
            EventPort& rp = r->state->ports[p.remote_port.load() % kNrPorts];
            // The peer keeps its port, now waiting for a new partner from us (Xen's ECS_UNBOUND).
            if (rp.state.load() == static_cast<std::uint32_t>(PortState::interdomain) &&
                rp.remote_dom.load() == d.domid && rp.remote_port.load() == port)
                rp.state.store(static_cast<std::uint32_t>(PortState::unbound));
        }
    }
    p.state.store(static_cast<std::uint32_t>(PortState::free));
    p.owner.store(0);
    p.pending.store(0);
    p.mask.store(0);
    p.remote_dom.store(0);
    p.remote_port.store(0);
}

void Hypervisor::destroy_domain(std::uint16_t domid) {
    Domain* d = find(domid);
    if (d == nullptr) return;
    DomainState& st = *d->state;
    st.alive.store(0, std::memory_order_release);
    for (auto& g : st.grants) g.combo.store(0, std::memory_order_release);
    for (std::uint32_t port = 1; port < kNrPorts; ++port)
        if (st.ports[port].state.load() != static_cast<std::uint32_t>(PortState::free)) close_port(*d, port);
    // Mappings held by other processes stay valid: the memfds live until their last user.
    domains_.erase(domid);
}

Hypervisor::Outcome Hypervisor::allocate_port(Conn& c, std::uint16_t remote_dom, std::uint32_t remote_port,
                                              bool interdomain) {
    Domain* self = find(c.domid);
    if (!c.in_domain || self == nullptr) return fail(ESRCH, "caller's domain does not exist");
    Domain* remote = nullptr;
    if (interdomain) {
        remote = find(remote_dom);
        if (remote == nullptr) return fail(ESRCH, fmt::format("no domain {}", remote_dom));
        if (remote_port == 0 || remote_port >= kNrPorts)
            return fail(EINVAL, fmt::format("port {} out of range", remote_port));
        EventPort& rp = remote->state->ports[remote_port];
        if (rp.state.load() != static_cast<std::uint32_t>(PortState::unbound) ||
            rp.remote_dom.load() != c.domid)
            return fail(EINVAL, fmt::format("port {} of domain {} is not offered to domain {}", remote_port,
                                            remote_dom, c.domid));
    }
    const std::uint32_t end = std::min(kNrPorts, self->state->max_port + 1);
    std::uint32_t port = 1;
    while (port < end && self->state->ports[port].state.load() != static_cast<std::uint32_t>(PortState::free))
        ++port;
    if (port == end)
        return fail(ENOSPC, fmt::format("domain {} is out of event channels: all {} ports are bound "
                                        "(max_event_channels = {} in its xl config; libxl's default is {})",
                                        c.domid, end - 1, self->state->max_port, kDefaultMaxEventChannels));

    EventPort& p = self->state->ports[port];
    p.owner.store(c.token);
    p.remote_dom.store(remote_dom == DOMID_SELF ? c.domid : remote_dom);
    p.remote_port.store(interdomain ? remote_port : 0);
    p.mask.store(0);
    if (interdomain) {
        EventPort& rp = remote->state->ports[remote_port];
        rp.remote_port.store(port);
        rp.state.store(static_cast<std::uint32_t>(PortState::interdomain));
        // Xen marks a freshly bound local port pending so the binder notices the connection.
        p.pending.store(1);
        p.state.store(static_cast<std::uint32_t>(PortState::interdomain));
        platform::signal_eventfd(c.eventfd.get());
    } else {
        p.pending.store(0);
        p.state.store(static_cast<std::uint32_t>(PortState::unbound));
    }
    c.ports.push_back(port);
    return value(port);
}

void Hypervisor::accept_conn() {
    Fd sock(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!sock) return;
    std::uint32_t token = next_token_++;
    epoll_add(epoll_.get(), sock.get(), token);
    Conn c;
    c.sock = std::move(sock);
    c.token = token;
    conns_.emplace(token, std::move(c));
}

Hypervisor::Outcome Hypervisor::map_grant(Conn& c, const wire::Request& req) {
    if (!c.in_domain) return fail(EPERM, "grant maps need a process in a domain");
    bool readonly = req.arg1 == 0;
    Domain* d = find(req.domid);
    if (d == nullptr) {
        Outcome out = fail(EACCES, fmt::format("no domain {}", req.domid));
        out.val0 = static_cast<std::uint32_t>(GNTST_bad_domain);
        return out;
    }
    Pin pin = pin_grant(*d->state, req.arg0, c.domid, readonly, true);
    if (pin.status != GNTST_okay) {
        Outcome out = fail(EACCES, "grant map refused");
        out.val0 = static_cast<std::uint32_t>(pin.status);
        return out;
    }
    c.maps.push_back({d->domid, d->generation, req.arg0, readonly});
    return value(pin.frame);
}

Hypervisor::Outcome Hypervisor::unmap_grant(Conn& c, const wire::Request& req) {
    bool readonly = req.arg1 == 0;
    Domain* d = find(req.domid);
    auto it = std::find_if(c.maps.begin(), c.maps.end(), [&](const Conn::Map& m) {
        return m.domid == req.domid && m.ref == req.arg0 && m.readonly == readonly;
    });
    if (it == c.maps.end())
        return fail(EINVAL, fmt::format("d{} ref {} is not mapped here", req.domid, req.arg0));
    // A destroyed (or recreated) granter has nothing left to unpin.
    if (d != nullptr && d->generation == it->generation) unpin_grant(*d->state, it->ref, it->readonly);
    c.maps.erase(it);
    return {};
}

void Hypervisor::drop(Conn& c) {
    for (const auto& m : c.maps)
        if (Domain* d = find(m.domid); d != nullptr && d->generation == m.generation)
            unpin_grant(*d->state, m.ref, m.readonly);
    // A process going away closes its channels, as closing /dev/xen/evtchn does.
    if (Domain* d = find(c.domid); d != nullptr && c.in_domain) {
        for (std::uint32_t port : c.ports)
            if (d->state->ports[port].owner.load() == c.token &&
                d->state->ports[port].state.load() != static_cast<std::uint32_t>(PortState::free))
                close_port(*d, port);
    }
}

Hypervisor::Outcome Hypervisor::handle(Conn& c, const wire::Request& req, std::vector<Fd>& fds) {
    using wire::Op;
    switch (req.op) {
    case Op::hello: {
        if (find(req.domid) == nullptr) return fail(ESRCH, fmt::format("no domain {}", req.domid));
        if (fds.size() != 1) return fail(EINVAL, "hello needs the caller's eventfd");
        if (c.in_domain) return fail(EALREADY, "this connection already runs in a domain");
        c.in_domain = true;
        c.domid = static_cast<std::uint16_t>(req.domid);
        c.eventfd = std::move(fds[0]);
        Outcome out = value(c.token);
        out.arg64 = wire::pack_costs(costs_);
        return out;
    }
    case Op::create_domain: {
        if (req.domid >= DOMID_FIRST_RESERVED)
            return fail(EINVAL, fmt::format("domid {} is reserved", req.domid));
        if (find(req.domid) != nullptr) return fail(EEXIST, fmt::format("domain {} exists", req.domid));
        std::uint64_t bytes = req.arg64 == 0 ? kDefaultDomainBytes : req.arg64;
        if (round_to_pages(bytes) > kMaxDomainPages * 4096)
            return fail(EINVAL, fmt::format("at most {} bytes per domain", kMaxDomainPages * 4096));
        std::string name(req.name, strnlen(req.name, sizeof req.name));
        if (name.find_first_of(" \t\n/") != std::string::npos)
            return fail(EINVAL, fmt::format("bad domain name '{}'", name));
        for (const auto& [id, d] : domains_)
            if (!name.empty() && d.name == name)
                return fail(EEXIST, fmt::format("a domain named {} exists ({})", name, id));
        const std::uint32_t max_evtchn = req.arg0 == 0 ? kDefaultMaxEventChannels : req.arg0;
        if (max_evtchn >= kNrPorts)
            return fail(EINVAL, fmt::format("max_event_channels {} is over the 2-level ABI's {} ports",
                                            max_evtchn, kNrPorts - 1));
        auto domid = static_cast<std::uint16_t>(req.domid);
        create_domain(domid, name, bytes, max_evtchn);
        if (hooks_.created) {
            try {
                hooks_.created(domid, name);
            } catch (const std::exception& e) {
                destroy_domain(domid);
                return fail(EIO, fmt::format("domain {}: {}", domid, e.what()));
            }
        }
        return {};
    }
    case Op::destroy_domain: {
        if (req.domid == 0) return fail(EPERM, "Domain-0 cannot be destroyed");
        if (find(req.domid) == nullptr) return fail(ESRCH, fmt::format("no domain {}", req.domid));
        destroy_domain(static_cast<std::uint16_t>(req.domid));
        if (hooks_.destroyed) {
            try {
                hooks_.destroyed(static_cast<std::uint16_t>(req.domid));
            } catch (const std::exception& e) {
                return fail(EIO, fmt::format("domain {} destroyed, but: {}", req.domid, e.what()));
            }
        }
        return {};
    }
    case Op::list_domains: {
        Outcome out;
        for (const auto& [id, d] : domains_) out.text += fmt::format("{} {} {}\n", id, d.name, d.bytes);
        return out;
    }
    case Op::get_domain: {
        Domain* d = find(req.domid);
        if (d == nullptr) return fail(ESRCH, fmt::format("no domain {}", req.domid));
        Outcome out = value(0);
        out.arg64 = d->bytes;
        out.fds = {d->memory.get(), d->state_fd.get()};
        return out;
    }
    case Op::get_eventfd: {
        auto it = conns_.find(req.arg0);
        if (it == conns_.end() || !it->second.eventfd)
            return fail(ENOENT, fmt::format("no process with token {}", req.arg0));
        Outcome out = value(0);
        out.fds = {it->second.eventfd.get()};
        return out;
    }
    case Op::alloc_unbound: return allocate_port(c, static_cast<std::uint16_t>(req.arg0), 0, false);
    case Op::bind_interdomain: return allocate_port(c, static_cast<std::uint16_t>(req.arg0), req.arg1, true);
    case Op::map_grant: return map_grant(c, req);
    case Op::unmap_grant: return unmap_grant(c, req);
    case Op::unbind: {
        Domain* d = find(c.domid);
        if (!c.in_domain || d == nullptr) return fail(ESRCH, "caller's domain does not exist");
        if (req.arg0 >= kNrPorts || d->state->ports[req.arg0].owner.load() != c.token ||
            d->state->ports[req.arg0].state.load() == static_cast<std::uint32_t>(PortState::free))
            return fail(EINVAL, fmt::format("port {} is not bound here", req.arg0));
        close_port(*d, req.arg0);
        std::erase(c.ports, req.arg0);
        return {};
    }
    }
    return fail(ENOSYS, "unknown request");
}

bool Hypervisor::serve(Conn& c) {
    std::optional<Message> msg;
    try {
        msg = receive_message(c.sock.get(), sizeof(wire::Request));
    } catch (const PlatformError&) {
        return false;
    }
    if (!msg) return false;
    Outcome out;
    if (msg->data.size() != sizeof(wire::Request)) {
        out = fail(EPROTO, "malformed request");
    } else {
        wire::Request req;
        std::memcpy(&req, msg->data.data(), sizeof req);
        try {
            out = handle(c, req, msg->fds);
        } catch (const PlatformError& e) {
            out = fail(e.code() != 0 ? e.code() : EIO, e.what());
        }
    }
    wire::Reply reply{out.error, out.val0, out.arg64};
    std::vector<std::byte> bytes(sizeof reply + out.text.size());
    std::memcpy(bytes.data(), &reply, sizeof reply);
    std::memcpy(bytes.data() + sizeof reply, out.text.data(), out.text.size());
    try {
        send_message(c.sock.get(), bytes, out.fds);
    } catch (const PlatformError&) {
        return false;
    }
    return true;
}

void Hypervisor::run() {
    std::array<epoll_event, 64> events{};
    for (;;) {
        const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw PlatformError(fmt::format("epoll_wait: {}", std::strerror(errno)), errno);
        }
        for (int i = 0; i < n; ++i) {
            const std::uint64_t key = events[static_cast<std::size_t>(i)].data.u64;
            if (key == kStopKey) return;
            if (key == kListenerKey) {
                accept_conn();
                continue;
            }
            auto it = conns_.find(static_cast<std::uint32_t>(key));
            if (it == conns_.end()) continue;
            if (!serve(it->second)) {
                (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.sock.get(), nullptr);
                drop(it->second);
                conns_.erase(it);
            }
        }
    }
}

} // namespace netbackd::xensim
