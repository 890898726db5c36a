// The `xensim netfront` verb's data modes as a guest process against the netbackd binary:
// generator/sink output for bench/, and TAP mode's device in the guest's namespace.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/platform/fd.hpp"

#include "tests/support/netbackd_on_xensim.hpp"
#include "xensim/netfront/tap.hpp"
#include "xensim/toolstack/toolstack.hpp"

using namespace netbackd;
using namespace netbackd::testing;
using W = SimWorld;

namespace {

constexpr int kSkip = 77; // SKIP_RETURN_CODE, see skip_codes.cmake.in

void attach(SimWorld& w) {
    w.create_domain("web1", 7);
    w.start_netbackd();
    xensim::NicSpec s;
    s.frontend = 7;
    s.backend = kDriverDomain;
    s.mac = "00:16:3e:00:07:00";
    xensim::nic_add(w.dom0(), s);
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string capture(const std::string& cmd) {
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
        ::pclose(p);
    }
    return out;
}

// The generator's final JSON line in its output (bench/ parses the same line).
nlohmann::json final_json(const std::string& text) {
    const auto brace = text.rfind("{\"tx_pkts\"");
    REQUIRE(brace != std::string::npos);
    return nlohmann::json::parse(text.substr(brace, text.find('\n', brace) - brace));
}

} // namespace

TEST_CASE("netfront verb: generator/sink prints per-second lines and a final JSON line",
          "[xensim][netfront][gen]") {
    SimWorld w;
    attach(w);
    const std::string log = w.dir() + "/gen.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--generate", "1514", "--sink",
                            "--seconds", "2", "--dir", w.host_dir()},
                           log);
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    REQUIRE(reap(nf) == 0);
    const std::string text = slurp(log);
    INFO(text);
    CHECK(text.find("state 4") != std::string::npos);
    CHECK(text.find("t=1s tx_pps=") != std::string::npos);
    const auto j = final_json(text);
    for (const char* k : {"tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes", "tx_errors"})
        CHECK(j.at(k).is_number_unsigned());
    CHECK(j.at("seconds").get<double>() >= 2.0);
    CHECK(j.at("tx_bytes").get<std::uint64_t>() == j.at("tx_pkts").get<std::uint64_t>() * 1514);
    // The device was closed on the way out.
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
}

TEST_CASE("netfront verb: --pps paces the generator through netbackd", "[xensim][netfront][gen]") {
    SimWorld w;
    attach(w);
    const std::string log = w.dir() + "/pps.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--generate", "64", "--pps",
                            "100", "--seconds", "1", "--dir", w.host_dir()},
                           log);
    REQUIRE(reap(nf) == 0);
    const std::string text = slurp(log);
    INFO(text);
    const auto j = final_json(text);
    // At most one frame per 10 ms of the run (unpaced, this is hundreds of thousands); a loaded
    // host only sends fewer.
    const auto sent = j.at("tx_pkts").get<std::uint64_t>();
    CHECK(sent >= 1);
    CHECK(static_cast<double>(sent) <= j.at("seconds").get<double>() * 100.0 + 1.0);
}

TEST_CASE("netfront verb: --rss sets Toeplitz, key and table over a control ring",
          "[xensim][netfront][gen][ctrl]") {
    SimWorld w;
    attach(w);
    const std::string log = w.dir() + "/rss.log";
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--queues", "2", "--rss",
                            "--sink", "--generate", "64", "--seconds", "1", "--dir", w.host_dir()},
                           log);
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    REQUIRE(reap(nf) == 0);
    const std::string text = slurp(log);
    INFO(text);
    CHECK(text.find("rss: configured") != std::string::npos);
    CHECK(w.netbackd_log().find("control ring: ctrl-ring-ref") != std::string::npos);
}

TEST_CASE("netfront verb: a frame size below the headers is refused", "[xensim][netfront][gen]") {
    SimWorld w;
    w.create_domain("web1", 7);
    const std::string log = w.dir() + "/bad.log";
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--generate", "20", "--dir", w.host_dir()}, log) != 0);
    CHECK(slurp(log).find("--generate") != std::string::npos);
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--tap", "x", "--sink", "--dir", w.host_dir()}, log) != 0);
    CHECK(slurp(log).find("exclude each other") != std::string::npos);
    CHECK(run({XENSIM_BINARY, "netfront", "web1", "--generate", "64", "--pps", "0", "--dir", w.host_dir()},
              log) != 0);
    CHECK(slurp(log).find("--pps") != std::string::npos);
}

