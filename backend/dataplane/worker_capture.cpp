// The worker's side of `netbackd capture` (capture.hpp): reached only while a tap is set on the
// vif, once per burst.
#include "backend/dataplane/worker.hpp"

namespace netbackd::dataplane {
namespace {

std::uint32_t queue_index(const VifRuntime& vif, const QueueRuntime& q) noexcept {
    for (std::size_t i = 0; i < vif.queues.size(); ++i)
        if (vif.queues[i].get() == &q) return static_cast<std::uint32_t>(i);
    return 0;
}

// The tap, announced in capture_busy so the control thread does not free it meanwhile
// (seq_cst both sides: either it sees our announcement, or we see its clearing).
template <class F>
void with_tap(VifRuntime& vif, F&& f) noexcept {
    CaptureTap* tap = vif.capture.load(std::memory_order_seq_cst);
    if (tap == nullptr) return;
    vif.capture_busy.store(tap, std::memory_order_seq_cst);
    if (vif.capture.load(std::memory_order_seq_cst) == tap) f(*tap);
    vif.capture_busy.store(nullptr, std::memory_order_release);
}

} // namespace

void Worker::capture_tx(VifRuntime& vif, const QueueRuntime& q, std::size_t nout) noexcept {
    with_tap(vif, [&](CaptureTap& tap) {
        const std::uint32_t qi = queue_index(vif, q);
        for (std::size_t i = 0; i < nout; ++i) tap.offer(tx_out_[i].m, CaptureDirection::from_guest, qi);
    });
}

void Worker::capture_rx(VifRuntime& vif, const QueueRuntime& q, std::size_t frames) noexcept {
    with_tap(vif, [&](CaptureTap& tap) {
        const std::uint32_t qi = queue_index(vif, q);
        for (std::size_t i = 0; i < frames; ++i) {
            const RxFrame& f = rx_frames_[i];
            // What the guest actually got: a frame whose copy failed is dropped, not delivered.
            if (copies_.ok(f.first_seg, f.first_seg + f.nsegs))
                tap.offer(f.m, CaptureDirection::to_guest, qi);
        }
    });
}

} // namespace netbackd::dataplane
