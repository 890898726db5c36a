#include "backend/service/capture_server.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

namespace netbackd::service {
namespace {

template <class T>
void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void put_option(std::string& out, std::uint16_t code, std::string_view value) {
    put<std::uint16_t>(out, code);
    put<std::uint16_t>(out, static_cast<std::uint16_t>(value.size()));
    out.append(value);
    out.append((4 - value.size() % 4) % 4, '\0');
}

// A block: type, total length, body, total length again (pcapng is host-endian; the SHB's
// byte-order magic tells readers which).
std::string block(std::uint32_t type, const std::string& body) {
    std::string out;
    const auto len = static_cast<std::uint32_t>(12 + body.size());
    put(out, type);
    put(out, len);
    out += body;
    put(out, len);
    return out;
}

bool send_all(int fd, const void* data, std::size_t len) {
    const auto* p = static_cast<const char*>(data);
    while (len != 0) {
        const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

bool send_mbuf(int fd, const rte_mbuf* m) {
    for (; m != nullptr; m = m->next)
        if (!send_all(fd, rte_pktmbuf_mtod(m, const char*), rte_pktmbuf_data_len(m))) return false;
    return true;
}

struct Request {
    control::VifId id;
    std::uint32_t snaplen = 0;
    std::string filter;
};

// "<domid>.<devid>\t<snaplen>\t<filter>" ("vif" before the id is accepted).
std::optional<Request> parse_request(std::string_view line) {
    const auto t1 = line.find('\t');
    const auto t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string_view::npos) return std::nullopt;
    std::string_view vif = line.substr(0, t1);
    if (vif.starts_with("vif")) vif.remove_prefix(3);
    const auto dot = vif.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    Request r;
    std::uint32_t dom = 0;
    const auto num = [](std::string_view s, std::uint32_t& v) {
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        return ec == std::errc() && p == s.data() + s.size() && !s.empty();
    };
    if (!num(vif.substr(0, dot), dom) || !num(vif.substr(dot + 1), r.id.devid) || dom > 0xffff)
        return std::nullopt;
    r.id.frontend = static_cast<control::DomId>(dom);
    if (!num(line.substr(t1 + 1, t2 - t1 - 1), r.snaplen)) return std::nullopt;
    r.filter = std::string(line.substr(t2 + 1));
    return r;
}

void writer_loop(int fd, dataplane::CaptureTap& tap, const std::atomic<bool>& stop, std::atomic<bool>& done,
                 const std::string& header) {
    bool ok = send_all(fd, header.data(), header.size());
    while (ok && !stop.load(std::memory_order_acquire)) {
        bool any = false;
        while (auto m = tap.take()) {
            any = true;
            ok = send_mbuf(fd, *m);
            rte_pktmbuf_free(*m);
            if (!ok) break;
        }
        if (!ok || any) continue;
        if (tap.ended()) {
            // The vif went away: what the worker copied before is taken above.
            while (auto m = tap.take()) {
                if (ok) ok = send_mbuf(fd, *m);
                rte_pktmbuf_free(*m);
            }
            break;
        }
        // Idle: notice a client that closed (POLLRDHUP) without spinning.
        pollfd p{fd, POLLRDHUP, 0};
        if (::poll(&p, 1, 20) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) break;
    }
    done.store(true, std::memory_order_release);
}

} // namespace

std::string pcapng_header(const std::string& ifname, std::uint32_t snaplen, const std::string& filter) {
    std::string shb;
    put<std::uint32_t>(shb, 0x1A2B3C4D); // byte-order magic
    put<std::uint16_t>(shb, 1);
    put<std::uint16_t>(shb, 0);
    put<std::int64_t>(shb, -1);             // section length unknown: a stream
    put_option(shb, 4, "netbackd capture"); // shb_userappl
    put_option(shb, 0, "");
    std::string idb;
    put<std::uint16_t>(idb, 1); // LINKTYPE_ETHERNET
    put<std::uint16_t>(idb, 0);
    put<std::uint32_t>(idb, snaplen);
    put_option(idb, 2, ifname);                                              // if_name
    put_option(idb, 9, std::string_view("\x09", 1));                         // if_tsresol: nanoseconds
    if (!filter.empty()) put_option(idb, 11, std::string(1, '\0') + filter); // if_filter, libpcap syntax
    put_option(idb, 0, "");
    return block(0x0A0D0D0A, shb) + block(1, idb);
}

CaptureServer::CaptureServer(dataplane::DataPlane& dp, std::string path) : dp_(dp), path_(std::move(path)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path)
        throw std::runtime_error("capture socket path too long: " + path_);
    path_.copy(addr.sun_path, path_.size());
    listen_ = platform::Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_) throw std::runtime_error(fmt::format("capture socket: {}", std::strerror(errno)));
    ::unlink(path_.c_str());
    const mode_t old = ::umask(0077);
    const int rc = ::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0 || ::listen(listen_.get(), 4) != 0)
        throw std::runtime_error(fmt::format("capture socket {}: {}", path_, std::strerror(errno)));
}

