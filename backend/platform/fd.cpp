#include "backend/platform/fd.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

void Fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

Fd Fd::dup() const {
    int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw PlatformError(fmt::format("dup: {}", std::strerror(errno)), errno);
    return Fd(fd);
}

Mmap& Mmap::operator=(Mmap&& other) noexcept {
    if (this != &other) {
        reset();
        addr_ = std::exchange(other.addr_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void Mmap::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

Mmap Mmap::shared(const Fd& fd, std::size_t size, std::size_t offset, bool writable) {
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void* addr = ::mmap(nullptr, size, prot, MAP_SHARED, fd.get(), static_cast<off_t>(offset));
    if (addr == MAP_FAILED)
        throw PlatformError(fmt::format("mmap of {} bytes: {}", size, std::strerror(errno)), errno);
    return Mmap(addr, size);
}

Fd make_memfd(const std::string& name, std::size_t size) {
    Fd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) throw PlatformError(fmt::format("memfd_create: {}", std::strerror(errno)), errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        throw PlatformError(fmt::format("ftruncate memfd: {}", std::strerror(errno)), errno);
    // A peer that shrank the file could make every mapper SIGBUS: forbid resizing.
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        throw PlatformError(fmt::format("sealing memfd: {}", std::strerror(errno)), errno);
    return fd;
}

Fd make_eventfd() {
    Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) throw PlatformError(fmt::format("eventfd: {}", std::strerror(errno)), errno);
    return fd;
}

void signal_eventfd(int fd) noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
}

bool drain_eventfd(int fd) noexcept {
    std::uint64_t value = 0;
    return ::read(fd, &value, sizeof value) == sizeof value;
}

} // namespace netbackd::platform
