#include "backend/service/stats.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/dataplane/dataplane.hpp"
#include "backend/platform/fd.hpp"
#include "backend/service/stats_prometheus.hpp"

namespace netbackd::service {
namespace {

namespace fs = std::filesystem;

// A socket file left by a killed instance refuses connections: only live ones count.
bool accepts_connections(const fs::path& path) {
    platform::Fd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path.string();
    if (!fd || p.size() >= sizeof addr.sun_path) return false;
    p.copy(addr.sun_path, p.size());
    return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

class TelemetrySocket {
public:
    explicit TelemetrySocket(const fs::path& path)
        : fd_(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string p = path.string();
        if (!fd_ || p.size() >= sizeof addr.sun_path)
            throw std::runtime_error("cannot create a telemetry socket");
        p.copy(addr.sun_path, p.size());
        if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error(fmt::format("cannot connect to {}: {}", p, std::strerror(errno)));
        receive(); // the greeting: version and limits
    }
    nlohmann::json query(const std::string& command) {
        if (::write(fd_.get(), command.data(), command.size()) != static_cast<ssize_t>(command.size()))
            throw std::runtime_error(fmt::format("telemetry write: {}", std::strerror(errno)));
        return nlohmann::json::parse(receive());
    }

private:
    std::string receive() {
        std::string buf(1 << 20, '\0'); // DPDK sends at most 16 KiB per reply
        const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
        if (n <= 0) throw std::runtime_error("netbackd closed the telemetry connection");
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }
    platform::Fd fd_;
};

std::uint64_t sum_drops(const nlohmann::json& v) {
    std::uint64_t n = 0;
    for (const auto& [key, value] : v.items())
        if (key.rfind("drop_", 0) == 0 && value.is_number_unsigned()) n += value.get<std::uint64_t>();
    return n;
}

std::string vif_name(std::string_view key) { // "vif7_0" -> "vif 7.0"
    key.remove_prefix(std::min<std::size_t>(3, key.size()));
    const auto u = key.find('_');
    if (u == std::string_view::npos) return fmt::format("vif {}", key);
    return fmt::format("vif {}.{}", key.substr(0, u), key.substr(u + 1));
}

// Every vif, page by page: one telemetry reply holds kVifsPerPage of them.
nlohmann::json all_vifs(TelemetrySocket& sock) {
    nlohmann::json vifs = nlohmann::json::object();
    for (unsigned first = 0;; first += dataplane::kVifsPerPage) {
        const auto reply = sock.query(fmt::format("/netbackd/vifs,{}", first));
        const auto& page = reply.at("/netbackd/vifs");
        if (!page.is_object()) break;
        vifs.update(page);
        if (page.size() < dataplane::kVifsPerPage) break;
    }
    return vifs;
}

// "starting" while netbackd re-adopts its vifs; a netbackd without the command is running.
std::string phase_of(TelemetrySocket& sock) {
    const auto reply = sock.query("/netbackd/phase");
    const auto it = reply.find("/netbackd/phase");
    if (it == reply.end() || !it->is_object()) return "running";
    return it->value("phase", std::string("running"));
}

nlohmann::json resources_of(TelemetrySocket& sock) {
    // An older netbackd without the command answers null: show the vifs anyway.
    const auto reply = sock.query("/netbackd/resources");
    const auto it = reply.find("/netbackd/resources");
    return it != reply.end() && it->is_object() ? *it : nlohmann::json::object();
}

void print_resources(const nlohmann::json& r, std::FILE* out) {
    if (r.empty()) {
        fmt::print(out, "resources: (not reported by this netbackd)\n");
        return;
    }
    auto n = [&](const char* key) { return r.value(key, std::uint64_t{0}); };
    fmt::print(
        out,
        "resources: {} vif(s), {} mapped grant page(s), {} bound channel(s), {} open fd(s), RSS {:.1f} MiB\n",
        n("vifs"), n("mapped_pages"), n("bound_ports"), n("open_fds"), double(n("rss_bytes")) / (1 << 20));
    const auto in_use = r.value("mbufs_in_use", nlohmann::json::object());
    const auto total = r.value("mbufs_total", nlohmann::json::object());
    for (const auto& [pool, used] : in_use.items())
        fmt::print(out, "mbufs {}: {} in use of {}\n", pool, used.get<std::uint64_t>(),
                   total.value(pool, std::uint64_t{0}));
    if (n("negative_counts") != 0)
        fmt::print(out, "WARNING: a resource was released twice (negative count)\n");
}

// Data-plane workers (defined at the end of this file).
nlohmann::json workers_of(TelemetrySocket& sock);
void print_workers(const nlohmann::json& w, std::FILE* out);

} // namespace

std::filesystem::path telemetry_socket(const StatsOptions& o) {
    const fs::path root = o.runtime_dir;
    if (!o.file_prefix.empty()) return root / o.file_prefix / "dpdk_telemetry.v2";
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        const auto name = entry.path().filename().string();
        if (name.rfind("netbackd", 0) == 0 && accepts_connections(entry.path() / "dpdk_telemetry.v2"))
            found.push_back(entry.path() / "dpdk_telemetry.v2");
    }
    if (found.size() == 1) return found.front();
    if (found.empty())
        throw std::runtime_error(
            fmt::format("no running netbackd found under {} (is telemetry off in "
                        "[dpdk] eal_args, or is the prefix not netbackd*? use --file-prefix)",
                        root.string()));
    std::string names;
    for (const auto& f : found) names += fmt::format(" {}", f.parent_path().filename().string());
    throw std::runtime_error(
        fmt::format("several netbackd instances:{}; pick one with --file-prefix", names));
}

int print_stats(const StatsOptions& o, std::FILE* out) {
    try {
        TelemetrySocket sock(telemetry_socket(o));
        const std::string phase = phase_of(sock);
        const auto vifs = all_vifs(sock);
        const auto resources = resources_of(sock);
        const auto workers = workers_of(sock);
        const nlohmann::json all{
            {"phase", phase}, {"vifs", vifs}, {"resources", resources}, {"workers", workers}};
        if (o.json) {
            fmt::print(out, "{}\n", all.dump(2));
            return 0;
        }
        if (o.prometheus) {
            fmt::print(out, "{}", prometheus_text(all));
            return 0;
        }
        // COPIES: grant-copy calls; MEMCPY: segments copied through staging grants instead;
        // STAGED: guest pages mapped as staging grants now.
        fmt::print(out, "{:<12} {:<9} {:>12} {:>14} {:>12} {:>14} {:>9} {:>9} {:>10} {:>10} {:>10} {:>7}\n",
                   "VIF", "STATE", "TX PKTS", "TX BYTES", "RX PKTS", "RX BYTES", "DROPS", "NOTIFY",
                   "SEGS/COPY", "COPIES", "MEMCPY", "STAGED");
        for (const auto& [key, v] : vifs.items()) {
            const auto batches = v.value("copy_batches", std::uint64_t{0});
            const auto segs = v.value("copy_segments", std::uint64_t{0});
            fmt::print(
                out, "{:<12} {:<9} {:>12} {:>14} {:>12} {:>14} {:>9} {:>9} {:>10} {:>10} {:>10} {:>7}\n",
                vif_name(key), v.value("state", std::string("?")), v.value("tx_packets", std::uint64_t{0}),
                v.value("tx_bytes", std::uint64_t{0}), v.value("rx_packets", std::uint64_t{0}),
                v.value("rx_bytes", std::uint64_t{0}), sum_drops(v),
                v.value("notifications", std::uint64_t{0}),
                batches == 0 ? std::string("-") : fmt::format("{:.1f}", double(segs) / double(batches)),
                batches, v.value("staged_copies", std::uint64_t{0}),
                v.value("staged_pages", std::uint64_t{0}));
        }
        if (phase == "starting")
            fmt::print(out, "(starting: re-adopting the vifs in xenstore)\n");
        else if (vifs.empty())
            fmt::print(out, "(no vifs connected)\n");
        print_resources(resources, out);
        print_workers(workers, out);
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "netbackd stats: {}\n", e.what());
        return 1;
    }
}

