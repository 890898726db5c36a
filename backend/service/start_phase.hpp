// Where `netbackd run` is in its life, for `netbackd stats` (telemetry command /netbackd/phase):
// "starting" from before EAL starts until the vifs found in xenstore are re-adopted and handed
// to the data plane, then "running". Without it a restarting service looked like one with no
// vifs at all.
//
// Shared state: one atomic, written by the control thread, read by DPDK's telemetry thread.
#pragma once

#include <string_view>

namespace netbackd::service {

enum class Phase { starting, running };

void set_phase(Phase phase) noexcept;
std::string_view phase_name() noexcept;

// Registers /netbackd/phase. Called before EAL starts, so its first answer says "starting".
void register_phase_telemetry();

} // namespace netbackd::service
