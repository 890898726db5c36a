// A minimal in-process netback for testing the simulated netfront's data half: it maps the
// rings as the driver domain, and copies each TX frame straight back into the guest's RX
// buffers with one grant copy per frame (both sides foreign), echoing a GSO extra if the
// frame had one. Stepped by hand, or looped in a thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/platform/sim/client.hpp"
#include "backend/platform/sim/sim_events.hpp"
#include "backend/platform/sim/sim_grants.hpp"
#include "ring/netif_ring.hpp"
#include "tests/support/sim_hypervisor.hpp"
#include "xensim/hypervisor/guest_memory.hpp"
#include "xensim/netfront/netfront_io.hpp"

namespace netbackd::xensim::test {

inline constexpr platform::DomId kBack = 1;
inline constexpr platform::DomId kGuest = 5;

// The guest's side of one queue: ring pages and unbound ports, as talk_to_netback makes them.
struct GuestQueue {
    IoQueueSpec spec;
    platform::GrantRef tx_ref = 0;
    platform::GrantRef rx_ref = 0;
};

// Ring pages initialised and granted to `back`, ports allocated unbound for it.
GuestQueue make_guest_queue(GuestMemory& memory, platform::Events& events, platform::DomId back,
                            bool split = true);

struct World {
    World();
    testing::HvHost host;
    std::shared_ptr<HvClient> admin;
    std::shared_ptr<HvClient> guest_hv;
    GuestMemory memory;
    SimEvents guest_events;

    GuestQueue make_queue(bool split = true);
    void free_queue(const GuestQueue& q);
};

class Loopback {
public:
    Loopback(World& w, const GuestQueue& q);
    ~Loopback();

    // Echoes every complete TX frame; returns frames echoed.
    std::size_t step();
    // Sets req_event on both rings (before the backend would sleep).
    void final_check();
    // Kicks received from the guest so far (acknowledged).
    std::size_t kicks();

    // Atomic: read by the test thread while a backend thread steps.
    std::atomic<std::size_t> echoed{0};
    std::atomic<std::size_t> rx_drops{0}; // no RX buffers for an echo (its TX still answered OKAY)
    std::size_t tx_notifies = 0;
    std::size_t rx_notifies = 0;
    std::vector<std::uint8_t> seen_flags; // NETTXF_csum_blank/data_validated of each frame
    std::vector<std::uint16_t> seen_lengths;

private:
    std::shared_ptr<HvClient> hv_;
    SimGrants grants_;
    SimEvents events_;
    std::unique_ptr<platform::GrantMapping> tx_map_, rx_map_;
    platform::EvtchnPort tx_port_, rx_port_;
    bool split_;
    std::optional<ring::BackRing<ring::TxRing>> tx_;
    std::optional<ring::BackRing<ring::RxRing>> rx_;
    std::optional<ring::TxAssembler> asm_;
    std::vector<platform::CopySegment> segs_;
    std::size_t kicks_ = 0;
};

} // namespace netbackd::xensim::test
