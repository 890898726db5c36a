#include "xensim/xenstored/xenstored.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "xensim/xenstored/core.hpp"
#include "xensim/xenstored/unique_fd.hpp"
#include "xensim/xenstored/wire.hpp"

namespace netbackd::xensim {

namespace {

using xs::UniqueFd;

// A client that stops reading its watch events is cut off rather than grow without bound.
constexpr std::size_t kMaxBacklog = 16u << 20;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

UniqueFd listen_on(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path.string();
    if (p.size() >= sizeof(addr.sun_path))
        throw std::system_error(ENAMETOOLONG, std::generic_category(), "xenstored socket path " + p);
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket");
    {
        // A socket file may be left over from a crashed run (remove it) or belong to a live
        // daemon (leave it: stealing its path would strand that daemon's clients).
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0)
            throw std::system_error(EADDRINUSE, std::generic_category(),
                                    "another xenstored already serves " + p);
    }
    ::unlink(p.c_str());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        throw_errno("bind " + p);
    if (::listen(fd.get(), 128) != 0) throw_errno("listen " + p);
    return fd;
}

} // namespace

struct Xenstored::Impl {
    struct Conn {
        Conn(UniqueFd f, platform::DomId domid) : fd(std::move(f)), session(domid) {}
        UniqueFd fd;
        xs::Session session;
        std::string in;
        bool polling_out = false;
    };
    struct Listener {
        UniqueFd fd;
        std::filesystem::path path;
    };

    Impl(std::filesystem::path d, const XenstoredLimits& limits);
    ~Impl();

    void run();
    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd.get(), &one, sizeof(one));
    }
    void open_domain(platform::DomId id);
    void close_domain(platform::DomId id);
    void accept_from(int listen_fd, platform::DomId id);
    void read_from(Conn& c);
    void flush_all();
    void drop(int fd);
    void watch_fd(int fd, std::uint32_t events, int op);

    std::filesystem::path dir;
    UniqueFd epoll_fd;
    UniqueFd wake_fd;
    std::atomic<bool> stopping{false};
    std::mutex mutex; // everything below; the loop holds it while serving a batch
    xs::Core core;
    std::map<platform::DomId, Listener> listeners;
    std::map<int, platform::DomId> listener_domid;
    std::map<int, std::unique_ptr<Conn>> conns;
    std::map<const xs::Session*, int> fd_of;
    std::set<int> backlogged; // connections whose socket was full at the last flush
    std::thread thread;
};

Xenstored::Impl::Impl(std::filesystem::path d, const XenstoredLimits& limits)
    : dir(std::move(d)),
      core(xs::Core::Hooks{[this](platform::DomId id) { open_domain(id); },
                           [this](platform::DomId id) { close_domain(id); }},
           xs::CoreLimits{.store = {.max_value = limits.max_value_bytes,
                                    .max_nodes_per_domain = limits.max_nodes_per_domain},
                          .max_watches = limits.max_watches_per_connection,
                          .max_transactions = limits.max_transactions_per_connection}) {
    std::filesystem::create_directories(dir);
    epoll_fd = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd) throw_errno("epoll_create1");
    wake_fd = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd) throw_errno("eventfd");
    watch_fd(wake_fd.get(), EPOLLIN, EPOLL_CTL_ADD);
    open_domain(0);
    core.make_home(0, "Domain-0");
}

Xenstored::Impl::~Impl() {
    stopping = true;
    wake();
    if (thread.joinable()) thread.join();
    conns.clear();
    for (auto& [id, l] : listeners) {
        std::error_code ec;
        std::filesystem::remove(l.path, ec);
        if (id != 0) std::filesystem::remove(l.path.parent_path(), ec); // only if empty
    }
}

void Xenstored::Impl::watch_fd(int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd.get(), op, fd, &ev) != 0) throw_errno("epoll_ctl");
}

void Xenstored::Impl::open_domain(platform::DomId id) {
    if (listeners.contains(id)) return;
    auto path = socket_path(dir, id);
    std::filesystem::create_directories(path.parent_path());
    Listener l{listen_on(path), path};
    watch_fd(l.fd.get(), EPOLLIN, EPOLL_CTL_ADD);
    listener_domid[l.fd.get()] = id;
    listeners.emplace(id, std::move(l));
}

void Xenstored::Impl::close_domain(platform::DomId id) {
    if (auto it = listeners.find(id); it != listeners.end()) {
        std::error_code ec;
        std::filesystem::remove(it->second.path, ec);
        std::filesystem::remove(it->second.path.parent_path(), ec); // only if empty
        listener_domid.erase(it->second.fd.get());
        listeners.erase(it);
    }
    std::vector<int> doomed;
    for (auto& [fd, c] : conns)
        if (c->session.caller.domid == id) doomed.push_back(fd);
    for (int fd : doomed) drop(fd);
}

