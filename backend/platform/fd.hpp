// Owning wrappers for the kernel handles netbackd juggles: file descriptors, shared mappings,
// memfds and eventfds. Move-only; every handle is released exactly once.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>

namespace netbackd::platform {

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept;
    // A second descriptor for the same open file (for handing to another owner).
    Fd dup() const;

private:
    int fd_ = -1;
};

class Mmap {
public:
    Mmap() = default;
    Mmap(void* addr, std::size_t size) noexcept : addr_(addr), size_(size) {}
    Mmap(Mmap&& other) noexcept
        : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    Mmap& operator=(Mmap&& other) noexcept;
    Mmap(const Mmap&) = delete;
    Mmap& operator=(const Mmap&) = delete;
    ~Mmap() { reset(); }

    // MAP_SHARED view of [offset, offset + size) of fd; throws PlatformError on failure.
    static Mmap shared(const Fd& fd, std::size_t size, std::size_t offset = 0, bool writable = true);

    std::byte* data() const noexcept { return static_cast<std::byte*>(addr_); }
    std::size_t size() const noexcept { return size_; }
    std::span<std::byte> bytes() const noexcept { return {data(), size_}; }
    explicit operator bool() const noexcept { return addr_ != nullptr; }
    void reset() noexcept;

private:
    void* addr_ = nullptr;
    std::size_t size_ = 0;
};

// A sealed-size anonymous file of `size` bytes (sparse: pages cost nothing until touched).
Fd make_memfd(const std::string& name, std::size_t size);
// Non-blocking, close-on-exec eventfd counter.
Fd make_eventfd();
// Adds 1 to an eventfd; never blocks (a saturated counter is already "readable").
void signal_eventfd(int fd) noexcept;
// Resets an eventfd to zero; returns whether it had been signalled.
bool drain_eventfd(int fd) noexcept;

} // namespace netbackd::platform
