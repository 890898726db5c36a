// Interdomain event channels on the simulated hypervisor.
#include <optional>

#include <catch2/catch.hpp>
#include <poll.h>

#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "tests/support/sim_hypervisor.hpp"

using namespace netbackd;
using namespace netbackd::xensim;
using platform::PlatformError;

namespace {

constexpr DomId kFront = 3;
constexpr DomId kBack = 4;

// Readiness without waiting; for "must not have fired" checks.
bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

// Blocks until readable (a hang, not a timing assertion, is the failure mode).
bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, -1) == 1 && (p.revents & POLLIN);
}

struct Pair {
    testing::HvHost host;
    std::shared_ptr<HvClient> admin = HvClient::connect_admin(host.dir());
    Pair() {
        admin->create_domain(kFront, "front", 1u << 20);
        admin->create_domain(kBack, "back", 1u << 20);
    }
};

} // namespace

TEST_CASE("notify wakes the peer once, and a delivered port stays masked until unmask", "[simxen][events]") {
    Pair w;
    SimEvents front(HvClient::connect(w.host.dir(), kFront));
    SimEvents back(HvClient::connect(w.host.dir(), kBack));

    auto fport = front.alloc_unbound(kBack);
    auto bport = back.bind_interdomain(kFront, fport);
    // Binding leaves the new local port pending, as on Xen.
    REQUIRE(back.pending() == bport);
    CHECK(back.pending() == std::nullopt);
    back.unmask(bport);
    CHECK_FALSE(readable_now(back.fd()));
    CHECK(back.pending() == std::nullopt);

    front.notify(fport);
    REQUIRE(wait_readable(back.fd()));
    CHECK(back.pending() == bport);
    CHECK(back.pending() == std::nullopt);

    // Masked (delivered, not yet unmasked): further notifies stay pending and do not wake.
    front.notify(fport);
    front.notify(fport);
    CHECK_FALSE(readable_now(back.fd()));
    CHECK(back.pending() == std::nullopt);
    back.unmask(bport);
    REQUIRE(wait_readable(back.fd()));
    CHECK(back.pending() == bport);
    CHECK(back.pending() == std::nullopt);
    back.unmask(bport);

    // The other direction.
    back.notify(bport);
    REQUIRE(wait_readable(front.fd()));
    CHECK(front.pending() == fport);
}

TEST_CASE("binding is checked as Xen checks it", "[simxen][events]") {
    Pair w;
    w.admin->create_domain(11, "third", 1u << 20);
    SimEvents front(HvClient::connect(w.host.dir(), kFront));
    SimEvents back(HvClient::connect(w.host.dir(), kBack));
    SimEvents third(HvClient::connect(w.host.dir(), 11));

    auto fport = front.alloc_unbound(kBack);
    // Offered to kBack only.
    CHECK_THROWS_AS(third.bind_interdomain(kFront, fport), PlatformError);
    CHECK_THROWS_AS(back.bind_interdomain(kFront, fport + 100), PlatformError);
    CHECK_THROWS_AS(back.bind_interdomain(999, fport), PlatformError);
    auto bport = back.bind_interdomain(kFront, fport);
    // Already connected.
    CHECK_THROWS_AS(back.bind_interdomain(kFront, fport), PlatformError);
    // Ports belong to the process that bound them.
    CHECK_THROWS_AS(third.notify(bport), PlatformError);
    CHECK_THROWS_AS(third.unbind(bport), PlatformError);

    // After the backend unbinds, the frontend port waits for a new partner; notify is a no-op.
    back.unbind(bport);
    front.notify(fport);
    auto again = back.bind_interdomain(kFront, fport);
    CHECK(again != 0);
}

