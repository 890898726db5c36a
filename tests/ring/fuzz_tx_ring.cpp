// libFuzzer target: a whole TX ring page and its producer index are hostile input; the backend
// TX consumer and assembler run over it and every outcome is checked against the rules.
//
// Input: 16-byte header, then ring slot bytes laid out from slot (start % 256) onwards.
//   u32 start      index both ends attached at (exercises wrap-around at 2^32)
//   u32 prod_sel   top bit set: req_prod = prod_sel (anything); else start + prod_sel % 512
//   u8  fatal      fatal slot threshold (0 = the default 20)
//   u8  pad
//   u8  delta[6]   later rounds: req_prod += delta, then drain again
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ring/netif_ring.hpp"
#include "tests/ring/fuzz_input.hpp"

namespace {

using namespace netbackd::ring;
using namespace netbackd::ring::fuzz;

// Runs the assembler until it stops making progress; checks every outcome.
void drain(TxAssembler& tx, BackRing<TxRing>& back) {
    TxPacket p;
    for (int guard = 0; guard < 2 * static_cast<int>(TxRing::kSize) + 2; ++guard) {
        const RingIdx cons_before = back.req_cons();
        const TxResult r = tx.next(p);
        switch (r.step) {
        case TxStep::empty:
        case TxStep::pending:
            require(back.req_cons() == cons_before);
            require(r.error == TxError::none);
            return;
        case TxStep::fatal:
            require(is_fatal(r.error));
            require(back.req_cons() == cons_before);
            require(tx.next(p).step == TxStep::fatal);
            return;
        case TxStep::dropped:
            require(r.error != TxError::none && !is_fatal(r.error));
            require(back.req_cons() != cons_before);
            require(back.unanswered() == 0);
            break;
        case TxStep::packet: {
            require(p.nr_segments >= 1 && p.nr_segments <= kMaxTxPacketSlots);
            require(back.req_cons() - cons_before == p.slots());
            std::uint32_t sum = 0;
            for (const auto& s : p.segments()) {
                require(std::uint32_t{s.offset} + s.size <= kPageSize);
                sum += s.size;
            }
            require(sum == p.length);
            if (!p.is_mcast_control())
                require(p.segments()[0].size >= tx.limits().min_length && p.length <= tx.limits().max_length);
            if (p.gso) require(p.gso->size != 0);
            tx.respond(p, NETIF_RSP_OKAY);
            require(back.unanswered() == 0);
            break;
        }
        }
    }
    // Every step consumes at least one slot; more steps than slots would mean a loop.
    require(false);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 16) return 0;
    const std::uint32_t start = le32(data);
    const std::uint32_t sel = le32(data + 4);
    const std::uint8_t fatal = data[8];
    const std::uint8_t* deltas = data + 10;

    auto page = std::make_unique<PageBuf>();
    init_shared_ring<TxRing>(page->bytes, start);
    constexpr std::size_t ring_bytes = TxRing::kSize * sizeof(netif_tx_sring_entry);
    const std::size_t base = (start % TxRing::kSize) * sizeof(netif_tx_sring_entry);
    for (std::size_t i = 16; i < size && i - 16 < ring_bytes; ++i)
        page->bytes[offsetof(netif_tx_sring, ring) + (base + i - 16) % ring_bytes] = std::byte{data[i]};

    SharedRing<TxRing> shared(page->bytes);
    RingIdx prod = (sel & 0x80000000u) ? sel : start + sel % 512;
    shared.req_prod().store(prod);

    BackRing<TxRing> back(page->bytes, start);
    TxLimits lim;
    if (fatal != 0) lim.fatal_slots = fatal;
    TxAssembler tx(back, lim);

    drain(tx, back);
    for (int round = 0; round < 6; ++round) {
        prod += deltas[round];
        shared.req_prod().store(prod);
        drain(tx, back);
    }
    // Exactly one response per consumed slot, all published by one push.
    back.push();
    require(back.unanswered() == 0);
    require(shared.rsp_prod().load() == back.req_cons());
    return 0;
}
