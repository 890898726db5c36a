#include "backend/service/journal_log.hpp"

#include <cstdio>
#include <mutex>
#include <regex>

#include <sys/stat.h>
#include <sys/uio.h>

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
// The code location would be this file's, not the logging call's.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

namespace netbackd::service {
namespace {

int priority(spdlog::level::level_enum level) { // syslog(3) levels
    switch (level) {
    case spdlog::level::critical: return 2;
    case spdlog::level::err: return 3;
    case spdlog::level::warn: return 4;
    case spdlog::level::info: return 6;
    default: return 7;
    }
}

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit JournalSink(JournalSend send) : send_(std::move(send)) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const std::string_view text(msg.payload.data(), msg.payload.size());
        if (send_(journal_fields(msg.level, text)) < 0)
            std::fprintf(stderr, "%.*s\n", static_cast<int>(text.size()), text.data());
    }
    void flush_() override {}

private:
    JournalSend send_;
};

} // namespace

bool is_journal_stream(int fd, const char* journal_stream) {
    if (journal_stream == nullptr) return false;
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    char end = 0;
    if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &end) != 2) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message) {
    std::vector<std::string> f;
    f.push_back("MESSAGE=" + std::string(message));
    f.push_back("PRIORITY=" + std::to_string(priority(level)));
    f.push_back("SYSLOG_IDENTIFIER=netbackd");
    static const std::regex vif(R"(^vif ([0-9]+)\.([0-9]+): )");
    static const std::regex state(R"(: (frontend|backend) state [0-9]+ \(([A-Za-z]+)\)$)");
    const std::string text(message);
    std::smatch m;
    if (std::regex_search(text, m, vif)) {
        f.push_back("VIF=" + m[1].str() + "." + m[2].str());
        f.push_back("DOMID=" + m[1].str());
        f.push_back("DEVID=" + m[2].str());
        if (std::regex_search(text, m, state))
            f.push_back((m[1] == "frontend" ? "FRONTEND_STATE=" : "BACKEND_STATE=") + m[2].str());
    }
    return f;
}

int send_to_journal(const std::vector<std::string>& fields) {
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
    return sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

std::shared_ptr<spdlog::sinks::sink> make_journal_sink(JournalSend send) {
    return std::make_shared<JournalSink>(std::move(send));
}

void log_to_journal() {
    auto logger = std::make_shared<spdlog::logger>("netbackd", make_journal_sink());
    logger->set_level(spdlog::default_logger()->level());
    spdlog::set_default_logger(std::move(logger));
}

} // namespace netbackd::service
