// The service's end of `netbackd capture`: a unix stream socket in the EAL runtime directory
// (next to DPDK's telemetry socket, which `netbackd stats` uses) that the CLI connects to.
// Request: one line "<domid>.<devid>\t<snaplen>\t<filter>\n"; answer: "OK\n" followed by a
// pcapng stream (Section Header, one Interface Description for the vif, then an Enhanced
// Packet Block per frame, flagged inbound for what the guest sent, outbound for what it got),
// or "ERR <reason>\n". The capture ends when the client closes the connection, or when the
// vif goes away.
//
// Why stream to the client instead of writing a file in the service: the service runs
// confined (read-only system, private /tmp), the operator's `-w file` lands where the operator
// runs the command, with their permissions, and `-w -` needs a stream anyway.
//
// Threads: accept(), poll() and the destructor run on the control thread (they call the
// DataPlane). Each session has a writer thread of its own that takes the tap's copies
// (capture.hpp) and blocks on the client as long as the client reads slowly: the worker never
// waits for it, its ring fills and drops. Shared per session: `done` (writer -> control),
// `stop` (control -> writer), the connection fd (written by the writer, shut down by the
// control thread to end a blocked write).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend/control/vif_id.hpp"
#include "backend/dataplane/dataplane.hpp"
#include "backend/platform/fd.hpp"

namespace netbackd::service {

inline constexpr const char* kCaptureSocketName = "netbackd_capture.sock";

// A pcapng Section Header Block and the Interface Description Block of `ifname` (Ethernet,
// nanosecond timestamps, the filter as an if_filter option when not empty).
std::string pcapng_header(const std::string& ifname, std::uint32_t snaplen, const std::string& filter);

class CaptureServer {
public:
    // Listens on `path` (mode 0600: captures show guests' traffic).
    CaptureServer(dataplane::DataPlane& dp, std::string path);
    ~CaptureServer();
    CaptureServer(const CaptureServer&) = delete;
    CaptureServer& operator=(const CaptureServer&) = delete;

    int fd() const noexcept { return listen_.get(); }
    // The listening socket is readable: take one client's request and start its capture.
    void accept();
    // Ends the sessions whose client went away or whose vif was detached.
    void poll();
    std::size_t sessions() const noexcept { return sessions_.size(); }

private:
    struct Session {
        control::VifId id;
        std::shared_ptr<dataplane::CaptureTap> tap;
        platform::Fd conn;
        std::atomic<bool> stop{false};
        std::atomic<bool> done{false};
        std::thread writer;
    };
    void end(Session& s);

    dataplane::DataPlane& dp_;
    std::string path_;
    platform::Fd listen_;
    std::vector<std::unique_ptr<Session>> sessions_;
};

} // namespace netbackd::service
