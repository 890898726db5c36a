// Typed C++ view of one shared netif ring page (xen/io/ring.h + xen/io/netif.h).
//
// The structs come from the real Xen headers; this file only pins their layout with
// static_asserts and adds the two primitives both ends build on:
//   - SharedRing<Traits>: the four shared indices as std::atomic_ref, and slot access that moves
//     a whole entry with word-sized atomic loads/stores (the C++ spelling of RING_COPY_REQUEST's
//     volatile copy: one fetch per word, never re-read, no data race in the C++ model).
//   - TxRing / RxRing: the traits naming request/response/slot types of each netif ring.
// Pure code: no I/O, no allocation, no exceptions. The caller owns the page mapping.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include <xen/io/netif.h>

namespace netbackd::ring {

inline constexpr std::size_t kPageSize = 4096;
using Page = std::span<std::byte, kPageSize>;
using RingIdx = RING_IDX;

// ---------------------------------------------------------------- wire layout, pinned
static_assert(sizeof(RING_IDX) == 4);
static_assert(sizeof(grant_ref_t) == 4);

static_assert(sizeof(netif_tx_request_t) == 12);
static_assert(offsetof(netif_tx_request_t, gref) == 0);
static_assert(offsetof(netif_tx_request_t, offset) == 4);
static_assert(offsetof(netif_tx_request_t, flags) == 6);
static_assert(offsetof(netif_tx_request_t, id) == 8);
static_assert(offsetof(netif_tx_request_t, size) == 10);

static_assert(sizeof(netif_tx_response_t) == 4);
static_assert(offsetof(netif_tx_response_t, id) == 0);
static_assert(offsetof(netif_tx_response_t, status) == 2);

static_assert(sizeof(netif_rx_request_t) == 8);
static_assert(offsetof(netif_rx_request_t, id) == 0);
static_assert(offsetof(netif_rx_request_t, gref) == 4);

static_assert(sizeof(netif_rx_response_t) == 8);
static_assert(offsetof(netif_rx_response_t, id) == 0);
static_assert(offsetof(netif_rx_response_t, offset) == 2);
static_assert(offsetof(netif_rx_response_t, flags) == 4);
static_assert(offsetof(netif_rx_response_t, status) == 6);

static_assert(sizeof(netif_extra_info_t) == 8);
static_assert(offsetof(netif_extra_info_t, type) == 0);
static_assert(offsetof(netif_extra_info_t, flags) == 1);
static_assert(offsetof(netif_extra_info_t, u) == 2);
static_assert(offsetof(netif_extra_info_t, u.gso.size) == 2);
static_assert(offsetof(netif_extra_info_t, u.gso.type) == 4);
static_assert(offsetof(netif_extra_info_t, u.gso.features) == 6);
static_assert(offsetof(netif_extra_info_t, u.hash.type) == 2);
static_assert(offsetof(netif_extra_info_t, u.hash.algorithm) == 3);
static_assert(offsetof(netif_extra_info_t, u.hash.value) == 4);

static_assert(offsetof(netif_tx_sring, req_prod) == 0);
static_assert(offsetof(netif_tx_sring, req_event) == 4);
static_assert(offsetof(netif_tx_sring, rsp_prod) == 8);
static_assert(offsetof(netif_tx_sring, rsp_event) == 12);
static_assert(offsetof(netif_tx_sring, ring) == 64);
static_assert(offsetof(netif_rx_sring, ring) == 64);
static_assert(sizeof(netif_tx_sring_entry) == 12);
static_assert(sizeof(netif_rx_sring_entry) == 8);

// __CONST_RING_SIZE: the largest power of two of entries that fits after the header.
template <class Sring>
inline constexpr RingIdx const_ring_size =
    static_cast<RingIdx>(std::bit_floor((kPageSize - offsetof(Sring, ring)) / sizeof(Sring::ring[0])));

static_assert(const_ring_size<netif_tx_sring> == 256);
static_assert(const_ring_size<netif_rx_sring> == 256);

// ---------------------------------------------------------------- ring traits
struct TxRing {
    using Sring = netif_tx_sring;
    using Request = netif_tx_request_t;
    using Response = netif_tx_response_t;
    static constexpr RingIdx kSize = const_ring_size<Sring>;
};

struct RxRing {
    using Sring = netif_rx_sring;
    using Request = netif_rx_request_t;
    using Response = netif_rx_response_t;
    static constexpr RingIdx kSize = const_ring_size<Sring>;
};

// ---------------------------------------------------------------- shared page access
template <class Traits>
class SharedRing {
public:
    using Sring = typename Traits::Sring;
    static constexpr RingIdx kSize = Traits::kSize;
    static constexpr std::size_t kSlotBytes = sizeof(Sring::ring[0]);
    static_assert(kSlotBytes % 4 == 0, "slots are moved as 32-bit words");

