// libFuzzer: the global and per-client TOML parsers over arbitrary files. A bad file may only
// be refused with ConfigError (the reload keeps the old config); anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "backend/control/config.hpp"

using namespace netbackd::control;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        (void)parse_client(text, "fuzz-client.toml");
    } catch (const ConfigError&) {}
    try {
        (void)parse_global(text, "fuzz-global.toml");
    } catch (const ConfigError&) {}
    return 0;
}
