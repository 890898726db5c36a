// netbackd doctor's checks of what many guests need from Xen: xenstored's quota (read with
// XS_CONTROL quota where it answers) and the driver domain's event channels (probed).
#include <catch2/catch.hpp>

#include <cerrno>
#include <set>

#include "backend/control/doctor_scale.hpp"

using namespace netbackd;
using namespace netbackd::control;
using platform::PlatformError;

namespace {

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// C xenstored 4.17's `xenstore-control quota` with its defaults.
constexpr std::string_view kDefaults =
    "Quota settings:\n"
    "nodes            :     1000 Nodes per domain\n"
    "watches          :      128 Watches per domain\n"
    "transactions     :       10 Transactions per domain\n"
    "outstanding      :       20 Outstanding requests per domain\n"
    "transaction-nodes:     1024 Max. number of accessed nodes per transaction\n";

// A store that only answers XS_CONTROL: with `answer`, or refusing with `error`.
struct ControlStore final : platform::Store {
    std::string answer;
    int error = 0;
    std::string control(std::string_view) override {
        if (error) throw PlatformError("xenstore control quota: refused", error);
        return answer;
    }
    std::optional<std::string> read(platform::TxId, std::string_view) override { return std::nullopt; }
    void write(platform::TxId, std::string_view, std::string_view) override {}
    void mkdir(platform::TxId, std::string_view) override {}
    void rm(platform::TxId, std::string_view) override {}
    std::optional<std::vector<std::string>> directory(platform::TxId, std::string_view) override {
        return std::nullopt;
    }
    std::vector<platform::Perm> get_perms(platform::TxId, std::string_view) override { return {}; }
    void set_perms(platform::TxId, std::string_view, std::span<const platform::Perm>) override {}
    platform::TxId transaction_start() override { return 1; }
    bool transaction_end(platform::TxId, bool) override { return true; }
    void watch(std::string_view, std::string_view) override {}
    void unwatch(std::string_view, std::string_view) override {}
    int watch_fd() const override { return -1; }
    std::vector<platform::WatchEvent> read_watches() override { return {}; }
    platform::DomId self_domid() override { return 1; }
};

// A domain that may bind `free` more ports, as Xen refuses past max_event_channels.
struct LimitedEvents final : platform::Events {
    unsigned free = 0;
    std::set<platform::EvtchnPort> bound;
    platform::EvtchnPort next = 1;
    platform::EvtchnPort alloc_unbound(platform::DomId) override {
        if (bound.size() >= free)
            throw PlatformError("evtchn alloc_unbound: No space left on device", ENOSPC);
        bound.insert(next);
        return next++;
    }
    void unbind(platform::EvtchnPort p) override { bound.erase(p); }
    platform::EvtchnPort bind_interdomain(platform::DomId, platform::EvtchnPort) override { return 0; }
    void notify(platform::EvtchnPort) override {}
    int fd() const override { return -1; }
    std::optional<platform::EvtchnPort> pending() override { return std::nullopt; }
    void unmask(platform::EvtchnPort) override {}
};

} // namespace

TEST_CASE("doctor: xenstore-control quota's answer is parsed", "[control][doctor]") {
    const auto q = parse_xenstore_quota(kDefaults);
    CHECK(q.nodes == 1000u);
    CHECK(q.watches == 128u);
    CHECK(q.transactions == 10u);
    CHECK_FALSE(parse_xenstore_quota("Quota settings:\n").nodes);
}

TEST_CASE("doctor: xenstored's quota against the guests, the quota that strikes first named",
          "[control][doctor]") {
    ControlStore s;
    s.answer = std::string(kDefaults);
    // The default 1000 nodes hold (1000 - 64) / 24 = 39 guests; watches 118.
    const auto too_many = xenstore_quota_check(s, 1, 40);
    CHECK(too_many.status == CheckStatus::fail);
    CHECK(contains(too_many.detail, "room for 39 guest(s), the nodes quota strikes first"));
    CHECK(contains(too_many.detail, "40 guest(s) need nodes >= 1024 and watches >= 50"));
    CHECK(contains(too_many.fix, "xenstore-control quota set nodes 1024"));
    CHECK(contains(too_many.fix, "-E 1024 -W 50"));
    CHECK(xenstore_quota_check(s, 1, 39).status == CheckStatus::ok);
    // dom0 has no node quota: watches strike first.
    const auto dom0 = xenstore_quota_check(s, 0, 200);
    CHECK(dom0.status == CheckStatus::fail);
    CHECK(contains(dom0.detail, "room for 118 guest(s), the watches quota strikes first"));
    CHECK(xenstore_quota_check(s, 1, std::nullopt).status == CheckStatus::ok);
}

TEST_CASE("doctor: a quota xenstored does not show to this domain is said to be unreadable",
          "[control][doctor]") {
    ControlStore s;
    s.error = EACCES; // C xenstored to a driver domain
    const auto c = xenstore_quota_check(s, 3, 100);
    CHECK(c.status == CheckStatus::skip);
    CHECK(contains(c.detail, "not readable from domain 3: xenstored answers XS_CONTROL to dom0 only"));
    CHECK(contains(c.detail, "check in dom0 that 100 guest(s) need nodes >= 2464 and watches >= 110"));
    s.error = ENOSYS; // oxenstored, older C xenstored
    CHECK(contains(xenstore_quota_check(s, 3, 100).detail, "does not answer `xenstore-control quota`"));
}

TEST_CASE("doctor: the driver domain's free event channels are probed and given back", "[control][doctor]") {
    LimitedEvents ev;
    ev.free = 100;
    // 60 guests, 10 already connected: 50 more need 100 channels.
    const auto enough = event_channel_check(ev, 1, 60, 10);
    CHECK(enough.status == CheckStatus::ok);
    CHECK(contains(enough.detail, "probed 100 free"));
    CHECK(ev.bound.empty());
    const auto short_of = event_channel_check(ev, 1, 61, 10);
    CHECK(short_of.status == CheckStatus::fail);
    CHECK(contains(short_of.detail, "51 more need 102 free event channel(s)"));
    CHECK(contains(short_of.detail, "only 100 free"));
    CHECK(contains(short_of.fix, "max_event_channels = 186"));
    CHECK(ev.bound.empty());
    CHECK(event_channel_check(ev, 1, std::nullopt, 0).status == CheckStatus::skip);
}
