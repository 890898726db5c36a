// The control ring: every message's status codes and effect, the hostile cases (XSA-270 mapping
// bounds, an unreadable grant, a mapping-size overflow, a producer jump, a budget), and Toeplitz
// against Microsoft's published RSS verification vectors.
#include <array>
#include <cstring>
#include <map>
#include <vector>

#include <catch2/catch.hpp>

#include "ring/ctrl_ring.hpp"
#include "tests/ring/ring_pairs.hpp"

using namespace netbackd::ring;
using namespace netbackd::ring::test;

namespace {

using CtrlPair = RingPair<CtrlRing>;

// Guest pages by gref; a gref not in the map is not granted.
struct FakeGrants {
    std::map<grant_ref_t, std::vector<std::byte>> pages;
    int reads = 0;
    bool operator()(grant_ref_t gref, std::span<std::byte> out) {
        ++reads;
        const auto it = pages.find(gref);
        if (it == pages.end() || out.size() > it->second.size()) return false;
        std::memcpy(out.data(), it->second.data(), out.size());
        return true;
    }
    void put_words(grant_ref_t gref, const std::vector<std::uint32_t>& w) {
        auto& p = pages[gref];
        p.assign(kPageSize, std::byte{0});
        std::memcpy(p.data(), w.data(), w.size() * 4);
    }
    void put_bytes(grant_ref_t gref, std::span<const std::uint8_t> b) {
        auto& p = pages[gref];
        p.assign(kPageSize, std::byte{0});
        std::memcpy(p.data(), b.data(), b.size());
    }
};

struct Ctrl {
    explicit Ctrl(std::uint32_t queues = 4, RingIdx start = 0) : p(start), server(p.back, queues) {}
    // Sends one request, serves it, returns its response.
    xen_netif_ctrl_response call(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0,
                                 std::uint32_t d2 = 0) {
        p.front.put_request(xen_netif_ctrl_request{next_id, type, {d0, d1, d2}});
        p.front.push();
        const CtrlResult r = server.serve(cfg, 64, grants);
        REQUIRE(r.served == 1);
        REQUIRE(r.fatal == ProdError::none);
        p.back.push();
        REQUIRE(p.front.poll().count == 1);
        const auto rsp = p.front.copy_response(0);
        p.front.consume(1);
        CHECK(rsp.id == next_id);
        CHECK(rsp.type == type);
        ++next_id;
        return rsp;
    }
    std::uint32_t status(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0,
                         std::uint32_t d2 = 0) {
        return call(type, d0, d1, d2).status;
    }
    CtrlPair p;
    CtrlServer server;
    HashConfig cfg;
    FakeGrants grants;
    std::uint16_t next_id = 100;
};

constexpr std::array<std::uint8_t, 40> kMsKey = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                                 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                                 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                                 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// src address + dst address (+ src port + dst port), as netif.h's hash types lay them out.
template <std::size_t N>
std::vector<std::uint8_t> hash_input_of(const std::array<std::uint8_t, N>& src,
                                        const std::array<std::uint8_t, N>& dst, std::uint16_t sport,
                                        std::uint16_t dport, bool ports) {
    std::vector<std::uint8_t> b(2 * N + (ports ? 4 : 0));
    for (std::size_t i = 0; i < N; ++i) {
        b[i] = src[i];
        b[N + i] = dst[i];
    }
    if (ports) {
        b[2 * N] = static_cast<std::uint8_t>(sport >> 8);
        b[2 * N + 1] = static_cast<std::uint8_t>(sport);
        b[2 * N + 2] = static_cast<std::uint8_t>(dport >> 8);
        b[2 * N + 3] = static_cast<std::uint8_t>(dport);
    }
    return b;
}
using V6 = std::array<std::uint8_t, 16>;

// An Ethernet + IPv4 + TCP (or UDP) frame with the given addresses and ports.
std::vector<std::uint8_t> v4_frame(std::array<std::uint8_t, 4> src, std::array<std::uint8_t, 4> dst,
                                   std::uint16_t sport, std::uint16_t dport, std::uint8_t proto) {
    std::vector<std::uint8_t> f(14 + 20 + 20, 0);
    f[12] = 0x08;
    f[14] = 0x45;
    f[14 + 9] = proto;
    std::memcpy(&f[14 + 12], src.data(), 4);
    std::memcpy(&f[14 + 16], dst.data(), 4);
    f[34] = static_cast<std::uint8_t>(sport >> 8);
    f[35] = static_cast<std::uint8_t>(sport);
    f[36] = static_cast<std::uint8_t>(dport >> 8);
    f[37] = static_cast<std::uint8_t>(dport);
    return f;
}

} // namespace

