#include "xensim/netfront/latency.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace netbackd::xensim {

namespace {

using Clock = std::chrono::steady_clock;

// A lost frame (a backend dropping it) must not wedge the run; real round trips are microseconds.
constexpr auto kLossTimeout = std::chrono::milliseconds(100);

std::vector<std::byte> make_frame(MacAddr src, MacAddr dst, std::size_t size) {
    UdpFrameSpec spec;
    spec.src = src;
    spec.dst = dst;
    spec.size = size;
    std::vector<std::byte> f(size);
    if (size > platform::kPageSize || !build_udp_frame(spec, f))
        throw std::invalid_argument(fmt::format("latency mode needs a frame of {}..{} bytes, not {}",
                                                kUdpFrameHeaders, platform::kPageSize, size));
    return f;
}

} // namespace

double percentile_us(const std::vector<std::uint32_t>& sorted_ns, double p) noexcept {
    if (sorted_ns.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted_ns.size())));
    const std::size_t i = std::min(sorted_ns.size() - 1, rank == 0 ? 0 : rank - 1);
    return sorted_ns[i] / 1000.0;
}

PingPong::PingPong(NetfrontIo& a, NetfrontIo& b, MacAddr mac_a, MacAddr mac_b, std::size_t size)
    : a_(a), b_(b), frame_ab_(make_frame(mac_a, mac_b, size)), frame_ba_(make_frame(mac_b, mac_a, size)) {
    samples_ns_.reserve(1 << 20);
    on_attach();
}

void PingPong::on_attach() {
    if (a_.attached()) a_.stamp_tx_buffers(frame_ab_);
    if (b_.attached()) b_.stamp_tx_buffers(frame_ba_);
}

bool PingPong::send(NetfrontIo& from, Clock::time_point deadline) noexcept {
    const auto len = static_cast<std::uint16_t>(frame_ab_.size());
    for (;;) {
        from.reap_tx(0);
        const SendResult r = from.send_stamped(0, len);
        if (r == SendResult::queued) {
            from.flush(0);
            return true;
        }
        if (r == SendResult::refused || Clock::now() >= deadline) return false;
    }
}

bool PingPong::receive(NetfrontIo& on, Clock::time_point deadline) noexcept {
    RxFrame f;
    for (unsigned spins = 0;; ++spins) {
        if (on.next_rx(0, f)) {
            on.refill(0);
            return true;
        }
        // Reading the clock costs more than a ring check: look at it now and then.
        if ((spins & 63) == 63 && Clock::now() >= deadline) return false;
    }
}

void PingPong::run_for(std::chrono::nanoseconds budget) {
    const auto end = Clock::now() + budget;
    while (a_.attached() && b_.attached() && a_.queue_count() != 0 && b_.queue_count() != 0) {
        const auto t0 = Clock::now();
        if (t0 >= end) break;
        const auto deadline = t0 + kLossTimeout;
        if (!send(a_, deadline) || !receive(b_, deadline) || !send(b_, deadline) || !receive(a_, deadline)) {
            ++lost_;
            // Whatever arrives late belongs to the lost round: drop it so the next one starts clean.
            RxFrame f;
            while (a_.next_rx(0, f)) {}
            while (b_.next_rx(0, f)) {}
            a_.refill(0);
            b_.refill(0);
            continue;
        }
        const auto rtt = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        samples_ns_.push_back(static_cast<std::uint32_t>(std::min<long long>(rtt, UINT32_MAX)));
    }
}

LatencyStats PingPong::stats() const {
    std::vector<std::uint32_t> s = samples_ns_;
    std::sort(s.begin(), s.end());
    LatencyStats out;
    out.rounds = s.size();
    out.lost = lost_;
    if (!s.empty()) {
        out.p50_us = percentile_us(s, 0.50);
        out.p99_us = percentile_us(s, 0.99);
        out.p999_us = percentile_us(s, 0.999);
        out.min_us = s.front() / 1000.0;
        out.max_us = s.back() / 1000.0;
    }
    return out;
}

std::string to_json(const LatencyStats& s) {
    return fmt::format(
        R"({{"rounds":{},"lost":{},"p50_us":{:.2f},"p99_us":{:.2f},"p999_us":{:.2f},"min_us":{:.2f},"max_us":{:.2f}}})",
        s.rounds, s.lost, s.p50_us, s.p99_us, s.p999_us, s.min_us, s.max_us);
}

} // namespace netbackd::xensim
