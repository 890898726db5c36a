// Store::transaction and Store::control's default, shared by every Store implementation.
#include <cerrno>
#include <string>

#include "backend/platform/platform.hpp"

namespace netbackd::platform {

void Store::transaction(const std::function<void(TxId)>& body, int max_attempts) {
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
        const TxId tx = transaction_start();
        try {
            body(tx);
        } catch (...) {
            try {
                transaction_end(tx, false);
            } catch (...) {
                // The body's failure is the one worth reporting.
            }
            throw;
        }
        if (transaction_end(tx, true)) return;
    }
    throw PlatformError(
        "xenstore transaction still conflicting after " + std::to_string(max_attempts) + " attempts", EAGAIN);
}

std::string Store::control(std::string_view command) {
    throw PlatformError("xenstore control " + std::string(command) + ": not supported by this store", ENOSYS);
}

} // namespace netbackd::platform