TEST_CASE("Toeplitz matches the Microsoft RSS verification suite, IPv4", "[ring][ctrl][toeplitz]") {
    struct V {
        std::array<std::uint8_t, 4> dst;
        std::uint16_t dport;
        std::array<std::uint8_t, 4> src;
        std::uint16_t sport;
        std::uint32_t ip, tcp;
    };
    const V vs[] = {
        {{161, 142, 100, 80}, 1766, {66, 9, 149, 187}, 2794, 0x323e8fc2, 0x51ccc178},
        {{65, 69, 140, 83}, 4739, {199, 92, 111, 2}, 14230, 0xd718262a, 0xc626b0ea},
        {{12, 22, 207, 184}, 38024, {24, 19, 198, 95}, 12898, 0xd2d0a5de, 0x5c2b394a},
        {{209, 142, 163, 6}, 2217, {38, 27, 205, 30}, 48228, 0x82989176, 0xafc7327f},
        {{202, 188, 127, 2}, 1303, {153, 39, 163, 191}, 44251, 0x5d1809c5, 0x10e828a2},
    };
    for (const V& v : vs) {
        CHECK(toeplitz_hash(kMsKey, hash_input_of(v.src, v.dst, v.sport, v.dport, false)) == v.ip);
        CHECK(toeplitz_hash(kMsKey, hash_input_of(v.src, v.dst, v.sport, v.dport, true)) == v.tcp);
        // The same through a whole frame and the config, which picks the maximal type.
        HashConfig cfg;
        cfg.algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
        std::copy(kMsKey.begin(), kMsKey.end(), cfg.key.begin());
        const auto tcp = v4_frame(v.src, v.dst, v.sport, v.dport, 6);
        cfg.flags = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
        REQUIRE(cfg.hash(tcp).has_value());
        CHECK(cfg.hash(tcp)->value == v.tcp);
        CHECK(cfg.hash(tcp)->type == _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
        const auto udp = v4_frame(v.src, v.dst, v.sport, v.dport, 17);
        REQUIRE(cfg.hash(udp).has_value());
        CHECK(cfg.hash(udp)->value == v.ip);
        CHECK(cfg.hash(udp)->type == _XEN_NETIF_CTRL_HASH_TYPE_IPV4);
        cfg.flags = XEN_NETIF_CTRL_HASH_TYPE_IPV4;
        CHECK(cfg.hash(tcp)->value == v.ip);
        cfg.flags = XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
        CHECK_FALSE(cfg.hash(udp).has_value());
    }
}

TEST_CASE("Toeplitz matches the Microsoft RSS verification suite, IPv6", "[ring][ctrl][toeplitz]") {
    struct V {
        V6 dst;
        std::uint16_t dport;
        V6 src;
        std::uint16_t sport;
        std::uint32_t ip, tcp;
    };
    const V vs[] = {
        {{0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x01},
         1766,
         {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x07},
         2794,
         0x2cc18cd5,
         0x40207d3d},
        {{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
         4739,
         {0x3f, 0xfe, 0x05, 0x01, 0x00, 0x08, 0, 0, 0x02, 0x60, 0x97, 0xff, 0xfe, 0x40, 0xef, 0xab},
         14230,
         0x0f0c461c,
         0xdde51bbf},
        {{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf},
         38024,
         {0x3f, 0xfe, 0x19, 0x00, 0x45, 0x45, 0x00, 0x03, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf},
         44251,
         0x4b61e985,
         0x02d1feef},
    };
    for (const V& v : vs) {
        CHECK(toeplitz_hash(kMsKey, hash_input_of(v.src, v.dst, v.sport, v.dport, false)) == v.ip);
        CHECK(toeplitz_hash(kMsKey, hash_input_of(v.src, v.dst, v.sport, v.dport, true)) == v.tcp);
        // Through a frame: Ethernet + IPv6 + TCP.
        std::vector<std::uint8_t> f(14 + 40 + 20, 0);
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60;
        f[14 + 6] = 6;
        std::memcpy(&f[14 + 8], v.src.data(), 16);
        std::memcpy(&f[14 + 24], v.dst.data(), 16);
        f[54] = static_cast<std::uint8_t>(v.sport >> 8);
        f[55] = static_cast<std::uint8_t>(v.sport);
        f[56] = static_cast<std::uint8_t>(v.dport >> 8);
        f[57] = static_cast<std::uint8_t>(v.dport);
        HashConfig cfg;
        cfg.algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
        std::copy(kMsKey.begin(), kMsKey.end(), cfg.key.begin());
        cfg.flags = XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP | XEN_NETIF_CTRL_HASH_TYPE_IPV6;
        REQUIRE(cfg.hash(f).has_value());
        CHECK(cfg.hash(f)->value == v.tcp);
        CHECK(cfg.hash(f)->type == _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
        cfg.flags = XEN_NETIF_CTRL_HASH_TYPE_IPV6;
        CHECK(cfg.hash(f)->value == v.ip);
        CHECK(cfg.hash(f)->type == _XEN_NETIF_CTRL_HASH_TYPE_IPV6);
    }
}

TEST_CASE("a truncated or non-IP frame gets no hash", "[ring][ctrl][toeplitz]") {
    HashConfig cfg;
    cfg.algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
    cfg.flags = kHashTypesSupported;
    auto f = v4_frame({1, 2, 3, 4}, {5, 6, 7, 8}, 1, 2, 6);
    for (std::size_t n = 0; n < 34; ++n) CHECK_FALSE(cfg.hash(std::span(f.data(), n)).has_value());
    // Ports cut off: the address hash is what remains.
    REQUIRE(cfg.hash(std::span(f.data(), 35)).has_value());
    CHECK(cfg.hash(std::span(f.data(), 35))->type == _XEN_NETIF_CTRL_HASH_TYPE_IPV4);
    f[12] = 0x08;
    f[13] = 0x06; // ARP
    CHECK_FALSE(cfg.hash(f).has_value());
}

TEST_CASE("ctrl: SET_HASH_ALGORITHM takes none and Toeplitz only", "[ring][ctrl]") {
    Ctrl c;
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 2) == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    CHECK(c.cfg.algorithm == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ) ==
          XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(c.cfg.enabled());
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_HASH_ALGORITHM_NONE) ==
          XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK_FALSE(c.cfg.enabled());
}

TEST_CASE("ctrl: GET/SET_HASH_FLAGS need an algorithm and known flags", "[ring][ctrl]") {
    Ctrl c;
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS) == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_HASH_TYPE_IPV4) ==
          XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    const auto get = c.call(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS);
    CHECK(get.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(get.data == kHashTypesSupported);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 1u << 4) == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    CHECK(c.cfg.flags == 0);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP) ==
          XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(c.cfg.flags == XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
}

