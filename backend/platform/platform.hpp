// The platform seam: everything netbackd needs from Xen, behind three small interfaces.
// Two implementations exist: real Xen (libxenstore, libxengnttab, libxenevtchn) and xensim.
// Code above this seam never learns which one it runs on.
//
// Cost model: virtual calls here happen per batch or per control-plane event, never per packet.
//
// Threads. The control thread alone uses the Store, Grants::map (and the mappings' lifetime) and
// Events::bind_interdomain/alloc_unbound/unbind. One Events object is shared by the control
// thread and every data-plane worker: notify/pending/unmask/fd are safe from any thread (each is
// one system call on the shared evtchn device; the simulated one locks). A Grants object is NOT
// shared for copies: copy() keeps per-handle scratch, so each worker copies only through the
// Grants that Platform::open_worker_grants opened for it (its own gntdev handle), the way DPDK
// keeps per-lcore state. The simulated platform enforces this (checked_grants.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ring/sring.hpp"

// libxen's headers declare C functions without extern "C"; wrap them so calls link.
extern "C" {
#include <xengnttab.h>
}

namespace netbackd::platform {

using DomId = std::uint16_t;
using GrantRef = std::uint32_t;
using EvtchnPort = std::uint32_t;

// Xen's page, the one the netif rings are laid out in: one constant for the whole product.
using ring::kPageSize;

// Thrown by the slow-path calls (store, map, bind) with the errno or GNTST_* status behind it.
class PlatformError : public std::runtime_error {
public:
    PlatformError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

// ---------------------------------------------------------------- xenstore
enum class PermKind : char { none = 'n', read = 'r', write = 'w', both = 'b' };
struct Perm {
    DomId domid;
    PermKind kind;
    bool operator==(const Perm&) const = default;
};

struct WatchEvent {
    std::string path;
    std::string token;
};

// Transaction id as in xs_wire.h; 0 means "no transaction".
using TxId = std::uint32_t;

class Store {
public:
    virtual ~Store() = default;

    // std::nullopt when the node does not exist (ENOENT); other failures throw PlatformError.
    virtual std::optional<std::string> read(TxId tx, std::string_view path) = 0;
    virtual void write(TxId tx, std::string_view path, std::string_view value) = 0;
    virtual void mkdir(TxId tx, std::string_view path) = 0;
    // Removing a node that does not exist is not an error.
    virtual void rm(TxId tx, std::string_view path) = 0;
    // Child names; std::nullopt when the node does not exist.
    virtual std::optional<std::vector<std::string>> directory(TxId tx, std::string_view path) = 0;
    virtual std::vector<Perm> get_perms(TxId tx, std::string_view path) = 0;
    virtual void set_perms(TxId tx, std::string_view path, std::span<const Perm> perms) = 0;

    virtual TxId transaction_start() = 0;
    // Returns false when the transaction conflicted (EAGAIN) and must be retried.
    virtual bool transaction_end(TxId tx, bool commit) = 0;

    // Runs body in a transaction, retrying on conflict; body may be called more than once.
    void transaction(const std::function<void(TxId)>& body, int max_attempts = 64);

    virtual void watch(std::string_view path, std::string_view token) = 0;
    virtual void unwatch(std::string_view path, std::string_view token) = 0;
    // Readable when watch events are queued.
    virtual int watch_fd() const = 0;
    // Drains queued watch events without blocking.
    virtual std::vector<WatchEvent> read_watches() = 0;

    // The domid this process runs in ("domid" key, as a driver domain learns it).
    virtual DomId self_domid() = 0;

    // xenstored's XS_CONTROL `command` (what `xenstore-control COMMAND` sends), its answer text.
    // Throws PlatformError with xenstored's errno: EACCES from a domain other than dom0 (C
    // xenstored answers dom0 only), ENOSYS or EINVAL where the command is not implemented.
    // Stores that cannot send it throw ENOSYS.
    virtual std::string control(std::string_view command);
};

// ---------------------------------------------------------------- grant tables
// One page of another domain, mapped into this process; unmapped on destruction.
class GrantMapping {
public:
    virtual ~GrantMapping() = default;
    virtual std::span<std::byte> page() = 0;
};

// A batched grant copy segment, laid out as libxengnttab's, so the real platform passes a
// batch to xengnttab_grant_copy() without conversion. flags: GNTCOPY_source_gref/dest_gref.
// status after copy(): GNTST_okay or a negative GNTST_* code, per segment.
using CopySegment = xengnttab_grant_copy_segment_t;

class Grants {
public:
    virtual ~Grants() = default;
    // Maps one granted page of `domid`; throws PlatformError with a GNTST_* code on refusal.
    virtual std::unique_ptr<GrantMapping> map(DomId domid, GrantRef ref, bool writable) = 0;
    // One call per batch. Every segment gets its own status; good segments complete even
    // when others in the batch fail. Never throws for per-segment failures. Not thread-safe:
    // one thread per object (see Threads above).
    virtual void copy(std::span<CopySegment> segments) = 0;
};

// ---------------------------------------------------------------- event channels
class Events {
public:
    virtual ~Events() = default;
    // Binds a local port to (remote domid, remote port); throws PlatformError on failure.
    virtual EvtchnPort bind_interdomain(DomId remote, EvtchnPort remote_port) = 0;
    // Allocates a port another domain may bind to (what a frontend does).
    virtual EvtchnPort alloc_unbound(DomId remote) = 0;
    virtual void unbind(EvtchnPort local) = 0;
    virtual void notify(EvtchnPort local) = 0;
    // Readable when some bound port has fired.
    virtual int fd() const = 0;
    // Next fired port, or std::nullopt. A delivered port stays masked until unmask(), as with
    // Linux's evtchn device.
    virtual std::optional<EvtchnPort> pending() = 0;
    virtual void unmask(EvtchnPort local) = 0;
};

// ---------------------------------------------------------------- the bundle
// Opens a Grants for one worker's fast path: its own handle and scratch, used by that worker only.
using GrantsFactory = std::function<std::unique_ptr<Grants>()>;

struct Platform {
    std::unique_ptr<Store> store;   // control thread
    std::unique_ptr<Grants> grants; // control thread: map(), and copy() if it ever copies
    std::unique_ptr<Events> events; // shared by the control thread and every worker
    // The control thread's own: the vifs' control rings (event-channel-ctrl) are bound here, so
    // the workers, which drain `events`, never see them. May be null (then `events` is used).
    std::unique_ptr<Events> control_events;
    GrantsFactory open_worker_grants;
};

enum class PlatformKind { xen, sim };

struct PlatformOptions {
    PlatformKind kind = PlatformKind::sim;
    // Simulated host directory (sockets, state), as given to `xensim up --dir`.
    std::string sim_dir;
    // Simulated domain this process runs in.
    DomId sim_domid = 0;
};

// Opens the chosen platform; throws PlatformError with a one-line reason on failure
// (e.g. "/dev/xen/gntdev is missing: not running on Xen (use --platform=sim)").
Platform open_platform(const PlatformOptions& options);

std::optional<PlatformKind> parse_platform_kind(std::string_view name);

} // namespace netbackd::platform
