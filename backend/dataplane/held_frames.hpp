// Frames of one vif's TX waiting for room in the backlog of another vif: one this worker runs
// (read directly), or one on another worker (the room its owner publishes, cross_room.hpp).
//
// Back-pressure between guests: while any of its frames wait, the worker reads none of that
// vif's TX rings, so its guest's ring fills and its netfront stops the queue, as a bridge port
// whose queue is stopped would make the sender wait instead of dropping what it sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "ring/tx_packet.hpp"

struct rte_mbuf;

namespace netbackd::dataplane {

class CrossRoom;

// A guest frame on its way to the switch, with what its TX request said of it.
struct TxOut {
    rte_mbuf* m;
    bool csum_blank;
    bool data_validated;
    std::optional<ring::TxGso> gso;
};

// At most one TX burst waits: frames are added only in the burst that found a backlog full,
// and no further burst is read until the last of them has gone.
class HeldFrames {
public:
    // Sized when the vif is created (control thread), never on the fast path. Without room a
    // frame never waits.
    void reserve(std::size_t frames) { frames_.resize(frames); }
    std::size_t capacity() const noexcept { return frames_.size(); }
    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    bool push(const TxOut& f) noexcept {
        if (first_ + count_ == frames_.size()) return false;
        frames_[first_ + count_++] = f;
        return true;
    }
    const TxOut& front() const noexcept { return frames_[first_]; }
    void pop() noexcept {
        ++first_;
        if (--count_ == 0) first_ = 0;
    }

    // TSC tick at which the first frame stops waiting and takes its chances (worker only).
    std::uint64_t until = 0;
    // When the first frame waits for a vif on another worker: that vif's published room and
    // the word last read from it (cross_room.hpp); a change means poll again instead of sleeping.
    const CrossRoom* room = nullptr;
    std::uint64_t seen = 0;

private:
    std::vector<TxOut> frames_;
    std::size_t first_ = 0;
    std::size_t count_ = 0;
};

} // namespace netbackd::dataplane