TEST_CASE("ctrl: SET_HASH_KEY reads the key by grant, zero-fills, refuses what it cannot read",
          "[ring][ctrl]") {
    Ctrl c;
    c.grants.put_bytes(7, kMsKey);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 7, 40) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(std::equal(kMsKey.begin(), kMsKey.end(), c.cfg.key.begin()));
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 7, 4) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(std::equal(kMsKey.begin(), kMsKey.begin() + 4, c.cfg.key.begin()));
    CHECK(std::all_of(c.cfg.key.begin() + 4, c.cfg.key.end(), [](auto b) { return b == 0; }));
    SECTION("too long") {
        const int reads = c.grants.reads;
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 7, 41) == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 7, 0xffffffffu) ==
              XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        CHECK(c.grants.reads == reads); // refused before touching guest memory
    }
    SECTION("a gref that is not granted: an error status, the old key kept") {
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 999, 40) == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(std::equal(kMsKey.begin(), kMsKey.begin() + 4, c.cfg.key.begin()));
    }
    SECTION("size zero clears the key without reading") {
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 999, 0) == XEN_NETIF_CTRL_STATUS_SUCCESS);
        CHECK(std::all_of(c.cfg.key.begin(), c.cfg.key.end(), [](auto b) { return b == 0; }));
    }
}

