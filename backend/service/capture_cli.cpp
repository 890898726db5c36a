#include "backend/service/capture_cli.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/fd.hpp"
#include "backend/service/capture_server.hpp"

namespace netbackd::service {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

bool write_all(int fd, const char* p, std::size_t len) {
    while (len != 0) {
        const ssize_t n = ::write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

std::uint32_t u32_at(const std::string& buf, std::size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, buf.data() + at, 4);
    return v;
}

} // namespace

int run_capture(const CaptureCliOptions& o) {
    std::filesystem::path sock_path;
    try {
        sock_path = telemetry_socket(o.instance).parent_path() / kCaptureSocketName;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netbackd capture: %s\n", e.what());
        return 1;
    }
    platform::Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = sock_path.string();
    if (!sock || p.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "netbackd capture: cannot create a socket\n");
        return 1;
    }
    p.copy(addr.sun_path, p.size());
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::fprintf(stderr, "netbackd capture: cannot connect to %s: %s\n", p.c_str(), std::strerror(errno));
        return 1;
    }
    const std::string req = fmt::format("{}\t{}\t{}\n", o.vif, o.snaplen, o.filter);
    if (!write_all(sock.get(), req.data(), req.size())) {
        std::fprintf(stderr, "netbackd capture: the service closed the connection\n");
        return 1;
    }
    // The answer line, read byte by byte so nothing of the stream behind it is taken.
    std::string answer;
    char c = 0;
    while (answer.size() < 4096 && ::read(sock.get(), &c, 1) == 1 && c != '\n') answer.push_back(c);
    if (answer != "OK") {
        std::fprintf(stderr, "netbackd capture: %s\n",
                     answer.starts_with("ERR ") ? answer.c_str() + 4 : "no answer from the service");
        return 1;
    }

    platform::Fd file;
    int out = STDOUT_FILENO;
    if (o.output != "-") {
        file = platform::Fd(::open(o.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!file) {
            std::fprintf(stderr, "netbackd capture: %s: %s\n", o.output.c_str(), std::strerror(errno));
            return 1;
        }
        out = file.get();
    }
    // No SA_RESTART: the blocked read returns, and only whole blocks were written.
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    std::fprintf(stderr, "netbackd capture: vif %s%s\n", o.vif.c_str(),
                 o.filter.empty() ? "" : fmt::format(", filter '{}'", o.filter).c_str());

    // Whole pcapng blocks only (type, length, ..., length), counting Enhanced Packet Blocks.
    std::string buf;
    std::uint64_t frames = 0;
    int rc = 0;
    char chunk[65536];
    while (!g_interrupted && (o.count == 0 || frames < o.count)) {
        const ssize_t n = ::read(sock.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; // the service ended the capture (the vif went away, or it stopped)
        buf.append(chunk, static_cast<std::size_t>(n));
        std::size_t at = 0;
        while (buf.size() - at >= 12 && (o.count == 0 || frames < o.count)) {
            const std::uint32_t len = u32_at(buf, at + 4);
            if (len < 12 || len % 4 != 0) {
                std::fprintf(stderr, "netbackd capture: malformed stream from the service\n");
                return 1;
            }
            if (buf.size() - at < len) break;
            if (u32_at(buf, at) == 6) ++frames;
            at += len;
        }
        if (!write_all(out, buf.data(), at)) {
            std::fprintf(stderr, "netbackd capture: %s: %s\n", o.output.c_str(), std::strerror(errno));
            rc = 1;
            break;
        }
        buf.erase(0, at);
    }
    std::fprintf(stderr, "netbackd capture: %llu frame(s)\n", static_cast<unsigned long long>(frames));
    return rc;
}

} // namespace netbackd::service
