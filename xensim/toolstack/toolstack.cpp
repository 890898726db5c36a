#include "xensim/toolstack/toolstack.hpp"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "xensim/toolstack/store_wait.hpp"

namespace netbackd::xensim {
namespace {

using platform::DomId;
using platform::Perm;
using platform::PermKind;
using platform::Store;

std::string dom_path(DomId d) { return fmt::format("/local/domain/{}", d); }
std::string fe_path(DomId fe, std::uint32_t devid) {
    return fmt::format("{}/device/vif/{}", dom_path(fe), devid);
}
std::string be_path(DomId be, DomId fe, std::uint32_t devid) {
    return fmt::format("{}/backend/vif/{}/{}", dom_path(be), fe, devid);
}
std::string libxl_path(DomId fe, std::uint32_t devid) {
    return fmt::format("/libxl/{}/device/vif/{}", fe, devid);
}

bool is_number(const std::string& s) {
    return !s.empty() && s.size() < 6 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint32_t next_devid(Store& store, DomId fe) {
    // libxl takes one above the highest devid in use (holes are not reused).
    std::uint32_t next = 0;
    if (const auto ids = store.directory(0, dom_path(fe) + "/device/vif"))
        for (const auto& id : *ids)
            if (is_number(id))
                next = std::max<std::uint32_t>(next, static_cast<std::uint32_t>(std::stoul(id)) + 1);
    return next;
}

// libxl retries a conflicting transaction until it commits (libxl__xs_transaction_commit);
// parallel attaches all add children to the same parents, so 64 tries run out on a busy host.
constexpr int kLibxlRetries = 1'000'000;

// Removes `path` and then each parent that became empty, up to (not including) `stop`.
void path_cleanup(Store& store, platform::TxId tx, std::string path, const std::string& stop) {
    store.rm(tx, path);
    for (;;) {
        const auto slash = path.rfind('/');
        if (slash == std::string::npos || slash == 0) return;
        path.resize(slash);
        if (path.size() <= stop.size()) return;
        const auto left = store.directory(tx, path);
        if (!left || !left->empty()) return;
        store.rm(tx, path);
    }
}

} // namespace

std::optional<DomId> find_domain(Store& store, const std::string& name_or_id) {
    const auto doms = store.directory(0, "/local/domain");
    if (!doms) return std::nullopt;
    for (const auto& d : *doms) {
        if (!is_number(d)) continue;
        if (store.read(0, fmt::format("/local/domain/{}/name", d)) == name_or_id || d == name_or_id)
            return static_cast<DomId>(std::stoul(d));
    }
    return std::nullopt;
}

std::optional<std::uint32_t> find_nic_by_mac(Store& store, DomId fe, const std::string& mac) {
    const auto ids = store.directory(0, dom_path(fe) + "/device/vif");
    if (!ids) return std::nullopt;
    for (const auto& id : *ids)
        if (is_number(id) && store.read(0, fmt::format("{}/device/vif/{}/mac", dom_path(fe), id)) == mac)
            return static_cast<std::uint32_t>(std::stoul(id));
    return std::nullopt;
}

std::uint32_t nic_add(Store& store, const NicSpec& spec, std::chrono::milliseconds timeout) {
    if (!store.directory(0, dom_path(spec.frontend)))
        throw ToolstackError(fmt::format("Domain {} does not exist", spec.frontend));
    if (!store.directory(0, dom_path(spec.backend)))
        throw ToolstackError(fmt::format("backend domain {} does not exist", spec.backend));
    const std::uint32_t devid = spec.devid ? *spec.devid : next_devid(store, spec.frontend);
    const auto F = fe_path(spec.frontend, devid);
    const auto B = be_path(spec.backend, spec.frontend, devid);
    const auto L = libxl_path(spec.frontend, devid);
    if (spec.devid && store.read(0, F + "/backend"))
        throw ToolstackError(fmt::format("device vif {} already exists in domain {}", devid, spec.frontend));

    // Frontend nodes: owned by the guest, readable by the backend; mtu is read-only for it.
    const Perm fe_perms[] = {{spec.frontend, PermKind::none}, {spec.backend, PermKind::read}};
    const Perm fe_ro_perms[] = {
        {0, PermKind::none}, {spec.frontend, PermKind::read}, {spec.backend, PermKind::read}};
    // Backend nodes: owned by the driver domain, readable by the guest.
    const Perm be_perms[] = {{spec.backend, PermKind::none}, {spec.frontend, PermKind::read}};
    const Perm libxl_perms[] = {{0, PermKind::none}};

    std::vector<std::pair<std::string, std::string>> back = {
        {"frontend-id", std::to_string(spec.frontend)},
        {"online", "1"},
        {"state", "1"},
        {"script", spec.script},
        {"mac", spec.mac},
        {"bridge", spec.bridge},
        {"handle", std::to_string(devid)},
        {"type", "vif"},
        {"hotplug-status", ""},
        {"mtu", std::to_string(spec.mtu)},
    };
    if (spec.rate) back.emplace_back("rate", *spec.rate);

    store.transaction(
        [&](platform::TxId tx) {
            store.rm(tx, F);
            store.mkdir(tx, F);
            store.set_perms(tx, F, fe_perms);
            auto fe_write = [&](const std::string& k, const std::string& v, std::span<const Perm> perms) {
                store.write(tx, F + "/" + k, v);
                store.set_perms(tx, F + "/" + k, perms);
            };
            fe_write("backend", B, fe_perms);
            fe_write("backend-id", std::to_string(spec.backend), fe_perms);
            fe_write("state", "1", fe_perms);
            fe_write("handle", std::to_string(devid), fe_perms);
            fe_write("mac", spec.mac, fe_perms);
            fe_write("trusted", "1", fe_perms);
            fe_write("mtu", std::to_string(spec.mtu), fe_ro_perms);

            store.rm(tx, B);
            store.mkdir(tx, B);
            store.set_perms(tx, B, be_perms);
            store.write(tx, B + "/frontend", F);
            for (const auto& [k, v] : back) store.write(tx, B + "/" + k, v);

            store.rm(tx, L);
            store.mkdir(tx, L);
            store.set_perms(tx, L, libxl_perms);
            store.write(tx, L + "/frontend", F);
            store.write(tx, L + "/backend", B);
            for (const auto& [k, v] : back) store.write(tx, L + "/" + k, v);
        },
        kLibxlRetries);

    // libxl__wait_device_connection: exactly InitWait, nothing else counts.
    bool removed = false;
    const bool ok = wait_for_node(store, B + "/state", timeout, [&](const std::optional<std::string>& v) {
        if (!v) {
            removed = true;
            return true;
        }
        return *v == "2";
    });
    if (!ok || removed)
        throw ToolstackError(fmt::format(
            "device_backend_callback: Domain {}:unable to add device with path {}{}", spec.frontend, B,
            removed ? fmt::format(" (backend {}/state wanted state 2 but it was removed)", B)
                    : fmt::format(" (backend {}/state wanted state 2 timed out)", B)));
    return devid;
}

void nic_remove(Store& store, DomId fe, std::uint32_t devid, bool force, std::chrono::milliseconds timeout) {
    const auto F = fe_path(fe, devid);
    const auto L = libxl_path(fe, devid);
    const auto backend = store.read(0, F + "/backend");
    if (!backend) throw ToolstackError(fmt::format("Invalid argument: no vif {} in domain {}", devid, fe));
    const std::string B = *backend;

    std::string failure;
    if (!force) {
        bool present = false;
        store.transaction(
            [&](platform::TxId tx) {
                present = store.read(tx, B + "/state").has_value();
                if (present) {
                    store.write(tx, B + "/online", "0");
                    store.write(tx, B + "/state", "5");
                }
            },
            kLibxlRetries);
        if (present) {
            bool removed = false;
            const bool closed =
                wait_for_node(store, B + "/state", timeout, [&](const std::optional<std::string>& v) {
                    removed = !v;
                    return removed || *v == "6";
                });
            if (!closed || removed)
                failure =
                    fmt::format("device_backend_callback: Domain {}:unable to remove device with path {} "
                                "(backend {}/state wanted state 6 {})",
                                fe, B, B, removed ? "but it was removed" : "timed out");
            else if (!wait_for_node(store, B, timeout,
                                    [](const std::optional<std::string>& v) { return !v; }))
                failure =
                    fmt::format("device_destroy_be_watch_cb: Domain {}:timed out while waiting for {} to be "
                                "removed",
                                fe, B);
        }
    }
    // As libxl__device_destroy run by the toolstack domain: the frontend and /libxl nodes go;
    // the backend dir belongs to the driver domain and goes only when forced.
    store.transaction(
        [&](platform::TxId tx) {
            path_cleanup(store, tx, F, dom_path(fe) + "/device");
            path_cleanup(store, tx, L, "/libxl");
            // The driver domain removed B itself (or is forced out of it here); the empty
            // per-guest parent the toolstack created goes with the last device.
            const std::string be_root = B.substr(0, B.find("/backend/") + 8);
            if (force || !store.read(tx, B + "/state")) path_cleanup(store, tx, B, be_root);
        },
        kLibxlRetries);
    if (!failure.empty()) throw ToolstackError(failure);
}

std::vector<std::string> nic_destroy_all(Store& store, DomId fe, std::chrono::milliseconds timeout) {
    std::vector<std::string> warnings;
    const auto ids = store.directory(0, dom_path(fe) + "/device/vif");
    if (!ids) return warnings;
    for (const auto& id : *ids) {
        if (!is_number(id)) continue;
        const auto devid = static_cast<std::uint32_t>(std::stoul(id));
        const auto F = fe_path(fe, devid);
        const auto L = libxl_path(fe, devid);
        const auto B = store.read(0, F + "/backend");
        bool present = false;
        store.transaction(
            [&](platform::TxId tx) {
                if (B) {
                    present = store.read(tx, *B + "/state").has_value();
                    if (present) {
                        store.write(tx, *B + "/online", "0");
                        store.write(tx, *B + "/state", "5");
                    }
                }
                // Forced: the frontend goes at once, the guest is not asked.
                path_cleanup(store, tx, F, dom_path(fe) + "/device");
            },
            kLibxlRetries);
        if (B && present) {
            if (!wait_for_node(store, *B + "/state", timeout,
                               [](const std::optional<std::string>& v) { return !v || *v == "6"; }))
                warnings.push_back(fmt::format(
                    "device_backend_callback: Domain {}:unable to remove device with path {} (backend "
                    "{}/state wanted state 6 timed out); forcing",
                    fe, *B, *B));
            else if (!wait_for_node(store, *B, timeout,
                                    [](const std::optional<std::string>& v) { return !v; }))
                warnings.push_back(fmt::format(
                    "device_destroy_be_watch_cb: Domain {}:timed out while waiting for {} to be removed", fe,
                    *B));
        }
        // The backend dir is the driver domain's: the toolstack leaves it unless it went.
        store.transaction(
            [&](platform::TxId tx) {
                path_cleanup(store, tx, L, "/libxl");
                if (B && !store.read(tx, *B + "/state")) {
                    const std::string be_root = B->substr(0, B->find("/backend/") + 8);
                    path_cleanup(store, tx, *B, be_root);
                }
            },
            kLibxlRetries);
    }
    return warnings;
}

} // namespace netbackd::xensim
