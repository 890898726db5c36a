// Staging grants on the control side (netif.h GET_GREF_MAPPING_SIZE, ADD/DEL_GREF_MAPPING): the
// answers, all-or-nothing mapping with per-entry statuses written back to the guest's list, the
// table's bound, DEL refused while the data plane says a buffer is in flight, and every mapping
// released (after the data plane let go) when the table goes.
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include "backend/control/staging_table.hpp"

using namespace netbackd;
using namespace netbackd::control;

namespace {

constexpr platform::DomId kGuest = 7;
constexpr platform::DomId kOther = 9;

// A guest's grant table: pages by gref, each granted to one domain, read-only or writable.
class GuestGrants final : public platform::Grants {
public:
    struct Grant {
        platform::DomId to = 0;
        bool readonly = false;
        std::array<std::byte, platform::kPageSize> page{};
    };
    std::map<platform::GrantRef, Grant> grants;
    int live = 0;   // mappings not yet unmapped
    int copies = 0; // grant-copy calls

    class Mapping final : public platform::GrantMapping {
    public:
        Mapping(GuestGrants& g, std::byte* page) : g_(g), page_(page) { ++g_.live; }
        ~Mapping() override { --g_.live; }
        std::span<std::byte> page() override { return {page_, platform::kPageSize}; }

    private:
        GuestGrants& g_;
        std::byte* page_;
    };

    platform::GrantRef grant(platform::DomId to = 0, bool readonly = false) {
        const platform::GrantRef ref = next_++;
        grants[ref] = Grant{to, readonly, {}};
        return ref;
    }
    std::unique_ptr<platform::GrantMapping> map(platform::DomId domid, platform::GrantRef ref,
                                                bool writable) override {
        const auto it = grants.find(ref);
        // Not granted, granted to another domain, or read-only asked writable: Xen refuses.
        if (domid != kGuest || it == grants.end() || it->second.to != 0 || (writable && it->second.readonly))
            throw platform::PlatformError("refused", GNTST_permission_denied);
        return std::make_unique<Mapping>(*this, it->second.page.data());
    }
    void copy(std::span<platform::CopySegment> segs) override {
        ++copies;
        for (auto& s : segs) {
            const bool src = (s.flags & GNTCOPY_source_gref) != 0;
            const auto ref = src ? s.source.foreign.ref : s.dest.foreign.ref;
            const auto it = grants.find(ref);
            if (it == grants.end() || it->second.to != 0 || (!src && it->second.readonly)) {
                s.status = GNTST_bad_gntref;
                continue;
            }
            if (src)
                std::memcpy(s.dest.virt, it->second.page.data() + s.source.foreign.offset, s.len);
            else
                std::memcpy(it->second.page.data() + s.dest.foreign.offset, s.source.virt, s.len);
            s.status = GNTST_okay;
        }
    }

    // Writes a gref list into the page behind `list`.
    void put_list(platform::GrantRef list, const std::vector<xen_netif_gref>& entries) {
        std::memcpy(grants.at(list).page.data(), entries.data(), entries.size() * sizeof(xen_netif_gref));
    }
    std::vector<std::uint16_t> statuses(platform::GrantRef list, std::size_t n) const {
        std::vector<xen_netif_gref> e(n);
        std::memcpy(e.data(), grants.at(list).page.data(), n * sizeof(xen_netif_gref));
        std::vector<std::uint16_t> out;
        for (const auto& x : e) out.push_back(x.status);
        return out;
    }

private:
    platform::GrantRef next_ = 8;
};

struct Published {
    std::shared_ptr<const StagedPages> pages;
    unsigned queue = 0;
    std::vector<platform::GrantRef> removed;
    int calls = 0;
    bool answer = true; // what the data plane says
};

struct World {
    explicit World(std::uint32_t per_queue = 4, unsigned queues = 2)
        : table(g, kGuest, queues, per_queue,
                [this](std::shared_ptr<const StagedPages> p, unsigned q,
                       std::span<const platform::GrantRef> r) {
                    ++pub.calls;
                    if (pub.answer) pub.pages = std::move(p);
                    pub.queue = q;
                    pub.removed.assign(r.begin(), r.end());
                    return pub.answer;
                }) {}
    xen_netif_ctrl_response call(std::uint16_t type, std::uint32_t d0, std::uint32_t d1 = 0,
                                 std::uint32_t d2 = 0) {
        xen_netif_ctrl_request req{42, type, {d0, d1, d2}};
        return table.handle(req);
    }
    GuestGrants g;
    Published pub;
    StagingTable table;
};

xen_netif_gref entry(platform::GrantRef ref, std::uint16_t flags = 0) {
    return xen_netif_gref{ref, flags, 0xffff};
}

constexpr auto kAdd = XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING;
constexpr auto kDel = XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING;
constexpr auto kOk = XEN_NETIF_CTRL_STATUS_SUCCESS;
constexpr auto kInval = XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;

} // namespace

