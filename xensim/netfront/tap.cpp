#include "xensim/netfront/tap.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "xensim/netfront/frame_csum.hpp"

extern char** environ;

namespace netbackd::xensim {

namespace {

// What a tap with IFF_VNET_HDR prefixes every frame with (struct virtio_net_hdr; its kernel
// header does not compile as C++). Native byte order, as the tap uses without TUNSETVNETLE.
struct VnetHeader {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t hdr_len;
    std::uint16_t gso_size;
    std::uint16_t csum_start;
    std::uint16_t csum_offset;
};
static_assert(sizeof(VnetHeader) == 10);
constexpr std::uint8_t kVnetNeedsCsum = 1;
constexpr std::uint8_t kVnetDataValid = 2;
constexpr std::uint8_t kVnetGsoNone = 0;
constexpr std::uint8_t kVnetGsoTcpv4 = 1;
constexpr std::uint8_t kVnetGsoTcpv6 = 4;
constexpr std::uint8_t kVnetGsoEcn = 0x80;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// Runs `ip args...`; returns its exit status (or -1 when it could not run).
int run_ip(std::vector<std::string> args, bool quiet) {
    args.insert(args.begin(), "ip");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, "ip", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

platform::Fd make_tap(const std::string& name, std::optional<ring::MacAddr> mac,
                      std::optional<unsigned> mtu) {
    platform::Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd) throw_errno("open /dev/net/tun");
    ifreq ifr{};
    // With a vnet header the guest kernel hands over TSO frames and leaves checksums blank,
    // as it does to a real netfront, so both reach the rings as GSO extras and csum_blank.
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (name.size() >= IFNAMSIZ)
        throw std::system_error(ENAMETOOLONG, std::generic_category(), "tap name " + name);
    std::memcpy(ifr.ifr_name, name.c_str(), name.size());
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) throw_errno("TUNSETIFF " + name);
    int hdr_size = sizeof(VnetHeader);
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_size) < 0) throw_errno("TUNSETVNETHDRSZ " + name);

    platform::Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) throw_errno("socket");
    if (mac) {
        ifreq hw{};
        std::memcpy(hw.ifr_name, name.c_str(), name.size());
        hw.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        std::memcpy(hw.ifr_hwaddr.sa_data, mac->data(), 6);
        if (::ioctl(sock.get(), SIOCSIFHWADDR, &hw) < 0) throw_errno("SIOCSIFHWADDR " + name);
    }
    if (mtu) {
        ifreq m{};
        std::memcpy(m.ifr_name, name.c_str(), name.size());
        m.ifr_mtu = static_cast<int>(*mtu);
        if (::ioctl(sock.get(), SIOCSIFMTU, &m) < 0) throw_errno(fmt::format("SIOCSIFMTU {} {}", name, *mtu));
    }
    ifreq up{};
    std::memcpy(up.ifr_name, name.c_str(), name.size());
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &up) < 0) throw_errno("SIOCGIFFLAGS " + name);
    up.ifr_flags = static_cast<short>(up.ifr_flags | IFF_UP);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &up) < 0) throw_errno("SIOCSIFFLAGS " + name);
    return fd;
}

} // namespace

bool tap_supported(std::string* why) {
    platform::Fd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!fd) {
        if (why != nullptr) *why = fmt::format("/dev/net/tun: {}", std::strerror(errno));
        return false;
    }
    if (run_ip({"netns", "list"}, true) != 0) {
        if (why != nullptr) *why = "`ip netns list` failed";
        return false;
    }
    return true;
}

void ensure_netns(const std::string& name) {
    struct stat st {};
    if (::stat(("/run/netns/" + name).c_str(), &st) == 0) return;
    if (run_ip({"netns", "add", name}, false) != 0 && ::stat(("/run/netns/" + name).c_str(), &st) != 0)
        throw std::runtime_error(fmt::format("`ip netns add {}` failed", name));
}

void delete_netns(const std::string& name) noexcept {
    try {
        run_ip({"netns", "delete", name}, true);
    } catch (...) {}
}

TapDevice TapDevice::open(const std::string& name, const std::string& netns, std::optional<ring::MacAddr> mac,
                          std::optional<unsigned> mtu) {
    if (netns.empty()) {
        TapDevice dev(make_tap(name, mac, mtu), name);
        (void)run_ip({"link", "set", name, "gso_max_size", std::to_string(kMaxGsoSize)}, true);
        return dev;
    }
    platform::Fd ns(::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) throw_errno("open /run/netns/" + netns);
    // setns() moves only the calling thread; a throwaway thread keeps ours in place. The tap
    // stays in the namespace it was created in, whoever holds its fd.
    platform::Fd tap;
    std::exception_ptr error;
    std::thread helper([&] {
        try {
            if (::setns(ns.get(), CLONE_NEWNET) < 0) throw_errno("setns " + netns);
            tap = make_tap(name, mac, mtu);
        } catch (...) {
            error = std::current_exception();
        }
    });
    helper.join();
    if (error) std::rethrow_exception(error);
    // A netif packet's length is 16 bits (netfront caps its TSO size the same way); the
    // kernel's 64 KiB GSO frames plus headers would not fit.
    (void)run_ip({"-n", netns, "link", "set", name, "gso_max_size", std::to_string(kMaxGsoSize)}, true);
    return TapDevice(std::move(tap), name);
}

TapBridge::TapBridge(NetfrontIo& io, TapDevice& tap)
    : io_(io), tap_(tap), buf_(sizeof(VnetHeader) + 65536), rx_buf_(sizeof(VnetHeader) + 65536) {}

