// The simulated hypervisor's control server on DIR/hypervisor.sock: owns the domain registry,
// hands out each domain's memfds, and performs event-channel binding. It is never on a data
// path: grant copies and notifies run in the client processes against shared memory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend/platform/fd.hpp"
#include "backend/platform/sim/protocol.hpp"
#include "backend/platform/sim/shared_state.hpp"

namespace netbackd::xensim {

class Hypervisor {
public:
    // Listens on dir/hypervisor.sock and creates Domain-0. `costs` is told to every process
    // joining a domain (see wire::CostModel).
    explicit Hypervisor(std::string dir, wire::CostModel costs = {});
    ~Hypervisor();
    Hypervisor(const Hypervisor&) = delete;
    Hypervisor& operator=(const Hypervisor&) = delete;

    // What else must happen when a domain comes or goes (xensim up: its xenstore home and
    // INTRODUCE / RELEASE). Called on the serving thread; a throwing `created` undoes the create.
    struct Hooks {
        std::function<void(std::uint16_t domid, const std::string& name)> created;
        std::function<void(std::uint16_t domid)> destroyed;
    };
    void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

    // Serves until stop(); blocking.
    void run();
    // Thread- and signal-safe.
    void stop() noexcept;

    const std::string& socket_path() const { return socket_path_; }

    // What one request produced (public only so file-local helpers can build one).
    struct Outcome {
        std::int32_t error = 0;
        std::uint32_t val0 = 0;
        std::uint64_t arg64 = 0;
        std::string text;
        std::vector<int> fds;
    };

private:
    struct Domain {
        std::uint16_t domid;
        std::string name;
        std::uint64_t bytes;
        platform::Fd memory;
        platform::Fd state_fd;
        platform::Mmap state_map;
        DomainState* state;
        // Tells a recreated domain from its predecessor with the same domid.
        std::uint64_t generation;
    };
    struct Conn {
        platform::Fd sock;
        bool in_domain = false;
        std::uint16_t domid = 0;
        std::uint32_t token = 0;
        platform::Fd eventfd;
        std::vector<std::uint32_t> ports;
        struct Map {
            std::uint16_t domid;
            std::uint64_t generation;
            std::uint32_t ref;
            bool readonly;
        };
        std::vector<Map> maps;
    };

    void accept_conn();
    // false when the connection is finished.
    bool serve(Conn& c);
    Outcome handle(Conn& c, const wire::Request& req, std::vector<platform::Fd>& fds);
    void drop(Conn& c);
    Outcome map_grant(Conn& c, const wire::Request& req);
    Outcome unmap_grant(Conn& c, const wire::Request& req);

    Domain& create_domain(std::uint16_t domid, std::string name, std::uint64_t bytes,
                          std::uint32_t max_event_channels = kDefaultMaxEventChannels);
    void destroy_domain(std::uint16_t domid);
    Domain* find(std::uint32_t domid);
    Outcome allocate_port(Conn& c, std::uint16_t remote_dom, std::uint32_t remote_port, bool interdomain);
    void close_port(Domain& d, std::uint32_t port);

    std::string dir_;
    wire::CostModel costs_;
    std::string socket_path_;
    platform::Fd listener_;
    platform::Fd stop_fd_;
    // Every connection stays registered here: the loop's cost per request does not grow with
    // the connections (a process per guest), as poll() over all of them did.
    platform::Fd epoll_;
    std::map<std::uint16_t, Domain> domains_;
    std::map<std::uint32_t, Conn> conns_; // by owner token
    std::uint32_t next_token_ = 1;
    std::uint64_t next_generation_ = 1;
    Hooks hooks_;
};

} // namespace netbackd::xensim
