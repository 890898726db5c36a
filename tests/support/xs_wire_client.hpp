// Test helpers: a private directory per test and a bare xs_wire client that can also send
// what no well-behaved client would.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <xen/io/xs_wire.h>

#include "xensim/xenstored/unique_fd.hpp"

namespace netbackd::test {

// Long enough that a daemon that stopped answering fails the test instead of hanging it.
inline constexpr int kPatienceMs = 20000;

class TempDir {
public:
    TempDir() {
        std::string tmpl = "/tmp/nbxs-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

struct Reply {
    std::uint32_t type = XS_INVALID;
    std::uint32_t req_id = 0;
    std::uint32_t tx_id = 0;
    std::string payload;

    bool ok() const { return type != XS_ERROR; }
    // "ENOENT" and the like, or "" when the request succeeded.
    std::string error() const { return ok() ? std::string{} : std::string(payload.c_str()); }
    // The payload without its trailing NUL, when it has one.
    std::string text() const {
        return !payload.empty() && payload.back() == '\0' ? payload.substr(0, payload.size() - 1) : payload;
    }
};

struct Event {
    std::string path;
    std::string token;
    bool operator==(const Event&) const = default;
};

class RawClient {
public:
    explicit RawClient(const std::filesystem::path& socket) {
        fd_ = xensim::xs::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
        if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
            throw std::runtime_error("connect " + socket.string() + ": " + std::strerror(errno));
    }

    void send_raw(std::string_view bytes) {
        while (!bytes.empty()) {
            ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("send failed");
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    void send(std::uint32_t type, std::string_view payload, std::uint32_t tx = 0, std::uint32_t req = 7) {
        xsd_sockmsg h{type, req, tx, static_cast<std::uint32_t>(payload.size())};
        std::string bytes(reinterpret_cast<const char*>(&h), sizeof(h));
        bytes.append(payload);
        send_raw(bytes);
    }

    // Sends a request and waits for its reply; watch events arriving meanwhile are kept.
    Reply request(std::uint32_t type, std::string_view payload, std::uint32_t tx = 0) {
        send(type, payload, tx);
        for (;;) {
            auto m = next_message();
            if (!m) throw std::runtime_error("connection closed while waiting for a reply");
            if (m->type == XS_WATCH_EVENT)
                events_.push_back(to_event(*m));
            else
                return *m;
        }
    }

    Reply read(std::string_view path, std::uint32_t tx = 0) { return request(XS_READ, z(path), tx); }
    Reply write(std::string_view path, std::string_view value, std::uint32_t tx = 0) {
        std::string p = z(path);
        p.append(value);
        return request(XS_WRITE, p, tx);
    }
    Reply mkdir(std::string_view path, std::uint32_t tx = 0) { return request(XS_MKDIR, z(path), tx); }
    Reply rm(std::string_view path, std::uint32_t tx = 0) { return request(XS_RM, z(path), tx); }
    Reply directory(std::string_view path) { return request(XS_DIRECTORY, z(path)); }
    Reply get_perms(std::string_view path) { return request(XS_GET_PERMS, z(path)); }
    Reply set_perms(std::string_view path, std::initializer_list<std::string_view> perms) {
        std::string p = z(path);
        for (auto x : perms) p += z(x);
        return request(XS_SET_PERMS, p);
    }
    Reply watch(std::string_view path, std::string_view token) {
        return request(XS_WATCH, z(path) + z(token));
    }
    Reply unwatch(std::string_view path, std::string_view token) {
        return request(XS_UNWATCH, z(path) + z(token));
    }
    std::uint32_t start() {
        auto r = request(XS_TRANSACTION_START, z(""));
        if (!r.ok()) throw std::runtime_error("TRANSACTION_START: " + r.error());
        return static_cast<std::uint32_t>(std::stoul(r.text()));
    }
    Reply end(std::uint32_t tx, bool commit) {
        return request(XS_TRANSACTION_END, z(commit ? "T" : "F"), tx);
    }

    // The next watch event, or std::nullopt if none arrives within kPatienceMs.
    std::optional<Event> next_event() {
        while (events_.empty()) {
            auto m = next_message();
            if (!m) return std::nullopt;
            if (m->type == XS_WATCH_EVENT) events_.push_back(to_event(*m));
        }
        Event e = events_.front();
        events_.pop_front();
        return e;
    }

    // True once the daemon has closed this connection.
    bool closed_by_peer() {
        for (;;) {
            if (!wait_readable()) return false;
            char c;
            ssize_t n = ::recv(fd_.get(), &c, 1, MSG_PEEK);
            if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
            if (n < 0) return false;
            auto m = next_message(); // drain what was queued before the hang-up
            if (!m) return true;
        }
    }

    static std::string z(std::string_view s) {
        std::string out(s);
        out += '\0';
        return out;
    }

private:
    bool wait_readable() {
        pollfd p{fd_.get(), POLLIN, 0};
        return ::poll(&p, 1, kPatienceMs) == 1;
    }

    bool read_exact(char* dst, std::size_t len) {
        while (len) {
            if (!wait_readable()) return false;
            ssize_t n = ::recv(fd_.get(), dst, len, 0);
            if (n <= 0) return false;
            dst += n;
            len -= static_cast<std::size_t>(n);
        }
        return true;
    }

    std::optional<Reply> next_message() {
        xsd_sockmsg h{};
        if (!read_exact(reinterpret_cast<char*>(&h), sizeof(h))) return std::nullopt;
        Reply r{h.type, h.req_id, h.tx_id, std::string(h.len, '\0')};
        if (!read_exact(r.payload.data(), h.len)) return std::nullopt;
        return r;
    }

    static Event to_event(const Reply& r) {
        const std::string& p = r.payload;
        auto nul = p.find('\0');
        auto nul2 = p.find('\0', nul + 1);
        return Event{p.substr(0, nul), p.substr(nul + 1, nul2 - nul - 1)};
    }

    xensim::xs::UniqueFd fd_;
    std::deque<Event> events_;
};

} // namespace netbackd::test
