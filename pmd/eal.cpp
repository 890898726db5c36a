#include "pmd/eal.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

namespace netbackd::pmd {

namespace {

std::atomic<bool> eal_live{false};

// Where EAL 22.11 puts its runtime files (eal_create_runtime_dir).
std::filesystem::path expected_runtime_dir(const std::string& prefix) {
    if (::geteuid() == 0) {
        return std::filesystem::path("/var/run/dpdk") / prefix;
    }
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    return std::filesystem::path(xdg != nullptr ? xdg : "/tmp") / "dpdk" / prefix;
}

} // namespace

Eal::Eal(const EalConfig& config) : args_(eal_arguments(config)) {
    const HostFacts host = probe_host();
    // EAL's own message for this case is a page of log lines; say it in one.
    if (config.hugepages && host.hugepages_free == 0) {
        throw EalError(explain_eal_failure(ENOMEM, config, host), ENOMEM);
    }
    if (eal_live.exchange(true)) {
        throw EalError(explain_eal_failure(EALREADY, config, host), EALREADY);
    }
    // rte_eal_init may permute argv; the strings themselves stay ours, in args_.
    std::vector<std::string> scratch = args_;
    std::vector<char*> argv;
    argv.reserve(scratch.size() + 1);
    for (auto& s : scratch) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    // A directory that exists already may belong to a running process with the same prefix.
    const bool dir_existed =
        !config.file_prefix.empty() && std::filesystem::exists(expected_runtime_dir(config.file_prefix));
    const bool ok = rte_eal_init(static_cast<int>(scratch.size()), argv.data()) >= 0;
    const int err = rte_errno;
    if (!config.file_prefix.empty() && (ok ? rte_eal_process_type() == RTE_PROC_PRIMARY : !dir_existed)) {
        const std::filesystem::path dir = rte_eal_get_runtime_dir();
        if (dir.filename() == config.file_prefix) {
            runtime_dir_ = dir.string();
        }
    }
    if (!ok) {
        // A failed start has usually created its runtime directory already.
        remove_runtime_dir();
        throw EalError(explain_eal_failure(err, config, host), err);
    }
}

void Eal::remove_runtime_dir() noexcept {
    if (!runtime_dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(runtime_dir_, ec);
    }
}

Eal::~Eal() {
    rte_eal_cleanup();
    // Only a directory named after our own prefix is removed: a shared default one may be in
    // use by other DPDK processes.
    remove_runtime_dir();
}

} // namespace netbackd::pmd
