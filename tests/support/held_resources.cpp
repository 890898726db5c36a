#include "tests/support/held_resources.hpp"

#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/support/netbackd_on_xensim.hpp"

namespace netbackd::testing {

Held netbackd_stats(pid_t pid, const std::string& log) {
    return netbackd_stats(fmt::format("netbackd-{}", pid), log);
}

std::uint64_t vif_drops(const Held& h, platform::DomId domid, std::uint32_t devid) {
    const auto it = h.vifs_json.find(fmt::format("vif{}_{}", domid, devid));
    if (it == h.vifs_json.end()) return 0;
    std::uint64_t n = 0;
    for (const auto& [key, value] : it->items())
        if (key.rfind("drop_", 0) == 0 && value.is_number_unsigned()) n += value.get<std::uint64_t>();
    return n;
}

Held netbackd_stats(const std::string& prefix, const std::string& log) {
    const std::string out = fmt::format("{}.json", log);
    // sh only for the redirection: the stats JSON goes to its own file, errors to the log.
    const int rc =
        run({"/bin/sh", "-c",
             fmt::format("'{}' stats --json --file-prefix {} > '{}'", NETBACKD_BINARY, prefix, out)},
            log);
    REQUIRE(rc == 0);
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str());
    const auto& r = j.at("resources");
    Held h;
    h.raw = ss.str();
    h.vifs = r.at("vifs").get<std::int64_t>();
    h.mapped_pages = r.at("mapped_pages").get<std::int64_t>();
    h.bound_ports = r.at("bound_ports").get<std::int64_t>();
    h.open_fds = r.at("open_fds").get<std::int64_t>();
    h.rss_bytes = r.at("rss_bytes").get<std::int64_t>();
    h.negative_counts = r.at("negative_counts").get<std::int64_t>();
    for (const auto& [pool, n] : r.at("mbufs_in_use").items()) h.mbufs_in_use[pool] = n.get<std::int64_t>();
    h.vifs_json = j.at("vifs");
    return h;
}

bool same_mbufs_held(const Held& before, const Held& now) {
    if (now.mbufs_in_use.size() < before.mbufs_in_use.size()) return false;
    for (const auto& [pool, n] : now.mbufs_in_use) {
        const auto it = before.mbufs_in_use.find(pool);
        if (n != (it == before.mbufs_in_use.end() ? 0 : it->second)) return false;
    }
    return true;
}

} // namespace netbackd::testing
