// xs_wire.h framing: a 16-byte header (type, req_id, tx_id, len) then len payload bytes,
// usually NUL-terminated strings.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xen/io/xs_wire.h>

namespace netbackd::xensim::xs {

inline constexpr std::size_t kHeaderSize = sizeof(xsd_sockmsg);
static_assert(kHeaderSize == 16, "xs_wire.h header is four uint32_t");

// The header at the front of `bytes` (which must hold at least kHeaderSize bytes).
xsd_sockmsg decode_header(std::span<const char> bytes) noexcept;

// Appends one message (header with len filled in, then payload) to `out`.
void append_message(std::string& out, std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id,
                    std::string_view payload);

// The NUL-terminated strings of a payload; std::nullopt when it does not end with a NUL.
std::optional<std::vector<std::string_view>> split_strings(std::string_view payload);

// Hands each complete message at the front of `in` to `handle` and removes it, leaving a partial
// message in place. Returns false on a length beyond XENSTORE_PAYLOAD_MAX: the stream cannot be
// resynchronised, so the connection must go (as xenstored does). Stops early when `handle`
// returns false.
bool consume_messages(std::string& in,
                      const std::function<bool(const xsd_sockmsg&, std::string_view)>& handle);

// Strings joined with a NUL after each, as DIRECTORY and GET_PERMS replies are.
std::string join_strings(std::span<const std::string> items);

} // namespace netbackd::xensim::xs
