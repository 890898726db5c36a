#include "backend/dataplane/mesh.hpp"

#include <rte_mbuf.h>

namespace netbackd::dataplane {

WorkerMesh::WorkerMesh(std::size_t workers, std::size_t ring_capacity) {
    for (std::size_t i = 0; i < workers; ++i) peers_.push_back(std::make_unique<Peer>());
    for (std::size_t i = 0; i < workers * workers; ++i)
        rings_.push_back(std::make_unique<SpscQueue<CrossFrame>>(ring_capacity));
}

WorkerMesh::~WorkerMesh() {
    // Workers have stopped: whatever is still in flight between them goes back to its pool.
    for (auto& r : rings_)
        while (auto f = r->pop()) rte_pktmbuf_free(f->m);
}

bool WorkerMesh::inbound_pending(std::size_t self) const noexcept {
    for (std::size_t from = 0; from < size(); ++from)
        if (from != self && !rings_[from * size() + self]->empty()) return true;
    return false;
}

void WorkerMesh::wake(std::size_t to) noexcept {
    // Pairs with going_to_sleep(): either the sleeper sees our frames in its final check, or we
    // see its flag here.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    Peer& p = *peers_[to];
    if (p.asleep.load(std::memory_order_relaxed) && p.asleep.exchange(false, std::memory_order_acq_rel))
        platform::signal_eventfd(p.wake_fd.load(std::memory_order_relaxed));
}

} // namespace netbackd::dataplane
