#include "backend/platform/sim/seqpacket.hpp"

#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim {

using platform::Fd;
using platform::PlatformError;

namespace {

constexpr int kMaxFds = 4;

sockaddr_un address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw PlatformError(fmt::format("socket path too long: {}", path), ENAMETOOLONG);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

Fd new_socket() {
    Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) throw PlatformError(fmt::format("socket: {}", std::strerror(errno)), errno);
    return fd;
}

} // namespace

Fd listen_seqpacket(const std::string& path) {
    Fd fd = new_socket();
    sockaddr_un addr = address(path);
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw PlatformError(fmt::format("bind {}: {}", path, std::strerror(errno)), errno);
    if (::listen(fd.get(), 64) != 0)
        throw PlatformError(fmt::format("listen {}: {}", path, std::strerror(errno)), errno);
    return fd;
}

Fd connect_seqpacket(const std::string& path) {
    Fd fd = new_socket();
    sockaddr_un addr = address(path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        throw PlatformError(
            fmt::format("cannot reach the simulated hypervisor at {}: {} (is `xensim up` running?)", path,
                        std::strerror(err)),
            err);
    }
    return fd;
}

void send_message(int sock, std::span<const std::byte> data, std::span<const int> fds) {
    if (fds.size() > kMaxFds) throw PlatformError("too many fds in one message", EINVAL);
    iovec iov{const_cast<std::byte*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do {
        n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw PlatformError(fmt::format("sendmsg: {}", std::strerror(errno)), errno);
}

std::optional<Message> receive_message(int sock, std::size_t max_bytes) {
    Message out;
    out.data.resize(max_bytes);
    iovec iov{out.data.data(), out.data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == ECONNRESET) return std::nullopt;
        throw PlatformError(fmt::format("recvmsg: {}", std::strerror(errno)), errno);
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            out.fds.emplace_back(fd);
        }
    }
    if (n == 0 && out.fds.empty()) return std::nullopt;
    if (msg.msg_flags & MSG_TRUNC) throw PlatformError("hypervisor message truncated", EMSGSIZE);
    out.data.resize(static_cast<std::size_t>(n));
    return out;
}

} // namespace netbackd::xensim
