#include "backend/platform/sim/grant_checks.hpp"

#include <cerrno>
#include <thread>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace netbackd::xensim {

namespace {

// getpid() is a system call in glibc >= 2.25; the lock takes it once per process (a forked
// child starts over).
std::atomic<std::uint32_t> g_pid{0};

std::uint32_t own_pid() noexcept {
    std::uint32_t pid = g_pid.load(std::memory_order_relaxed);
    if (pid == 0) {
        static const int registered = ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(0); });
        (void)registered;
        pid = static_cast<std::uint32_t>(::getpid());
        g_pid.store(pid, std::memory_order_relaxed);
    }
    return pid;
}

bool process_gone(std::uint32_t pid) noexcept {
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// Spins between liveness checks of the holder: the check is a system call, and a live holder
// keeps the lock for a few hundred nanoseconds.
constexpr int kSpinsPerCheck = 4096;

// Xen retries a moving entry a few times, then blames the guest.
constexpr int kCmpxchgRetries = 5;

std::int16_t set_status(GrantEntry& e, bool pinned, std::uint16_t caller, bool readonly,
                        bool mapping) noexcept {
    std::uint16_t mask = GTF_type_mask | (mapping ? GTF_sub_page : 0);
    std::uint32_t seen = e.combo.load(std::memory_order_acquire);
    for (int attempt = 0;; ++attempt) {
        std::uint16_t flags = GrantEntry::flags_of(seen);
        if (!pinned && ((flags & mask) != GTF_permit_access || GrantEntry::domid_of(seen) != caller))
            return GNTST_general_error;
        std::uint16_t next = flags | GTF_reading;
        if (!readonly) {
            if (flags & GTF_readonly) return GNTST_general_error;
            next |= GTF_writing;
        }
        if (e.combo.compare_exchange_strong(seen, GrantEntry::pack(next, GrantEntry::domid_of(seen)),
                                            std::memory_order_acq_rel))
            return GNTST_okay;
        if (attempt + 1 == kCmpxchgRetries) return GNTST_general_error;
    }
}

void clear_flags(GrantEntry& e, const ActiveGrant& a) noexcept {
    std::uint32_t clear = 0;
    if (a.write_pins == 0) clear |= GTF_writing;
    if (a.write_pins == 0 && a.read_pins == 0) clear |= GTF_reading;
    if (clear != 0) e.combo.fetch_and(~clear, std::memory_order_release);
}

} // namespace

ActiveLock::ActiveLock(ActiveGrant& a) noexcept : a_(a) {
    const std::uint32_t me = own_pid();
    std::uint32_t free = 0;
    while (!a_.lock.compare_exchange_weak(free, me, std::memory_order_acquire, std::memory_order_relaxed)) {
        // Two cores, possibly more processes than cores: let a preempted holder run.
        for (int spin = 0; free != 0; ++spin) {
            std::this_thread::yield();
            if (spin == kSpinsPerCheck) {
                if (process_gone(free) && a_.lock.compare_exchange_strong(free, me, std::memory_order_acquire,
                                                                          std::memory_order_relaxed))
                    return;
                spin = 0;
            }
            free = a_.lock.load(std::memory_order_relaxed);
        }
    }
}

Pin pin_grant(DomainState& st, std::uint32_t ref, std::uint16_t caller, bool readonly,
              bool mapping) noexcept {
    if (ref >= kNrGrants) return {GNTST_bad_gntref, 0};
    GrantEntry& e = st.grants[ref];
    ActiveGrant& a = st.active[ref];
    ActiveLock lock(a);

    bool pinned = a.read_pins + a.write_pins != 0;
    // An existing pin belongs to one grantee; a refcount near overflow is refused, as in Xen.
    if (pinned && (a.domid != caller || a.read_pins == 0xffff || a.write_pins == 0xffff))
        return {GNTST_general_error, 0};

    bool need_status = !pinned || (!readonly && a.write_pins == 0);
    if (need_status) {
        if (std::int16_t rc = set_status(e, pinned, caller, readonly, mapping); rc != GNTST_okay)
            return {rc, 0};
    }
    if (!pinned) {
        a.domid = caller;
        a.frame = e.frame.load(std::memory_order_acquire);
        if (a.frame >= st.nr_pages) {
            clear_flags(e, a);
            return {GNTST_bad_page, 0};
        }
    }
    if (readonly)
        ++a.read_pins;
    else
        ++a.write_pins;
    return {GNTST_okay, a.frame};
}

void unpin_grant(DomainState& st, std::uint32_t ref, bool readonly) noexcept {
    if (ref >= kNrGrants) return;
    ActiveGrant& a = st.active[ref];
    ActiveLock lock(a);
    if (readonly) {
        if (a.read_pins != 0) --a.read_pins;
    } else {
        if (a.write_pins != 0) --a.write_pins;
    }
    clear_flags(st.grants[ref], a);
}

} // namespace netbackd::xensim
