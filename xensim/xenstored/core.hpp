// The daemon minus its sockets: per-connection protocol state, request dispatch, watch
// delivery and the domain list. Single-threaded; the server serialises calls.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <xen/io/xs_wire.h>

#include "xensim/xenstored/ops.hpp"
#include "xensim/xenstored/transaction.hpp"

namespace netbackd::xensim::xs {

struct Watch {
    std::string path; // absolute, or special
    std::string token;
    bool relative; // events are reported relative to the domain's home, as registered
};

// One client connection's protocol state.
struct Session {
    explicit Session(platform::DomId domid) : caller{domid, {}} {}
    Caller caller;
    std::vector<Watch> watches;
    std::map<platform::TxId, std::unique_ptr<Transaction>> transactions;
    std::string out;             // replies and watch events not yet written to the socket
    bool has_new_output = false; // listed for Core::take_sessions_with_output()
};

struct CoreLimits {
    Limits store;
    std::size_t max_watches = 128;     // per connection, E2BIG beyond
    std::size_t max_transactions = 10; // per connection, ENOSPC beyond
};

class Core {
public:
    struct Hooks {
        std::function<void(platform::DomId)> introduced; // open the domain's socket
        std::function<void(platform::DomId)> released;   // close its socket and connections
    };

    explicit Core(Hooks hooks, CoreLimits limits = {});

    void attach(Session& s) { sessions_.insert(&s); }
    void detach(Session& s);

    // Handles one complete request and queues the reply (and any watch events) on the sessions.
    void handle(Session& s, const xsd_sockmsg& header, std::string_view payload);

    // What INTRODUCE and RELEASE do; false when nothing changed.
    bool introduce(platform::DomId id);
    bool release(platform::DomId id);
    bool is_introduced(platform::DomId id) const { return domains_.contains(id); }

    // Creates /local/domain/<id> as libxl does for a new domain: owned by dom0, readable by the
    // domain, holding "domid" and "name", with the writable subdirectories a guest expects.
    void make_home(platform::DomId id, std::string_view name);

    Tree& tree() noexcept { return tree_; }
    // Watches looked at so far by changes: a change looks only at the watches on its path and
    // its ancestors, never at every watch of every connection (a test counts this).
    std::uint64_t watches_examined() const noexcept { return watches_examined_; }
    // Every session gets the sessions with output since the last call (each once).
    std::vector<Session*> take_sessions_with_output();

private:
    // `xenstore-control quota`'s answer, as C xenstored formats it.
    std::string quota_settings() const;
    std::string dispatch(Session& s, const xsd_sockmsg& header, std::string_view payload);
    View& view_for(Session& s, platform::TxId tx);
    void fire(const std::vector<Change>& changes);
    void fire_special(const std::string& path);
    void queue_event(Session& s, const Watch& w, const std::string& path);
    void unindex(const Session& s, const Watch& w);
    void note_output(Session& s);

    std::vector<Change>& changes_for(Session& s, platform::TxId tx);

    Hooks hooks_;
    CoreLimits limits_;
    // Collected while serving one request and delivered after its reply.
    std::vector<Change> changes_;
    std::vector<std::pair<Session*, Watch>> initial_events_;
    Tree tree_;
    std::set<Session*> sessions_;
    // Every session's watches by their path. C xenstored walks all connections' watches for
    // each change; with a watch per vif in the driver domain and a connection per guest, that
    // made a host's attach quadratic in its guests. Who hears what, and in which order, is
    // unchanged: a change's hits are delivered per session in the order the watches were set.
    struct IndexedWatch {
        Session* session;
        std::uint64_t seq; // registration order
        Watch watch;
    };
    std::multimap<std::string, IndexedWatch> watch_index_;
    std::uint64_t next_watch_seq_ = 1;
    std::uint64_t watches_examined_ = 0;
    std::vector<Session*> with_output_;
    std::set<platform::DomId> domains_;
    std::map<platform::DomId, platform::DomId> targets_;
    platform::TxId next_tx_ = 1;
};

} // namespace netbackd::xensim::xs
