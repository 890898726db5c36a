// The netif control ring (netif.h "Control ring", "Control messages"): its wire layout, the hash
// configuration its messages build, and the backend's server step.
//
// CtrlServer::serve() takes at most `budget` requests per call, copies each out of the shared page
// once, validates it, applies it to a HashConfig the caller owns, and answers it with one response
// carrying a XEN_NETIF_CTRL_STATUS_* code, every message included (unknown types get
// NOT_SUPPORTED). SET_HASH_KEY and SET_HASH_MAPPING read guest memory through the caller's grant
// reader: bool(grant_ref_t gref, std::span<std::byte> out) fills `out` from offset 0 of the granted
// page, false when the grant cannot be read. Limits are Linux netback's (hash.c): a 40-byte key, a
// 128-entry mapping table. A bad req_prod stops the server for good (fatal()).
//
// The gref-mapping messages (GET_GREF_MAPPING_SIZE, ADD/DEL_GREF_MAPPING: staging grants) need
// grant mappings and the data plane, so the server hands them to the caller's GrefHandler:
// xen_netif_ctrl_response(const xen_netif_ctrl_request&). Without one they get NOT_SUPPORTED.
//
// Pure header code: no I/O, no allocation, no exceptions.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "ring/back_ring.hpp"
#include "ring/sring.hpp"
#include "ring/toeplitz.hpp"

namespace netbackd::ring {

// ---------------------------------------------------------------- wire layout, pinned
static_assert(sizeof(xen_netif_ctrl_request) == 16);
static_assert(offsetof(xen_netif_ctrl_request, id) == 0);
static_assert(offsetof(xen_netif_ctrl_request, type) == 2);
static_assert(offsetof(xen_netif_ctrl_request, data) == 4);
static_assert(sizeof(xen_netif_ctrl_response) == 12);
static_assert(offsetof(xen_netif_ctrl_response, id) == 0);
static_assert(offsetof(xen_netif_ctrl_response, type) == 2);
static_assert(offsetof(xen_netif_ctrl_response, status) == 4);
static_assert(offsetof(xen_netif_ctrl_response, data) == 8);
static_assert(offsetof(xen_netif_ctrl_sring, ring) == 64);
static_assert(sizeof(xen_netif_ctrl_sring_entry) == 16);

struct CtrlRing {
    using Sring = xen_netif_ctrl_sring;
    using Request = xen_netif_ctrl_request;
    using Response = xen_netif_ctrl_response;
    static constexpr RingIdx kSize = const_ring_size<Sring>;
};
static_assert(CtrlRing::kSize == 128);

// ---------------------------------------------------------------- the hash configuration
inline constexpr std::size_t kHashKeyMax = 40;
inline constexpr std::uint32_t kHashMappingMax = 128;
inline constexpr std::uint32_t kHashTypesSupported =
    XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP | XEN_NETIF_CTRL_HASH_TYPE_IPV6 |
    XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;

// What a guest set on its control ring; the defaults are a vif that never used it.
struct HashConfig {
    std::uint32_t algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_NONE;
    std::uint32_t flags = 0;
    std::array<std::uint8_t, kHashKeyMax> key{};
    std::uint32_t mapping_size = 0;                       // 0: queue = hash % queues
    std::array<std::uint32_t, kHashMappingMax> mapping{}; // each < the vif's queue count

    bool enabled() const noexcept { return algorithm == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ; }
    bool operator==(const HashConfig&) const = default;

    // The frame's hash for the enabled types, or nullopt (hashing off, or no type applies).
    std::optional<FrameHash> hash(std::span<const std::uint8_t> frame) const noexcept {
        if (!enabled() || flags == 0) return std::nullopt;
        const auto in = hash_input(flags, frame);
        if (!in) return std::nullopt;
        return FrameHash{toeplitz_hash(key, in->view()), in->type};
    }

    // The guest's queue for a hash (netif.h SET_HASH_MAPPING). Always < queues (queues >= 1):
    // entries were checked on the way in, and checked again here at no cost.
    std::uint32_t queue_for(std::uint32_t hash, std::uint32_t queues) const noexcept {
        if (mapping_size == 0) return hash % queues;
        const std::uint32_t q = mapping[hash % std::min(mapping_size, kHashMappingMax)];
        return q < queues ? q : 0;
    }
};

// ---------------------------------------------------------------- the server
struct CtrlResult {
    RingIdx served = 0;   // requests answered in this call
    bool more = false;    // requests left over after the budget ran out
    bool changed = false; // the HashConfig changed
    ProdError fatal = ProdError::none;
};

// Whether a type is one of the gref-mapping (staging grant) messages.
constexpr bool is_gref_message(std::uint16_t type) noexcept {
    return type == XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE ||
           type == XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING || type == XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING;
}

// The GrefHandler of a backend that offers no staging grants.
struct NoGrefMapping {
    xen_netif_ctrl_response operator()(const xen_netif_ctrl_request& req) const noexcept {
        return xen_netif_ctrl_response{req.id, req.type, XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED, 0};
    }
};

class CtrlServer {
public:
    // queues: the vif's multi-queue-num-queues, the bound of every mapping entry.
    CtrlServer(BackRing<CtrlRing>& ring, std::uint32_t queues) noexcept : ring_(ring), queues_(queues) {}

