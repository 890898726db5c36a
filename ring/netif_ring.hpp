// netbackd ring core: both ends of the Xen netif TX and RX rings over one shared 4 KiB page each.
//
//   sring.hpp         layout pins for xen/io/netif.h + ring.h, SharedRing word-atomic slot access
//   back_ring.hpp     BackRing<TxRing|RxRing>: poll/final_check requests, put/push responses
//   front_ring.hpp    FrontRing<TxRing|RxRing>: put/push requests, poll/final_check responses
//   tx_packet.hpp     TxPacket (segments, ids, flags, extras) and TxError reasons
//   tx_assembler.hpp  TxAssembler: one packet per next(); drops and fatal errors per the rules
//   rx_responder.hpp  RxResponder: reserve() buffers, complete()/fail() with slot-exact responses
//   front_packets.hpp netfront-side helpers: put_tx_packet(), read_rx_packet()
//   ctrl_ring.hpp     CtrlRing, HashConfig, CtrlServer: the control ring's hash messages
//   toeplitz.hpp      toeplitz_hash(), hash_input(): netif.h's hash types over a frame
//
// Backend TX loop, in short:
//   BackRing<TxRing> ring(page); TxAssembler tx(ring); TxPacket p;
//   for (;;) {
//     auto r = tx.next(p);
//     if (r.step == TxStep::packet) { copy p.segments(); tx.respond(p, NETIF_RSP_OKAY); }
//     else if (r.step == TxStep::fatal) { disable the vif (r.error); break; }
//     else if (r.step == TxStep::empty || r.step == TxStep::pending) {
//       if (ring.push_and_check_notify()) notify();
//       Avail a = ring.final_check();            // a bad req_prod shows up in the next next()
//       if (a.count == 0 && a.error == ProdError::none) wait_for_event();
//     }
//   }
//
// Pure header code: no I/O, no Xen calls, no allocation, no exceptions, no virtual calls.
// Pages arrive as std::span<std::byte, 4096> from whoever mapped them; they must outlive the rings.
#pragma once

#include "ring/back_ring.hpp"
#include "ring/ctrl_ring.hpp"
#include "ring/front_packets.hpp"
#include "ring/front_ring.hpp"
#include "ring/rx_responder.hpp"
#include "ring/sring.hpp"
#include "ring/toeplitz.hpp"
#include "ring/tx_assembler.hpp"
#include "ring/tx_packet.hpp"
