#include "backend/platform/checked_grants.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace netbackd::platform {

namespace {

[[noreturn]] void breach(const char* what, const char* how, std::thread::id owner) {
    std::ostringstream ids;
    ids << "owner thread " << owner << ", caller thread " << std::this_thread::get_id();
    std::fprintf(stderr,
                 "netbackd: %s %s (%s): one Grants object per worker thread "
                 "(platform.hpp, Threads; Platform::open_worker_grants)\n",
                 what, how, ids.str().c_str());
    std::abort();
}

} // namespace

void CopyOwnerCheck::enter() noexcept {
    const std::thread::id self = std::this_thread::get_id();
    std::thread::id owner{};
    if (!owner_.compare_exchange_strong(owner, self, std::memory_order_acq_rel) && owner != self)
        breach(what_, "called from a second thread", owner);
    if (inside_.fetch_add(1, std::memory_order_acq_rel) != 0)
        breach(what_, "entered by two threads at once", owner_.load(std::memory_order_relaxed));
}

} // namespace netbackd::platform
