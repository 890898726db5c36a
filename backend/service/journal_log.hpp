// Logging to the journal when systemd runs netbackd: each line goes to journald with fields an
// operator can select on (`journalctl -u netbackd VIF=11.0`), taken from the "vif D.N: " prefix
// every per-vif line carries: VIF, DOMID, DEVID, and FRONTEND_STATE / BACKEND_STATE on state
// changes. Interactive runs keep plain stderr.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>
#include <spdlog/sinks/sink.h>

namespace netbackd::service {

// Whether `fd` is the stream systemd connected to the journal: JOURNAL_STREAM holds its
// "<device>:<inode>" (systemd.exec(5)); a redirected stderr no longer matches.
bool is_journal_stream(int fd, const char* journal_stream);

// The journal fields ("KEY=value") of one log line.
std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message);

// Sends one entry; returns 0 or a negative errno (sd_journal_sendv's convention).
using JournalSend = std::function<int(const std::vector<std::string>& fields)>;
int send_to_journal(const std::vector<std::string>& fields);

// A thread-safe sink sending every line through `send`; a line the journal refuses goes to
// stderr instead (libsystemd reports no error when journald is absent: such lines are lost,
// but JOURNAL_STREAM only names stderr when journald is there).
std::shared_ptr<spdlog::sinks::sink> make_journal_sink(JournalSend send = send_to_journal);

// Makes the default logger (every spdlog:: call) write to the journal, keeping its level.
void log_to_journal();

} // namespace netbackd::service