TEST_CASE("staging: GET_GREF_MAPPING_SIZE answers the per-queue bound, queue checked", "[ctrl][staging]") {
    World w(8, 2);
    const auto r = w.call(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, 1);
    CHECK(r.status == kOk);
    CHECK(r.data == 8);
    CHECK(r.id == 42);
    CHECK(w.call(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, 2).status == kInval);
    World off(0, 2);
    const auto n = off.call(XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, 0);
    CHECK(n.status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
    CHECK(n.data == 0);
    CHECK(off.call(kAdd, 0, 1, 1).status == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
}

TEST_CASE("staging: ADD maps every entry, read-only ones for TX only, and publishes them",
          "[ctrl][staging]") {
    World w;
    const auto list = w.g.grant();
    const auto a = w.g.grant(), b = w.g.grant(0, true);
    w.g.put_list(list, {entry(a), entry(b, XEN_NETIF_CTRLF_GREF_readonly)});
    const auto r = w.call(kAdd, 1, list, 2);
    CHECK(r.status == kOk);
    CHECK(w.g.live == 2);
    CHECK(w.table.pages() == 2);
    CHECK(w.g.statuses(list, 2) == std::vector<std::uint16_t>{kOk, kOk});
    REQUIRE(w.pub.pages != nullptr);
    CHECK(w.pub.pages->pages() == 2);
    CHECK(w.pub.pages->find(0, a) == nullptr); // queue 1's, not queue 0's
    REQUIRE(w.pub.pages->find(1, a) != nullptr);
    CHECK(w.pub.pages->find(1, a)->writable);
    REQUIRE(w.pub.pages->find(1, b) != nullptr);
    CHECK_FALSE(w.pub.pages->find(1, b)->writable);
    // The mapped page is the guest's page.
    w.g.grants.at(a).page[100] = std::byte{0x5a};
    CHECK(w.pub.pages->find(1, a)->page[100] == std::byte{0x5a});
}

TEST_CASE("staging: hostile ADD with a bad, foreign or ungranted gref maps nothing",
          "[ctrl][staging][hostile]") {
    World w;
    const auto list = w.g.grant();
    const auto good = w.g.grant();
    const auto foreign = w.g.grant(kOther);    // granted to another domain
    const auto ro = w.g.grant(0, true);        // read-only, asked writable
    const platform::GrantRef ungranted = 4000; // never granted
    SECTION("ungranted") {
        w.g.put_list(list, {entry(good), entry(ungranted)});
        CHECK(w.call(kAdd, 0, list, 2).status == kInval);
        CHECK(w.g.statuses(list, 2) == std::vector<std::uint16_t>{kInval, kInval});
    }
    SECTION("foreign") {
        w.g.put_list(list, {entry(foreign), entry(good)});
        CHECK(w.call(kAdd, 0, list, 2).status == kInval);
    }
    SECTION("read-only grant asked writable") {
        w.g.put_list(list, {entry(good), entry(ro)});
        CHECK(w.call(kAdd, 0, list, 2).status == kInval);
    }
    SECTION("unknown flags") {
        w.g.put_list(list, {entry(good, 0x8000)});
        CHECK(w.call(kAdd, 0, list, 1).status == kInval);
    }
    SECTION("the same gref twice") {
        w.g.put_list(list, {entry(good), entry(good)});
        CHECK(w.call(kAdd, 0, list, 2).status == kInval);
    }
    SECTION("the list page itself not granted") { CHECK(w.call(kAdd, 0, 5000, 1).status == kInval); }
    SECTION("a queue the vif does not have") {
        w.g.put_list(list, {entry(good)});
        CHECK(w.call(kAdd, 2, list, 1).status == kInval);
        CHECK(w.call(kAdd, 0xffffffffu, list, 1).status == kInval);
    }
    SECTION("more entries than a page holds") {
        CHECK(w.call(kAdd, 0, list, StagingTable::kListMax + 1).status == kInval);
        CHECK(w.call(kAdd, 0, list, 0xffffffffu).status == kInval);
    }
    CHECK(w.g.live == 0);
    CHECK(w.table.pages() == 0);
    CHECK(w.pub.calls == 0);
}

TEST_CASE("staging: hostile mapping table overflow is refused whole", "[ctrl][staging][hostile]") {
    World w(4, 1);
    const auto list = w.g.grant();
    std::vector<xen_netif_gref> first, second;
    for (int i = 0; i < 3; ++i) first.push_back(entry(w.g.grant()));
    for (int i = 0; i < 2; ++i) second.push_back(entry(w.g.grant()));
    w.g.put_list(list, first);
    REQUIRE(w.call(kAdd, 0, list, 3).status == kOk);
    w.g.put_list(list, second);
    CHECK(w.call(kAdd, 0, list, 2).status == kInval); // 3 + 2 > 4
    CHECK(w.g.statuses(list, 2) == std::vector<std::uint16_t>{XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
                                                              XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW});
    CHECK(w.g.live == 3);
    CHECK(w.call(kAdd, 0, list, 1).status == kOk); // exactly full
    CHECK(w.g.live == 4);
}

TEST_CASE("staging: DEL unmaps what was added once the data plane let go; others get errors",
          "[ctrl][staging]") {
    World w(8, 1);
    const auto list = w.g.grant();
    const auto a = w.g.grant(), b = w.g.grant();
    w.g.put_list(list, {entry(a), entry(b)});
    REQUIRE(w.call(kAdd, 0, list, 2).status == kOk);
    w.g.put_list(list, {entry(a), entry(999), entry(a)});
    const auto r = w.call(kDel, 0, list, 3);
    CHECK(r.status == kOk);
    CHECK(r.data == 1);
    CHECK(w.g.statuses(list, 3) == std::vector<std::uint16_t>{kOk, kInval, kInval});
    CHECK(w.pub.removed == std::vector<platform::GrantRef>{a});
    REQUIRE(w.pub.pages != nullptr);
    CHECK(w.pub.pages->find(0, a) == nullptr);
    CHECK(w.pub.pages->find(0, b) != nullptr);
    CHECK(w.g.live == 1);
}

TEST_CASE("staging: hostile DEL of an in-flight buffer is refused and unmaps nothing",
          "[ctrl][staging][hostile]") {
    World w(8, 1);
    const auto list = w.g.grant();
    const auto a = w.g.grant();
    w.g.put_list(list, {entry(a)});
    REQUIRE(w.call(kAdd, 0, list, 1).status == kOk);
    w.pub.answer = false; // the worker found `a` on a request it has not answered
    w.g.put_list(list, {entry(a)});
    const auto r = w.call(kDel, 0, list, 1);
    CHECK(r.status == kInval);
    CHECK(r.data == 0);
    CHECK(w.g.statuses(list, 1) == std::vector<std::uint16_t>{kInval});
    CHECK(w.g.live == 1);
    CHECK(w.table.pages() == 1);
    w.pub.answer = true; // answered since: the guest retries
    CHECK(w.call(kDel, 0, list, 1).status == kOk);
    CHECK(w.g.live == 0);
}

TEST_CASE("staging: the table going tells the data plane first, then unmaps everything", "[ctrl][staging]") {
    GuestGrants g;
    Published pub;
    bool answer = true;
    int live_at_publish = -1;
    const auto make = [&] {
        return std::make_unique<StagingTable>(
            g, kGuest, 1, 8,
            [&](std::shared_ptr<const StagedPages> p, unsigned, std::span<const platform::GrantRef>) {
                pub.pages = std::move(p);
                live_at_publish = g.live;
                return answer;
            });
    };
    const auto list = g.grant();
    g.put_list(list, {entry(g.grant()), entry(g.grant())});
    SECTION("the worker answers: unmapped after it let go") {
        auto t = make();
        REQUIRE(t->handle(xen_netif_ctrl_request{1, kAdd, {0, list, 2}}).status == kOk);
        t.reset();
        CHECK(pub.pages == nullptr);
        CHECK(live_at_publish == 2); // still mapped while the data plane was told
        CHECK(g.live == 0);
    }
    SECTION("the worker does not answer: left mapped rather than pulled from under it") {
        auto t = make();
        REQUIRE(t->handle(xen_netif_ctrl_request{1, kAdd, {0, list, 2}}).status == kOk);
        answer = false;
        t.reset();
        CHECK(g.live == 2);
    }
}
