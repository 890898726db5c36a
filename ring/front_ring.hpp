// Frontend end of a netif ring: produces requests, consumes responses (ring.h "front ring").
// Used by the simulated netfront and the tests; mirrors BackRing with the roles swapped.
//
// Memory ordering, mapped from the ring.h macros:
//   read rsp_prod        -> load(acquire)            (xen_rmb before reading the responses)
//   publish req_prod     -> store(release)           (xen_wmb before the producer index)
//   check req_event      -> seq_cst fence, then load (xen_mb between publishing and checking)
//   final check          -> store rsp_event, seq_cst fence, reload rsp_prod (xen_mb)
#pragma once

#include <atomic>
#include <cassert>

#include "ring/back_ring.hpp"
#include "ring/sring.hpp"

namespace netbackd::ring {

template <class Traits>
class FrontRing {
public:
    using Request = typename Traits::Request;
    using Response = typename Traits::Response;
    static constexpr RingIdx kSize = Traits::kSize;

    // FRONT_RING_ATTACH to a page already set up with init_shared_ring(page, start).
    explicit FrontRing(Page page, RingIdx start = 0) noexcept
        : shared_(page), req_prod_pvt_(start), rsp_cons_(start) {}

    // RING_FREE_REQUESTS.
    RingIdx free_requests() const noexcept { return kSize - (req_prod_pvt_ - rsp_cons_); }
    bool full() const noexcept { return free_requests() == 0; }

    // Writes the next request slot (not yet visible to the backend). Precondition: !full().
    template <class T = Request>
    void put_request(const T& req) noexcept {
        assert(!full());
        shared_.store(req_prod_pvt_, req);
        ++req_prod_pvt_;
    }

    // RING_PUSH_REQUESTS.
    void push() noexcept {
        // release: the request slots are visible before the index that announces them.
        shared_.req_prod().store(req_prod_pvt_, std::memory_order_release);
    }

    // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: true when the backend asked (req_event) to be told.
    bool push_and_check_notify() noexcept {
        const RingIdx old_prod = shared_.req_prod().load(std::memory_order_relaxed);
        const RingIdx new_prod = req_prod_pvt_;
        if (old_prod == new_prod) return false;
        // release: the request slots are visible before the index that announces them.
        shared_.req_prod().store(new_prod, std::memory_order_release);
        // full fence: the new req_prod must be visible before we read req_event, pairing with the
        // backend's fence between writing req_event and re-reading req_prod.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        const RingIdx event = shared_.req_event().load(std::memory_order_relaxed);
        return event_in_range(event, old_prod, new_prod);
    }

    // Responses ready to consume; an error when the backend claims more responses than we have
    // requests outstanding (RING_RESPONSE_PROD_OVERFLOW) or moves rsp_prod backwards.
    Avail poll() noexcept {
        // acquire: the response slots written before rsp_prod was published are visible to us.
        const RingIdx prod = shared_.rsp_prod().load(std::memory_order_acquire);
        const RingIdx ahead = prod - rsp_cons_;
        if (ahead > static_cast<RingIdx>(req_prod_pvt_ - rsp_cons_))
            return {0, ahead > kSize ? ProdError::overflow : ProdError::regressed};
        return {ahead, ProdError::none};
    }

    // RING_FINAL_CHECK_FOR_RESPONSES: call before sleeping; a count below want (and no error)
    // means the backend will notify once the want-th response is published.
    Avail final_check(RingIdx want = 1) noexcept {
        if (Avail a = poll(); a.count >= want || a.error != ProdError::none) return a;
        shared_.rsp_event().store(rsp_cons_ + want, std::memory_order_relaxed);
        // full fence: our rsp_event store must be visible before we re-read rsp_prod, or the
        // backend may skip the notify while we miss its new responses (store->load order).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return poll();
    }

    // Copies the slot rsp_cons + offset out of the page (one fetch); offset < poll().count.
    template <class T = Response>
    T copy_response(RingIdx offset) const noexcept {
        return shared_.template load<T>(rsp_cons_ + offset);
    }

    void consume(RingIdx n) noexcept {
        rsp_cons_ += n;
        assert(req_prod_pvt_ - rsp_cons_ <= kSize);
    }

    RingIdx req_prod_pvt() const noexcept { return req_prod_pvt_; }
    RingIdx rsp_cons() const noexcept { return rsp_cons_; }
    const SharedRing<Traits>& shared() const noexcept { return shared_; }

private:
    SharedRing<Traits> shared_;
    RingIdx req_prod_pvt_;
    RingIdx rsp_cons_;
};

} // namespace netbackd::ring
