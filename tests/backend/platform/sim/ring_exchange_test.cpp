// End to end on the simulated hypervisor: a frontend process and a backend process share a TX
// ring page through a grant and move a million requests with event-channel notifications.
#include <cstdint>

#include <catch2/catch.hpp>
#include <poll.h>

#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "ring/back_ring.hpp"
#include "ring/front_ring.hpp"
#include "tests/support/sim_hypervisor.hpp"
#include "xensim/hypervisor/guest_memory.hpp"

using namespace netbackd;
using namespace netbackd::xensim;

namespace {

constexpr DomId kFront = 12;
constexpr DomId kBack = 2;
constexpr std::uint32_t kRequests = 1'000'000;

// Sleeps on the channel, then acknowledges whatever fired (the ring is re-checked by the caller).
bool wait_for_event(platform::Events& events) {
    pollfd p{events.fd(), POLLIN, 0};
    if (::poll(&p, 1, -1) != 1) return false;
    while (auto port = events.pending()) events.unmask(*port);
    return true;
}

// The frontend: returns 0 when every response matched its request, in order.
int run_frontend(const std::string& dir, testing::Channel& out, testing::Channel& in) {
    auto client = HvClient::connect(dir, kFront);
    GuestMemory memory(client);
    SimEvents events(client);

    Gfn gfn = memory.alloc_page();
    ring::Page page(memory.page(gfn).data(), ring::kPageSize);
    ring::init_shared_ring<ring::TxRing>(page);
    ring::FrontRing<ring::TxRing> front(page);
    auto gref = memory.grant_access(gfn, kBack, false);
    out.send(gref);
    auto port = events.alloc_unbound(kBack);
    out.send(port);

    std::uint32_t sent = 0;
    std::uint32_t answered = 0;
    while (answered < kRequests) {
        while (sent < kRequests && !front.full()) {
            netif_tx_request_t req{};
            req.gref = sent;
            req.id = static_cast<std::uint16_t>(sent);
            req.size = static_cast<std::uint16_t>(sent >> 16);
            front.put_request(req);
            ++sent;
        }
        if (front.push_and_check_notify()) events.notify(port);
        ring::Avail a = front.poll();
        if (a.error != ring::ProdError::none) return 10;
        if (a.count == 0) {
            a = front.final_check();
            if (a.error != ring::ProdError::none) return 11;
            if (a.count == 0) {
                if (!wait_for_event(events)) return 12;
                continue;
            }
        }
        for (ring::RingIdx i = 0; i < a.count; ++i) {
            auto rsp = front.copy_response(i);
            if (rsp.id != static_cast<std::uint16_t>(answered) || rsp.status != NETIF_RSP_OKAY) return 13;
            ++answered;
        }
        front.consume(a.count);
    }
    // Keep the page granted until the backend has let go of it.
    in.receive();
    return memory.end_access(gref) ? 0 : 14;
}

} // namespace

TEST_CASE("two processes exchange a million ring requests over a granted page", "[simxen][ring]") {
    testing::HvHost host;
    auto admin = HvClient::connect_admin(host.dir());
    admin->create_domain(kFront, "guest", 4u << 20);
    admin->create_domain(kBack, "driver", 4u << 20);

    testing::Channel from_front;
    testing::Channel to_front;
    pid_t front_pid = testing::spawn([&] { return run_frontend(host.dir(), from_front, to_front); });

    auto client = HvClient::connect(host.dir(), kBack);
    SimGrants grants(client);
    SimEvents events(client);
    auto gref = from_front.receive();
    auto remote_port = from_front.receive();
    auto mapping = grants.map(kFront, gref, true);
    auto port = events.bind_interdomain(kFront, remote_port);
    ring::BackRing<ring::TxRing> back(ring::Page(mapping->page().data(), ring::kPageSize));

    std::uint32_t received = 0;
    std::uint32_t out_of_order = 0;
    std::uint64_t notifies = 0;
    std::uint64_t sleeps = 0;
    std::vector<netif_tx_request_t> batch(ring::TxRing::kSize);
    while (received < kRequests) {
        ring::Avail a = back.poll();
        REQUIRE(a.error == ring::ProdError::none);
        if (a.count == 0) {
            a = back.final_check();
            REQUIRE(a.error == ring::ProdError::none);
            if (a.count == 0) {
                ++sleeps;
                REQUIRE(wait_for_event(events));
                continue;
            }
        }
        for (ring::RingIdx i = 0; i < a.count; ++i) batch[i] = back.copy_request(i);
        back.consume(a.count);
        for (ring::RingIdx i = 0; i < a.count; ++i) {
            const auto& req = batch[i];
            std::uint32_t seq = req.gref;
            if (seq != received || req.id != static_cast<std::uint16_t>(seq) ||
                req.size != static_cast<std::uint16_t>(seq >> 16))
                ++out_of_order;
            ++received;
            netif_tx_response_t rsp{};
            rsp.id = req.id;
            rsp.status = NETIF_RSP_OKAY;
            back.put_response(rsp);
        }
        if (back.push_and_check_notify()) {
            events.notify(port);
            ++notifies;
        }
    }
    mapping.reset();
    events.unbind(port);
    // The page is unmapped now; the frontend may revoke it.
    to_front.send(1);

    CHECK(received == kRequests);
    CHECK(out_of_order == 0);
    CHECK(testing::join(front_pid) == 0);
    // Event-index batching: far fewer notifications than requests, but at least one.
    CHECK(notifies > 0);
    CHECK(notifies < kRequests);
    INFO("backend notifies: " << notifies << ", backend sleeps: " << sleeps);
    CHECK(sleeps < kRequests);
}
