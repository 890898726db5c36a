// netbackd.toml(5) against the config parser, so the page cannot drift from the code: every
// documented key and value passes the parser, a documented default changes nothing, and the
// keys documented per table are exactly those the parser accepts (its only(...) lists).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/control/config.hpp"

namespace {

using netbackd::control::ClientConfig;
using netbackd::control::ConfigError;
using netbackd::control::GlobalConfig;

std::string read_source(const std::string& relative) {
    std::ifstream in(std::string(NETBACKD_SOURCE_DIR) + "/" + relative);
    REQUIRE(in.good());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// roff escapes the page uses inside a tag.
std::string unescape(const std::string& roff) {
    std::string out;
    for (std::size_t i = 0; i < roff.size(); ++i) {
        if (roff[i] != '\\' || i + 1 == roff.size()) {
            out += roff[i];
        } else if (roff.compare(i, 4, "\\(dq") == 0) {
            out += '"';
            i += 3;
        } else {
            out += roff[i + 1] == 'e' ? '\\' : roff[i + 1]; // "\ " "\-" "\e"
            ++i;
        }
    }
    return out;
}

enum class File { global, client };

struct DocumentedKey {
    File file;
    std::string table; // "service", "dpdk.ports", "match", ...
    std::string key;
    std::string value; // a TOML value
    bool is_default;
    int line;
};

// Tags are ".BR key\ =\ value \ (default)" (or "(example)") right after a ".TP".
std::vector<DocumentedKey> documented_keys() {
    std::istringstream page(read_source("docs/man/netbackd.toml.5"));
    std::vector<DocumentedKey> keys;
    std::optional<File> file;
    std::string table;
    bool after_tp = false;
    int n = 0;
    const std::regex section(R"(^\.SS \[\[?([a-z_.]+)\]\]?$)");
    const std::regex tag(R"(^\.BR (\S+(?:\\ \S+)*) \\ \((default|example)\)$)");
    for (std::string line; std::getline(page, line);) {
        ++n;
        std::smatch m;
        if (line.rfind(".SH ", 0) == 0) {
            file = line == ".SH GLOBAL FILE"    ? std::optional(File::global)
                   : line == ".SH CLIENT FILES" ? std::optional(File::client)
                                                : std::nullopt;
            table.clear();
        } else if (std::regex_match(line, m, section)) {
            table = m[1];
        } else if (after_tp && file && !table.empty() && std::regex_match(line, m, tag)) {
            const std::string text = unescape(m[1]);
            const auto eq = text.find(" = ");
            INFO("netbackd.toml.5:" << n << ": " << line);
            REQUIRE(eq != std::string::npos);
            keys.push_back({*file, table, text.substr(0, eq), text.substr(eq + 3), m[2] == "default", n});
        }
        after_tp = line == ".TP";
    }
    return keys;
}

// The parser's accepted keys per table, from its only(...) calls; "" holds the top-level tables.
std::map<std::string, std::set<std::string>> parser_keys(File file) {
    const std::string src = read_source("backend/control/config.cpp");
    const auto client_at = src.find("ClientConfig parse_client(");
    REQUIRE(client_at != std::string::npos);
    const std::string part = file == File::global ? src.substr(0, client_at) : src.substr(client_at);
    std::map<std::string, std::set<std::string>> tables;
    const std::regex only(R"re(only\(\s*[^,]+,\s*"([a-z_.]*)"\s*,\s*\{([^}]*)\}\s*\))re");
    const std::regex quoted(R"re("([a-z_]+)")re");
    for (auto it = std::sregex_iterator(part.begin(), part.end(), only); it != std::sregex_iterator(); ++it) {
        const std::string list = (*it)[2];
        auto& keys = tables[(*it)[1]];
        for (auto q = std::sregex_iterator(list.begin(), list.end(), quoted); q != std::sregex_iterator();
             ++q)
            keys.insert((*q)[1]);
    }
    return tables;
}

// Every field of GlobalConfig, to compare a parsed default against an empty file.
std::string describe(const GlobalConfig& g) {
    std::vector<std::string> ports;
    for (const auto& p : g.ports)
        ports.push_back(fmt::format("{}|{}|{}|{}", p.name, p.pci, p.vdev, p.mtu ? *p.mtu : 0));
    return fmt::format("platform={} log_level={} clients_dir={} wait_report_seconds={} sim_dir={} "
                       "sim_domid={} max_queues={} split_event_channels={} eal_args={} ports={} "
                       "worker_cores={} polling={} burst={}",
                       g.platform, g.log_level, g.clients_dir.string(), g.wait_report_seconds, g.sim_dir,
                       g.sim_domid, g.max_queues, g.split_event_channels, g.eal_args, ports, g.worker_cores,
                       static_cast<int>(g.polling), g.burst ? std::to_string(*g.burst) : "unset");
}

const std::string kGlobalPath = "/etc/netbackd/netbackd.toml";

// A file holding one documented key, with what the parser needs around it.
std::string file_with(const DocumentedKey& k) {
    const std::string line = k.key + " = " + k.value + "\n";
    if (k.file == File::global) {
        if (k.table != "dpdk.ports") return "[" + k.table + "]\n" + line;
        std::string port = "[[dpdk.ports]]\n";
        if (k.key != "name") port += "name = \"p0\"\n";
        if (k.key != "pci" && k.key != "vdev") port += "vdev = \"net_null0\"\n";
        return port + line;
    }
    const std::string match = k.table == "match" && k.key == "domain" ? "" : "domain = \"g\"\n";
    if (k.table == "match") return "[match]\n" + match + line;
    return "[match]\n" + match + "[" + k.table + "]\n" + line;
}

} // namespace

TEST_CASE("netbackd.toml(5): every documented key and value passes the parser") {
    const auto keys = documented_keys();
    REQUIRE(keys.size() >= 20);
    for (const auto& k : keys) {
        const std::string text = file_with(k);
        INFO("netbackd.toml.5:" << k.line << " [" << k.table << "] " << k.key << "\n" << text);
        if (k.file == File::global)
            CHECK_NOTHROW(netbackd::control::parse_global(text, kGlobalPath));
        else
            CHECK_NOTHROW(netbackd::control::parse_client(text, "/etc/netbackd/clients/t.toml"));
    }
}

TEST_CASE("netbackd.toml(5): a documented default is what an empty file gives") {
    const std::string empty = describe(netbackd::control::parse_global("", kGlobalPath));
    int defaults = 0;
    for (const auto& k : documented_keys()) {
        if (!k.is_default) continue;
        INFO("netbackd.toml.5:" << k.line << " [" << k.table << "] " << k.key << " = " << k.value);
        REQUIRE(k.file == File::global); // client files have no defaults: unset means "not this policy"
        CHECK(describe(netbackd::control::parse_global(file_with(k), kGlobalPath)) == empty);
        ++defaults;
    }
    CHECK(defaults >= 7);
}

TEST_CASE("netbackd.toml(5): documents exactly the keys the parser accepts") {
    for (const File file : {File::global, File::client}) {
        const auto parser = parser_keys(file);
        REQUIRE(parser.count("") == 1); // the top-level tables: if this fails, only(...) changed shape
        std::map<std::string, std::set<std::string>> documented;
        for (const auto& k : documented_keys())
            if (k.file == file) documented[k.table].insert(k.key);
        // Top-level tables, and the keys of each ("ports" of [dpdk] is the [[dpdk.ports]] table).
        std::set<std::string> documented_tables;
        for (const auto& [table, _] : documented) documented_tables.insert(table.substr(0, table.find('.')));
        INFO((file == File::global ? "global file" : "client files"));
        CHECK(documented_tables == parser.at(""));
        for (const auto& [table, keys] : parser) {
            if (table.empty()) continue;
            std::set<std::string> doc = documented[table];
            for (const auto& [sub, _] : documented)
                if (sub.rfind(table + ".", 0) == 0) doc.insert(sub.substr(table.size() + 1));
            INFO("table [" << table << "]");
            CHECK(doc == keys);
        }
    }
}

TEST_CASE("netbackd.toml(5) test: an undocumented key is refused by the parser") {
    // The test's premise: the parser is strict, so a key that passes it is one it knows.
    CHECK_THROWS_AS(netbackd::control::parse_global("[vif]\nno_such_key = 1\n", kGlobalPath), ConfigError);
    CHECK_THROWS_AS(netbackd::control::parse_client("[match]\ndomain = \"g\"\n[vif]\nno_such_key = 1\n", "t"),
                    ConfigError);
}
