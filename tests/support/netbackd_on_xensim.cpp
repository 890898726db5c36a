#include "tests/support/netbackd_on_xensim.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "backend/platform/options.hpp"
#include "backend/platform/sim/shared_state.hpp"
#include "backend/platform/store/xs_store.hpp"

extern char** environ;

namespace netbackd::testing {

namespace fs = std::filesystem;

pid_t spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::vector<std::string>& env) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = argv;
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> cenv;
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    // The test may block signals for its own reasons; the child starts with none blocked.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    const int err = posix_spawn(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    REQUIRE(err == 0);
    return pid;
}

int reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run(const std::vector<std::string>& argv, const std::string& log) { return reap(spawn(argv, log)); }

xensim::Netfront& Guest::start_netfront(std::uint32_t devid, unsigned queues, bool split) {
    xensim::NetfrontOptions o;
    o.devid = devid;
    o.queues = queues;
    o.split_event_channels = split;
    return start_netfront(o);
}

xensim::Netfront& Guest::start_netfront(xensim::NetfrontOptions o) {
    netfront.reset();
    o.self = domid;
    netfront = std::make_unique<xensim::Netfront>(*store, *events, *memory, o);
    netfront->start();
    return *netfront;
}

SimWorld::SimWorld(const SimWorldOptions& options) {
    std::string tmpl = (fs::temp_directory_path() / "netbackd-e2e-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    fs::create_directories(host_dir());
    fs::create_directories(dir_ + "/clients");
    // A driver domain owns ~20 nodes per vif: room for the 64-client soak, as `xenstored -E` gives.
    REQUIRE(
        run({XENSIM_BINARY, "up", "--dir", host_dir(), "--quota-nodes", std::to_string(options.quota_nodes),
             "--quota-watches", std::to_string(options.quota_watches)},
            dir_ + "/xensim.log") == 0);
    host_up_ = true;
    create_domain("nicdom", kDriverDomain, 16, options.driver_event_channels);
    admin_ = xensim::HvClient::connect_admin(host_dir());
}

SimWorld::~SimWorld() {
    guests_.clear();
    if (netbackd_ > 0) stop_netbackd(SIGKILL);
    if (notify_fd_ >= 0) close(notify_fd_);
    dom0_.reset();
    admin_.reset();
    if (host_up_) run({XENSIM_BINARY, "down", "--dir", host_dir()}, dir_ + "/xensim.log");
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void SimWorld::create_domain(const std::string& name, platform::DomId domid, unsigned memory_mib,
                             unsigned max_event_channels) {
    std::vector<std::string> argv{XENSIM_BINARY, "domain",
                                  "create",      name,
                                  "--domid",     std::to_string(domid),
                                  "--memory",    std::to_string(memory_mib),
                                  "--dir",       host_dir()};
    if (max_event_channels != 0) {
        argv.push_back("--max-event-channels");
        argv.push_back(std::to_string(max_event_channels));
    }
    REQUIRE(run(argv, dir_ + "/xensim.log") == 0);
}

Guest& SimWorld::guest(platform::DomId domid) {
    for (auto& g : guests_)
        if (g->domid == domid) return *g;
    auto g = std::make_unique<Guest>();
    g->domid = domid;
    g->hv = xensim::HvClient::connect(host_dir(), domid);
    g->store = platform::open_xs_store(platform::sim_store_socket(host_dir(), domid));
    g->events = std::make_unique<xensim::SimEvents>(g->hv);
    g->memory = std::make_unique<xensim::GuestMemory>(g->hv);
    guests_.push_back(std::move(g));
    return *guests_.back();
}

void SimWorld::write_client_file(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/clients/" + name) << text;
}

void SimWorld::start_netbackd(const std::string& extra_config, const std::string& service_keys) {
    {
        std::ofstream cfg(dir_ + "/netbackd.toml");
        cfg << fmt::format(
            "[service]\nplatform = \"sim\"\nlog_level = \"debug\"\nclients_dir = \"clients\"\n{}"
            "[sim]\ndir = \"{}\"\ndomid = {}\n{}\n",
            service_keys, host_dir(), kDriverDomain, extra_config);
    }
    const std::string sock = dir_ + "/notify.sock";
    if (notify_fd_ < 0) {
        notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(notify_fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    std::vector<std::string> env{"NOTIFY_SOCKET=" + sock};
    env.insert(env.end(), netbackd_env.begin(), netbackd_env.end());
    netbackd_ =
        spawn({NETBACKD_BINARY, "run", "--config", dir_ + "/netbackd.toml"}, dir_ + "/netbackd.log", env);
    // sd_notify readiness: READY=1 arrives once existing vifs are adopted.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        pollfd pfd{notify_fd_, POLLIN, 0};
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        if (poll(&pfd, 1, 100) > 0) {
            char buf[512];
            const ssize_t n = recv(notify_fd_, buf, sizeof buf - 1, 0);
            if (n > 0 &&
                std::string_view(buf, static_cast<std::size_t>(n)).find("READY=1") != std::string_view::npos)
                return;
        }
        int status = 0;
        if (waitpid(netbackd_, &status, WNOHANG) == netbackd_) {
            netbackd_ = -1;
            FAIL("netbackd exited before READY=1:\n" << netbackd_log());
        }
    }
}

int SimWorld::stop_netbackd(int sig) {
    if (netbackd_ <= 0) return -1;
    kill(netbackd_, sig);
    const int rc = reap(netbackd_);
    // netbackd removes EAL's runtime dir on a clean exit; after SIGKILL it is ours to remove.
    std::error_code ec;
    std::filesystem::remove_all(fmt::format("/var/run/dpdk/netbackd-{}", netbackd_), ec);
    netbackd_ = -1;
    return rc;
}

std::string SimWorld::netbackd_log() const {
    std::ifstream in(dir_ + "/netbackd.log");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

platform::Store& SimWorld::dom0() {
    if (!dom0_) dom0_ = platform::open_xs_store(platform::sim_store_socket(host_dir(), 0));
    return *dom0_;
}

bool SimWorld::wait_node(const std::string& path,
                         const std::function<bool(const std::optional<std::string>&)>& pred,
                         std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        // Netfronts live in this process: let those with watch events follow the backend while
        // we wait. Only those: process_watches() costs a store round trip, and a test waiting on
        // each of N vifs in turn would otherwise make N * N of them (the scale test at 1,024 vifs
        // spent most of its attach time here).
        std::vector<pollfd> fds;
        std::vector<xensim::Netfront*> fronts;
        for (auto& g : guests_)
            if (g->netfront) {
                fds.push_back(pollfd{g->store->watch_fd(), POLLIN, 0});
                fronts.push_back(g->netfront.get());
            }
        if (!fds.empty() && ::poll(fds.data(), fds.size(), 0) > 0)
            for (std::size_t i = 0; i < fds.size(); ++i)
                if (fds[i].revents != 0) fronts[i]->process_watches();
        if (pred(dom0().read(0, path))) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

bool SimWorld::wait_state(const std::string& path, const std::string& want,
                          std::chrono::milliseconds timeout) {
    return wait_node(
        path, [&](const std::optional<std::string>& v) { return v == want; }, timeout);
}

bool SimWorld::wait_closing_or_closed(const std::string& state_path, std::chrono::milliseconds timeout) {
    return wait_node(
        state_path, [](const std::optional<std::string>& v) { return v == "5" || v == "6"; }, timeout);
}

int SimWorld::driver_ports_in_use() {
    auto view = admin_->domain(kDriverDomain);
    REQUIRE(view);
    int n = 0;
    for (const auto& p : view->state->ports)
        n += p.state.load() != static_cast<std::uint32_t>(xensim::PortState::free);
    return n;
}

int SimWorld::netbackd_fds() const {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(fmt::format("/proc/{}/fd", netbackd_))) ++n;
    return n;
}

int SimWorld::netbackd_maps() const {
    std::ifstream in(fmt::format("/proc/{}/maps", netbackd_));
    std::string line;
    int n = 0;
    // Only mappings of domain memory (the domain views and every mapped grant page); the
    // allocator's own anonymous regions come and go, above all under ASan.
    while (std::getline(in, line)) n += line.find("memfd:xensim") != std::string::npos;
    return n;
}

std::string SimWorld::be(platform::DomId f, std::uint32_t devid) {
    return fmt::format("/local/domain/{}/backend/vif/{}/{}", kDriverDomain, f, devid);
}
std::string SimWorld::fe(platform::DomId f, std::uint32_t devid) {
    return fmt::format("/local/domain/{}/device/vif/{}", f, devid);
}
std::string SimWorld::error_node(platform::DomId f, std::uint32_t devid) {
    return fmt::format("/local/domain/{}/error/backend/vif/{}/{}/error", kDriverDomain, f, devid);
}

} // namespace netbackd::testing
