// Wire format of DIR/hypervisor.sock (SOCK_SEQPACKET, one request → one reply, fds by
// SCM_RIGHTS). Only the slow path talks here: setting up domains, fetching a domain's memfds
// once, binding channels. Grant copies and notifies never do.
#pragma once

#include <cstdint>

namespace netbackd::xensim::wire {

inline constexpr const char* kSocketName = "hypervisor.sock";

enum class Op : std::uint32_t {
    hello = 1,            // domid; carries the caller's eventfd → val0 = owner token,
                          // arg64 = the host's CostModel (pack_costs)
    create_domain = 2,    // domid, arg64 = memory bytes, arg0 = max_event_channels (0: default), name
    destroy_domain = 3,   // domid
    list_domains = 4,     // → text: "<domid> <name> <bytes>\n" per domain
    get_domain = 5,       // domid → fds [memory, state], arg64 = memory bytes
    get_eventfd = 6,      // arg0 = owner token → fd
    alloc_unbound = 7,    // arg0 = remote domid → val0 = port
    bind_interdomain = 8, // arg0 = remote domid, arg1 = remote port → val0 = port
    unbind = 9,           // arg0 = port
    // Grant maps go through the hypervisor (copies do not) so that a process that dies with
    // pages mapped releases them, as closing /dev/xen/gntdev does.
    map_grant = 10,   // domid = granter, arg0 = ref, arg1 = writable → val0 = frame, or
                      // error = EACCES with val0 = the negative GNTST_* status
    unmap_grant = 11, // domid = granter, arg0 = ref, arg1 = writable
};

inline constexpr std::size_t kNameMax = 64;

// What the host charges for what Xen does in a hypercall but the simulation does in-process.
// Zero by default, so that the figures show the backend's own cost; the bench sets it to show
// how batching amortises a real GNTTABOP_copy.
struct CostModel {
    std::uint32_t grant_copy_batch_ns = 0;   // per hypercall (one per 16 segments): entry/exit
    std::uint32_t grant_copy_segment_ns = 0; // per segment: gntdev page pin, grant lookup, p2m
    bool operator==(const CostModel&) const = default;
};

inline constexpr std::uint64_t pack_costs(const CostModel& c) {
    return std::uint64_t{c.grant_copy_batch_ns} | (std::uint64_t{c.grant_copy_segment_ns} << 32);
}
inline constexpr CostModel unpack_costs(std::uint64_t v) {
    return CostModel{static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(v >> 32)};
}

struct Request {
    Op op;
    std::uint32_t domid;
    std::uint32_t arg0;
    std::uint32_t arg1;
    std::uint64_t arg64;
    char name[kNameMax];
};

struct Reply {
    std::int32_t error; // 0 or an errno value
    std::uint32_t val0;
    std::uint64_t arg64;
    // Followed by text for list_domains / an error message.
};

inline constexpr std::size_t kMaxReply = 64 * 1024;
inline constexpr int kMaxFds = 2;

} // namespace netbackd::xensim::wire
