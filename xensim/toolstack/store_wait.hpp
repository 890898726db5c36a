// Waiting on a xenstore node the way libxl's xswait does: a watch, a re-read on every event,
// and a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "backend/platform/platform.hpp"

namespace netbackd::xensim {

// Calls `done(value)` (value: std::nullopt when the node is missing) at once and after every
// watch event on `path`, until it returns true; false when `timeout` passes first.
bool wait_for_node(platform::Store& store, const std::string& path, std::chrono::milliseconds timeout,
                   const std::function<bool(const std::optional<std::string>&)>& done);

} // namespace netbackd::xensim
