/* The lab's UDP packet-rate probe, linked statically into the client images and dom0 (busybox
 * has no UDP sender or counter). Small packets measure per-packet cost, which a TCP transfer
 * hides behind GSO/GRO.
 *   udpperf send ADDR PORT PAYLOAD SECONDS   send PAYLOAD-byte datagrams as fast as the socket
 *                                            takes them; prints "sent N"
 *   udpperf recv PORT WAIT                   count datagrams; ends 1 s after the last one (or
 *                                            after WAIT s with none); prints
 *                                            "recv N <first-to-last seconds> <pps>"
 * The rate is taken at the receiver between its first and last datagram, so neither the
 * sender's start-up nor the receiver's own start time enters it. An 18-byte payload makes a
 * 64-byte Ethernet frame (14 + 20 + 8 + 18 + 4 FCS). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void) {
    fprintf(stderr, "usage: udpperf send ADDR PORT PAYLOAD SECONDS | udpperf recv PORT WAIT\n");
    return 2;
}

static int do_send(const char* addr, int port, int payload, double seconds) {
    enum { kBatch = 32 };
    static char buf[1472];
    if (payload < 0 || payload > (int)sizeof buf) return usage();
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (s < 0 || inet_pton(AF_INET, addr, &to.sin_addr) != 1) return usage();
    /* connect: the kernel resolves the route once, not per datagram. */
    if (connect(s, (struct sockaddr*)&to, sizeof to) != 0) {
        perror("connect");
        return 1;
    }
    struct iovec iov[kBatch];
    struct mmsghdr msgs[kBatch];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < kBatch; ++i) {
        iov[i].iov_base = buf;
        iov[i].iov_len = (size_t)payload;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long sent = 0;
    const double end = now() + seconds;
    while (now() < end) {
        int n = sendmmsg(s, msgs, kBatch, 0);
        /* ECONNREFUSED: an ICMP port unreachable from a receiver not yet bound; ENOBUFS: a full
         * queue. Both are transient for a rate probe. */
        if (n < 0 && errno != ECONNREFUSED && errno != ENOBUFS && errno != EINTR) {
            perror("sendmmsg");
            return 1;
        }
        if (n > 0) sent += (unsigned long long)n;
    }
    printf("sent %llu\n", sent);
    return 0;
}

static int do_recv(int port, double wait) {
    enum { kBatch = 64 };
    static char bufs[kBatch][2048];
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    /* A receiver starved for a few ms under TCG must not drop at its own socket: a 64 B
     * datagram costs ~1 KiB of buffer, and SO_RCVBUF stops at rmem_max (~200 KiB). FORCE (root,
     * as in the lab) goes past it; SO_RCVBUF is the fallback. */
    int big = 4 << 20;
    if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
        (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (s < 0 || bind(s, (struct sockaddr*)&me, sizeof me) != 0) {
        perror("bind");
        return 1;
    }
    struct iovec iov[kBatch];
    struct mmsghdr msgs[kBatch];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < kBatch; ++i) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long count = 0, opening = 0;
    double first = 0, last = 0;
    const double give_up = now() + wait;
    for (;;) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        if (r <= 0) {
            if (count != 0 || now() > give_up) break;
            continue;
        }
        int n = recvmmsg(s, msgs, kBatch, MSG_DONTWAIT, NULL);
        if (n <= 0) continue;
        const double t = now();
        if (count == 0) {
            first = t;
            opening = (unsigned long long)n;
        }
        last = t;
        count += (unsigned long long)n;
    }
    const double span = last - first;
    /* The first batch opens the window: it is not counted in the rate. */
    printf("recv %llu %.3f %.0f\n", count, span, span > 0 ? (double)(count - opening) / span : 0.0);
    return count != 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc == 6 && strcmp(argv[1], "send") == 0)
        return do_send(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    if (argc == 4 && strcmp(argv[1], "recv") == 0) return do_recv(atoi(argv[2]), atof(argv[3]));
    return usage();
}
