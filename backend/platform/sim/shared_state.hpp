// The simulated hypervisor's per-domain state, as laid out in the domain's state memfd.
// Every process that deals with the domain maps the same bytes, so all fields a peer may touch
// concurrently are atomics; the layout is fixed-size so no process trusts a peer's length.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include <xen/grant_table.h>

namespace netbackd::xensim {

inline constexpr std::uint32_t kStateMagic = 0x4e425856; // "NBXV"
inline constexpr std::uint32_t kNrGrants = 8192;
// Linux keeps refs below 8 for the toolstack (GNTTAB_NR_RESERVED_ENTRIES); so do we.
inline constexpr std::uint32_t kFirstFreeGrant = 8;
// The 2-level event-channel ABI's limit for a 64-bit domain (64 x 64 bits): the table's size.
inline constexpr std::uint32_t kNrPorts = 4096;
// What a domain may use unless its config says otherwise: libxl's default max_event_channels
// (xl.cfg), the highest port number a domain may bind. A driver domain serving ~500 split-channel
// vifs needs more, as on Xen.
inline constexpr std::uint32_t kDefaultMaxEventChannels = 1023;
inline constexpr std::size_t kMaxDomainPages = 262144; // 1 GiB of guest memory
inline constexpr std::size_t kDefaultDomainBytes = 64u << 20;

static_assert(std::endian::native == std::endian::little,
              "grant entries pack flags and domid into one word as on little-endian x86");

// Same bytes as grant_entry_v1_t; flags and domid travel as one 32-bit word so that a grantee
// never pairs the flags of one grant with the domid of another (Xen's grant_combo).
struct GrantEntry {
    std::atomic<std::uint32_t> combo; // flags | domid << 16
    std::atomic<std::uint32_t> frame; // guest frame number within the granting domain

    static constexpr std::uint32_t pack(std::uint16_t flags, std::uint16_t domid) {
        return std::uint32_t{flags} | (std::uint32_t{domid} << 16);
    }
    static constexpr std::uint16_t flags_of(std::uint32_t c) { return static_cast<std::uint16_t>(c); }
    static constexpr std::uint16_t domid_of(std::uint32_t c) { return static_cast<std::uint16_t>(c >> 16); }
};
static_assert(sizeof(GrantEntry) == sizeof(grant_entry_v1_t));
static_assert(offsetof(GrantEntry, frame) == offsetof(grant_entry_v1_t, frame));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Hypervisor-private bookkeeping per grant (Xen's active entry): who holds it pinned.
// Snapshot of domid and frame taken at first pin, so a guest rewriting its entry while the
// grant is in use cannot redirect an existing pin.
struct ActiveGrant {
    std::atomic<std::uint32_t> lock; // 0, or the holder's pid (ActiveLock)
    std::uint16_t read_pins;         // guarded by lock
    std::uint16_t write_pins;        // guarded by lock
    std::uint32_t frame;             // guarded by lock
    std::uint16_t domid;             // guarded by lock
    std::uint16_t pad;
};

enum class PortState : std::uint32_t { free = 0, unbound = 1, interdomain = 2 };

struct EventPort {
    std::atomic<std::uint32_t> state;
    std::atomic<std::uint32_t> remote_dom;
    std::atomic<std::uint32_t> remote_port;
    // The binding process's token; its eventfd is what a notify writes to.
    std::atomic<std::uint32_t> owner;
    std::atomic<std::uint32_t> pending;
    std::atomic<std::uint32_t> mask;
    std::uint32_t pad[2];
};

struct DomainState {
    std::uint32_t magic;
    std::uint32_t domid;
    std::uint32_t nr_pages;
    std::atomic<std::uint32_t> alive;
    std::uint32_t max_port; // highest bindable port (xl.cfg max_event_channels); set at creation
    // Shared allocators for processes running inside the domain (netfront and friends).
    std::atomic<std::uint64_t> page_bitmap[kMaxDomainPages / 64];
    std::atomic<std::uint64_t> grant_bitmap[kNrGrants / 64];
    GrantEntry grants[kNrGrants];
    ActiveGrant active[kNrGrants];
    EventPort ports[kNrPorts];
};

inline constexpr std::size_t kStateBytes = (sizeof(DomainState) + 4095) & ~std::size_t{4095};

// The active entry's spinlock, held only for a handful of instructions. It lives in memory
// shared between processes, and on Xen no process can die halfway through a hypercall, but
// here a SIGKILLed netbackd can die holding it
// (a restart under traffic did, and its successor spun forever). So the lock word holds the
// holder's pid, and a waiter that has spun a while takes over the lock of a holder that no
// longer exists. Its pin counts may then be one off, as they may be for copies the dead
// process had in flight; the guest's grant keeps GTF_reading for those, a leak a test can see.
class ActiveLock {
public:
    explicit ActiveLock(ActiveGrant& a) noexcept;
    ~ActiveLock() { a_.lock.store(0, std::memory_order_release); }
    ActiveLock(const ActiveLock&) = delete;
    ActiveLock& operator=(const ActiveLock&) = delete;

private:
    ActiveGrant& a_;
};

} // namespace netbackd::xensim
