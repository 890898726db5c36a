// The one EAL of a dataplane test process. ctest runs every test case in a process of its own
// (catch_discover_tests), and EAL starts once per process, so each test binary stands for one
// EAL configuration; run by hand, all its test cases share it.
#pragma once

#include <string>
#include <string_view>

#include <initializer_list>
#include <span>

#include "pmd/eal.hpp"
#include "pmd/mbuf.hpp"
#include "pmd/mempool.hpp"

namespace netbackd::pmd::test {

// --no-huge -m 256 --no-pci --no-telemetry, a file prefix unique to this process, and the
// given vdevs. The first call decides the configuration.
Eal& dataplane_eal(const std::vector<std::string>& vdevs = {});

// A name not used before in this process ("<prefix><n>"), for vdevs and pools.
std::string unique_name(std::string_view prefix);

// A small pool of standard buffers (data room for a 1500-byte MTU).
Mempool small_pool(std::uint32_t mbufs = 4095, std::uint16_t data_room = kDefaultDataRoom);

// A packet of `bytes` whose first segments hold exactly `first_sizes` bytes each (as a guest's
// slots might), the rest in full buffers.
MbufPtr mbuf_chain(rte_mempool* pool, std::span<const std::byte> bytes,
                   std::initializer_list<std::size_t> first_sizes);

} // namespace netbackd::pmd::test
