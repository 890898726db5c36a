#include "backend/service/stats_prometheus.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace netbackd::service {
namespace {

// Per-vif and per-worker values that go up and down (everything else there only grows).
constexpr std::string_view kGauges[] = {"worker", "vifs", "rx_interrupt_sleep", "idle_timer"};

struct Metric {
    std::string type;
    std::vector<std::pair<std::string, std::string>> samples; // {labels} and value
};

std::string metric_name(std::string_view section, std::string_view key) {
    std::string name = fmt::format("netbackd_{}_{}", section, key);
    std::replace_if(
        name.begin(), name.end(),
        [](char c) {
            return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
        },
        '_');
    return name;
}

std::string label_value(std::string_view v) {
    std::string out;
    for (const char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

std::optional<std::string> number_text(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return fmt::to_string(v.get<std::uint64_t>());
    if (v.is_number_integer()) return fmt::to_string(v.get<std::int64_t>());
    if (v.is_number_float()) return fmt::to_string(v.get<double>());
    if (v.is_boolean()) return fmt::to_string(v.get<bool>() ? 1 : 0);
    return std::nullopt;
}

std::string render(const Labels& labels) {
    if (labels.empty()) return "";
    std::string out = "{";
    for (const auto& [k, v] : labels)
        out += fmt::format("{}{}=\"{}\"", out.size() > 1 ? "," : "", k, label_value(v));
    return out + "}";
}

class Exposition {
public:
    // One JSON value under `key`: numbers and booleans as they are, strings as a labelled 1,
    // objects one level down as a label named `inner_label` (e.g. mbufs per pool).
    void add(std::string_view section, const std::string& key, const nlohmann::json& value, Labels labels,
             bool counter, std::string_view inner_label = "") {
        const std::string name = metric_name(section, key);
        if (value.is_object()) {
            if (inner_label.empty()) return;
            for (const auto& [k, v] : value.items()) {
                Labels with = labels;
                with.emplace_back(inner_label, k);
                add(section, key, v, with, counter);
            }
            return;
        }
        std::optional<std::string> text = number_text(value);
        if (!text && value.is_string()) {
            labels.emplace_back(key, value.get<std::string>());
            text = fmt::to_string(1);
            counter = false;
        }
        if (!text) return; // null or array: nothing a sample can say
        auto& m = metrics_[name];
        if (m.type.empty()) m.type = counter ? "counter" : "gauge";
        m.samples.emplace_back(render(labels), std::move(*text));
    }

    std::string text() const {
        std::string out;
        for (const auto& [name, m] : metrics_) {
            out += fmt::format("# TYPE {} {}\n", name, m.type);
            for (const auto& [labels, value] : m.samples)
                out += fmt::format("{}{} {}\n", name, labels, value);
        }
        return out;
    }

private:
    std::map<std::string, Metric> metrics_; // one group per name, as the format requires
};

bool is_gauge(std::string_view key) {
    return std::find(std::begin(kGauges), std::end(kGauges), key) != std::end(kGauges);
}

// "vif7_0" -> {"7.0", "7", "0"}
Labels vif_labels(std::string_view key) {
    std::string_view id = key.substr(std::min<std::size_t>(3, key.size()));
    const auto u = id.find('_');
    if (u == std::string_view::npos) return {{"vif", std::string(id)}};
    return {{"vif", fmt::format("{}.{}", id.substr(0, u), id.substr(u + 1))},
            {"domid", std::string(id.substr(0, u))},
            {"devid", std::string(id.substr(u + 1))}};
}

} // namespace

std::string prometheus_text(const nlohmann::json& stats) {
    Exposition e;
    // Copies, not references: a missing or malformed section is an empty object.
    const auto section = [&](const char* name) {
        const auto it = stats.find(name);
        return it != stats.end() && it->is_object() ? *it : nlohmann::json::object();
    };
    const nlohmann::json vifs = section("vifs");
    const nlohmann::json workers = section("workers");
    const nlohmann::json resources = section("resources");
    for (const auto& [vif, fields] : vifs.items())
        for (const auto& [key, value] : fields.items())
            e.add("vif", key, value, vif_labels(vif), !is_gauge(key));
    for (const auto& [worker, fields] : workers.items()) {
        const std::string id = worker.rfind("worker", 0) == 0 ? worker.substr(6) : worker;
        for (const auto& [key, value] : fields.items())
            e.add("worker", key, value, {{"worker", id}}, !is_gauge(key));
    }
    for (const auto& [key, value] : resources.items()) e.add("resource", key, value, {}, false, "pool");
    return e.text();
}

} // namespace netbackd::service