    template <class ReadGrant>
    CtrlResult serve(HashConfig& cfg, RingIdx budget, ReadGrant&& read) noexcept {
        return serve(cfg, budget, read, NoGrefMapping{});
    }

    template <class ReadGrant, class GrefHandler>
    CtrlResult serve(HashConfig& cfg, RingIdx budget, ReadGrant&& read, GrefHandler&& gref) noexcept {
        CtrlResult r;
        if (fatal_ != ProdError::none) {
            r.fatal = fatal_;
            return r;
        }
        const Avail a = ring_.poll();
        if (a.error != ProdError::none) {
            fatal_ = r.fatal = a.error;
            return r;
        }
        const RingIdx n = std::min(a.count, budget);
        for (RingIdx i = 0; i < n; ++i) {
            const xen_netif_ctrl_request req = ring_.copy_request(0);
            ring_.consume(1);
            if (is_gref_message(req.type)) {
                xen_netif_ctrl_response rsp = gref(req);
                rsp.id = req.id; // the answer names the request, whatever the handler wrote
                rsp.type = req.type;
                ring_.put_response(rsp);
                continue;
            }
            const HashConfig before = cfg;
            ring_.put_response(handle(req, cfg, read));
            r.changed = r.changed || !(before == cfg);
        }
        r.served = n;
        r.more = a.count > n;
        return r;
    }

    // One request against cfg; the response to send. Public for tests.
    template <class ReadGrant>
    xen_netif_ctrl_response handle(const xen_netif_ctrl_request& req, HashConfig& cfg,
                                   ReadGrant&& read) const noexcept {
        xen_netif_ctrl_response rsp{req.id, req.type, XEN_NETIF_CTRL_STATUS_SUCCESS, 0};
        rsp.status = apply(req, cfg, read, rsp.data);
        if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS) rsp.data = 0;
        return rsp;
    }

    bool stopped() const noexcept { return fatal_ != ProdError::none; }
    ProdError fatal_error() const noexcept { return fatal_; }
    std::uint32_t queues() const noexcept { return queues_; }

private:
    template <class ReadGrant>
    std::uint32_t apply(const xen_netif_ctrl_request& req, HashConfig& cfg, ReadGrant& read,
                        std::uint32_t& data) const noexcept {
        const std::uint32_t d0 = req.data[0], d1 = req.data[1], d2 = req.data[2];
        switch (req.type) {
        case XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM:
            if (d0 != XEN_NETIF_CTRL_HASH_ALGORITHM_NONE && d0 != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ)
                return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            cfg.algorithm = d0;
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        case XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS:
            if (!cfg.enabled()) return XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
            data = kHashTypesSupported;
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        case XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS:
            if ((d0 & ~kHashTypesSupported) != 0 || !cfg.enabled())
                return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            cfg.flags = d0;
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        case XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: {
            if (d1 > kHashKeyMax) return XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
            std::array<std::byte, kHashKeyMax> key{};
            if (d1 != 0 && !read(static_cast<grant_ref_t>(d0), std::span(key.data(), d1)))
                return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            std::memcpy(cfg.key.data(), key.data(), key.size()); // octets past d1 are zero
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        }
        case XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE:
            data = kHashMappingMax;
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE:
            if (d0 > kHashMappingMax) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            cfg.mapping_size = d0;
            cfg.mapping.fill(0);
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: {
            // XSA-270: offset and length bounded on their own and together, in 64 bits, before
            // any entry is read or written.
            if (d1 > kHashMappingMax) return XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
            if (std::uint64_t{d2} + d1 > cfg.mapping_size) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            std::array<std::uint32_t, kHashMappingMax> part{};
            if (d1 != 0 &&
                !read(static_cast<grant_ref_t>(d0), std::as_writable_bytes(std::span(part.data(), d1))))
                return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            // All or nothing: one entry naming a queue the vif does not have rejects the whole part.
            for (std::uint32_t i = 0; i < d1; ++i)
                if (part[i] >= queues_) return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
            std::copy_n(part.begin(), d1, cfg.mapping.begin() + d2);
            return XEN_NETIF_CTRL_STATUS_SUCCESS;
        }
        default:
            // INVALID, the gref-mapping messages and anything newer: not implemented here.
            return XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
        }
    }

    BackRing<CtrlRing>& ring_;
    std::uint32_t queues_;
    ProdError fatal_ = ProdError::none;
};

} // namespace netbackd::ring
