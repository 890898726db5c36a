#include "xensim/toolstack/store_wait.hpp"

#include <atomic>
#include <cerrno>

#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>

namespace netbackd::xensim {

bool wait_for_node(platform::Store& store, const std::string& path, std::chrono::milliseconds timeout,
                   const std::function<bool(const std::optional<std::string>&)>& done) {
    // A token unique per wait, so concurrent waits on one connection do not steal events.
    static std::atomic<unsigned> seq{0};
    const std::string token = fmt::format("xensim-wait-{}-{}", getpid(), seq++);
    store.watch(path, token);
    struct Unwatch {
        platform::Store& s;
        const std::string& p;
        const std::string& t;
        ~Unwatch() {
            try {
                s.unwatch(p, t);
            } catch (...) {
                // The connection is going away anyway.
            }
        }
    } unwatch{store, path, token};

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done(store.read(0, path))) return true;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd pfd{store.watch_fd(), POLLIN, 0};
            const int n = poll(&pfd, 1, static_cast<int>(left.count()));
            if (n < 0 && errno != EINTR) throw platform::PlatformError("poll on the xenstore watch", errno);
            if (n > 0) break;
        }
        store.read_watches(); // which event does not matter: the node is re-read
    }
}

} // namespace netbackd::xensim
