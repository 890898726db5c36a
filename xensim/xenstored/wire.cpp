#include "xensim/xenstored/wire.hpp"

#include <cstring>

namespace netbackd::xensim::xs {

xsd_sockmsg decode_header(std::span<const char> bytes) noexcept {
    xsd_sockmsg h{};
    std::memcpy(&h, bytes.data(), kHeaderSize);
    return h;
}

void append_message(std::string& out, std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id,
                    std::string_view payload) {
    xsd_sockmsg h{type, req_id, tx_id, static_cast<std::uint32_t>(payload.size())};
    out.append(reinterpret_cast<const char*>(&h), kHeaderSize);
    out.append(payload);
}

std::optional<std::vector<std::string_view>> split_strings(std::string_view payload) {
    if (payload.empty() || payload.back() != '\0') return std::nullopt;
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (start < payload.size()) {
        auto nul = payload.find('\0', start);
        out.push_back(payload.substr(start, nul - start));
        start = nul + 1;
    }
    return out;
}

bool consume_messages(std::string& in,
                      const std::function<bool(const xsd_sockmsg&, std::string_view)>& handle) {
    std::size_t used = 0;
    bool ok = true;
    while (in.size() - used >= kHeaderSize) {
        const auto header = decode_header(std::span(in).subspan(used));
        if (header.len > XENSTORE_PAYLOAD_MAX) {
            ok = false;
            break;
        }
        if (in.size() - used < kHeaderSize + header.len) break;
        const std::string_view payload(in.data() + used + kHeaderSize, header.len);
        used += kHeaderSize + header.len;
        if (!handle(header, payload)) break;
    }
    in.erase(0, used);
    return ok;
}

std::string join_strings(std::span<const std::string> items) {
    std::string out;
    for (const auto& s : items) {
        out += s;
        out += '\0';
    }
    return out;
}

} // namespace netbackd::xensim::xs
