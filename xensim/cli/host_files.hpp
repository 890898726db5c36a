// Where a simulated host keeps its pid file and log, and how to tell whether it is running.
#pragma once

#include <optional>
#include <string>

#include <sys/types.h>

namespace netbackd::xensim::cli {

std::string pid_file(const std::string& dir);
std::string log_file(const std::string& dir);
void write_pid_file(const std::string& dir);
void remove_pid_file(const std::string& dir);
// The pid of a live host process for dir, if any (a stale pid file does not count).
std::optional<pid_t> running_host(const std::string& dir);

} // namespace netbackd::xensim::cli
