// libFuzzer: hostile byte streams from three connections (dom0 and two guests), interleaved,
// through the daemon's framing and request handling. Checks that nothing crashes, that the
// tree stays consistent and that no guest ever gains write access it was not granted.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "xensim/xenstored/core.hpp"
#include "xensim/xenstored/wire.hpp"

using namespace netbackd::xensim::xs;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Core core(Core::Hooks{});
    core.make_home(0, "Domain-0");
    core.make_home(5, "five");
    core.make_home(7, "seven");
    core.introduce(5);
    core.introduce(7);
    std::array<Session, 3> sessions{Session(0), Session(5), Session(7)};
    std::array<std::string, 3> inputs;
    std::array<bool, 3> open{true, true, true};
    for (auto& s : sessions) core.attach(s);

    // Chunks of [session selector][length][bytes...], so requests from different domains
    // interleave and split at arbitrary points.
    bool dom0_spoke = false;
    std::size_t i = 0;
    while (i + 2 <= size) {
        const std::size_t who = data[i] % 3;
        const std::size_t len = std::min<std::size_t>(data[i + 1], size - i - 2);
        dom0_spoke = dom0_spoke || (who == 0 && len > 0);
        inputs[who].append(reinterpret_cast<const char*>(data + i + 2), len);
        i += 2 + len;
        if (!open[who]) continue;
        open[who] = consume_messages(inputs[who], [&](const xsd_sockmsg& h, std::string_view payload) {
            core.handle(sessions[who], h, payload);
            return true;
        });
        for (auto& s : sessions) s.out.clear();
    }

    if (!core.tree().consistent()) __builtin_trap();
    // Without dom0's help, guests cannot touch what dom0 owns.
    if (!dom0_spoke) {
        for (const char* key : {"/local/domain/0/domid", "/local/domain/5/domid", "/local/domain/7/name"}) {
            const Node* n = core.tree().find(key);
            if (!n || n->perms.front().domid != 0) __builtin_trap();
        }
        if (core.tree().find("/local/domain/5/domid")->value != "5") __builtin_trap();
    }
    for (auto& s : sessions) core.detach(s);
    return 0;
}
