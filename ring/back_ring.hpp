// Backend end of a netif ring: consumes requests, produces responses (ring.h "back ring").
//
// The private indices (req_cons, rsp_prod_pvt) live here, never in the shared page, so a
// hostile frontend can only lie about req_prod and req_event. poll() validates req_prod against
// the private indices before anything is read; a bad value is a fatal error for the ring.
//
// Memory ordering, mapped from the ring.h macros:
//   read req_prod        -> load(acquire)            (xen_rmb before reading the requests)
//   publish rsp_prod     -> store(release)           (xen_wmb before the producer index)
//   check rsp_event      -> seq_cst fence, then load (xen_mb between publishing and checking)
//   final check          -> store req_event, seq_cst fence, reload req_prod (xen_mb)
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>

#include "ring/sring.hpp"

namespace netbackd::ring {

enum class ProdError : std::uint8_t {
    none,
    overflow,  // producer index more than a ring ahead of what we answered
    regressed, // producer index moved behind what we already consumed
};

// What poll() saw: how many requests may be consumed now, or why the ring is broken.
struct Avail {
    RingIdx count = 0;
    ProdError error = ProdError::none;
    explicit operator bool() const noexcept { return error == ProdError::none && count != 0; }
};

template <class Traits>
class BackRing {
public:
    using Request = typename Traits::Request;
    using Response = typename Traits::Response;
    static constexpr RingIdx kSize = Traits::kSize;

    // BACK_RING_ATTACH: start is the index both sides agreed on (0 for a fresh ring).
    explicit BackRing(Page page, RingIdx start = 0) noexcept
        : shared_(page), rsp_prod_pvt_(start), req_cons_(start) {}

    // Attaches where the last backend left off: the ring's published rsp_prod. A fresh ring reads
    // 0; a ring a previous netbackd served (restart with reconnect) resumes after its last
    // response, as Linux netback does. Requests it consumed without answering are served again.
    // A hostile value only moves where we start: poll() still checks req_prod against it.
    static RingIdx attach_index(Page page) noexcept {
        return SharedRing<Traits>(page).rsp_prod().load(std::memory_order_acquire);
    }

    // Reads req_prod once and validates it (RING_REQUEST_PROD_OVERFLOW, plus going backwards).
    Avail poll() noexcept {
        // acquire: the request slots written before req_prod was published are visible to us.
        const RingIdx prod = shared_.req_prod().load(std::memory_order_acquire);
        return check_prod(prod);
    }

    // RING_FINAL_CHECK_FOR_REQUESTS: call before sleeping. A count below want (and no error) means
    // it is safe to wait for the event channel: the frontend will notify once the want-th request
    // is published. want > 1 serves a consumer that needs several requests at once (RX buffers).
    Avail final_check(RingIdx want = 1) noexcept {
        if (Avail a = poll(); a.count >= want || a.error != ProdError::none) return a;
        shared_.req_event().store(req_cons_ + want, std::memory_order_relaxed);
        // full fence: our req_event store must be globally visible before we re-read req_prod,
        // or the frontend may skip the notify while we miss its new requests (store->load order).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return poll();
    }

    // Copies the slot req_cons + offset out of the page (one fetch). The caller must have seen
    // offset < poll().count.
    template <class T = Request>
    T copy_request(RingIdx offset) const noexcept {
        return shared_.template load<T>(req_cons_ + offset);
    }

    void consume(RingIdx n) noexcept {
        req_cons_ += n;
        assert(req_cons_ - rsp_prod_pvt_ <= kSize);
    }

    // Writes the next response slot (not yet visible to the frontend).
    template <class T = Response>
    void put_response(const T& rsp) noexcept {
        assert(static_cast<RingIdx>(req_cons_ - rsp_prod_pvt_) > 0 && "response without a consumed request");
        shared_.store(rsp_prod_pvt_, rsp);
        ++rsp_prod_pvt_;
    }

    // RING_PUSH_RESPONSES.
    void push() noexcept {
        // release: the response slots are visible before the index that announces them.
        shared_.rsp_prod().store(rsp_prod_pvt_, std::memory_order_release);
    }

    // RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: true when the frontend asked (rsp_event) to be told.
    bool push_and_check_notify() noexcept {
        const RingIdx old_prod = shared_.rsp_prod().load(std::memory_order_relaxed);
        const RingIdx new_prod = rsp_prod_pvt_;
        if (old_prod == new_prod) return false;
        // release: the response slots are visible before the index that announces them.
        shared_.rsp_prod().store(new_prod, std::memory_order_release);
        // full fence: the new rsp_prod must be visible before we read rsp_event, pairing with the
        // frontend's fence between writing rsp_event and re-reading rsp_prod.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        const RingIdx event = shared_.rsp_event().load(std::memory_order_relaxed);
        return event_in_range(event, old_prod, new_prod);
    }

    RingIdx req_cons() const noexcept { return req_cons_; }
    RingIdx rsp_prod_pvt() const noexcept { return rsp_prod_pvt_; }
    // Requests consumed but not yet answered.
    RingIdx unanswered() const noexcept { return req_cons_ - rsp_prod_pvt_; }
    const SharedRing<Traits>& shared() const noexcept { return shared_; }

private:
    Avail check_prod(RingIdx prod) const noexcept {
        const RingIdx ahead_of_rsp = prod - rsp_prod_pvt_;
        if (ahead_of_rsp > kSize) return {0, ProdError::overflow};
        if (ahead_of_rsp < static_cast<RingIdx>(req_cons_ - rsp_prod_pvt_)) return {0, ProdError::regressed};
        return {prod - req_cons_, ProdError::none};
    }

    SharedRing<Traits> shared_;
    RingIdx rsp_prod_pvt_;
    RingIdx req_cons_;
};

} // namespace netbackd::ring
