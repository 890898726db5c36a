// Watch delivery in the daemon core: who hears a change, in which order, and what it costs.
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "xensim/xenstored/core.hpp"
#include "xensim/xenstored/wire.hpp"

using namespace netbackd::xensim::xs;

namespace {

void request(Core& core, Session& s, std::uint32_t type, const std::vector<std::string>& args) {
    std::string payload;
    for (const auto& a : args) {
        payload += a;
        payload += '\0';
    }
    xsd_sockmsg h{};
    h.type = type;
    h.req_id = 1;
    h.len = static_cast<std::uint32_t>(payload.size());
    core.handle(s, h, payload);
}

// The watch events queued on `s` as "path token", its replies dropped.
std::vector<std::string> events(Session& s) {
    std::vector<std::string> out;
    consume_messages(s.out, [&](const xsd_sockmsg& h, std::string_view payload) {
        if (h.type == XS_WATCH_EVENT) {
            const auto a = split_strings(payload);
            if (a && a->size() >= 2) out.push_back(fmt::format("{} {}", (*a)[0], (*a)[1]));
        }
        return true;
    });
    return out;
}

} // namespace

TEST_CASE("watches: a change looks only at watches on its path and its ancestors", "[xenstored][watch]") {
    Core core(Core::Hooks{});
    Session dom0(0);
    Session other(0);
    core.attach(dom0);
    core.attach(other);
    // A driver domain's worth of unrelated watches, one per vif.
    for (int i = 0; i < 1000; ++i)
        request(core, other, XS_WATCH, {fmt::format("/local/domain/{}/device/vif/0/state", 10 + i), "fe"});
    request(core, dom0, XS_WATCH, {"/b", "mine"});
    events(dom0);
    events(other);

    const auto before = core.watches_examined();
    request(core, dom0, XS_WRITE, {"/b/c/d", "x"}); // fires for the written path, as xenstored
    CHECK(core.watches_examined() - before == 1);   // the one watch on /b
    CHECK(events(dom0) == std::vector<std::string>{"/b/c/d mine"});
    CHECK(events(other).empty());
}

TEST_CASE("watches: one change, several watches of a session: heard in the order they were set",
          "[xenstored][watch]") {
    Core core(Core::Hooks{});
    Session s(0);
    core.attach(s);
    request(core, s, XS_WRITE, {"/a/b", ""});
    request(core, s, XS_WATCH, {"/a/b", "second-deeper"});
    request(core, s, XS_WATCH, {"/", "root"});
    request(core, s, XS_WATCH, {"/a", "third"});
    events(s); // the initial events
    request(core, s, XS_WRITE, {"/a/b", "v"});
    CHECK(events(s) == std::vector<std::string>{"/a/b second-deeper", "/a/b root", "/a/b third"});
    request(core, s, XS_UNWATCH, {"/", "root"});
    request(core, s, XS_RM, {"/a"}); // /a fires /a's watch; its child /a/b fires exact watches only
    CHECK(events(s) == std::vector<std::string>{"/a third", "/a/b second-deeper"});
    core.detach(s);
}
