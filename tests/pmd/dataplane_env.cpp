#include "dataplane_env.hpp"

#include <atomic>

#include <unistd.h>

namespace netbackd::pmd::test {

Eal& dataplane_eal(const std::vector<std::string>& vdevs) {
    static Eal eal([&] {
        EalConfig c;
        c.hugepages = false;
        c.memory_mb = 256;
        c.file_prefix = "nbtest-" + std::to_string(::getpid());
        c.vdevs = vdevs;
        return c;
    }());
    return eal;
}

std::string unique_name(std::string_view prefix) {
    static std::atomic<unsigned> counter{0};
    return std::string(prefix) + std::to_string(counter++);
}

Mempool small_pool(std::uint32_t mbufs, std::uint16_t data_room) {
    dataplane_eal();
    return Mempool({.name = unique_name("pool"), .mbufs = mbufs, .cache = 32, .data_room = data_room});
}

} // namespace netbackd::pmd::test