    // Precondition: the page is at least 4-byte aligned (a mapped page always is); atomic_ref
    // on a misaligned word would be undefined.
    explicit SharedRing(Page page) noexcept : base_(page.data()) {
        assert(reinterpret_cast<std::uintptr_t>(base_) % alignof(RingIdx) == 0);
    }

    std::atomic_ref<RingIdx> req_prod() const noexcept { return idx_at(offsetof(Sring, req_prod)); }
    std::atomic_ref<RingIdx> req_event() const noexcept { return idx_at(offsetof(Sring, req_event)); }
    std::atomic_ref<RingIdx> rsp_prod() const noexcept { return idx_at(offsetof(Sring, rsp_prod)); }
    std::atomic_ref<RingIdx> rsp_event() const noexcept { return idx_at(offsetof(Sring, rsp_event)); }

    // Copies a slot's leading sizeof(T) bytes out, one relaxed atomic load per word: the peer
    // may be rewriting the slot, and whatever we got is the one value we validate and use.
    template <class T>
    T load(RingIdx idx) const noexcept {
        static_assert(sizeof(T) % 4 == 0 && sizeof(T) <= kSlotBytes);
        std::array<std::uint32_t, sizeof(T) / 4> words;
        std::byte* p = slot(idx);
        for (std::size_t i = 0; i < words.size(); ++i)
            words[i] = word_at(p + 4 * i).load(std::memory_order_relaxed);
        return std::bit_cast<T>(words);
    }

    // Writes a value into a slot's leading bytes; publication happens later through a release
    // store of the producer index.
    template <class T>
    void store(RingIdx idx, const T& value) const noexcept {
        static_assert(sizeof(T) <= kSlotBytes);
        constexpr std::size_t n = (sizeof(T) + 3) / 4;
        std::array<std::byte, n * 4> bytes{};
        std::memcpy(bytes.data(), &value, sizeof(T));
        const auto words = std::bit_cast<std::array<std::uint32_t, n>>(bytes);
        std::byte* p = slot(idx);
        // Sub-word responses (netif_tx_response is 4 bytes) still cover whole words only.
        for (std::size_t i = 0; i < n; ++i) word_at(p + 4 * i).store(words[i], std::memory_order_relaxed);
    }

    std::byte* base() const noexcept { return base_; }

private:
    std::byte* slot(RingIdx idx) const noexcept {
        // Index masking is the only bound needed: every slot lies inside the page whatever the
        // (possibly hostile) index is.
        return base_ + offsetof(Sring, ring) + static_cast<std::size_t>(idx & (kSize - 1)) * kSlotBytes;
    }
    static std::atomic_ref<std::uint32_t> word_at(std::byte* p) noexcept {
        return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p));
    }
    std::atomic_ref<RingIdx> idx_at(std::size_t off) const noexcept {
        return std::atomic_ref<RingIdx>(*reinterpret_cast<RingIdx*>(base_ + off));
    }

    std::byte* base_;
};

static_assert(SharedRing<TxRing>::kSlotBytes * TxRing::kSize + 64 <= kPageSize);
static_assert(SharedRing<RxRing>::kSlotBytes * RxRing::kSize + 64 <= kPageSize);

// SHARED_RING_INIT, with an arbitrary start index (tests use it to cross 2^32). The frontend
// calls this before granting the page; nobody else may touch the page concurrently.
template <class Traits>
void init_shared_ring(Page page, RingIdx start = 0) noexcept {
    std::memset(page.data(), 0, offsetof(typename Traits::Sring, ring));
    SharedRing<Traits> s(page);
    s.req_prod().store(start, std::memory_order_relaxed);
    s.rsp_prod().store(start, std::memory_order_relaxed);
    s.req_event().store(start + 1, std::memory_order_relaxed);
    s.rsp_event().store(start + 1, std::memory_order_relaxed);
}

// The event-index test of RING_PUSH_*_AND_CHECK_NOTIFY: notify iff the peer's event index lies
// in (old, new], computed modulo 2^32.
constexpr bool event_in_range(RingIdx event, RingIdx old_prod, RingIdx new_prod) noexcept {
    return static_cast<RingIdx>(new_prod - event) < static_cast<RingIdx>(new_prod - old_prod);
}

} // namespace netbackd::ring