TEST_CASE("ctrl: GET/SET_HASH_MAPPING_SIZE, and a size beyond the maximum", "[ring][ctrl]") {
    Ctrl c;
    const auto get = c.call(XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE);
    CHECK(get.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(get.data == kHashMappingMax);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 64) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(c.cfg.mapping_size == 64);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, kHashMappingMax + 1) ==
          XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 0xffffffffu) ==
          XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    CHECK(c.cfg.mapping_size == 64);
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 0) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(c.cfg.mapping_size == 0);
}

TEST_CASE("ctrl: SET_HASH_MAPPING fills the table, every index bounds-checked (XSA-270)", "[ring][ctrl]") {
    Ctrl c(4);
    REQUIRE(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 8) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    c.grants.put_words(5, {3, 2, 1, 0});
    CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 4) == XEN_NETIF_CTRL_STATUS_SUCCESS);
    CHECK(c.cfg.mapping[4] == 3);
    CHECK(c.cfg.mapping[7] == 0);
    CHECK(c.cfg.queue_for(4, 4) == 3);
    CHECK(c.cfg.queue_for(8 + 5, 4) == 2);
    const HashConfig good = c.cfg;
    const int reads = c.grants.reads;
    SECTION("offset + length past the table") {
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 5) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 1, 8) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        // Wrapping in 32 bits would land inside the table.
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 0xfffffffeu) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 0xffffffffu, 1) ==
              XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        CHECK(c.grants.reads == reads); // refused before touching guest memory
    }
    SECTION("an entry naming a queue the vif does not have: all or nothing") {
        c.grants.put_words(6, {1, 4});
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 6, 2, 0) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
        c.grants.put_words(6, {1, 0xffffffffu});
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 6, 2, 0) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    }
    SECTION("a table gref that is not granted") {
        CHECK(c.status(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 999, 4, 0) ==
              XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    }
    CHECK(c.cfg == good);
}

