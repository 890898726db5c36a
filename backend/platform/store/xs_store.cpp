#include "backend/platform/store/xs_store.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

// libxenstore 4.17's header has no C++ linkage guard of its own.
extern "C" {
#include <xenstore.h>
}

namespace netbackd::platform {

namespace {

struct XsClose {
    void operator()(xs_handle* h) const noexcept { xs_close(h); }
};
using XsHandle = std::unique_ptr<xs_handle, XsClose>;

// libxenstore hands out malloc()ed results.
struct Free {
    void operator()(void* p) const noexcept { std::free(p); }
};
template <typename T>
using Malloced = std::unique_ptr<T, Free>;

[[noreturn]] void raise(std::string_view op, std::string_view path) {
    const int e = errno;
    throw PlatformError("xenstore " + std::string(op) + " " + std::string(path) + ": " + std::strerror(e), e);
}

unsigned to_xs(PermKind kind) {
    switch (kind) {
    case PermKind::read: return XS_PERM_READ;
    case PermKind::write: return XS_PERM_WRITE;
    case PermKind::both: return XS_PERM_READ | XS_PERM_WRITE;
    case PermKind::none: break;
    }
    return XS_PERM_NONE;
}

PermKind from_xs(unsigned bits) {
    const bool r = bits & XS_PERM_READ, w = bits & XS_PERM_WRITE;
    return r && w ? PermKind::both : r ? PermKind::read : w ? PermKind::write : PermKind::none;
}

bool exists(const char* path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

// XENSTORED_PATH is the only way to point libxenstore at a socket, and the environment is
// process-wide: serialise our own opens around it.
std::mutex g_env_mutex;

XsHandle open_socket(const std::string& socket_path) {
    if (!exists(socket_path.c_str()))
        throw PlatformError(
            "xenstored socket " + socket_path + " is missing: is the simulated host up (xensim up)?", ENOENT);
    // libxenstore would treat anything else as a xenbus device file and speak to it regardless.
    std::error_code ec;
    if (!std::filesystem::is_socket(socket_path, ec))
        throw PlatformError(socket_path + " is not a unix socket, so no xenstored listens there", ENOTSOCK);
    std::lock_guard lock(g_env_mutex);
    const char* old = std::getenv("XENSTORED_PATH");
    const std::string saved = old ? old : "";
    ::setenv("XENSTORED_PATH", socket_path.c_str(), 1);
    XsHandle h(xs_open(XS_OPEN_SOCKETONLY));
    const int e = errno;
    if (old)
        ::setenv("XENSTORED_PATH", saved.c_str(), 1);
    else
        ::unsetenv("XENSTORED_PATH");
    if (!h)
        throw PlatformError("cannot connect to xenstored socket " + socket_path + ": " + std::strerror(e), e);
    return h;
}

XsHandle open_default() {
    XsHandle h(xs_open(0));
    if (h) return h;
    const int e = errno;
    const char* sock = xs_daemon_socket();
    if (!exists(sock) && !exists("/dev/xen/xenbus") && !exists("/proc/xen/xenbus"))
        throw PlatformError(std::string("neither ") + sock +
                                " nor /dev/xen/xenbus exists: not running on Xen (use --platform=sim)",
                            ENOENT);
    throw PlatformError(
        std::string("cannot open xenstore (") + sock + " or /dev/xen/xenbus): " + std::strerror(e), e);
}

class XsStore final : public Store {
public:
    explicit XsStore(XsHandle h) : h_(std::move(h)), watch_fd_(xs_fileno(h_.get())) {
        if (watch_fd_ < 0) raise("fileno", "");
    }

    std::optional<std::string> read(TxId tx, std::string_view path) override {
        const std::string p(path);
        unsigned len = 0;
        Malloced<char> v(static_cast<char*>(xs_read(h_.get(), tx, p.c_str(), &len)));
        if (!v) {
            if (errno == ENOENT) return std::nullopt;
            raise("read", path);
        }
        return std::string(v.get(), len);
    }

    void write(TxId tx, std::string_view path, std::string_view value) override {
        const std::string p(path);
        if (!xs_write(h_.get(), tx, p.c_str(), value.data(), static_cast<unsigned>(value.size())))
            raise("write", path);
    }

    void mkdir(TxId tx, std::string_view path) override {
        const std::string p(path);
        if (!xs_mkdir(h_.get(), tx, p.c_str())) raise("mkdir", path);
    }

    void rm(TxId tx, std::string_view path) override {
        const std::string p(path);
        if (!xs_rm(h_.get(), tx, p.c_str()) && errno != ENOENT) raise("rm", path);
    }

    std::optional<std::vector<std::string>> directory(TxId tx, std::string_view path) override {
        const std::string p(path);
        unsigned num = 0;
        Malloced<char*> list(xs_directory(h_.get(), tx, p.c_str(), &num));
        if (!list) {
            if (errno == ENOENT) return std::nullopt;
            raise("directory", path);
        }
        return std::vector<std::string>(list.get(), list.get() + num);
    }

    std::vector<Perm> get_perms(TxId tx, std::string_view path) override {
        const std::string p(path);
        unsigned num = 0;
        Malloced<xs_permissions> perms(xs_get_permissions(h_.get(), tx, p.c_str(), &num));
        if (!perms) raise("get_perms", path);
        std::vector<Perm> out;
        for (unsigned i = 0; i < num; ++i)
            out.push_back({static_cast<DomId>(perms.get()[i].id), from_xs(perms.get()[i].perms)});
        return out;
    }

    void set_perms(TxId tx, std::string_view path, std::span<const Perm> perms) override {
        const std::string p(path);
        std::vector<xs_permissions> xp;
        for (const auto& perm : perms) xp.push_back({perm.domid, to_xs(perm.kind)});
        if (!xs_set_permissions(h_.get(), tx, p.c_str(), xp.data(), static_cast<unsigned>(xp.size())))
            raise("set_perms", path);
    }

    TxId transaction_start() override {
        xs_transaction_t t = xs_transaction_start(h_.get());
        if (t == XBT_NULL) raise("transaction_start", "");
        return t;
    }

    bool transaction_end(TxId tx, bool commit) override {
        if (xs_transaction_end(h_.get(), tx, !commit)) return true;
        if (errno == EAGAIN && commit) return false;
        raise("transaction_end", "");
    }

    void watch(std::string_view path, std::string_view token) override {
        const std::string p(path), t(token);
        if (!xs_watch(h_.get(), p.c_str(), t.c_str())) raise("watch", path);
    }

    void unwatch(std::string_view path, std::string_view token) override {
        const std::string p(path), t(token);
        if (!xs_unwatch(h_.get(), p.c_str(), t.c_str())) raise("unwatch", path);
    }

    int watch_fd() const override { return watch_fd_; }

    std::vector<WatchEvent> read_watches() override {
        std::vector<WatchEvent> out;
        for (;;) {
            Malloced<char*> w(xs_check_watch(h_.get()));
            if (!w) {
                if (errno == EAGAIN) return out;
                // With nothing queued and the connection gone, libxenstore reports EINVAL.
                raise("read_watches", "(connection lost?)");
            }
            out.push_back({w.get()[XS_WATCH_PATH], w.get()[XS_WATCH_TOKEN]});
        }
    }

    DomId self_domid() override {
        auto v = read(XBT_NULL, "domid");
        if (!v)
            throw PlatformError("xenstore key \"domid\" (relative to this domain's home) is missing: "
                                "cannot tell which domain this is",
                                ENOENT);
        unsigned id = 0;
        auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), id);
        if (ec != std::errc{} || end != v->data() + v->size() || id > 0xffff)
            throw PlatformError("xenstore key \"domid\" holds \"" + *v + "\", not a domid", EINVAL);
        return static_cast<DomId>(id);
    }

    std::string control(std::string_view command) override {
        const std::string cmd(command);
        Malloced<char> answer(xs_control_command(h_.get(), cmd.c_str(), nullptr, 0));
        if (!answer) raise("control", cmd);
        return answer.get();
    }

private:
    XsHandle h_;
    int watch_fd_;
};

} // namespace

std::unique_ptr<Store> open_xs_store(const std::string& socket_path) {
    return std::make_unique<XsStore>(socket_path.empty() ? open_default() : open_socket(socket_path));
}

} // namespace netbackd::platform