namespace {

nlohmann::json workers_of(TelemetrySocket& sock) {
    const auto reply = sock.query("/netbackd/workers");
    const auto it = reply.find("/netbackd/workers");
    return it != reply.end() && it->is_object() ? *it : nlohmann::json::object();
}

// One line per worker: its vifs, how it sleeps when idle ("event": only an event channel, RX
// interrupt or peer wakes it; "timer": it polls a port without RX interrupts), and what crossed
// to and from other workers.
void print_workers(const nlohmann::json& w, std::FILE* out) {
    if (w.empty()) return;
    fmt::print(out, "{:<9} {:>5} {:>8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}\n", "WORKER", "VIFS",
               "SLEEP", "UPLINK RX", "UPLINK TX", "SLEEPS", "CROSS OUT", "CROSS IN", "CROSS DROP");
    for (const auto& item : w.items()) {
        const auto& name = item.key();
        const auto& v = item.value(); // a plain reference: clang 14 cannot capture a binding
        auto n = [&](const char* key) { return v.value(key, std::uint64_t{0}); };
        fmt::print(out, "{:<9} {:>5} {:>8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}\n", name, n("vifs"),
                   n("idle_timer") != 0 ? "timer" : "event", n("uplink_rx"), n("uplink_tx"), n("sleeps"),
                   n("cross_out"), n("cross_in"), n("cross_dropped"));
    }
}

} // namespace

} // namespace netbackd::service
