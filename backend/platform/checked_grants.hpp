// Enforces the seam's thread contract for Grants::copy (platform.hpp, "Threads"): one object's
// copies come from one thread. The simulated platform wraps its Grants in this, so a data plane
// that shares one Grants between workers dies at once with a message in every test, instead of
// corrupting gntdev scratch only on real Xen and only under load.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

// The first thread that copies owns the object; any other thread, or two threads inside at once,
// is a breach: it prints what happened and aborts (a worker must not carry on with scratch that
// another thread may have overwritten, and the fast path has no error channel for it).
class CopyOwnerCheck {
public:
    explicit CopyOwnerCheck(const char* what) noexcept : what_(what) {}
    void enter() noexcept;
    void leave() noexcept { inside_.fetch_sub(1, std::memory_order_release); }

private:
    const char* what_;
    std::atomic<std::thread::id> owner_{};
    std::atomic<int> inside_{0};
};

class CheckedGrants final : public Grants {
public:
    explicit CheckedGrants(std::unique_ptr<Grants> inner) : inner_(std::move(inner)) {}
    // map() is the control thread's and may run beside a worker's copies on the same handle.
    std::unique_ptr<GrantMapping> map(DomId domid, GrantRef ref, bool writable) override {
        return inner_->map(domid, ref, writable);
    }
    void copy(std::span<CopySegment> segments) override {
        check_.enter();
        inner_->copy(segments);
        check_.leave();
    }

private:
    std::unique_ptr<Grants> inner_;
    CopyOwnerCheck check_{"Grants::copy"};
};

} // namespace netbackd::platform
