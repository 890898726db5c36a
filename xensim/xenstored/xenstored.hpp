// xensim's xenstored: the xenstore wire protocol (xen/io/xs_wire.h) over unix sockets, one socket
// per domain so that every connection is bound to the domain it runs in. Real libxenstore and
// the xenstore-* tools talk to it through XENSTORED_PATH.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string_view>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim {

// xenstored's quotas, with its defaults.
struct XenstoredLimits {
    std::size_t max_value_bytes = 4096;      // E2BIG beyond
    std::size_t max_nodes_per_domain = 1000; // ENOSPC beyond; dom0 is exempt
    std::size_t max_watches_per_connection = 128;
    std::size_t max_transactions_per_connection = 10;
};

class Xenstored {
public:
    // Creates dir/xenstored.sock for dom0 (privileged) and the initial tree, including
    // /local/domain/0 with its "domid" key, as a Xen host's dom0 has.
    explicit Xenstored(std::filesystem::path dir, XenstoredLimits limits = {});
    // Stops and joins the loop, closes every connection and removes the sockets.
    ~Xenstored();
    Xenstored(const Xenstored&) = delete;
    Xenstored& operator=(const Xenstored&) = delete;

    // Serves until stop(); blocks the calling thread. Once stopped, stays stopped.
    void run();
    // Serves on a background thread, joined by the destructor.
    void start();
    // Thread-safe and async-signal-safe.
    void stop();

    // What dom0's INTRODUCE / RELEASE do (thread-safe): open dir/domain/<id>/xenstored.sock and
    // fire @introduceDomain; drop the domain's connections, remove its socket, fire @releaseDomain.
    void introduce(platform::DomId id);
    void release(platform::DomId id);
    // What libxl does for a new domain before introducing it: /local/domain/<id> owned by dom0
    // and readable by the domain, with "domid", "name" and the domain-writable subdirectories
    // (device, control, data, ...). Thread-safe.
    void create_domain_home(platform::DomId id, std::string_view name);

    static std::filesystem::path socket_path(const std::filesystem::path& dir, platform::DomId id);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace netbackd::xensim
