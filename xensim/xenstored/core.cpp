#include "xensim/xenstored/core.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>

#include <fmt/format.h>

#include "xensim/xenstored/errors.hpp"
#include "xensim/xenstored/paths.hpp"
#include "xensim/xenstored/wire.hpp"

namespace netbackd::xensim::xs {

namespace {

const std::string kOk("OK", 3); // with its NUL, as xenstored sends it

std::vector<std::string_view> strings_of(std::string_view payload) {
    auto a = split_strings(payload);
    if (!a) fail(EINVAL);
    return std::move(*a);
}

std::string_view one_arg(std::string_view payload) {
    auto a = strings_of(payload);
    if (a.size() != 1) fail(EINVAL);
    return a.front();
}

template <typename T>
T number(std::string_view text, T max) {
    unsigned long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v > max) fail(EINVAL);
    return static_cast<T>(v);
}

platform::DomId domid_arg(std::string_view text) { return number<platform::DomId>(text, 0x7fef); }

void need_privilege(const Session& s) {
    if (!s.caller.privileged()) fail(EACCES);
}

std::string with_nul(std::string s) {
    s += '\0';
    return s;
}

} // namespace

Core::Core(Hooks hooks, CoreLimits limits) : hooks_(std::move(hooks)), limits_(limits) {}

View& Core::view_for(Session& s, platform::TxId tx) {
    if (tx == 0) return tree_;
    auto it = s.transactions.find(tx);
    if (it == s.transactions.end()) fail(ENOENT);
    return *it->second;
}

std::vector<Change>& Core::changes_for(Session& s, platform::TxId tx) {
    if (tx == 0) return changes_;
    auto it = s.transactions.find(tx);
    if (it == s.transactions.end()) fail(ENOENT);
    return it->second->pending();
}

void Core::handle(Session& s, const xsd_sockmsg& header, std::string_view payload) {
    changes_.clear();
    initial_events_.clear();
    try {
        std::string reply = dispatch(s, header, payload);
        append_message(s.out, header.type, header.req_id, header.tx_id, reply);
    } catch (const XsError& e) {
        append_message(s.out, XS_ERROR, header.req_id, header.tx_id,
                       with_nul(std::string(errno_name(e.code()))));
    }
    note_output(s);
    fire(changes_);
    for (auto& [session, watch] : initial_events_) queue_event(*session, watch, watch.path);
    changes_.clear();
    initial_events_.clear();
}

