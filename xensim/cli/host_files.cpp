#include "xensim/cli/host_files.hpp"

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

namespace netbackd::xensim::cli {

std::string pid_file(const std::string& dir) { return dir + "/xensim.pid"; }
std::string log_file(const std::string& dir) { return dir + "/xensim.log"; }

void write_pid_file(const std::string& dir) {
    std::ofstream out(pid_file(dir), std::ios::trunc);
    out << ::getpid() << '\n';
    if (!out) throw std::runtime_error("cannot write " + pid_file(dir));
}

void remove_pid_file(const std::string& dir) {
    std::error_code ec;
    std::filesystem::remove(pid_file(dir), ec);
}

std::optional<pid_t> running_host(const std::string& dir) {
    std::ifstream in(pid_file(dir));
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 0) return std::nullopt;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return std::nullopt;
    return pid;
}

} // namespace netbackd::xensim::cli
