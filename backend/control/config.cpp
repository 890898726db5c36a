#include "backend/control/config.hpp"

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace netbackd::control {
namespace {

// Collects every problem of one file so a reload reports them all at once.
class Checker {
public:
    explicit Checker(std::string source) : source_(std::move(source)) {}

    std::string at(const toml::node& n) const { return fmt::format("{}:{}", source_, n.source().begin.line); }
    void fail(const toml::node& n, const std::string& what) { errors_.push_back(at(n) + ": " + what); }
    void fail_file(const std::string& what) { errors_.push_back(source_ + ": " + what); }

    void only(const toml::table& t, std::string_view table_name,
              std::initializer_list<std::string_view> keys) {
        for (const auto& [k, v] : t) {
            if (std::find(keys.begin(), keys.end(), k.str()) == keys.end())
                fail(v, fmt::format("unknown key '{}'{}{}", k.str(), table_name.empty() ? "" : " in [",
                                    table_name.empty() ? std::string() : std::string(table_name) + "]"));
        }
    }

    const toml::table* table(const toml::table& t, std::string_view key) {
        const toml::node* n = t.get(key);
        if (!n) return nullptr;
        if (!n->is_table()) {
            fail(*n, fmt::format("'{}' must be a table", key));
            return nullptr;
        }
        return n->as_table();
    }

    std::optional<std::string> string(const toml::table& t, std::string_view key) {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        if (auto v = n->value<std::string>(); v && n->is_string()) return *v;
        fail(*n, fmt::format("'{}' must be a string", key));
        return std::nullopt;
    }

    std::optional<std::int64_t> integer(const toml::table& t, std::string_view key, std::int64_t lo,
                                        std::int64_t hi) {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        if (!n->is_integer()) {
            fail(*n, fmt::format("'{}' must be an integer", key));
            return std::nullopt;
        }
        const auto v = n->as_integer()->get();
        if (v < lo || v > hi) {
            fail(*n, fmt::format("'{}' = {} outside {}..{}", key, v, lo, hi));
            return std::nullopt;
        }
        return v;
    }

    std::optional<bool> boolean(const toml::table& t, std::string_view key) {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        if (!n->is_boolean()) {
            fail(*n, fmt::format("'{}' must be true or false", key));
            return std::nullopt;
        }
        return n->as_boolean()->get();
    }

    std::optional<std::string> choice(const toml::table& t, std::string_view key,
                                      std::initializer_list<std::string_view> allowed) {
        auto v = string(t, key);
        if (v && std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            fail(*t.get(key), fmt::format("'{}' = \"{}\" is not one of: {}", key, *v, list));
            return std::nullopt;
        }
        return v;
    }

    std::optional<Mac> mac(const toml::table& t, std::string_view key) {
        auto s = string(t, key);
        if (!s) return std::nullopt;
        auto m = parse_mac(*s);
        if (!m) {
            fail(*t.get(key), fmt::format("'{}' = \"{}\": {}", key, *s, m.error()));
            return std::nullopt;
        }
        return *m;
    }

    std::vector<std::string> strings(const toml::table& t, std::string_view key) {
        std::vector<std::string> out;
        const toml::node* n = t.get(key);
        if (!n) return out;
        const toml::array* arr = n->as_array();
        if (!arr) {
            fail(*n, fmt::format("'{}' must be an array of strings", key));
            return out;
        }
        for (const auto& e : *arr) {
            if (auto s = e.value<std::string>(); s && e.is_string())
                out.push_back(*s);
            else
                fail(e, fmt::format("'{}' must hold strings only", key));
        }
        return out;
    }

    void throw_if_failed() const {
        if (errors_.empty()) return;
        std::string all;
        for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
        throw ConfigError(all);
    }

    const std::string& source() const { return source_; }

private:
    std::string source_;
    std::vector<std::string> errors_;
};

toml::table parse_toml(std::string_view text, const std::string& source_name) {
    try {
        return toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        throw ConfigError(fmt::format("{}:{}: {}", source_name, e.source().begin.line, e.description()));
    }
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw ConfigError(fmt::format("{}: cannot read", p.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

GlobalConfig parse_global(std::string_view text, const std::string& source_name) {
    const toml::table root = parse_toml(text, source_name);
    Checker c(source_name);
    GlobalConfig g;
    c.only(root, "", {"service", "sim", "vif", "dpdk", "workers"});

    if (const auto* t = c.table(root, "service")) {
        c.only(*t, "service", {"platform", "log_level", "clients_dir", "wait_report_seconds"});
        if (auto v = c.choice(*t, "platform", {"xen", "sim"})) g.platform = *v;
        if (auto v = c.choice(*t, "log_level", {"trace", "debug", "info", "warn", "error"})) g.log_level = *v;
        if (auto v = c.string(*t, "clients_dir")) {
            std::filesystem::path p(*v);
            // Relative to the config file, so a config tree can be moved as a whole.
            g.clients_dir = p.is_absolute() ? p : std::filesystem::path(source_name).parent_path() / p;
        } else {
            g.clients_dir = std::filesystem::path(source_name).parent_path() / "clients";
        }
        if (auto v = c.integer(*t, "wait_report_seconds", 1, 3600))
            g.wait_report_seconds = static_cast<unsigned>(*v);
    } else {
        g.clients_dir = std::filesystem::path(source_name).parent_path() / "clients";
    }
    if (const auto* t = c.table(root, "sim")) {
        c.only(*t, "sim", {"dir", "domid"});
        if (auto v = c.string(*t, "dir")) g.sim_dir = *v;
        if (auto v = c.integer(*t, "domid", 0, 0x7FEF)) g.sim_domid = static_cast<std::uint16_t>(*v);
    }
    if (const auto* t = c.table(root, "vif")) {
        c.only(*t, "vif",
               {"max_queues", "split_event_channels", "max_vifs", "rx_queue_bytes", "rx_vif_bytes",
                "rx_stall_timeout_ms", "rx_wait_ms", "staging_pages_per_vif", "rx_merge"});
        if (auto v = c.integer(*t, "max_queues", 1, 64)) g.max_queues = static_cast<unsigned>(*v);
        // Switch port ids are 16 bits wide, and every worker's switch holds every vif.
        if (auto v = c.integer(*t, "max_vifs", 1, 16384)) g.max_vifs = static_cast<unsigned>(*v);
        if (auto v = c.boolean(*t, "split_event_channels")) g.split_event_channels = *v;
        // At least one 64 KiB GSO frame; at most what the 32-bit counters hold with room.
        if (auto v = c.integer(*t, "rx_queue_bytes", 65536, 1 << 30))
            g.rx_queue_bytes = static_cast<std::uint32_t>(*v);
        if (auto v = c.integer(*t, "rx_vif_bytes", 65536, 1 << 30))
            g.rx_vif_bytes = static_cast<std::uint32_t>(*v);
        if (auto v = c.integer(*t, "rx_stall_timeout_ms", 0, 3'600'000))
            g.rx_stall_timeout_ms = static_cast<unsigned>(*v);
        if (auto v = c.integer(*t, "rx_wait_ms", 0, 1000)) g.rx_wait_ms = static_cast<unsigned>(*v);
        if (auto v = c.integer(*t, "staging_pages_per_vif", 0, 65536))
            g.staging_pages_per_vif = static_cast<unsigned>(*v);
        if (auto v = c.boolean(*t, "rx_merge")) g.rx_merge = *v;
    }
    if (const auto* t = c.table(root, "dpdk")) {
        c.only(*t, "dpdk", {"eal_args", "ports"});
        g.eal_args = c.strings(*t, "eal_args");
        if (const toml::node* n = t->get("ports")) {
            const toml::array* arr = n->as_array();
            if (!arr || !arr->is_array_of_tables()) {
                c.fail(*n, "'ports' must be an array of tables ([[dpdk.ports]])");
            } else {
                for (const auto& e : *arr) {
                    const auto& pt = *e.as_table();
                    c.only(pt, "dpdk.ports", {"name", "pci", "vdev", "mtu"});
                    DpdkPort port;
                    port.name = c.string(pt, "name").value_or("");
                    port.pci = c.string(pt, "pci").value_or("");
                    port.vdev = c.string(pt, "vdev").value_or("");
                    if (auto v = c.integer(pt, "mtu", kMinPortMtu, kMaxPortMtu)) {
                        port.mtu = static_cast<std::uint16_t>(*v);
                        port.mtu_source = c.at(*pt.get("mtu"));
                    }
                    if (port.name.empty()) c.fail(e, "[[dpdk.ports]] needs a 'name'");
                    if (port.pci.empty() == port.vdev.empty())
                        c.fail(e, "[[dpdk.ports]] needs exactly one of 'pci' or 'vdev'");
                    for (const auto& other : g.ports)
                        if (!port.name.empty() && other.name == port.name)
                            c.fail(e, fmt::format("port name '{}' used twice", port.name));
                    g.ports.push_back(std::move(port));
                }
            }
        }
    }
    if (const auto* t = c.table(root, "workers")) {
        c.only(*t, "workers", {"cores", "polling", "burst"});
        if (const toml::node* n = t->get("cores")) {
            const toml::array* arr = n->as_array();
            if (!arr)
                c.fail(*n, "'cores' must be an array of core numbers");
            else
                for (const auto& e : *arr) {
                    if (!e.is_integer() || e.as_integer()->get() < 0 || e.as_integer()->get() > 1023)
                        c.fail(e, "'cores' must hold core numbers 0..1023");
                    else
                        g.worker_cores.push_back(static_cast<unsigned>(e.as_integer()->get()));
                }
        }
        if (auto v = c.choice(*t, "polling", {"busy", "adaptive"}))
            g.polling = *v == "busy" ? Polling::busy : Polling::adaptive;
        // A ring holds 256 requests: a bigger burst could never fill.
        if (auto v = c.integer(*t, "burst", 1, 256)) g.burst = static_cast<unsigned>(*v);
    }
    c.throw_if_failed();
    return g;
}

ClientConfig parse_client(std::string_view text, const std::string& source_name) {
    const toml::table root = parse_toml(text, source_name);
    Checker c(source_name);
    ClientConfig cl;
    cl.source = source_name;
    c.only(root, "", {"match", "vif"});

    const auto* m = c.table(root, "match");
    if (!m) {
        c.fail_file("needs a [match] table (domain = \"name\" [+ devid = N], or mac = \"..\")");
    } else {
        cl.source = c.at(*m);
        c.only(*m, "match", {"domain", "devid", "mac"});
        cl.match_domain = c.string(*m, "domain");
        if (auto v = c.integer(*m, "devid", 0, UINT32_MAX)) cl.match_devid = static_cast<std::uint32_t>(*v);
        cl.match_mac = c.mac(*m, "mac");
        if (!m->contains("domain") && !m->contains("mac")) c.fail(*m, "[match] needs 'domain' or 'mac'");
        if (m->contains("devid") && !m->contains("domain"))
            c.fail(*m, "[match] 'devid' only makes sense with 'domain'");
    }
    const auto* vp = c.table(root, "vif");
    const toml::table empty;
    const toml::table& v = vp ? *vp : empty;
    c.only(v, "vif", {"mac", "uplink", "vlan", "rate_mbit", "rate", "queues", "script"});
    cl.mac = c.mac(v, "mac");
    cl.uplink = c.string(v, "uplink");
    if (cl.uplink) cl.uplink_source = c.at(*v.get("uplink"));
    if (auto x = c.integer(v, "vlan", 1, 4094)) cl.vlan = static_cast<std::uint16_t>(*x);
    if (v.contains("rate_mbit") && v.contains("rate"))
        c.fail(*v.get("rate"), "give either 'rate_mbit' or 'rate', not both");
    // libxl's default credit interval: 50 ms.
    if (auto x = c.integer(v, "rate_mbit", 1, 1'000'000))
        cl.rate = Rate{static_cast<std::uint64_t>(*x) * 1'000'000 / 8 / 20, 50'000};
    if (auto x = c.string(v, "rate")) {
        auto r = parse_rate(*x);
        if (r)
            cl.rate = *r;
        else
            c.fail(*v.get("rate"), fmt::format("'rate' = \"{}\": {}", *x, r.error()));
    }
    if (auto x = c.integer(v, "queues", 1, 64)) cl.queues = static_cast<unsigned>(*x);
    if (auto x = c.string(v, "script")) {
        if (x->empty() || (*x)[0] != '/')
            c.fail(*v.get("script"), "'script' must be an absolute path");
        else
            cl.script = *x;
    }
    c.throw_if_failed();
    return cl;
}

Config load_config(const std::filesystem::path& path) {
    Config cfg;
    cfg.path = path;
    cfg.global = parse_global(read_file(path), path.string());

    std::vector<std::filesystem::path> files;
    std::error_code ec;
    if (std::filesystem::is_directory(cfg.global.clients_dir, ec)) {
        for (const auto& e : std::filesystem::directory_iterator(cfg.global.clients_dir, ec))
            if (e.path().extension() == ".toml" && e.is_regular_file()) files.push_back(e.path());
    } else if (std::filesystem::exists(cfg.global.clients_dir, ec)) {
        throw ConfigError(fmt::format("{}: clients_dir {} is not a directory", path.string(),
                                      cfg.global.clients_dir.string()));
    }
    std::sort(files.begin(), files.end());

    std::string errors;
    for (const auto& f : files) {
        try {
            cfg.clients.push_back(parse_client(read_file(f), f.string()));
        } catch (const ConfigError& e) {
            errors += (errors.empty() ? "" : "\n") + std::string(e.what());
        }
    }
    // Caught here rather than at attach: an unknown uplink would otherwise connect the vif and
    // then tear it down.
    for (const auto& cl : cfg.clients) {
        if (!cl.uplink) continue;
        const auto& ports = cfg.global.ports;
        if (std::any_of(ports.begin(), ports.end(), [&](const DpdkPort& p) { return p.name == *cl.uplink; }))
            continue;
        std::string names;
        for (const auto& p : ports) {
            if (!names.empty()) names += ", ";
            names += p.name;
        }
        if (!errors.empty()) errors += '\n';
        errors +=
            fmt::format("{}: 'uplink' = \"{}\" is not a port of {} ({}{})", cl.uplink_source, *cl.uplink,
                        path.string(), ports.empty() ? "it has no [[dpdk.ports]]" : "ports: ", names);
    }
    if (!errors.empty()) throw ConfigError(errors);
    return cfg;
}

const ClientConfig* match_client(const Config& config, std::string_view domain_name, std::uint32_t devid,
                                 const std::optional<Mac>& toolstack_mac) {
    const ClientConfig* best = nullptr;
    int best_rank = 0;
    for (const auto& c : config.clients) {
        int rank = 0;
        if (c.match_domain && *c.match_domain == domain_name) {
            if (c.match_devid)
                rank = *c.match_devid == devid ? 3 : 0;
            else
                rank = 1;
        }
        if (rank == 0 && c.match_mac && toolstack_mac && *c.match_mac == *toolstack_mac) rank = 2;
        if (rank > best_rank) {
            best = &c;
            best_rank = rank;
        }
    }
    return best;
}

} // namespace netbackd::control
