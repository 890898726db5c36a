#include "tests/support/dpdk_eal.hpp"

#include <atomic>

#include <unistd.h>

namespace netbackd::pmd::test {

Eal& dataplane_eal(const std::vector<std::string>& vdevs) {
    static Eal eal([&] {
        EalConfig c;
        c.hugepages = false;
        c.memory_mb = 256;
        c.file_prefix = "nbtest-" + std::to_string(::getpid());
        c.vdevs = vdevs;
        return c;
    }());
    return eal;
}

std::string unique_name(std::string_view prefix) {
    static std::atomic<unsigned> counter{0};
    return std::string(prefix) + std::to_string(counter++);
}

Mempool small_pool(std::uint32_t mbufs, std::uint16_t data_room) {
    dataplane_eal();
    return Mempool({.name = unique_name("pool"), .mbufs = mbufs, .cache = 32, .data_room = data_room});
}

MbufPtr mbuf_chain(rte_mempool* pool, std::span<const std::byte> bytes,
                   std::initializer_list<std::size_t> first_sizes) {
    std::size_t done = 0;
    MbufPtr head;
    rte_mbuf* tail = nullptr;
    const auto append = [&](MbufPtr seg) {
        if (!head) {
            head = std::move(seg);
            tail = head.get();
        } else {
            head->pkt_len += seg->pkt_len;
            head->nb_segs = static_cast<std::uint16_t>(head->nb_segs + seg->nb_segs);
            tail->next = seg.release();
            while (tail->next != nullptr) {
                tail = tail->next;
            }
        }
    };
    for (const std::size_t n : first_sizes) {
        auto seg = mbuf_from_bytes(pool, bytes.subspan(done, n));
        if (!seg) {
            return nullptr;
        }
        append(std::move(seg));
        done += n;
    }
    if (done < bytes.size()) {
        auto rest = mbuf_from_bytes(pool, bytes.subspan(done));
        if (!rest) {
            return nullptr;
        }
        append(std::move(rest));
    }
    return head;
}

} // namespace netbackd::pmd::test