void TapBridge::sync_offloads() {
    // What the kernel may hand us follows what the backend negotiated: blank checksums with
    // csum offload, TSO with SG and the matching GSO feature.
    unsigned wanted = 0;
    if (io_.attached()) {
        const BackendFeatures& f = io_.features();
        if (f.csum_offload) {
            wanted |= TUN_F_CSUM;
            if (f.sg && f.gso_tcpv4) wanted |= TUN_F_TSO4;
            if (f.sg && f.gso_tcpv6) wanted |= TUN_F_TSO6;
        }
    }
    if (static_cast<int>(wanted) == offloads_) return;
    if (::ioctl(tap_.fd(), TUNSETOFFLOAD, static_cast<unsigned long>(wanted)) == 0)
        offloads_ = static_cast<int>(wanted);
}

unsigned TapBridge::pick_queue(std::span<const std::byte> frame) const noexcept {
    const unsigned n = io_.queue_count();
    if (n <= 1) return 0;
    // One flow stays on one queue (no reordering), as netdev_pick_tx keeps it: hash what
    // follows the Ethernet header up to the ports (IPv4 addresses and ports, or IPv6 addresses).
    std::uint32_t h = 2166136261u;
    const std::size_t from = std::min<std::size_t>(26, frame.size());
    const std::size_t to = std::min<std::size_t>(frame.size(), 26 + 12);
    for (std::size_t i = from; i < to; ++i) h = (h ^ std::to_integer<std::uint32_t>(frame[i])) * 16777619u;
    return h % n;
}

std::size_t TapBridge::tap_to_ring() {
    std::size_t queued = 0;
    const unsigned nq = io_.queue_count();
    if (nq == 0) return 0;
    sync_offloads();
    for (unsigned q = 0; q < nq; ++q) io_.reap_tx(q);
    std::uint64_t touched = 0; // queues with new requests, to push once each
    constexpr std::size_t kHdr = sizeof(VnetHeader);
    for (;;) {
        if (held_ == 0) {
            const ssize_t n = ::read(tap_.fd(), buf_.data(), buf_.size());
            if (n <= 0) break; // EAGAIN: drained
            if (static_cast<std::size_t>(n) <= kHdr) {
                ++counters_.dropped_tx;
                continue;
            }
            held_ = static_cast<std::size_t>(n);
        }
        VnetHeader h{};
        std::memcpy(&h, buf_.data(), kHdr);
        const auto frame = std::span(buf_.data() + kHdr, held_ - kHdr);
        TxMeta meta;
        // CHECKSUM_PARTIAL: the kernel left the pseudo-header sum in the field, as netfront's
        // csum_blank does; the packet itself is known good.
        if ((h.flags & kVnetNeedsCsum) != 0)
            meta.flags = ring::TxFrontFlags{.csum_blank = true, .data_validated = true};
        else if ((h.flags & kVnetDataValid) != 0)
            meta.flags.data_validated = true;
        switch (h.gso_type & static_cast<std::uint8_t>(~kVnetGsoEcn)) {
        case kVnetGsoNone: break;
        case kVnetGsoTcpv4: meta.gso = ring::TxGso{h.gso_size, XEN_NETIF_GSO_TYPE_TCPV4, 0}; break;
        case kVnetGsoTcpv6: meta.gso = ring::TxGso{h.gso_size, XEN_NETIF_GSO_TYPE_TCPV6, 0}; break;
        default: meta.gso = ring::TxGso{0, 0xff, 0}; break; // not offered to the kernel: refused below
        }
        const unsigned q = pick_queue(frame);
        const SendResult r =
            meta.gso && meta.gso->type == 0xff ? SendResult::refused : io_.send(q, frame, meta);
        if (r == SendResult::busy) break;
        if (r == SendResult::refused) {
            ++counters_.dropped_tx;
        } else {
            ++counters_.from_tap;
            ++queued;
            touched |= std::uint64_t{1} << (q % 64);
        }
        held_ = 0;
    }
    for (unsigned q = 0; q < nq; ++q)
        if ((touched >> (q % 64)) & 1) io_.flush(q);
    return queued;
}

std::size_t TapBridge::ring_to_tap() {
    std::size_t written = 0;
    RxFrame f;
    sync_offloads();
    // Frames go to the kernel as they are (GSO ones whole: the local stack takes them), so the
    // vnet header says nothing.
    VnetHeader none{};
    for (unsigned q = 0; q < io_.queue_count(); ++q) {
        bool got = false;
        while (io_.next_rx(q, f)) {
            got = true;
            if (f.error || f.nr_frags == 0) {
                ++counters_.dropped_rx;
                continue;
            }
            ssize_t rc = -1;
            if ((f.flags & NETRXF_csum_blank) != 0 && f.length <= rx_buf_.size()) {
                std::size_t at = 0;
                for (auto frag : f.frags()) {
                    std::memcpy(rx_buf_.data() + at, frag.data(), frag.size());
                    at += frag.size();
                }
                if (fill_l4_checksum(std::span(rx_buf_.data(), at))) ++counters_.csum_filled;
                std::array<iovec, 2> iov{iovec{&none, sizeof none}, iovec{rx_buf_.data(), at}};
                rc = ::writev(tap_.fd(), iov.data(), 2);
            } else {
                std::array<iovec, ring::kMaxTxSegments + 1> iov;
                iov[0] = iovec{&none, sizeof none};
                for (std::size_t i = 0; i < f.nr_frags; ++i)
                    iov[i + 1] = iovec{const_cast<std::byte*>(f.frags()[i].data()), f.frags()[i].size()};
                rc = ::writev(tap_.fd(), iov.data(), static_cast<int>(f.nr_frags + 1));
            }
            if (rc < 0) {
                ++counters_.dropped_rx;
            } else {
                ++counters_.to_tap;
                ++written;
            }
        }
        if (got) io_.refill(q);
    }
    return written;
}

} // namespace netbackd::xensim
