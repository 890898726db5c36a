#include "backend/platform/sim/client.hpp"

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "backend/platform/gntst.hpp"
#include "backend/platform/sim/seqpacket.hpp"

namespace netbackd::xensim {

using platform::Fd;
using platform::Mmap;
using platform::PlatformError;

namespace {

wire::Request request(wire::Op op, std::uint32_t domid = 0, std::uint32_t arg0 = 0, std::uint32_t arg1 = 0) {
    wire::Request r{};
    r.op = op;
    r.domid = domid;
    r.arg0 = arg0;
    r.arg1 = arg1;
    return r;
}

} // namespace

std::shared_ptr<HvClient> HvClient::connect_admin(const std::string& dir) {
    Fd sock = connect_seqpacket(dir + "/" + wire::kSocketName);
    return std::shared_ptr<HvClient>(new HvClient(std::move(sock), dir));
}

std::shared_ptr<HvClient> HvClient::connect(const std::string& dir, DomId domid) {
    auto client = connect_admin(dir);
    client->eventfd_ = platform::make_eventfd();
    int efd = client->eventfd_.get();
    Answer a = client->call_checked(request(wire::Op::hello, domid), fmt::format("joining domain {}", domid),
                                    std::span<const int>(&efd, 1));
    client->domid_ = domid;
    client->token_ = a.reply.val0;
    client->costs_ = wire::unpack_costs(a.reply.arg64);
    return client;
}

HvClient::Answer HvClient::call(const wire::Request& req, std::span<const int> fds) {
    std::lock_guard lock(call_mutex_);
    send_message(sock_.get(), std::as_bytes(std::span(&req, 1)), fds);
    auto msg = receive_message(sock_.get(), wire::kMaxReply);
    if (!msg || msg->data.size() < sizeof(wire::Reply))
        throw PlatformError(fmt::format("the simulated hypervisor in {} hung up", dir_), ECONNRESET);
    Answer a;
    std::memcpy(&a.reply, msg->data.data(), sizeof a.reply);
    a.text.assign(reinterpret_cast<const char*>(msg->data.data()) + sizeof a.reply,
                  msg->data.size() - sizeof a.reply);
    a.fds = std::move(msg->fds);
    return a;
}

HvClient::Answer HvClient::call_checked(const wire::Request& req, std::string_view what,
                                        std::span<const int> fds) {
    Answer a = call(req, fds);
    if (a.reply.error != 0) throw PlatformError(fmt::format("{}: {}", what, a.text), a.reply.error);
    return a;
}

std::shared_ptr<DomainView> HvClient::domain(DomId domid) {
    std::lock_guard lock(cache_mutex_);
    auto it = domains_.find(domid);
    if (it != domains_.end()) {
        if (it->second->alive()) return it->second;
        domains_.erase(it);
    }
    std::erase_if(domains_, [](const auto& kv) { return !kv.second->alive(); });
    Answer a = call(request(wire::Op::get_domain, domid));
    if (a.reply.error == ESRCH) return nullptr;
    if (a.reply.error != 0 || a.fds.size() != 2)
        throw PlatformError(fmt::format("fetching domain {}: {}", domid, a.text),
                            a.reply.error ? a.reply.error : EPROTO);
    auto view = std::make_shared<DomainView>();
    view->domid = domid;
    view->bytes = a.reply.arg64;
    view->memory_fd = std::move(a.fds[0]);
    view->memory = Mmap::shared(view->memory_fd, view->bytes);
    view->state_map = Mmap::shared(a.fds[1], kStateBytes);
    view->state = reinterpret_cast<DomainState*>(view->state_map.data());
    if (view->state->magic != kStateMagic || view->state->domid != domid)
        throw PlatformError(fmt::format("domain {} state is corrupt", domid), EPROTO);
    domains_.emplace(domid, view);
    return view;
}

int HvClient::eventfd_of(std::uint32_t token) {
    std::lock_guard lock(cache_mutex_);
    if (token == token_) return eventfd_.get();
    auto it = eventfds_.find(token);
    if (it != eventfds_.end()) {
        ++it->second.users;
        return it->second.fd.get();
    }
    Answer a = call(request(wire::Op::get_eventfd, 0, token));
    if (a.reply.error != 0 || a.fds.size() != 1) return -1;
    int fd = a.fds[0].get();
    eventfds_.emplace(token, SharedEventfd{std::move(a.fds[0]), 1});
    return fd;
}

void HvClient::release_eventfd(std::uint32_t token) noexcept {
    std::lock_guard lock(cache_mutex_);
    auto it = eventfds_.find(token);
    if (it != eventfds_.end() && --it->second.users == 0) eventfds_.erase(it);
}

void HvClient::create_domain(DomId domid, const std::string& name, std::uint64_t bytes,
                             std::uint32_t max_event_channels) {
    wire::Request req = request(wire::Op::create_domain, domid);
    req.arg64 = bytes;
    req.arg0 = max_event_channels;
    if (name.size() >= wire::kNameMax)
        throw PlatformError(fmt::format("domain name too long: {}", name), EINVAL);
    std::memcpy(req.name, name.data(), name.size());
    call_checked(req, fmt::format("creating domain {}", domid));
}

void HvClient::destroy_domain(DomId domid) {
    call_checked(request(wire::Op::destroy_domain, domid), fmt::format("destroying domain {}", domid));
}

std::vector<DomainInfo> HvClient::list_domains() {
    Answer a = call_checked(request(wire::Op::list_domains), "listing domains");
    std::vector<DomainInfo> out;
    std::istringstream in(a.text);
    unsigned domid;
    std::string name;
    std::uint64_t bytes;
    while (in >> domid >> name >> bytes) out.push_back({static_cast<DomId>(domid), name, bytes});
    return out;
}

platform::EvtchnPort HvClient::alloc_unbound(DomId remote) {
    return call_checked(request(wire::Op::alloc_unbound, 0, remote), "evtchn alloc_unbound").reply.val0;
}

platform::EvtchnPort HvClient::bind_interdomain(DomId remote, platform::EvtchnPort remote_port) {
    return call_checked(request(wire::Op::bind_interdomain, 0, remote, remote_port),
                        fmt::format("evtchn bind to domain {} port {}", remote, remote_port))
        .reply.val0;
}

void HvClient::unbind(platform::EvtchnPort port) {
    call_checked(request(wire::Op::unbind, 0, port), fmt::format("evtchn unbind {}", port));
}

std::uint32_t HvClient::map_grant(DomId granter, platform::GrantRef ref, bool writable) {
    Answer a = call(request(wire::Op::map_grant, granter, ref, writable ? 1 : 0));
    if (a.reply.error == EACCES) {
        auto status = static_cast<std::int32_t>(a.reply.val0);
        throw PlatformError(fmt::format("grant map of d{} ref {} ({}): {}", granter, ref,
                                        writable ? "rw" : "ro", platform::gntst_name(status)),
                            status);
    }
    if (a.reply.error != 0)
        throw PlatformError(fmt::format("grant map of d{} ref {}: {}", granter, ref, a.text), a.reply.error);
    return a.reply.val0;
}

void HvClient::unmap_grant(DomId granter, platform::GrantRef ref, bool writable) noexcept {
    try {
        call(request(wire::Op::unmap_grant, granter, ref, writable ? 1 : 0));
    } catch (const PlatformError&) {}
}

} // namespace netbackd::xensim