std::string Core::dispatch(Session& s, const xsd_sockmsg& h, std::string_view payload) {
    const auto path_of = [&](std::string_view p) {
        auto r = resolve(p, s.caller.domid);
        if (!r) fail(EINVAL);
        return std::move(*r);
    };

    switch (h.type) {
    case XS_READ: {
        auto path = path_of(one_arg(payload));
        return read(view_for(s, h.tx_id), s.caller, path);
    }
    case XS_DIRECTORY: {
        auto path = path_of(one_arg(payload));
        auto listing = join_strings(directory(view_for(s, h.tx_id), s.caller, path));
        // Too long for one message: libxenstore then pages through DIRECTORY_PART.
        if (listing.size() > XENSTORE_PAYLOAD_MAX) fail(E2BIG);
        return listing;
    }
    case XS_DIRECTORY_PART: {
        auto a = strings_of(payload);
        if (a.size() != 2) fail(EINVAL);
        auto path = path_of(a[0]);
        auto offset = number<std::size_t>(a[1], XENSTORE_PAYLOAD_MAX * 1024ULL);
        View& view = view_for(s, h.tx_id);
        auto names = directory(view, s.caller, path);
        std::string reply = with_nul(std::to_string(view.get(path)->generation));
        std::string all = join_strings(names);
        if (offset > all.size()) fail(EINVAL);
        // Whole names only, and an extra NUL once the listing is complete.
        std::size_t end = offset;
        while (end < all.size()) {
            std::size_t next = all.find('\0', end) + 1;
            if (reply.size() + (next - offset) + 1 > XENSTORE_PAYLOAD_MAX) break;
            end = next;
        }
        reply.append(all, offset, end - offset);
        if (end == all.size()) reply += '\0';
        return reply;
    }
    case XS_GET_PERMS: {
        auto path = path_of(one_arg(payload));
        std::vector<std::string> out;
        for (const auto& p : get_perms(view_for(s, h.tx_id), s.caller, path)) out.push_back(format_perm(p));
        return join_strings(out);
    }
    case XS_WRITE: {
        auto nul = payload.find('\0');
        if (nul == std::string_view::npos) fail(EINVAL);
        auto path = path_of(payload.substr(0, nul));
        write(view_for(s, h.tx_id), s.caller, path, payload.substr(nul + 1), limits_.store,
              changes_for(s, h.tx_id));
        return kOk;
    }
    case XS_MKDIR: {
        auto path = path_of(one_arg(payload));
        mkdir(view_for(s, h.tx_id), s.caller, path, limits_.store, changes_for(s, h.tx_id));
        return kOk;
    }
    case XS_RM: {
        auto path = path_of(one_arg(payload));
        rm(view_for(s, h.tx_id), s.caller, path, changes_for(s, h.tx_id));
        return kOk;
    }
    case XS_SET_PERMS: {
        auto a = strings_of(payload);
        if (a.size() < 2) fail(EINVAL);
        auto path = path_of(a[0]);
        Perms perms;
        for (auto text : std::span(a).subspan(1)) {
            auto p = parse_perm(text);
            if (!p) fail(EINVAL);
            perms.push_back(*p);
        }
        set_perms(view_for(s, h.tx_id), s.caller, path, std::move(perms), changes_for(s, h.tx_id));
        return kOk;
    }
    case XS_WATCH:
    case XS_UNWATCH: {
        auto a = strings_of(payload);
        if (a.size() < 2) fail(EINVAL);
        Watch w{path_of(a[0]), std::string(a[1]), !is_special(a[0]) && a[0].front() != '/'};
        auto it = std::find_if(s.watches.begin(), s.watches.end(),
                               [&](const Watch& x) { return x.path == w.path && x.token == w.token; });
        if (h.type == XS_UNWATCH) {
            if (it == s.watches.end()) fail(ENOENT);
            unindex(s, *it);
            s.watches.erase(it);
            return kOk;
        }
        if (it != s.watches.end()) fail(EEXIST);
        if (s.watches.size() >= limits_.max_watches) fail(E2BIG);
        s.watches.push_back(w);
        watch_index_.emplace(w.path, IndexedWatch{&s, next_watch_seq_++, w});
        // Every watch fires once when set, so clients need not read the initial state apart.
        initial_events_.emplace_back(&s, std::move(w));
        return kOk;
    }
    case XS_TRANSACTION_START: {
        one_arg(payload);
        if (s.transactions.size() >= limits_.max_transactions) fail(ENOSPC);
        platform::TxId id = next_tx_++;
        if (id == 0) id = next_tx_++;
        s.transactions.emplace(id, std::make_unique<Transaction>(tree_));
        return with_nul(std::to_string(id));
    }
    case XS_TRANSACTION_END: {
        auto verdict = one_arg(payload);
        if (verdict != "T" && verdict != "F") fail(EINVAL);
        auto it = s.transactions.find(h.tx_id);
        if (it == s.transactions.end()) fail(ENOENT);
        auto tx = std::move(it->second);
        s.transactions.erase(it);
        if (verdict == "T" && !tx->commit(changes_)) fail(EAGAIN);
        return kOk;
    }
    case XS_INTRODUCE: {
        need_privilege(s);
        auto a = strings_of(payload);
        if (a.size() < 3) fail(EINVAL);
        auto id = domid_arg(a[0]);
        if (id == 0) fail(EINVAL);
        introduce(id); // the ring mfn and event channel mean nothing here: clients use sockets
        return kOk;
    }
    case XS_RELEASE: {
        need_privilege(s);
        auto id = domid_arg(one_arg(payload));
        if (id == 0) fail(EINVAL);
        if (!release(id)) fail(ENOENT);
        return kOk;
    }
    case XS_RESUME: {
        need_privilege(s);
        if (!is_introduced(domid_arg(one_arg(payload)))) fail(ENOENT);
        return kOk;
    }
    case XS_IS_DOMAIN_INTRODUCED: {
        need_privilege(s);
        auto id = domid_arg(one_arg(payload));
        return with_nul(id == 0 || is_introduced(id) ? "T" : "F");
    }
    case XS_SET_TARGET: {
        need_privilege(s);
        auto a = strings_of(payload);
        if (a.size() != 2) fail(EINVAL);
        auto id = domid_arg(a[0]);
        auto target = domid_arg(a[1]);
        targets_[id] = target;
        for (Session* other : sessions_)
            if (other->caller.domid == id) other->caller.target = target;
        return kOk;
    }
    case XS_GET_DOMAIN_PATH: return with_nul(domain_home(domid_arg(one_arg(payload))));
    case XS_RESET_WATCHES:
        for (const auto& w : s.watches) unindex(s, w);
        s.watches.clear();
        s.transactions.clear();
        return kOk;
    case XS_CONTROL: {
        // C xenstored answers CONTROL to dom0 only; of its commands only `quota` (no
        // arguments: the settings) is modelled, in its output format.
        need_privilege(s);
        auto a = strings_of(payload);
        if (a.empty() || a.front() != "quota") fail(ENOSYS);
        if (a.size() != 1) fail(ENOSYS);
        return with_nul(quota_settings());
    }
    default: fail(EINVAL);
    }
}