TEST_CASE("ctrl: unknown and unimplemented types are answered NOT_SUPPORTED", "[ring][ctrl]") {
    Ctrl c;
    for (std::uint16_t t :
         {std::uint16_t{XEN_NETIF_CTRL_TYPE_INVALID},
          std::uint16_t{XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE},
          std::uint16_t{XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING},
          std::uint16_t{XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING}, std::uint16_t{11}, std::uint16_t{0xffff}}) {
        const auto r = c.call(t, 1, 2, 3);
        CHECK(r.status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
        CHECK(r.data == 0);
    }
    CHECK(c.cfg == HashConfig{});
}

TEST_CASE("ctrl: the gref-mapping messages go to the GrefHandler, answered under their own id and type",
          "[ring][ctrl][staging]") {
    Ctrl c;
    std::vector<std::uint16_t> seen;
    // A handler that gets the id and type wrong: the server answers the request it took anyway.
    auto gref = [&](const xen_netif_ctrl_request& req) {
        seen.push_back(req.type);
        return xen_netif_ctrl_response{999, 0, XEN_NETIF_CTRL_STATUS_SUCCESS, req.data[0] + 1};
    };
    for (std::uint16_t t : {std::uint16_t{XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE},
                            std::uint16_t{XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING},
                            std::uint16_t{XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING},
                            std::uint16_t{XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM}}) {
        c.p.front.put_request(xen_netif_ctrl_request{7, t, {41, 0, 0}});
        c.p.front.push();
        REQUIRE(c.server.serve(c.cfg, 64, c.grants, gref).served == 1);
        c.p.back.push();
        REQUIRE(c.p.front.poll().count == 1);
        const auto rsp = c.p.front.copy_response(0);
        c.p.front.consume(1);
        CHECK(rsp.id == 7);
        CHECK(rsp.type == t);
        if (t != XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM) CHECK(rsp.data == 42);
    }
    // The hash message never reached the handler.
    CHECK(seen == std::vector<std::uint16_t>{XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE,
                                             XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING,
                                             XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING});
}

TEST_CASE("ctrl: a storm is served a budget at a time, every message answered", "[ring][ctrl]") {
    Ctrl c(4, 0xffffff80u); // across 2^32
    int answered = 0;
    for (int round = 0; round < 5; ++round) {
        while (!c.p.front.full())
            c.p.front.put_request(xen_netif_ctrl_request{
                static_cast<std::uint16_t>(answered), XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, {}});
        c.p.front.push();
        RingIdx served = 0;
        for (;;) {
            const CtrlResult r = c.server.serve(c.cfg, 16, c.grants);
            REQUIRE(r.fatal == ProdError::none);
            REQUIRE(r.served <= 16);
            served += r.served;
            if (!r.more) break;
        }
        CHECK(served == CtrlRing::kSize);
        c.p.back.push();
        const Avail a = c.p.front.poll();
        REQUIRE(a.count == CtrlRing::kSize);
        for (RingIdx i = 0; i < a.count; ++i) {
            const auto rsp = c.p.front.copy_response(i);
            CHECK(rsp.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
            CHECK(rsp.data == kHashMappingMax);
        }
        c.p.front.consume(a.count);
        answered += static_cast<int>(a.count);
    }
    CHECK(answered == 5 * static_cast<int>(CtrlRing::kSize));
}

TEST_CASE("ctrl: a producer jump stops the server for good", "[ring][ctrl]") {
    Ctrl c;
    c.p.shared().req_prod().store(CtrlRing::kSize + 1);
    CtrlResult r = c.server.serve(c.cfg, 64, c.grants);
    CHECK(r.fatal == ProdError::overflow);
    CHECK(r.served == 0);
    c.p.shared().req_prod().store(0);
    r = c.server.serve(c.cfg, 64, c.grants);
    CHECK(r.fatal == ProdError::overflow);
    CHECK(c.server.stopped());
}

TEST_CASE("ctrl: each request is copied out once", "[ring][ctrl]") {
    // The grant reader rewrites the request slot while the server handles it (as a hostile guest
    // on another CPU could): the response still answers what was read first.
    Ctrl c;
    c.p.front.put_request(xen_netif_ctrl_request{1, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, {7, 8, 0}});
    c.p.front.push();
    c.grants.put_bytes(7, kMsKey);
    auto evil = [&](grant_ref_t g, std::span<std::byte> out) {
        c.p.shared().store(0, xen_netif_ctrl_request{2, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, {9, 9, 9}});
        return c.grants(g, out);
    };
    const CtrlResult r = c.server.serve(c.cfg, 4, evil);
    REQUIRE(r.served == 1);
    CHECK(r.changed);
    c.p.back.push();
    const auto rsp = c.p.front.copy_response(0);
    CHECK(rsp.id == 1);
    CHECK(rsp.type == XEN_NETIF_CTRL_TYPE_SET_HASH_KEY);
    CHECK(rsp.status == XEN_NETIF_CTRL_STATUS_SUCCESS);
}

TEST_CASE("RX: a hash extra follows the GSO extra, flags chained", "[ring][ctrl][rx]") {
    RingPair<RxRing> p;
    RxResponder rx(p.back);
    for (std::uint16_t i = 0; i < 4; ++i)
        p.front.put_request(netif_rx_request_t{i, 0, grant_ref_t{100u + i}});
    p.front.push();
    RxReservation res;
    REQUIRE(rx.reserve(1, true, true, res) == RxStep::ok);
    CHECK(res.slots() == 3);
    const RxChunk ch{0, 1000};
    rx.complete(res, std::span(&ch, 1),
                RxMeta{false, false, TxGso{1448, XEN_NETIF_GSO_TYPE_TCPV4, 0}, FrameHash{0xa1b2c3d4u, 1}});
    REQUIRE(rx.reserve(1, false, true, res) == RxStep::short_of);
    p.back.push();
    RxFrontPacket pkt;
    REQUIRE(read_rx_packet(p.front, pkt) == RxReadStep::packet);
    REQUIRE(pkt.gso.has_value());
    REQUIRE(pkt.hash.has_value());
    CHECK(pkt.hash->u.hash.type == 1);
    CHECK(pkt.hash->u.hash.algorithm == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    std::uint32_t v = 0;
    std::memcpy(&v, pkt.hash->u.hash.value, 4);
    CHECK(v == 0xa1b2c3d4u);
    CHECK(pkt.length == 1000);
}
