// `xensim hostile` through the CLI against the real netbackd: attacks by name, each on its own
// vif, with the verdict the verb prints checked against the attack's expectation; --list names
// every attack; an unknown name is an error. A healthy vif stays Connected throughout.
#include <csignal>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/hostile/attacks.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr platform::DomId kHealthy = 31;
constexpr platform::DomId kAttacker = 32;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void add_vif(W& w, platform::DomId fe, std::uint32_t devid) {
    xensim::NicSpec s;
    s.frontend = fe;
    s.backend = kDriverDomain;
    s.devid = devid;
    s.mac = fmt::format("00:16:3e:00:{:02x}:{:02x}", fe & 0xff, devid & 0xff);
    xensim::nic_add(w.dom0(), s);
}

struct VerbRun {
    int rc;
    std::string out;
};

VerbRun hostile_verb(W& w, const std::vector<std::string>& args, const std::string& tag) {
    std::vector<std::string> argv{XENSIM_BINARY, "hostile"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--dir", w.host_dir()});
    const std::string log = fmt::format("{}/hostile-{}.log", w.dir(), tag);
    const int rc = run(argv, log);
    return {rc, slurp(log)};
}

} // namespace

TEST_CASE("xensim hostile --list names every attack", "[hostile][cli]") {
    W w;
    const auto r = hostile_verb(w, {"--list"}, "list");
    REQUIRE(r.rc == 0);
    std::size_t lines = 0;
    for (char c : r.out) lines += c == '\n';
    CHECK(lines == xensim::hostile::attacks().size());
    for (const auto& a : xensim::hostile::attacks()) {
        INFO(a.name);
        CHECK(r.out.find(std::string(a.name) + " ") != std::string::npos);
    }
}

TEST_CASE("xensim hostile: an unknown attack name is an error", "[hostile][cli]") {
    W w;
    w.create_domain("attacker", kAttacker);
    const auto r = hostile_verb(w, {"attacker", "--devid", "0", "--attack", "no_such_attack"}, "unknown");
    CHECK(r.rc == 1);
    CHECK(r.out.find("no attack named 'no_such_attack'") != std::string::npos);
}

TEST_CASE("xensim hostile: attacks by name against the running netbackd", "[hostile][cli]") {
    W w;
    w.create_domain("healthy", kHealthy);
    w.create_domain("attacker", kAttacker);
    w.start_netbackd();
    add_vif(w, kHealthy, 0);
    w.guest(kHealthy).start_netfront(0);
    REQUIRE(w.wait_state(W::be(kHealthy, 0) + "/state", "4"));

    // One vif per attack: a disabled vif stays Closing until its guest resets, as with Linux.
    const char* names[] = {"req_prod_overflow", "slots_22",     "grant_never",
                           "page_cross",        "double_fetch", "evtchn_storm"};
    std::uint32_t devid = 0;
    for (const char* name : names) {
        const auto* atk = xensim::hostile::find_attack(name);
        REQUIRE(atk != nullptr);
        add_vif(w, kAttacker, devid);
        const auto r = hostile_verb(
            w, {"attacker", "--devid", std::to_string(devid), "--attack", name, "--seconds", "1"}, name);
        INFO("attack " << name << ":\n"
                       << r.out << "\nnetbackd log tail:\n"
                       << w.netbackd_log().substr(
                              w.netbackd_log().size() > 2000 ? w.netbackd_log().size() - 2000 : 0));
        CHECK(r.rc == 0);
        CHECK(r.out.find(fmt::format("attack {}:", name)) != std::string::npos);
        if (atk->expect == xensim::hostile::Verdict::disabled) {
            CHECK(r.out.find("backend state 5") != std::string::npos);
            CHECK(r.out.find("error (none)") == std::string::npos);
            if (!atk->fault.empty()) CHECK(r.out.find(std::string(atk->fault)) != std::string::npos);
        } else {
            CHECK(r.out.find("backend state 4") != std::string::npos);
            CHECK(r.out.find("error (none)") != std::string::npos);
        }
        ++devid;
        // netbackd lives on and the healthy vif with it.
        REQUIRE(::kill(w.netbackd_pid(), 0) == 0);
        CHECK(w.dom0().read(0, W::be(kHealthy, 0) + "/state") == "4");
        CHECK_FALSE(w.dom0().read(0, W::error_node(kHealthy, 0)).has_value());
    }
}