void Xenstored::Impl::drop(int fd) {
    auto it = conns.find(fd);
    if (it == conns.end()) return;
    core.detach(it->second->session);
    fd_of.erase(&it->second->session);
    backlogged.erase(fd);
    conns.erase(it); // closing the fd also removes it from the epoll set
}

void Xenstored::Impl::accept_from(int listen_fd, platform::DomId id) {
    for (;;) {
        UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) return; // EAGAIN, or a client that vanished: nothing to serve
        int raw = fd.get();
        auto c = std::make_unique<Conn>(std::move(fd), id);
        watch_fd(raw, EPOLLIN, EPOLL_CTL_ADD);
        core.attach(c->session);
        fd_of[&c->session] = raw;
        conns.emplace(raw, std::move(c));
    }
}

void Xenstored::Impl::read_from(Conn& c) {
    const int fd = c.fd.get();
    std::array<char, 65536> buf;
    // Bounded per wake-up so one flooding client cannot starve the rest; level-triggered
    // epoll brings us back for whatever is left.
    for (int round = 0; round < 16; ++round) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) {
            c.in.append(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        drop(fd); // EOF or error
        return;
    }

    // RELEASE of this very connection's domain is impossible (only dom0 may release, and never
    // itself), so `c` outlives every request it carries.
    const bool framed = xs::consume_messages(c.in, [&](const xsd_sockmsg& header, std::string_view payload) {
        core.handle(c.session, header, payload);
        return true;
    });
    if (!framed) drop(fd);
}

void Xenstored::Impl::flush_all() {
    // Only the connections with something to send: those given replies or events since the last
    // flush and those whose socket was full then. Walking every connection after each request
    // made every request cost as much as there are guests.
    std::set<int> due = backlogged;
    for (const xs::Session* s : core.take_sessions_with_output())
        if (auto it = fd_of.find(s); it != fd_of.end()) due.insert(it->second);
    std::vector<int> doomed;
    for (const int fd : due) {
        auto found = conns.find(fd);
        if (found == conns.end()) continue;
        auto& c = found->second;
        std::string& out = c->session.out;
        std::size_t sent = 0;
        bool broken = false;
        while (sent < out.size()) {
            ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            broken = true;
            break;
        }
        out.erase(0, sent);
        if (broken || out.size() > kMaxBacklog) {
            doomed.push_back(fd);
            continue;
        }
        const bool want_out = !out.empty();
        if (want_out != c->polling_out) {
            watch_fd(fd, want_out ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
            c->polling_out = want_out;
        }
        if (want_out)
            backlogged.insert(fd);
        else
            backlogged.erase(fd);
    }
    for (int fd : doomed) drop(fd);
}

void Xenstored::Impl::run() {
    std::array<epoll_event, 64> events;
    while (!stopping.load()) {
        int n = ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("epoll_wait");
        }
        std::lock_guard lock(mutex);
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == wake_fd.get()) {
                std::uint64_t count;
                [[maybe_unused]] auto r = ::read(fd, &count, sizeof(count));
            } else if (auto l = listener_domid.find(fd); l != listener_domid.end()) {
                accept_from(fd, l->second);
            } else if (auto c = conns.find(fd); c != conns.end()) {
                read_from(*c->second);
            }
        }
        flush_all();
    }
}

Xenstored::Xenstored(std::filesystem::path dir, XenstoredLimits limits)
    : impl_(std::make_unique<Impl>(std::move(dir), limits)) {}

Xenstored::~Xenstored() = default;

void Xenstored::run() { impl_->run(); }

void Xenstored::start() {
    if (!impl_->thread.joinable()) impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void Xenstored::stop() {
    impl_->stopping.store(true);
    impl_->wake();
}

void Xenstored::introduce(platform::DomId id) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->core.introduce(id);
    }
    impl_->wake(); // so the loop delivers the @introduceDomain events
}

void Xenstored::release(platform::DomId id) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->core.release(id);
    }
    impl_->wake();
}

void Xenstored::create_domain_home(platform::DomId id, std::string_view name) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->core.make_home(id, name);
    }
    impl_->wake();
}

std::filesystem::path Xenstored::socket_path(const std::filesystem::path& dir, platform::DomId id) {
    if (id == 0) return dir / "xenstored.sock";
    return dir / "domain" / std::to_string(id) / "xenstored.sock";
}

} // namespace netbackd::xensim
