// Completing a checksum a sender left to "the hardware" (netif csum_blank, Linux's
// CHECKSUM_PARTIAL): the guest kernel a tap stands for would do it, so the tap bridge must.
#pragma once

#include <span>

namespace netbackd::xensim {

// Recomputes the TCP/UDP checksum of an untagged Ethernet frame over IPv4 (any IHL, not a
// fragment) or IPv6 (no extension headers), whatever the field held. False, frame untouched,
// for anything else or a frame shorter than its IP length.
bool fill_l4_checksum(std::span<std::byte> frame) noexcept;

} // namespace netbackd::xensim
