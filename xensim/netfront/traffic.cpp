#include "xensim/netfront/traffic.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

#include <poll.h>
#include <sched.h>

#include <fmt/format.h>

namespace netbackd::xensim {

Traffic::Traffic(NetfrontIo& io, TrafficOptions options) : io_(io), opt_(std::move(options)) {
    if (opt_.batch == 0) opt_.batch = 1;
    if (opt_.generate) {
        frame_.resize(opt_.frame.size);
        if (!build_udp_frame(opt_.frame, frame_))
            throw std::invalid_argument(
                fmt::format("cannot build a {}-byte IPv4/UDP frame (at least {}, at most 65549)",
                            opt_.frame.size, kUdpFrameHeaders));
    }
    if (io_.attached()) on_attach();
}

std::optional<std::string> Traffic::on_attach() {
    blocked_ = false;
    if (!opt_.generate) return std::nullopt;
    if (frame_.size() > platform::kPageSize && !io_.features().sg) {
        blocked_ = true;
        return fmt::format("a {}-byte frame needs several slots and the backend offers no feature-sg",
                           frame_.size());
    }
    const bool offload = opt_.csum_offload && io_.features().csum_offload;
    UdpFrameSpec spec = opt_.frame;
    spec.partial_csum = offload;
    build_udp_frame(spec, frame_);
    flags_ = offload ? ring::TxFrontFlags{true, true} : ring::TxFrontFlags{};
    if (frame_.size() <= platform::kPageSize) io_.stamp_tx_buffers(frame_);
    return std::nullopt;
}

std::uint64_t Traffic::frames_due(Clock::time_point now) noexcept {
    if (opt_.pps <= 0) return UINT64_MAX;
    if (!pace_from_) pace_from_ = now;
    const auto per_frame = frame_gap();
    auto due = static_cast<std::uint64_t>(std::chrono::duration<double>(now - *pace_from_) / per_frame) + 1;
    // Slots missed while the ring was full are given up, all but one batch of them.
    if (due > queued_ + opt_.batch) {
        const auto skipped = due - (queued_ + opt_.batch);
        *pace_from_ += std::chrono::duration_cast<Clock::duration>(per_frame * static_cast<double>(skipped));
        due -= skipped;
    }
    return due;
}

std::optional<Traffic::Clock::time_point> Traffic::next_due() const noexcept {
    if (opt_.pps <= 0 || !pace_from_ || !generating()) return std::nullopt;
    return *pace_from_ +
           std::chrono::duration_cast<Clock::duration>(frame_gap() * static_cast<double>(queued_));
}

bool Traffic::step() noexcept {
    allowed_ = frames_due(Clock::now());
    bool progress = false;
    bool tx_full = false, rx_empty = true;
    const bool stamped = frame_.size() <= platform::kPageSize;
    for (unsigned q = 0; q < io_.queue_count(); ++q) {
        if (io_.reap_tx(q) != 0) progress = true;
        std::size_t n = 0;
        while (n < opt_.batch && want_more()) {
            const SendResult r = stamped
                                     ? io_.send_stamped(q, static_cast<std::uint16_t>(frame_.size()), flags_)
                                     : io_.send(q, frame_, TxMeta{flags_, std::nullopt, 0});
            if (r == SendResult::refused) blocked_ = true; // on_attach() explained why
            if (r == SendResult::busy) tx_full = true;
            if (r != SendResult::queued) break;
            ++n;
            ++queued_;
        }
        if (n != 0) {
            io_.flush(q);
            progress = true;
        }
        RxFrame f;
        bool got = false;
        while (io_.next_rx(q, f)) got = true;
        if (got) {
            io_.refill(q);
            progress = true;
            rx_empty = false;
        }
    }
    ++steps_;
    if (tx_full) ++tx_full_steps_;
    if (rx_empty) ++rx_empty_steps_;
    return progress;
}

void Traffic::run_for(std::chrono::nanoseconds budget) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + budget;
    for (;;) {
        const bool progress = step();
        const auto now = std::chrono::steady_clock::now();
        if ((finished() && !opt_.sink) || now >= deadline) break;
        if (progress) continue;
        auto wake = deadline;
        // A frame overdue is held back by the full ring: that wakes us as without a pace.
        if (const auto due = next_due(); due && *due > now) wake = std::min(wake, *due);
        if (opt_.poll && wake < deadline) {
            // Paced: nothing is due before the next frame, and a polling driver asks for no events.
            std::this_thread::sleep_until(wake);
            continue;
        }
        if (opt_.poll) {
            // Nothing to do until the backend answers: let other guests sharing this core run
            // (the scaling scenario puts every generator on one CPU).
            sched_yield();
            continue;
        }
        io_.drain_events();
        bool work = false;
        for (unsigned q = 0; q < io_.queue_count(); ++q) work = io_.prepare_to_sleep(q) || work;
        if (work) continue;
        const auto left = std::chrono::duration_cast<std::chrono::microseconds>(wake - Clock::now()).count();
        // Bounded, so a caller that also watches the store gets its turn.
        const auto us = std::clamp<long long>(left, 0, 100'000);
        const timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
        pollfd p{io_.event_fd(), POLLIN, 0};
        ::ppoll(&p, 1, &ts, nullptr);
        io_.drain_events();
    }
    ran_ += std::chrono::steady_clock::now() - start;
}

bool Traffic::finished() const noexcept {
    if (!opt_.generate || opt_.count == 0 || queued_ < opt_.count) return false;
    const auto& c = io_.counters();
    return c.tx_pkts + c.tx_errors >= opt_.count;
}

TrafficStats Traffic::stats() const noexcept {
    const auto& c = io_.counters();
    TrafficStats s;
    s.tx_pkts = c.tx_pkts;
    s.tx_bytes = c.tx_bytes;
    s.rx_pkts = c.rx_pkts;
    s.rx_bytes = c.rx_bytes;
    s.tx_errors = c.tx_errors;
    s.steps = steps_;
    s.tx_full_steps = tx_full_steps_;
    s.rx_empty_steps = rx_empty_steps_;
    s.seconds = std::chrono::duration<double>(ran_).count();
    return s;
}

std::string to_json(const TrafficStats& s) {
    return fmt::format(
        R"({{"tx_pkts":{},"tx_bytes":{},"rx_pkts":{},"rx_bytes":{},"tx_errors":{},"steps":{},"tx_full_steps":{},)"
        R"("rx_empty_steps":{},"seconds":{:.3f}}})",
        s.tx_pkts, s.tx_bytes, s.rx_pkts, s.rx_bytes, s.tx_errors, s.steps, s.tx_full_steps, s.rx_empty_steps,
        s.seconds);
}

} // namespace netbackd::xensim
