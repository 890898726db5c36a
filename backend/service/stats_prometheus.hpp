// `netbackd stats --prometheus`: the reply of `netbackd stats --json` in the Prometheus text
// exposition format (0.0.4), for node_exporter's textfile collector. Names follow the JSON:
// vifs.<vif>.<key> -> netbackd_vif_<key>{vif="7.0",domid="7",devid="0"},
// workers.<worker>.<key> -> netbackd_worker_<key>{worker="0"},
// resources.<key> -> netbackd_resource_<key>, resources.<key>.<pool> -> ...{pool="<pool>"};
// a string value becomes a 1-valued sample labelled with it (netbackd_vif_state{...,state="running"}).
// Per-vif and per-worker numbers are counters, except the gauges in kGauges; resources are
// gauges.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace netbackd::service {

// `stats`: {"vifs": {...}, "resources": {...}, "workers": {...}} as `--json` prints it.
std::string prometheus_text(const nlohmann::json& stats);

} // namespace netbackd::service
