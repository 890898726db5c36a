// Logging to the journal under systemd: the fields each line carries (so `journalctl -u
// netbackd VIF=11.0` finds one guest's story), what the sink hands to the journal, and when
// stderr counts as the journal.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include "backend/service/journal_log.hpp"

using netbackd::service::journal_fields;

namespace {

bool has(const std::vector<std::string>& fields, const std::string& f) {
    return std::find(fields.begin(), fields.end(), f) != fields.end();
}

bool has_key(const std::vector<std::string>& fields, const std::string& key) {
    return std::any_of(fields.begin(), fields.end(),
                       [&](const auto& f) { return f.rfind(key + "=", 0) == 0; });
}

} // namespace

TEST_CASE("journal: a vif's line carries VIF, DOMID, DEVID and the state it reached", "[service][journal]") {
    const auto f = journal_fields(spdlog::level::info, "vif 11.0: backend state 4 (Connected)");
    INFO(fmt::format("{}", fmt::join(f, " | ")));
    CHECK(has(f, "MESSAGE=vif 11.0: backend state 4 (Connected)"));
    CHECK(has(f, "PRIORITY=6"));
    CHECK(has(f, "SYSLOG_IDENTIFIER=netbackd"));
    CHECK(has(f, "VIF=11.0"));
    CHECK(has(f, "DOMID=11"));
    CHECK(has(f, "DEVID=0"));
    CHECK(has(f, "BACKEND_STATE=Connected"));
    CHECK_FALSE(has_key(f, "FRONTEND_STATE"));

    const auto fe = journal_fields(spdlog::level::info, "vif 7.2: frontend state 6 (Closed)");
    CHECK(has(fe, "VIF=7.2"));
    CHECK(has(fe, "FRONTEND_STATE=Closed"));
    CHECK_FALSE(has_key(fe, "BACKEND_STATE"));
}

TEST_CASE("journal: other lines have no vif fields; levels map to syslog priorities", "[service][journal]") {
    const auto f = journal_fields(spdlog::level::info, "netbackd ready: domain 1, 2 vif(s) found");
    CHECK(has(f, "MESSAGE=netbackd ready: domain 1, 2 vif(s) found"));
    CHECK_FALSE(has_key(f, "VIF"));
    CHECK_FALSE(has_key(f, "DOMID"));
    // A vif mentioned elsewhere than the prefix is not this line's vif.
    CHECK_FALSE(has_key(journal_fields(spdlog::level::info, "signal 15: releasing vif 3.0"), "VIF"));
    // "state N (Name)" only counts at the end of a vif's line.
    CHECK_FALSE(has_key(
        journal_fields(spdlog::level::info, "vif 3.0: found existing backend dir x (state 4, online 1)"),
        "BACKEND_STATE"));

    CHECK(has(journal_fields(spdlog::level::critical, "x"), "PRIORITY=2"));
    CHECK(has(journal_fields(spdlog::level::err, "x"), "PRIORITY=3"));
    CHECK(has(journal_fields(spdlog::level::warn, "x"), "PRIORITY=4"));
    CHECK(has(journal_fields(spdlog::level::debug, "x"), "PRIORITY=7"));
    CHECK(has(journal_fields(spdlog::level::trace, "x"), "PRIORITY=7"));
}

TEST_CASE("journal: the sink hands each formatted line's fields to the journal", "[service][journal]") {
    std::vector<std::vector<std::string>> sent;
    spdlog::logger log("t", netbackd::service::make_journal_sink([&](const std::vector<std::string>& f) {
                           sent.push_back(f);
                           return 0;
                       }));
    log.set_level(spdlog::level::info);
    log.info("{}: frontend state {} ({})", "vif 21.0", 4, "Connected");
    log.warn("{}: waiting {} s for the frontend to connect", "vif 21.1", 5);
    log.debug("not sent: below the level");
    REQUIRE(sent.size() == 2);
    CHECK(has(sent[0], "MESSAGE=vif 21.0: frontend state 4 (Connected)"));
    CHECK(has(sent[0], "VIF=21.0"));
    CHECK(has(sent[0], "FRONTEND_STATE=Connected"));
    CHECK(has(sent[1], "VIF=21.1"));
    CHECK(has(sent[1], "PRIORITY=4"));
}

TEST_CASE("journal: stderr is the journal only when JOURNAL_STREAM names that very stream",
          "[service][journal]") {
    char path[] = "/tmp/netbackd-journal-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    const auto dev = static_cast<unsigned long long>(st.st_dev);
    const auto ino = static_cast<unsigned long long>(st.st_ino);
    using netbackd::service::is_journal_stream;
    CHECK(is_journal_stream(fd, fmt::format("{}:{}", dev, ino).c_str()));
    CHECK_FALSE(is_journal_stream(fd, fmt::format("{}:{}", dev, ino + 1).c_str())); // stderr redirected
    CHECK_FALSE(is_journal_stream(fd, nullptr));                                    // not under systemd
    CHECK_FALSE(is_journal_stream(fd, "garbage"));
    CHECK_FALSE(is_journal_stream(fd, fmt::format("{}:{}x", dev, ino).c_str()));
    ::close(fd);
}
