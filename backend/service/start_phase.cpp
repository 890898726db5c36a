#include "backend/service/start_phase.hpp"

#include <atomic>
#include <string>

#include <rte_telemetry.h>

namespace netbackd::service {
namespace {

std::atomic<Phase> g_phase{Phase::starting};

int cmd_phase(const char*, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "phase", std::string(phase_name()).c_str());
    return 0;
}

} // namespace

void set_phase(Phase phase) noexcept { g_phase.store(phase, std::memory_order_relaxed); }

std::string_view phase_name() noexcept {
    return g_phase.load(std::memory_order_relaxed) == Phase::starting ? "starting" : "running";
}

void register_phase_telemetry() {
    static const bool registered = [] {
        rte_telemetry_register_cmd("/netbackd/phase", cmd_phase,
                                   "starting (re-adopting vifs) or running. No parameters");
        return true;
    }();
    (void)registered;
}

} // namespace netbackd::service
