// The Threads contract of platform.hpp, as the simulated platform enforces it: one Grants object's
// copies come from one thread; a second thread is fatal, at once, with a message.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include <catch2/catch.hpp>

#include "backend/platform/checked_grants.hpp"

using namespace netbackd::platform;

namespace {

class NullGrants final : public Grants {
public:
    std::unique_ptr<GrantMapping> map(DomId, GrantRef, bool) override { return nullptr; }
    void copy(std::span<CopySegment> segs) override {
        for (auto& s : segs) s.status = GNTST_okay;
    }
};

// Runs body in a forked child; returns the signal that ended it (0: exited normally).
template <class F>
int child_signal(F&& body) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        body();
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

} // namespace

TEST_CASE("checked grants: copies from one thread pass, from a second thread abort", "[platform][threads]") {
    SECTION("one thread, many batches") {
        CheckedGrants g(std::make_unique<NullGrants>());
        CopySegment seg{};
        for (int i = 0; i < 100; ++i) g.copy({&seg, 1});
        CHECK(seg.status == GNTST_okay);
        // Another object on another thread is its own owner.
        std::thread([] {
            CheckedGrants other(std::make_unique<NullGrants>());
            CopySegment s{};
            other.copy({&s, 1});
        }).join();
    }
    SECTION("a second thread copying through the same object is fatal") {
        CHECK(child_signal([] {
                  CheckedGrants g(std::make_unique<NullGrants>());
                  CopySegment seg{};
                  g.copy({&seg, 1});
                  std::thread([&] { g.copy({&seg, 1}); }).join();
              }) == SIGABRT);
    }
}