TEST_CASE("a notify from another process wakes a poll()ing process", "[simxen][events]") {
    Pair w;
    testing::Channel to_child;
    testing::Channel to_parent;
    SimEvents front(HvClient::connect(w.host.dir(), kFront));
    auto fport = front.alloc_unbound(kBack);

    pid_t child = testing::spawn([&] {
        SimEvents back(HvClient::connect(w.host.dir(), kBack));
        auto bport = back.bind_interdomain(kFront, to_child.receive());
        if (back.pending() != bport) return 2;
        back.unmask(bport);
        to_parent.send(bport);
        int wakeups = 0;
        for (int round = 0; round < 100; ++round) {
            if (!wait_readable(back.fd())) return 3;
            auto port = back.pending();
            if (!port) continue; // woke for an event already consumed
            if (*port != bport) return 4;
            ++wakeups;
            back.unmask(bport);
            back.notify(bport); // ack, so the parent sends the next one
        }
        return wakeups == 100 ? 0 : 5;
    });

    to_child.send(fport);
    REQUIRE(to_parent.receive() != 0);
    for (int round = 0; round < 100; ++round) {
        front.notify(fport);
        REQUIRE(wait_readable(front.fd()));
        std::optional<platform::EvtchnPort> got;
        while (!(got = front.pending())) REQUIRE(wait_readable(front.fd()));
        CHECK(*got == fport);
        front.unmask(fport);
    }
    CHECK(testing::join(child) == 0);
}

TEST_CASE("a process that exits closes its channels, and so does a destroyed domain", "[simxen][events]") {
    Pair w;
    SimEvents front(HvClient::connect(w.host.dir(), kFront));
    auto fport = front.alloc_unbound(kBack);
    testing::Channel done;
    pid_t child = testing::spawn([&] {
        SimEvents back(HvClient::connect(w.host.dir(), kBack));
        back.bind_interdomain(kFront, fport);
        done.send(1);
        return 0;
    });
    REQUIRE(done.receive() == 1);
    REQUIRE(testing::join(child) == 0);
    // The hypervisor notices the hang-up asynchronously: a list round-trip orders us after it.
    w.admin->list_domains();
    front.notify(fport); // unbound again: dropped, no error

    SimEvents back(HvClient::connect(w.host.dir(), kBack));
    auto bport = back.bind_interdomain(kFront, fport);
    CHECK(back.pending() == bport);
    back.unmask(bport);

    w.admin->destroy_domain(kFront);
    back.notify(bport); // peer gone: dropped
    CHECK_THROWS_AS(SimEvents(HvClient::connect(w.host.dir(), kFront)), PlatformError);
}

TEST_CASE("a domain binds at most max_event_channels ports, libxl's 1023 unless its config says more",
          "[simxen][events]") {
    testing::HvHost host;
    auto admin = HvClient::connect_admin(host.dir());
    admin->create_domain(kFront, "front", 1u << 20);
    admin->create_domain(kBack, "back", 1u << 20, 40);
    SimEvents front(HvClient::connect(host.dir(), kFront));
    SimEvents back(HvClient::connect(host.dir(), kBack));
    std::vector<platform::EvtchnPort> ports;
    for (int i = 0; i < 40; ++i) ports.push_back(back.alloc_unbound(kFront));
    CHECK(ports.back() == 40);
    try {
        back.alloc_unbound(kFront);
        FAIL("port 41 was bound past max_event_channels = 40");
    } catch (const PlatformError& e) {
        CHECK(e.code() == ENOSPC);
        CHECK_THAT(e.what(), Catch::Contains("max_event_channels = 40"));
    }
    // The default, as libxl's: ports 1..1023, and no more.
    std::vector<platform::EvtchnPort> many;
    for (int i = 0; i < 1023; ++i) many.push_back(front.alloc_unbound(kBack));
    CHECK(many.back() == 1023);
    CHECK_THROWS_AS(front.alloc_unbound(kBack), PlatformError);
    // A domain asking for more than the 2-level ABI has is refused at creation.
    CHECK_THROWS_AS(admin->create_domain(7, "huge", 1u << 20, 4096), PlatformError);
    admin->create_domain(8, "big", 1u << 20, 4095);
    SimEvents big(HvClient::connect(host.dir(), 8));
    for (int i = 0; i < 2000; ++i) big.alloc_unbound(kFront);
}
