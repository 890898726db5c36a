// The platform's Store over libxenstore: the same class serves real xenstored (or the kernel's
// xenbus device) and xensim's xenstored, which it reaches through XENSTORED_PATH.
#pragma once

#include <memory>
#include <string>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

// Empty socket_path: Xen's default, as xs_open(0) chooses (xenstored's socket, else
// /dev/xen/xenbus). Otherwise the unix socket at socket_path (e.g. xensim's
// <dir>/domain/<id>/xenstored.sock, which binds the connection to domain <id>).
// Throws PlatformError with a one-line reason when nothing can be opened.
std::unique_ptr<Store> open_xs_store(const std::string& socket_path);

} // namespace netbackd::platform