std::string Core::quota_settings() const {
    const auto line = [](std::string_view name, std::size_t value, std::string_view descr) {
        return fmt::format("{:<17}: {:>8} {}\n", name, value, descr);
    };
    return "Quota settings:\n" + line("nodes", limits_.store.max_nodes_per_domain, "Nodes per domain") +
           line("watches", limits_.max_watches, "Watches per domain") +
           line("transactions", limits_.max_transactions, "Transactions per domain") +
           line("node-size", limits_.store.max_value, "Max. size of a node");
}

void Core::queue_event(Session& s, const Watch& w, const std::string& path) {
    std::string shown = path;
    if (w.relative) shown = path.substr(domain_home(s.caller.domid).size() + 1);
    std::string payload = with_nul(std::move(shown));
    payload += w.token;
    payload += '\0';
    append_message(s.out, XS_WATCH_EVENT, 0, 0, payload);
    note_output(s);
}

void Core::note_output(Session& s) {
    if (s.has_new_output) return;
    s.has_new_output = true;
    with_output_.push_back(&s);
}

std::vector<Session*> Core::take_sessions_with_output() {
    std::vector<Session*> out;
    out.swap(with_output_);
    for (Session* s : out) s->has_new_output = false;
    return out;
}

void Core::detach(Session& s) {
    for (const auto& w : s.watches) unindex(s, w);
    sessions_.erase(&s);
    std::erase(with_output_, &s);
}

void Core::unindex(const Session& s, const Watch& w) {
    auto [first, last] = watch_index_.equal_range(w.path);
    for (auto it = first; it != last; ++it)
        if (it->second.session == &s && it->second.watch.token == w.token) {
            watch_index_.erase(it);
            return;
        }
}

void Core::fire(const std::vector<Change>& changes) {
    std::vector<const IndexedWatch*> hits;
    const auto look_up = [&](const std::string& path) {
        auto [first, last] = watch_index_.equal_range(path);
        for (auto it = first; it != last; ++it) {
            ++watches_examined_;
            hits.push_back(&it->second);
        }
    };
    for (const auto& c : changes) {
        hits.clear();
        // A watch hears about its own path and everything beneath it; the descendants of a
        // removed node and the special paths fire only watches on exactly their path.
        if (c.exact || is_special(c.path)) {
            look_up(c.path);
        } else {
            for (std::string p = c.path;; p = parent_of(p)) {
                look_up(p);
                if (p == "/" || p.empty()) break;
            }
        }
        std::sort(hits.begin(), hits.end(), [](const IndexedWatch* a, const IndexedWatch* b) {
            return a->session != b->session ? std::less<>{}(a->session, b->session) : a->seq < b->seq;
        });
        for (const IndexedWatch* h : hits) {
            if (!sessions_.contains(h->session)) continue;
            if (!(access_for(h->session->caller, c.perms) & kRead)) continue;
            queue_event(*h->session, h->watch, c.path);
        }
    }
}

void Core::fire_special(const std::string& path) {
    const Node* n = tree_.find(path);
    fire({Change{path, n ? n->perms : Perms{{0, platform::PermKind::none}}, true}});
}

bool Core::introduce(platform::DomId id) {
    if (!domains_.insert(id).second) return false;
    if (auto t = targets_.find(id); t != targets_.end())
        for (Session* s : sessions_)
            if (s->caller.domid == id) s->caller.target = t->second;
    if (hooks_.introduced) hooks_.introduced(id);
    fire_special("@introduceDomain");
    return true;
}

bool Core::release(platform::DomId id) {
    if (domains_.erase(id) == 0) return false;
    targets_.erase(id);
    if (hooks_.released) hooks_.released(id);
    fire_special("@releaseDomain");
    return true;
}

void Core::make_home(platform::DomId id, std::string_view name) {
    const Caller dom0{};
    const std::string home = domain_home(id);
    std::vector<Change> changes;
    mkdir(tree_, dom0, home, limits_.store, changes);
    Perms home_perms{{0, platform::PermKind::none}};
    if (id != 0) home_perms.push_back({id, platform::PermKind::read});
    set_perms(tree_, dom0, home, std::move(home_perms), changes);
    write(tree_, dom0, home + "/domid", std::to_string(id), limits_.store, changes);
    write(tree_, dom0, home + "/name", name, limits_.store, changes);
    for (const char* sub : {"device", "control", "data", "drivers", "feature", "attr", "error"}) {
        const std::string p = home + "/" + sub;
        mkdir(tree_, dom0, p, limits_.store, changes);
        set_perms(tree_, dom0, p, {{id, platform::PermKind::none}}, changes);
    }
    fire(changes);
}

} // namespace netbackd::xensim::xs