TEST_CASE("netfront verb: TAP mode makes the guest's device in its namespace, with the vif's MAC, up",
          "[xensim][netfront][tap]") {
    std::string why;
    if (!xensim::tap_supported(&why)) {
        std::fprintf(stderr, "SKIP: %s\n", why.c_str());
        std::exit(kSkip);
    }
    SimWorld w;
    attach(w);
    const std::string ns = fmt::format("nbnfv{}", ::getpid());
    const pid_t nf = spawn({XENSIM_BINARY, "netfront", "web1", "--devid", "0", "--tap", "nfv0", "--netns", ns,
                            "--dir", w.host_dir()},
                           w.dir() + "/tap.log");
    CHECK(w.wait_state(W::be(7, 0) + "/state", "4"));
    std::string link;
    CHECK(w.wait_node("/", [&](auto&&) {
        link = capture(fmt::format("ip -n {} link show nfv0 2>/dev/null", ns));
        return link.find("00:16:3e:00:07:00") != std::string::npos;
    }));
    INFO(link << slurp(w.dir() + "/tap.log"));
    CHECK(link.find(",UP") != std::string::npos);
    kill(nf, SIGTERM);
    CHECK(reap(nf) == 0);
    CHECK(w.dom0().read(0, W::fe(7, 0) + "/state") == "6");
    xensim::delete_netns(ns);
}

namespace {

// A UDP socket bound to addr:port inside netns `ns` (sockets stay in the namespace they were
// made in, whichever thread uses them).
platform::Fd udp_in(const std::string& ns, const std::string& addr, std::uint16_t port) {
    platform::Fd nsfd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(nsfd);
    platform::Fd sock;
    std::thread t([&] {
        if (::setns(nsfd.get(), CLONE_NEWNET) != 0) return;
        sock.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
        if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) sock.reset();
    });
    t.join();
    REQUIRE(sock);
    return sock;
}

} // namespace

// Hidden (needs netbackd's data plane): two guests in their own namespaces exchange UDP
// datagrams (ARP included) through netbackd over TAP-mode netfronts.
//   xensim_netfront_verb_test "[guests]"
TEST_CASE("netfront verb: two TAP guests talk UDP to each other through netbackd", "[.][guests]") {
    std::string why;
    if (!xensim::tap_supported(&why)) {
        std::fprintf(stderr, "SKIP: %s\n", why.c_str());
        std::exit(kSkip);
    }
    SimWorld w;
    w.create_domain("web1", 7);
    w.create_domain("web2", 8);
    w.start_netbackd();
    std::vector<pid_t> pids;
    std::vector<std::string> nss;
    for (platform::DomId d : {7, 8}) {
        xensim::NicSpec s;
        s.frontend = d;
        s.backend = kDriverDomain;
        s.mac = fmt::format("00:16:3e:00:{:02x}:00", d);
        xensim::nic_add(w.dom0(), s);
        nss.push_back(fmt::format("nbnfp{}-{}", ::getpid(), d));
        pids.push_back(spawn({XENSIM_BINARY, "netfront", d == 7 ? "web1" : "web2", "--devid", "0", "--tap",
                              "eth0", "--netns", nss.back(), "--dir", w.host_dir()},
                             w.dir() + fmt::format("/tap{}.log", d)));
        CHECK(w.wait_state(W::be(d, 0) + "/state", "4"));
        CHECK(w.wait_node("/", [&](auto&&) {
            return capture(fmt::format("ip -n {} link show eth0 2>/dev/null", nss.back())).find(",UP") !=
                   std::string::npos;
        }));
        REQUIRE(std::system(fmt::format("ip -n {} addr add 10.9.0.{}/24 dev eth0", nss.back(), d).c_str()) ==
                0);
    }
    platform::Fd a = udp_in(nss[0], "10.9.0.7", 5555);
    platform::Fd b = udp_in(nss[1], "10.9.0.8", 5555);
    sockaddr_in to_b{};
    to_b.sin_family = AF_INET;
    to_b.sin_port = htons(5555);
    ::inet_pton(AF_INET, "10.9.0.8", &to_b.sin_addr);
    const std::string msg = "hello from web1";
    char buf[256];
    ssize_t got = -1;
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    // Resent until it arrives: the first ones may wait on ARP. A bound, not a speed check.
    for (int i = 0; i < 100 && got < 0; ++i) {
        ::sendto(a.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to_b), sizeof to_b);
        pollfd p{b.get(), POLLIN, 0};
        ::poll(&p, 1, 100);
        got = ::recvfrom(b.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    }
    INFO(w.netbackd_log());
    REQUIRE(got == static_cast<ssize_t>(msg.size()));
    CHECK(std::string(buf, static_cast<std::size_t>(got)) == msg);
    // And back, to the address it came from.
    const std::string reply = "hello from web2";
    REQUIRE(::sendto(b.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen) ==
            static_cast<ssize_t>(reply.size()));
    pollfd p{a.get(), POLLIN, 0};
    ::poll(&p, 1, 5000);
    got = ::recv(a.get(), buf, sizeof buf, 0);
    REQUIRE(got == static_cast<ssize_t>(reply.size()));
    CHECK(std::string(buf, static_cast<std::size_t>(got)) == reply);
    for (pid_t pid : pids) {
        kill(pid, SIGTERM);
        CHECK(reap(pid) == 0);
    }
    for (const auto& n : nss) xensim::delete_netns(n);
}