CaptureServer::~CaptureServer() {
    for (auto& s : sessions_) end(*s);
    ::unlink(path_.c_str());
}

void CaptureServer::accept() {
    platform::Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return;
    // A client that never sends its line must not hold the control thread for long.
    timeval tv{1, 0};
    (void)::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string line;
    char c = 0;
    while (line.size() < 4096 && ::recv(conn.get(), &c, 1, 0) == 1 && c != '\n') line.push_back(c);
    const auto reject = [&](const std::string& why) {
        const std::string msg = "ERR " + why + "\n";
        (void)send_all(conn.get(), msg.data(), msg.size());
    };
    const auto req = parse_request(line);
    if (!req) return reject("malformed request");
    dataplane::CaptureOptions opt;
    opt.snaplen = req->snaplen;
    opt.filter = req->filter;
    std::shared_ptr<dataplane::CaptureTap> tap;
    try {
        tap = std::make_shared<dataplane::CaptureTap>(opt);
    } catch (const std::exception& e) {
        return reject(e.what());
    }
    if (auto why = dp_.start_capture(req->id, tap)) return reject(*why);
    static constexpr char kOk[] = "OK\n";
    if (!send_all(conn.get(), kOk, 3)) {
        dp_.stop_capture(req->id, tap.get());
        return;
    }
    auto s = std::make_unique<Session>();
    s->id = req->id;
    s->tap = std::move(tap);
    s->conn = std::move(conn);
    const std::string header = pcapng_header(fmt::format("vif{}.{}", req->id.frontend, req->id.devid),
                                             s->tap->options().snaplen, req->filter);
    Session* raw = s.get();
    s->writer =
        std::thread([raw, header] { writer_loop(raw->conn.get(), *raw->tap, raw->stop, raw->done, header); });
    spdlog::info("{}: capture started{}", req->id.name(),
                 req->filter.empty() ? std::string() : fmt::format(" (filter '{}')", req->filter));
    sessions_.push_back(std::move(s));
}

void CaptureServer::poll() {
    for (auto it = sessions_.begin(); it != sessions_.end();) {
        if ((*it)->done.load(std::memory_order_acquire)) {
            end(**it);
            it = sessions_.erase(it);
        } else {
            ++it;
        }
    }
}

void CaptureServer::end(Session& s) {
    dp_.stop_capture(s.id, s.tap.get()); // no worker offers to the tap from here on
    s.stop.store(true, std::memory_order_release);
    ::shutdown(s.conn.get(), SHUT_RDWR); // ends a write blocked on a client that stopped reading
    if (s.writer.joinable()) s.writer.join();
    spdlog::info("{}: capture ended: {} frame(s) captured, {} dropped (the reader was too slow)", s.id.name(),
                 s.tap->captured(), s.tap->dropped());
}

} // namespace netbackd::service
