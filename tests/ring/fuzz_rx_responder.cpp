// libFuzzer target: hostile RX ring page and req_prod; the backend reserves buffers for packet
// shapes taken from the input and answers them. Checks each response lands in the slot of the
// request it answers, with that request's id, and that nothing is answered twice.
//
// Input: u32 start, u32 prod_sel (as in fuzz_tx_ring), then per packet 3 bytes:
//   shape (bits 0-4: data slots - 1, bit 7: GSO, bit 6: fail instead of complete), len lo, len hi;
// the same bytes, from offset 8, also fill the RX request slots.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>

#include "ring/netif_ring.hpp"
#include "tests/ring/fuzz_input.hpp"

namespace {

using namespace netbackd::ring;
using namespace netbackd::ring::fuzz;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    const std::uint32_t start = le32(data);
    const std::uint32_t sel = le32(data + 4);

    auto page = std::make_unique<PageBuf>();
    init_shared_ring<RxRing>(page->bytes, start);
    constexpr std::size_t ring_bytes = RxRing::kSize * sizeof(netif_rx_sring_entry);
    const std::size_t base = (start % RxRing::kSize) * sizeof(netif_rx_sring_entry);
    for (std::size_t i = 8; i < size && i - 8 < ring_bytes; ++i)
        page->bytes[offsetof(netif_rx_sring, ring) + (base + i - 8) % ring_bytes] = std::byte{data[i]};
    SharedRing<RxRing> shared(page->bytes);
    const RingIdx prod = (sel & 0x80000000u) ? sel : start + sel % 512;
    shared.req_prod().store(prod);

    BackRing<RxRing> back(page->bytes, start);
    RxResponder rx(back);
    for (std::size_t at = 8; at + 3 <= size; at += 3) {
        const std::uint8_t shape = data[at];
        const std::uint32_t nr = 1 + (shape & 0x1f) % kMaxRxSegments;
        const bool gso = (shape & 0x80) != 0;
        const auto len = static_cast<std::uint16_t>((data[at + 1] | data[at + 2] << 8) % (kPageSize + 1));

        // What the requests hold before we answer over them (responses overwrite the slots).
        std::array<netif_rx_request_t, kMaxRxSegments + 1> before{};
        const Avail avail = back.poll();
        for (RingIdx i = 0; i < std::min<RingIdx>(avail.count, nr + 1); ++i) before[i] = back.copy_request(i);

        RxReservation res;
        const RingIdx first = back.req_cons();
        const RxStep st = rx.reserve(nr, gso, res);
        if (st == RxStep::fatal) {
            require(avail.error != ProdError::none);
            require(rx.reserve(1, false, res) == RxStep::fatal);
            break;
        }
        if (st == RxStep::short_of) {
            require(avail.count < nr + (gso ? 1u : 0u));
            require(back.req_cons() == first);
            continue;
        }
        require(res.first_index == first && back.req_cons() - first == res.slots());
        std::array<RxChunk, kMaxRxSegments> chunks{};
        for (std::uint32_t i = 0; i < nr; ++i)
            chunks[i] = RxChunk{static_cast<std::uint16_t>((kPageSize - len) / 2), len};
        const bool fail = (shape & 0x40) != 0;
        if (fail)
            rx.fail(res, NETIF_RSP_ERROR);
        else
            rx.complete(res, std::span(chunks.data(), nr),
                        RxMeta{true, false,
                               gso ? std::optional(TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV4, 0}) : std::nullopt});
        require(back.unanswered() == 0);

        // Check each response slot against the request that was in it.
        RingIdx slot = 0;
        for (std::uint32_t i = 0; i < nr; ++i) {
            const auto r = shared.load<netif_rx_response_t>(first + slot);
            require(r.id == before[slot].id);
            require(r.status == (fail ? NETIF_RSP_ERROR : static_cast<std::int16_t>(len)));
            if (!fail) require(((r.flags & NETRXF_more_data) != 0) == (i + 1 < nr));
            ++slot;
            if (i == 0 && gso) {
                if (!fail)
                    require(shared.load<netif_extra_info_t>(first + slot).type == XEN_NETIF_EXTRA_TYPE_GSO);
                ++slot;
            }
        }
        require(slot == res.slots());
    }
    back.push();
    require(shared.rsp_prod().load() == back.req_cons());
    return 0;
}
