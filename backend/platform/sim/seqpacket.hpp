// Unix SOCK_SEQPACKET messages with file descriptors attached (SCM_RIGHTS).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/platform/fd.hpp"

namespace netbackd::xensim {

struct Message {
    std::vector<std::byte> data;
    std::vector<platform::Fd> fds;
};

platform::Fd listen_seqpacket(const std::string& path);
// Throws PlatformError naming the path when nothing listens there.
platform::Fd connect_seqpacket(const std::string& path);
void send_message(int sock, std::span<const std::byte> data, std::span<const int> fds = {});
// std::nullopt when the peer hung up.
std::optional<Message> receive_message(int sock, std::size_t max_bytes);

} // namespace netbackd::xensim
