/*
 * The host end of testos's net-blast (bench/net.py): on a tap, one thread
 * sends UDP frames to the guest's MAC as fast as the tap takes them
 * (AF_PACKET, sendmmsg in batches, qdisc bypassed) while another counts the
 * frames that come from the guest's MAC on a packet socket of its own.
 * Usage: netblast TAP GUEST_MAC GUEST_IP SECONDS [FRAME_BYTES] [--no-send]
 * It stops after SECONDS, or earlier on SIGINT or SIGTERM (then prints).
 * Prints: netblast sent=N send_full=F got=M drops=D seconds=S
 *   sent: frames the tap took; send_full: batches it refused (queue full);
 *   got: frames from the guest's MAC; drops: frames the packet socket lost.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH    64
#define PROBE_IP "198.18.0.3"

static const uint8_t probe_mac[6] = { 0x02, 0, 0, 0, 0, 0x03 };

typedef struct Blast {
    int ifindex;
    uint8_t guest_mac[6];
    uint8_t frame[9014];
    size_t frame_len;
    double seconds;
    atomic_bool stop;
    uint64_t sent, send_full, got;
    unsigned drops;
} Blast;

static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint16_t checksum(const uint8_t *data, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t)data[i] << 8 | data[i + 1];
    }
    if (len & 1) {
        sum += (uint32_t)data[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum & 0xffff;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

/* Ethernet + IPv4 + UDP (port 9 to port 9), right checksums, zero payload. */
static void build_frame(Blast *b, struct in_addr src, struct in_addr dst)
{
    uint8_t *f = b->frame, *ip = f + 14, *udp = f + 34;
    size_t udp_len = b->frame_len - 34;
    uint32_t pseudo = 0;

    memset(f, 0, b->frame_len);
    memcpy(f, b->guest_mac, 6);
    memcpy(f + 6, probe_mac, 6);
    put16(f + 12, ETHERTYPE_IP);
    ip[0] = 0x45;
    put16(ip + 2, b->frame_len - 14);
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst, 4);
    put16(ip + 10, checksum(ip, 20, 0));
    put16(udp, 9);
    put16(udp + 2, 9);
    put16(udp + 4, udp_len);
    for (int i = 12; i < 20; i += 2) {
        pseudo += (uint32_t)ip[i] << 8 | ip[i + 1];
    }
    pseudo += IPPROTO_UDP + udp_len;
    put16(udp + 6, checksum(udp, udp_len, pseudo));
}

static int packet_socket(int ifindex, int protocol)
{
    struct sockaddr_ll addr = { .sll_family = AF_PACKET,
                                .sll_protocol = htons(protocol),
                                .sll_ifindex = ifindex };
    int fd = socket(AF_PACKET, SOCK_RAW, htons(protocol));

    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("netblast: packet socket");
        exit(1);
    }
    return fd;
}

static void *send_loop(void *opaque)
{
    Blast *b = opaque;
    int fd = packet_socket(b->ifindex, ETH_P_IP);
    int one = 1;
    struct iovec iov = { .iov_base = b->frame, .iov_len = b->frame_len };
    struct mmsghdr msgs[BATCH];

    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!atomic_load(&b->stop)) {
        int n = sendmmsg(fd, msgs, BATCH, 0);

        if (n > 0) {
            b->sent += n;
        }
        if (n < BATCH) {
            b->send_full++;
            sched_yield();
        }
    }
    close(fd);
    return NULL;
}

static void *receive_loop(void *opaque)
{
    Blast *b = opaque;
    int fd = packet_socket(b->ifindex, ETH_P_IP);
    int one = 1, rcvbuf = 32 << 20;
    struct timeval tick = { .tv_usec = 100000 };
    static uint8_t bufs[BATCH][2048];
    struct iovec iovs[BATCH];
    struct mmsghdr msgs[BATCH];
    struct tpacket_stats stats;
    socklen_t len = sizeof(stats);

    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        iovs[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sizeof(bufs[i]) };
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &len); /* zeroes them */
    while (!atomic_load(&b->stop)) {
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);

        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_len >= 14 && !memcmp(bufs[i] + 6, b->guest_mac, 6)) {
                b->got++;
            }
        }
    }
    len = sizeof(stats);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &len) == 0) {
        b->drops = stats.tp_drops;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    static Blast b;
    struct in_addr src, dst;
    pthread_t sender, receiver;
    int send_frames = 1, positional = 0;
    const char *args[5] = { NULL };
    double start;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-send")) {
            send_frames = 0;
        } else if (positional < 5) {
            args[positional++] = argv[i];
        }
    }
    if (positional < 4) {
        fprintf(stderr, "usage: netblast TAP GUEST_MAC GUEST_IP SECONDS "
                        "[FRAME_BYTES] [--no-send]\n");
        return 2;
    }
    b.ifindex = if_nametoindex(args[0]);
    b.seconds = atof(args[3]);
    b.frame_len = args[4] ? strtoul(args[4], NULL, 0) : 60;
    if (!b.ifindex || b.seconds <= 0 || b.frame_len < 60 || b.frame_len > 9014 ||
        sscanf(args[1], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &b.guest_mac[0], &b.guest_mac[1],
               &b.guest_mac[2], &b.guest_mac[3], &b.guest_mac[4], &b.guest_mac[5]) != 6 ||
        !inet_aton(PROBE_IP, &src) || !inet_aton(args[2], &dst)) {
        fprintf(stderr, "netblast: bad TAP, MAC, IP, SECONDS or FRAME_BYTES\n");
        return 2;
    }
    build_frame(&b, src, dst);
    signal(SIGINT, request_stop);
    signal(SIGTERM, request_stop);
    start = now_s();
    pthread_create(&receiver, NULL, receive_loop, &b);
    if (send_frames) {
        pthread_create(&sender, NULL, send_loop, &b);
    }
    while (!stop_requested && now_s() - start < b.seconds) {
        usleep(10000);
    }
    atomic_store(&b.stop, true);
    if (send_frames) {
        pthread_join(sender, NULL);
    }
    pthread_join(receiver, NULL);
    printf("netblast sent=%llu send_full=%llu got=%llu drops=%u seconds=%.2f\n",
           (unsigned long long)b.sent, (unsigned long long)b.send_full,
           (unsigned long long)b.got, b.drops, now_s() - start);
    return 0;
}
