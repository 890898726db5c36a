// Debian's xenstore-* tools (real libxenstore, XENSTORED_PATH) against the simulated daemon.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/xs_wire_client.hpp"
#include "xensim/xenstored/xenstored.hpp"

using netbackd::test::TempDir;
using netbackd::xensim::Xenstored;

namespace {

struct Run {
    int status;
    std::string out;
};

// Runs a tool in the domain whose socket is `sock`, capturing stdout.
Run run(const std::filesystem::path& sock, const std::string& args) {
    const std::string cmd = "env XENSTORED_PATH='" + sock.string() + "' " + args + " 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
    int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

} // namespace

TEST_CASE("xenstore-write, xenstore-read and xenstore-ls work against xensim", "[xenstored][cli]") {
    for (const char* tool : {"/usr/bin/xenstore-write", "/usr/bin/xenstore-read", "/usr/bin/xenstore-ls"})
        REQUIRE(std::filesystem::exists(tool)); // Debian package xenstore-utils

    TempDir dir;
    Xenstored xsd(dir.path());
    xsd.create_domain_home(5, "guest");
    xsd.introduce(5);
    xsd.start();
    const auto dom0 = Xenstored::socket_path(dir.path(), 0);
    const auto dom5 = Xenstored::socket_path(dir.path(), 5);

    CHECK(run(dom0, "xenstore-write /tool/demo/a hello /tool/demo/b world").status == 0);
    CHECK(run(dom0, "xenstore-read /tool/demo/a").out == "hello\n");
    auto two = run(dom0, "xenstore-read /tool/demo/a /tool/demo/b");
    CHECK(two.out == "hello\nworld\n");

    auto ls = run(dom0, "xenstore-ls /tool/demo");
    CHECK(ls.status == 0);
    CHECK(ls.out.find("a = \"hello\"") != std::string::npos);
    CHECK(ls.out.find("b = \"world\"") != std::string::npos);

    auto full = run(dom0, "xenstore-ls -f -p /local/domain/5");
    CHECK(full.status == 0);
    CHECK(full.out.find("/local/domain/5/domid = \"5\"") != std::string::npos);
    CHECK(full.out.find("n0,r5") != std::string::npos);

    // -s asks for the daemon socket; XENSTORED_PATH is honoured either way.
    CHECK(run(dom0, "xenstore-read -s /tool/demo/b").out == "world\n");

    // Run "inside" domain 5: relative paths and permissions are the guest's.
    CHECK(run(dom5, "xenstore-read domid").out == "5\n");
    CHECK(run(dom5, "xenstore-write data/from-guest 1").status == 0);
    CHECK(run(dom0, "xenstore-read /local/domain/5/data/from-guest").out == "1\n");
    CHECK(run(dom5, "xenstore-read /local/domain/0/domid").status != 0);
    CHECK(run(dom5, "xenstore-write /tool/demo/a hijack").status != 0);
    CHECK(run(dom0, "xenstore-read /tool/demo/a").out == "hello\n");
    CHECK(run(dom0, "xenstore-read /tool/missing").status != 0);
}

TEST_CASE("xenstore-control quota shows the quotas to dom0 only, as C xenstored", "[xenstored][cli]") {
    // Debian's /usr/bin/xenstore-control is a wrapper from xen-utils-common (which a host without
    // Xen lacks) around xen-utils-4.17's binary; the lab's fetch cache holds that binary too.
    std::string tool;
    std::vector<std::filesystem::path> candidates{"/usr/lib/xen-4.17/bin/xenstore-control"};
    if (const char* cache = std::getenv("NETBACKD_LAB_CACHE"))
        candidates.emplace_back(std::filesystem::path(cache) / "tools/usr/lib/xen-4.17/bin/xenstore-control");
    candidates.emplace_back(std::filesystem::path(NETBACKD_SOURCE_DIR) /
                            ".lab-cache/tools/usr/lib/xen-4.17/bin/xenstore-control");
    for (const auto& c : candidates)
        if (std::filesystem::exists(c)) {
            tool = c.string();
            break;
        }
    if (tool.empty()) {
        WARN("skipped: no xenstore-control binary (xen-utils-4.17, or the lab's fetch cache)");
        return;
    }

    TempDir dir;
    Xenstored xsd(dir.path(), {.max_nodes_per_domain = 1234, .max_watches_per_connection = 77});
    xsd.create_domain_home(5, "guest");
    xsd.introduce(5);
    xsd.start();

    const auto q = run(Xenstored::socket_path(dir.path(), 0), tool + " quota");
    CHECK(q.status == 0);
    CHECK(q.out.rfind("Quota settings:\n", 0) == 0);
    CHECK(q.out.find("nodes            :     1234 Nodes per domain\n") != std::string::npos);
    CHECK(q.out.find("watches          :       77 Watches per domain\n") != std::string::npos);
    CHECK(q.out.find("transactions     :       10 Transactions per domain\n") != std::string::npos);

    // A domain other than dom0 is refused (EACCES), as a driver domain is on Xen.
    CHECK(run(Xenstored::socket_path(dir.path(), 5), tool + " quota").status != 0);
}
