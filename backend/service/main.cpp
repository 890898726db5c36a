// netbackd: the userspace Xen network backend. Verbs: run (the service), doctor (checks),
// stats (counters of the running service), capture (a vif's packets, pcapng).
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "backend/control/doctor.hpp"
#include "backend/platform/options.hpp"
#include "backend/service/capture_cli.hpp"
#include "backend/service/journal_log.hpp"
#include "backend/service/run.hpp"
#include "backend/service/stats.hpp"
#include "netbackd_version.hpp"

int main(int argc, char** argv) {
    CLI::App app{"netbackd: userspace Xen network backend for driver domains"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("netbackd ") + netbackd::version::kFull);

    netbackd::service::RunOptions run_opt;
    auto* run = app.add_subcommand("run", "serve vifs: watch the backend dir and drive each vif's handshake");
    run->add_option("--config,-c", run_opt.config_path, "global config file (TOML)")
        ->required()
        ->check(CLI::ExistingFile);
    netbackd::platform::add_platform_options(*run, run_opt.platform);
    run->add_option("--log-level", run_opt.log_level, "trace|debug|info|warn|error (overrides the config)")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

    netbackd::control::DoctorOptions doc_opt;
    bool quiet = false;
    auto* doctor =
        app.add_subcommand("doctor", "check this driver domain for what stops netbackd; prints fixes");
    doctor->add_option("--config,-c", doc_opt.config_path, "global config file (TOML)");
    netbackd::platform::add_platform_options(*doctor, doc_opt.platform);
    doctor->add_flag("--quiet,-q", quiet, "print failures only");
    doctor->add_option("--guests", doc_opt.guests,
                       "guests this domain is to serve, for the xenstore quota and event channel checks "
                       "(default: the number of client files)");

    netbackd::service::StatsOptions stats_opt;
    auto* stats =
        app.add_subcommand("stats", "per-vif counters of the running netbackd (from its telemetry socket)");
    stats->add_option("--file-prefix", stats_opt.file_prefix,
                      "EAL --file-prefix of the instance (default: the only netbackd*)");
    stats->add_option("--runtime-dir", stats_opt.runtime_dir, "DPDK runtime directory")
        ->capture_default_str();
    auto* json = stats->add_flag("--json", stats_opt.json, "print JSON instead of a table");
    stats
        ->add_flag("--prometheus", stats_opt.prometheus,
                   "print the Prometheus text format (node_exporter's textfile collector)")
        ->excludes(json);

    netbackd::service::CaptureCliOptions cap_opt;
    std::vector<std::string> filter_words;
    auto* capture = app.add_subcommand(
        "capture",
        "a vif's frames in both directions as pcapng, from the running netbackd (like tcpdump -i vifD.N)");
    capture->add_option("vif", cap_opt.vif, "the vif: <domid>.<devid>, e.g. 11.0")->required();
    capture->add_option("filter", filter_words, "a libpcap filter expression (tcpdump syntax)");
    capture->add_option("-w", cap_opt.output, "write the pcapng stream to this file ('-': stdout)")
        ->capture_default_str();
    capture->add_option("-c", cap_opt.count, "stop after this many frames (0: until Ctrl-C)");
    capture->add_option("-s,--snaplen", cap_opt.snaplen, "bytes kept of each frame")
        ->capture_default_str()
        ->check(CLI::Range(64, 65535));
    capture->add_option("--file-prefix", cap_opt.instance.file_prefix,
                        "EAL --file-prefix of the instance (default: the only netbackd*)");
    capture->add_option("--runtime-dir", cap_opt.instance.runtime_dir, "DPDK runtime directory")
        ->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    if (*capture) {
        for (const auto& w : filter_words) cap_opt.filter += (cap_opt.filter.empty() ? "" : " ") + w;
        return netbackd::service::run_capture(cap_opt);
    }

    if (*stats) return netbackd::service::print_stats(stats_opt, stdout);

    if (*run) {
        run_opt.platform_given = run->get_option("--platform")->count() > 0;
        // Under systemd: the journal with per-vif fields; otherwise (or when stderr was
        // redirected) plain stderr.
        if (netbackd::service::is_journal_stream(STDERR_FILENO, std::getenv("JOURNAL_STREAM")))
            netbackd::service::log_to_journal();
        return netbackd::service::run(run_opt);
    }
    doc_opt.platform_given = doctor->get_option("--platform")->count() > 0;
    const auto checks = netbackd::control::run_doctor(doc_opt);
    return netbackd::control::print_doctor(checks, quiet, stdout) ? 0 : 1;
}
