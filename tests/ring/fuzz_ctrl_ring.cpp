// libFuzzer target: a hostile control ring page and req_prod, and hostile grant contents; the
// backend serves it in budgets. Checks each answered request got exactly one response with its
// id and type and a netif.h status, that the HashConfig never holds a mapping size over the
// maximum or an entry naming a queue the vif lacks, and that a bad req_prod is fatal for good.
//
// Input: u32 start, u32 prod_sel (bit 31: raw req_prod, else start + sel % 256), u8 budget,
// u8 queues, u16 unused, then the ring slots (16 bytes each); the same bytes, from offset 12,
// are what a granted page holds. Even grefs are granted, odd ones are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ring/ctrl_ring.hpp"
#include "tests/ring/fuzz_input.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 12) return 0;
    const std::uint32_t start = le32(data);
    const std::uint32_t sel = le32(data + 4);
    const RingIdx budget = 1u + data[8] % 64u;
    const std::uint32_t queues = 1u + data[9] % 8u;

    auto page = std::make_unique<PageBuf>();
    init_shared_ring<CtrlRing>(page->bytes, start);
    constexpr std::size_t ring_bytes = CtrlRing::kSize * sizeof(xen_netif_ctrl_sring_entry);
    const std::size_t base = (start % CtrlRing::kSize) * sizeof(xen_netif_ctrl_sring_entry);
    for (std::size_t i = 12; i < size && i - 12 < ring_bytes; ++i)
        page->bytes[offsetof(xen_netif_ctrl_sring, ring) + (base + i - 12) % ring_bytes] = std::byte{data[i]};
    SharedRing<CtrlRing> shared(page->bytes);
    const RingIdx prod = (sel & 0x80000000u) ? sel : start + sel % 256;
    shared.req_prod().store(prod);

    std::vector<std::byte> granted(kPageSize);
    std::memcpy(granted.data(), data + 12, std::min(size - 12, granted.size()));
    auto read = [&](grant_ref_t gref, std::span<std::byte> out) {
        require(out.size() <= kPageSize);
        if (gref % 2 != 0) return false;
        std::memcpy(out.data(), granted.data(), out.size());
        return true;
    };

    BackRing<CtrlRing> back(page->bytes, start);
    CtrlServer server(back, queues);
    HashConfig cfg;
    for (int round = 0; round < 8; ++round) {
        const Avail avail = back.poll();
        std::vector<xen_netif_ctrl_request> before;
        for (RingIdx i = 0; avail.error == ProdError::none && i < std::min(avail.count, budget); ++i)
            before.push_back(back.copy_request(i));
        const RingIdx first = back.req_cons();
        const CtrlResult r = server.serve(cfg, budget, read);
        if (r.fatal != ProdError::none) {
            require(avail.error != ProdError::none);
            require(server.serve(cfg, budget, read).fatal != ProdError::none);
            break;
        }
        require(r.served == before.size() && r.served <= budget);
        require(back.unanswered() == 0);
        for (RingIdx i = 0; i < r.served; ++i) {
            const auto rsp = shared.load<xen_netif_ctrl_response>(first + i);
            require(rsp.id == before[i].id && rsp.type == before[i].type);
            require(rsp.status <= XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
            require(rsp.status == XEN_NETIF_CTRL_STATUS_SUCCESS || rsp.data == 0);
        }
        require(cfg.mapping_size <= kHashMappingMax);
        for (std::uint32_t q : cfg.mapping) require(q < queues);
        for (std::uint32_t h : {0u, 1u, 0xffffffffu, start}) require(cfg.queue_for(h, queues) < queues);
        back.push();
        require(shared.rsp_prod().load() == back.req_cons());
        if (!r.more) break;
    }
    return 0;
}
