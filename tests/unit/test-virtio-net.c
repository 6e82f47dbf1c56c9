/*
 * virtio-net without the PCI transport: the model on the fake guest's RAM
 * (virtio-fakes.h), its queues driven the way a driver drives them and its
 * handlers called the way its I/O threads call them (or, in the threads
 * test, those threads themselves).  Frames go through a
 * real tap in a network namespace of the test's own (raw frames with the
 * IEEE's experimental EtherType; no addresses at all).  Control-queue
 * commands and the receive filter, hostile chains (the device ends in
 * NEEDS_RESET, the VMM goes on), and the migration state: a round trip,
 * and corrupt blobs refused with the device untouched.  Needs root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hw/pci.h"
#include "hw/state-blob.h"
#include "hw/virtio/virtio-net-int.h"
#include "net/net.h"
#include "netns.h"
#include "unit.h"
#include "virtio-fakes.h"

#define WAIT_MS        3000
#define TEST_ETHERTYPE 0x88b5
#define NQ             16 /* entries per test ring */
#define RING_GPA(q)    (0x40000 + 0x4000 * (q))
#define RXBUF_GPA      0x200000 /* rx buffers: 64 KiB each slot */
#define TXBUF_GPA      0x800000
#define CTRL_GPA       0xc00000
#define RXBUF_SLOT     0x10000

#define FEAT(b) (1ULL << (b))
#define BASE_FEATURES                                                                    \
    (FEAT(VIRTIO_F_VERSION_1) | FEAT(VIRTIO_NET_F_MAC) | FEAT(VIRTIO_NET_F_STATUS) |     \
     FEAT(VIRTIO_NET_F_CTRL_VQ) | FEAT(VIRTIO_NET_F_CTRL_RX) |                           \
     FEAT(VIRTIO_NET_F_CTRL_VLAN) | FEAT(VIRTIO_NET_F_CTRL_MAC_ADDR) |                   \
     FEAT(VIRTIO_NET_F_GUEST_ANNOUNCE))

static const uint8_t our_mac[6] = { 0x02, 0x00, 0xc6, 0x12, 0x00, 0x02 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0xc6, 0x12, 0x00, 0x01 };

/* A driver's view of one queue: its rings and next indices. */
typedef struct TRing {
    uint64_t desc, avail, used;
    uint16_t avail_idx, used_seen, next_desc;
} TRing;

#define TEST_QUEUES 5 /* two pairs and the control queue */
static TRing rings[TEST_QUEUES];
static unsigned ctrl_q = VNET_CTRL_QUEUE; /* where the driver's control queue is */

static void ring_init(VirtioNet *n, unsigned q)
{
    TRing *r = &rings[q];
    VirtQueue *vq = &n->vdev.vqs[q];

    memset(r, 0, sizeof(*r));
    r->desc = RING_GPA(q);
    r->avail = r->desc + 16 * NQ;
    r->used = r->desc + 0x1000;
    memset(m.ram + r->desc, 0, 0x2000);
    vq->size = NQ;
    vq->desc_gpa = r->desc;
    vq->avail_gpa = r->avail;
    vq->used_gpa = r->used;
    virtio_queue_enable(&n->vdev, q);
    CHECK(vq->enabled);
}

/* Post a chain of count buffers (flags per buffer) and return its head. */
static uint16_t ring_post(unsigned q, const uint64_t *gpa, const uint32_t *len,
                          const uint16_t *flags, unsigned count)
{
    TRing *r = &rings[q];
    uint16_t head = r->next_desc % NQ;

    for (unsigned i = 0; i < count; i++) {
        uint16_t d = (r->next_desc + i) % NQ;
        desc_set(r->desc, d, gpa[i], len[i],
                 flags[i] | (i + 1 < count ? VRING_DESC_F_NEXT : 0), (d + 1) % NQ);
    }
    r->next_desc += count;
    put16(r->avail + 4 + 2 * (r->avail_idx % NQ), head);
    r->avail_idx++;
    __atomic_store_n((uint16_t *)(m.ram + r->avail + 2), r->avail_idx, __ATOMIC_RELEASE);
    return head;
}

static uint16_t ring_used(unsigned q)
{
    return __atomic_load_n((uint16_t *)(m.ram + rings[q].used + 2), __ATOMIC_ACQUIRE);
}

static uint32_t ring_used_len(unsigned q, uint16_t i)
{
    return get32(rings[q].used + 4 + 8 * (i % NQ) + 4);
}

static uint32_t ring_used_id(unsigned q, uint16_t i)
{
    return get32(rings[q].used + 4 + 8 * (i % NQ));
}

static bool needs_reset(VirtioNet *n)
{
    return virtio_get_status(&n->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* A driver bringing the device up with these features. */
static void driver_up(VirtioNet *n, uint64_t features)
{
    VirtioDevice *vdev = &n->vdev;

    virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vdev->driver_feature_select = 0;
    virtio_set_driver_features(vdev, (uint32_t)features);
    vdev->driver_feature_select = 1;
    virtio_set_driver_features(vdev, features >> 32);
    virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                VIRTIO_CONFIG_S_FEATURES_OK);
    CHECK(virtio_get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK);
    ctrl_q = (features & FEAT(VIRTIO_NET_F_MQ)) ? vdev->nr_queues - 1 : VNET_CTRL_QUEUE;
    for (unsigned q = 0; q < MIN(vdev->nr_queues, TEST_QUEUES); q++) {
        ring_init(n, q);
    }
    virtio_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* The model on netdev nd (or none), VIRTIO_NET_F_MQ offered when mq. */
static VirtioNet *net_new_mq(Netdev *nd, bool mq)
{
    VirtioNetOptions o = { .netdev = nd, .devfn = -1, .has_mac = true, .mq = mq };
    GError *err = NULL;
    VirtioNet *n;

    memcpy(o.mac, our_mac, 6);
    n = virtio_net_new(&m.mem, &o, &err);
    if (!n) {
        fprintf(stderr, "virtio_net_new: %s\n", err->message);
        exit(1);
    }
    return n;
}

static VirtioNet *net_new(Netdev *nd)
{
    return net_new_mq(nd, false);
}

/* One buffer of len bytes at gpa, alone in its chain, on queue q. */
static void post_one(unsigned q, uint64_t gpa, uint32_t len)
{
    uint16_t fl = 0;

    ring_post(q, &gpa, &len, &fl, 1);
}

static void net_free(VirtioNet *n)
{
    virtio_device_cleanup(&n->vdev);
    virtio_net_free(n);
}

/* A test's end: its packet socket (or -1), the model, the netdevs, the RAM. */
static void end_test(VirtioNet *n, int sock, NetdevSet *set)
{
    if (sock >= 0) {
        close(sock);
    }
    net_free(n);
    netdev_set_free(set);
    machine_teardown();
}

/* ---- the tap, in a namespace of the test's own (netns.h) ---- */

static bool wait_fd(int fd, short events)
{
    struct pollfd pfd = { .fd = fd, .events = events };

    return poll(&pfd, 1, WAIT_MS) == 1;
}

/* The netdev of -netdev spec, its interface ifname up. */
static Netdev *open_netdev(NetdevSet *set, const char *spec, const char *ifname)
{
    NetdevConfig cfg;
    GError *err = NULL;
    Netdev *nd;

    CHECK(netdev_parse(spec, &cfg, &err));
    nd = netdev_open(set, &cfg, &err);
    netdev_config_clear(&cfg);
    if (!nd) {
        fprintf(stderr, "netdev_open: %s\n", err->message);
        exit(1);
    }
    link_up(ifname);
    return nd;
}

static Netdev *tap_netdev(NetdevSet *set)
{
    return open_netdev(set, "tap,id=n0,ifname=dvnet0,script=no,downscript=no", "dvnet0");
}

/* A test frame of len bytes to dst whose payload starts with seq. */
static void make_frame(uint8_t *f, size_t len, const uint8_t *dst, uint32_t seq)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, peer_mac, 6);
    f[12] = TEST_ETHERTYPE >> 8;
    f[13] = TEST_ETHERTYPE & 0xff;
    memcpy(f + 14, &seq, 4);
    for (size_t i = 18; i < len; i++) {
        f[i] = (uint8_t)(i * 13 + seq);
    }
}

/* The next test frame on the packet socket, or -1. */
static ssize_t packet_recv(int sock, uint8_t *buf, size_t size)
{
    for (;;) {
        ssize_t r = recv(sock, buf, size, 0);
        if (r < 0 && errno == EAGAIN) {
            if (!wait_fd(sock, POLLIN)) {
                fprintf(stderr, "no frame at the packet socket in %d ms\n", WAIT_MS);
                return -1;
            }
            continue;
        }
        if (r < 0 || (r >= 14 && buf[12] == TEST_ETHERTYPE >> 8 &&
                      buf[13] == (TEST_ETHERTYPE & 0xff))) {
            return r;
        }
    }
}

/* Run each I/O thread's step for its tap once it is readable (or give up). */
static void pump_rx(VirtioNet *n)
{
    for (unsigned t = 0; t < n->vdev.nr_io; t++) {
        struct pollfd fds[VIRTIO_MAX_WATCH_FDS];
        unsigned count = n->vdev.ops->watch_fds(&n->vdev, t, fds, VIRTIO_MAX_WATCH_FDS);

        for (unsigned i = 0; i < count; i++) {
            if ((fds[i].events & POLLIN) && wait_fd(fds[i].fd, POLLIN)) {
                n->vdev.ops->handle_fd(&n->vdev, t, i, POLLIN);
            }
        }
    }
}

/* Has the device used queue q up to idx within WAIT_MS (its threads running)? */
static bool wait_used(unsigned q, uint16_t idx)
{
    for (int waited = 0; waited < WAIT_MS; waited++) {
        if (ring_used(q) == idx) {
            return true;
        }
        usleep(1000);
    }
    fprintf(stderr, "queue %u not used up to %u in %d ms\n", q, idx, WAIT_MS);
    return false;
}

static void kick(VirtioNet *n, unsigned q)
{
    n->vdev.ops->handle_queue(&n->vdev, &n->vdev.vqs[q]);
}

/* Post nbuf receive buffers of size bytes each. */
static void post_rx(unsigned nbuf, uint32_t size)
{
    for (unsigned i = 0; i < nbuf; i++) {
        uint16_t slot = rings[VNET_RX_QUEUE].avail_idx % NQ;
        uint64_t gpa = RXBUF_GPA + RXBUF_SLOT * slot;
        uint16_t fl = VRING_DESC_F_WRITE;
        memset(m.ram + gpa, 0xaa, size);
        ring_post(VNET_RX_QUEUE, &gpa, &size, &fl, 1);
    }
}

/* ---- tests ---- */

UNIT_TEST(features_and_config)
{
    VirtioNet *n;
    uint64_t f;

    machine_setup();
    n = net_new(NULL);
    f = n->vdev.host_features;
    CHECK(f & FEAT(VIRTIO_NET_F_MAC));
    CHECK(f & FEAT(VIRTIO_NET_F_STATUS));
    CHECK(f & FEAT(VIRTIO_NET_F_MRG_RXBUF));
    CHECK(f & FEAT(VIRTIO_NET_F_CTRL_VQ));
    CHECK(f & FEAT(VIRTIO_NET_F_CTRL_RX));
    CHECK(f & FEAT(VIRTIO_NET_F_CTRL_VLAN));
    CHECK(f & FEAT(VIRTIO_NET_F_GUEST_ANNOUNCE));
    CHECK(f & FEAT(VIRTIO_RING_F_EVENT_IDX));
    CHECK(f & FEAT(VIRTIO_RING_F_INDIRECT_DESC));
    CHECK(f & FEAT(VIRTIO_F_VERSION_1));
    CHECK(!(f & FEAT(VIRTIO_NET_F_MQ)));
    CHECK(!(f & FEAT(VIRTIO_NET_F_STANDBY)));
    /* no tap with vnet headers: no offloads */
    CHECK(!(f & FEAT(VIRTIO_NET_F_CSUM)));
    CHECK(memcmp(n->vdev.config, our_mac, 6) == 0);
    CHECK_EQ(pci_get_word(n->vdev.config + 6), VIRTIO_NET_S_LINK_UP);
    virtio_net_set_link(n, false);
    CHECK_EQ(pci_get_word(n->vdev.config + 6), 0);
    CHECK(!virtio_net_link_up(n));
    virtio_net_set_link(n, true);
    CHECK_EQ(pci_get_word(n->vdev.config + 6), VIRTIO_NET_S_LINK_UP);
    net_free(n);
    machine_teardown();
}

UNIT_TEST(mac_parsing)
{
    uint8_t mac[6];

    CHECK(virtio_net_parse_mac("52:54:00:ab:CD:0f", mac));
    CHECK(mac[0] == 0x52 && mac[3] == 0xab && mac[4] == 0xcd && mac[5] == 0x0f);
    CHECK(!virtio_net_parse_mac("52:54:00:ab:cd", mac));
    CHECK(!virtio_net_parse_mac("52:54:00:ab:cd:0g", mac));
    CHECK(!virtio_net_parse_mac("52-54-00-ab-cd-0f", mac));
    CHECK(!virtio_net_parse_mac("52:54:00:ab:cd:0f0", mac));
    CHECK(!virtio_net_parse_mac(" 2:54:00:ab:cd:0f", mac));
}

/*
 * Frames of every size from 60 to 1514 bytes (step 29) each way: the
 * guest's chains (header, frame) reach the interface unchanged; frames
 * sent on the interface land in one receive buffer behind a zero header
 * with num_buffers 1.
 */
UNIT_TEST(frames_both_ways_through_a_tap)
{
    static uint8_t frame[2048], got[2048];
    NetdevSet *set;
    VirtioNet *n;
    int sock, bad = 0;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    CHECK(n->vdev.host_features & FEAT(VIRTIO_NET_F_CSUM));
    CHECK(n->vdev.host_features & FEAT(VIRTIO_NET_F_GUEST_TSO4));
    driver_up(n, BASE_FEATURES);
    sock = packet_socket("dvnet0");
    for (size_t len = 60; len <= 1514 && !bad; len += 29) {
        uint64_t gpa[2] = { TXBUF_GPA, TXBUF_GPA + 0x100 };
        uint32_t lens[2] = { NET_VNET_HDR_LEN, (uint32_t)len };
        uint16_t flags[2] = { 0, 0 }, used;
        ssize_t r;

        memset(m.ram + TXBUF_GPA, 0, NET_VNET_HDR_LEN);
        make_frame(m.ram + TXBUF_GPA + 0x100, len, peer_mac, (uint32_t)len);
        used = ring_used(VNET_TX_QUEUE);
        ring_post(VNET_TX_QUEUE, gpa, lens, flags, 2);
        kick(n, VNET_TX_QUEUE);
        CHECK_EQ(ring_used(VNET_TX_QUEUE), (uint16_t)(used + 1));
        r = packet_recv(sock, got, sizeof(got));
        if (r != (ssize_t)len || memcmp(got, m.ram + TXBUF_GPA + 0x100, len) != 0) {
            fprintf(stderr, "guest to tap, %zu bytes: got %zd\n", len, r);
            bad = 1;
        }

        post_rx(1, 2048);
        used = ring_used(VNET_RX_QUEUE);
        make_frame(frame, len, our_mac, (uint32_t)len + 1);
        CHECK(send(sock, frame, len, 0) == (ssize_t)len);
        pump_rx(n);
        if (ring_used(VNET_RX_QUEUE) != (uint16_t)(used + 1)) {
            fprintf(stderr, "tap to guest, %zu bytes: nothing used\n", len);
            bad = 1;
            continue;
        }
        {
            uint16_t id = ring_used_id(VNET_RX_QUEUE, used);
            uint8_t *buf = m.ram + RXBUF_GPA + RXBUF_SLOT * id;
            if (ring_used_len(VNET_RX_QUEUE, used) != len + NET_VNET_HDR_LEN ||
                pci_get_word(buf + 10) != 1 ||
                memcmp(buf + NET_VNET_HDR_LEN, frame, len) != 0) {
                fprintf(stderr, "tap to guest, %zu bytes: used len %u, num_buffers %u\n",
                        len, ring_used_len(VNET_RX_QUEUE, used), pci_get_word(buf + 10));
                bad = 1;
            }
        }
    }
    CHECK(!bad);
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/*
 * Chains posted together go out in one batch (one io_uring system call
 * with the default unlimited sndbuf, one writev each with a sndbuf set):
 * all of them, in the guest's order, counted once.
 */
UNIT_TEST(transmit_batches_keep_the_guests_order)
{
    static const char *const specs[] = {
        "tap,id=n0,ifname=dvnet0,script=no,downscript=no",
        "tap,id=n0,ifname=dvnet0,script=no,downscript=no,sndbuf=4194304",
    };
    static uint8_t got[2048];

    for (unsigned s = 0; s < G_N_ELEMENTS(specs); s++) {
        const unsigned count = NQ - 2;
        NetdevSet *set;
        VirtioNet *n;
        uint16_t used;
        uint64_t frames_before;
        int sock, bad = 0;

        enter_netns();
        machine_setup();
        set = netdev_set_new();
        n = net_new(open_netdev(set, specs[s], "dvnet0"));
        driver_up(n, BASE_FEATURES);
        sock = packet_socket("dvnet0");
        used = ring_used(VNET_TX_QUEUE);
        frames_before = n->pairs[0].tx_frames;
        for (unsigned i = 0; i < count; i++) {
            uint64_t gpa = TXBUF_GPA + 0x800 * i;
            uint32_t len = NET_VNET_HDR_LEN + 60 + 7 * i;
            uint16_t flags = 0;
            memset(m.ram + gpa, 0, NET_VNET_HDR_LEN);
            make_frame(m.ram + gpa + NET_VNET_HDR_LEN, 60 + 7 * i, peer_mac, 1000 + i);
            ring_post(VNET_TX_QUEUE, &gpa, &len, &flags, 1);
        }
        kick(n, VNET_TX_QUEUE);
        CHECK_EQ(ring_used(VNET_TX_QUEUE), (uint16_t)(used + count));
        CHECK_EQ(n->pairs[0].tx_frames - frames_before, count);
        /* the ring is empty again: the driver must kick for the next chain */
        CHECK_EQ(get16(rings[VNET_TX_QUEUE].used) & VRING_USED_F_NO_NOTIFY, 0);
        for (unsigned i = 0; i < count && !bad; i++) {
            uint32_t seq = 0;
            ssize_t r = packet_recv(sock, got, sizeof(got));
            if (r >= 18) {
                memcpy(&seq, got + 14, 4);
            }
            if (r != (ssize_t)(60 + 7 * i) || seq != 1000 + i ||
                memcmp(got, m.ram + TXBUF_GPA + 0x800 * i + NET_VNET_HDR_LEN, r) != 0) {
                fprintf(stderr, "%s: frame %u: got %zd bytes, seq %u\n", specs[s], i, r,
                        seq);
                bad = 1;
            }
        }
        CHECK(!bad);
        CHECK(!needs_reset(n));
        end_test(n, sock, set);
    }
}

/* MRG_RXBUF: a 1000-byte frame over 256-byte buffers, published at once. */
UNIT_TEST(merged_receive_buffers)
{
    static uint8_t frame[1000], joined[4 * 256];
    NetdevSet *set;
    VirtioNet *n;
    size_t off = 0;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MRG_RXBUF));
    sock = packet_socket("dvnet0");
    post_rx(6, 256);
    make_frame(frame, sizeof(frame), our_mac, 7);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 4); /* ceil(1012 / 256) */
    for (uint16_t i = 0; i < 4 && ring_used(VNET_RX_QUEUE) == 4; i++) {
        uint16_t id = ring_used_id(VNET_RX_QUEUE, i);
        uint32_t len = ring_used_len(VNET_RX_QUEUE, i);
        CHECK(len == (i < 3 ? 256 : 1012 - 3 * 256));
        memcpy(joined + off, m.ram + RXBUF_GPA + RXBUF_SLOT * id, len);
        off += len;
    }
    CHECK_EQ(off, 1012);
    CHECK_EQ(pci_get_word(joined + 10), 4);
    CHECK(memcmp(joined + NET_VNET_HDR_LEN, frame, sizeof(frame)) == 0);

    /* too few buffers: nothing is used until the driver adds more */
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 4);
    CHECK(n->pairs[0].rx_wait_buffers);
    post_rx(3, 256);
    kick(n, VNET_RX_QUEUE);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 8);
    CHECK(!needs_reset(n));

    /* without MRG_RXBUF, a frame bigger than the buffer is dropped */
    end_test(n, sock, set);
}

UNIT_TEST(small_buffer_without_mrg_rxbuf_drops_the_frame)
{
    static uint8_t frame[1000];
    NetdevSet *set;
    VirtioNet *n;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    driver_up(n, BASE_FEATURES);
    sock = packet_socket("dvnet0");
    post_rx(1, 512);
    make_frame(frame, sizeof(frame), our_mac, 9);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 0);
    CHECK_EQ(n->pairs[0].rx_dropped, 1);
    /* the buffer is still the driver's: a small frame uses it */
    CHECK(send(sock, frame, 100, 0) == 100);
    pump_rx(n);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 1);
    CHECK_EQ(ring_used_len(VNET_RX_QUEUE, 0), 100 + NET_VNET_HDR_LEN);
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/* One control command; returns the ack byte (0xee when none was written). */
static uint8_t ctrl(VirtioNet *n, uint8_t cls, uint8_t cmd, const void *data,
                    uint32_t len)
{
    uint64_t gpa[3] = { CTRL_GPA, CTRL_GPA + 0x10, CTRL_GPA + 0x8000 };
    uint32_t lens[3] = { 2, len, 1 };
    uint16_t flags[3] = { 0, 0, VRING_DESC_F_WRITE };
    uint16_t used = ring_used(ctrl_q);

    m.ram[CTRL_GPA] = cls;
    m.ram[CTRL_GPA + 1] = cmd;
    if (len) {
        memcpy(m.ram + CTRL_GPA + 0x10, data, len);
    }
    m.ram[CTRL_GPA + 0x8000] = 0xee;
    if (len) {
        ring_post(ctrl_q, gpa, lens, flags, 3);
    } else {
        uint64_t g2[2] = { gpa[0], gpa[2] };
        uint32_t l2[2] = { 2, 1 };
        uint16_t f2[2] = { 0, VRING_DESC_F_WRITE };
        ring_post(ctrl_q, g2, l2, f2, 2);
    }
    if (n->vdev.io[0].started) { /* thread 0 runs it */
        virtio_queue_kick(&n->vdev.vqs[ctrl_q]);
        CHECK(wait_used(ctrl_q, used + 1));
    } else {
        kick(n, ctrl_q);
        CHECK_EQ(ring_used(ctrl_q), (uint16_t)(used + 1));
    }
    return m.ram[CTRL_GPA + 0x8000];
}

static bool accepts(VirtioNet *n, const uint8_t *dst, int vlan)
{
    uint8_t f[64];

    make_frame(f, sizeof(f), dst, 0);
    if (vlan >= 0) {
        f[12] = 0x81, f[13] = 0x00, f[14] = vlan >> 8, f[15] = vlan & 0xff;
    }
    return virtio_net_filter_accepts(n, f, sizeof(f));
}

UNIT_TEST(control_queue_rx_mode_mac_table_vlan)
{
    static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 9 };
    static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 };
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t on = 1, off = 0, table[4 + 6 + 4 + 6];
    uint8_t vid[2] = { 5, 0 };
    VirtioNet *n;

    machine_setup();
    n = net_new(NULL);
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_CTRL_RX_EXTRA));
    CHECK(accepts(n, other, -1)); /* promiscuous until told */
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
             VIRTIO_NET_OK);
    CHECK(!accepts(n, other, -1));
    CHECK(accepts(n, our_mac, -1));
    CHECK(accepts(n, bcast, -1));
    CHECK(!accepts(n, mcast, -1));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1),
             VIRTIO_NET_OK);
    CHECK(accepts(n, mcast, -1));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &off, 1),
             VIRTIO_NET_OK);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1),
             VIRTIO_NET_OK);
    CHECK(!accepts(n, bcast, -1));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &off, 1),
             VIRTIO_NET_OK);

    /* the MAC table: one unicast, one multicast address */
    pci_set_long(table, 1);
    memcpy(table + 4, other, 6);
    pci_set_long(table + 10, 1);
    memcpy(table + 14, mcast, 6);
    CHECK_EQ(
        ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table)),
        VIRTIO_NET_OK);
    CHECK(accepts(n, other, -1));
    CHECK(accepts(n, mcast, -1));
    /* a table whose counts do not match its length is refused, unchanged */
    pci_set_long(table + 10, 2);
    CHECK_EQ(
        ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table)),
        VIRTIO_NET_ERR);
    CHECK(accepts(n, mcast, -1));
    pci_set_long(table, 0xffffffff);
    CHECK_EQ(
        ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table)),
        VIRTIO_NET_ERR);

    /* MAC_ADDR_SET changes the address and the config */
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, peer_mac, 6),
             VIRTIO_NET_OK);
    CHECK(memcmp(n->vdev.config, peer_mac, 6) == 0);
    CHECK(accepts(n, peer_mac, -1));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, peer_mac, 5),
             VIRTIO_NET_ERR);

    /* VLAN filtering: only added ids pass */
    CHECK(!accepts(n, peer_mac, 5));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, vid, 2),
             VIRTIO_NET_OK);
    CHECK(accepts(n, peer_mac, 5));
    CHECK(!accepts(n, peer_mac, 6));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, vid, 2),
             VIRTIO_NET_OK);
    CHECK(!accepts(n, peer_mac, 5));
    vid[1] = 0x10; /* 4101: out of range */
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, vid, 2),
             VIRTIO_NET_ERR);

    /* announce: the status bit, then the driver's ack clears it */
    virtio_net_announce(n);
    CHECK(pci_get_word(n->vdev.config + 6) & VIRTIO_NET_S_ANNOUNCE);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
             VIRTIO_NET_OK);
    CHECK(!(pci_get_word(n->vdev.config + 6) & VIRTIO_NET_S_ANNOUNCE));

    /* unknown classes, MQ (not offered) and offloads (not negotiated): ERR */
    CHECK_EQ(ctrl(n, 77, 0, &on, 1), VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MQ, 0, vid, 2), VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_GUEST_OFFLOADS, 0, table, 8), VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, table, 2),
             VIRTIO_NET_ERR);
    CHECK(!needs_reset(n));
    net_free(n);
    machine_teardown();
}

/* GUEST_CSUM + TSO: TUNSETOFFLOAD follows what the guest negotiated and sets. */
UNIT_TEST(guest_offloads_follow_the_driver)
{
    NetdevSet *set;
    VirtioNet *n;
    uint8_t off[8] = { 0 }, csum[8] = { 1u << VIRTIO_NET_F_GUEST_CSUM };
    uint8_t ufo[8] = { 0, 1u << (VIRTIO_NET_F_GUEST_UFO - 8) };

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_GUEST_CSUM) |
                     FEAT(VIRTIO_NET_F_GUEST_TSO4) | FEAT(VIRTIO_NET_F_GUEST_TSO6) |
                     FEAT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
    CHECK_EQ(n->guest_offloads, FEAT(VIRTIO_NET_F_GUEST_CSUM) |
                                    FEAT(VIRTIO_NET_F_GUEST_TSO4) |
                                    FEAT(VIRTIO_NET_F_GUEST_TSO6));
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
                  off, 8),
             VIRTIO_NET_OK);
    CHECK_EQ(n->guest_offloads, 0);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
                  csum, 8),
             VIRTIO_NET_OK);
    CHECK_EQ(n->guest_offloads, FEAT(VIRTIO_NET_F_GUEST_CSUM));
    /* not negotiated: refused */
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
                  ufo, 8),
             VIRTIO_NET_ERR);
    CHECK_EQ(n->guest_offloads, FEAT(VIRTIO_NET_F_GUEST_CSUM));
    end_test(n, -1, set);
}

/* ---- hostile chains: NEEDS_RESET, the VMM goes on, a reset recovers ---- */

static void reset_and_up(VirtioNet *n, uint64_t features)
{
    virtio_reset(&n->vdev);
    CHECK_EQ(virtio_get_status(&n->vdev), 0);
    driver_up(n, features);
    CHECK(!needs_reset(n));
}

UNIT_TEST(hostile_chains_need_a_reset)
{
    static uint8_t frame[200];
    NetdevSet *set;
    VirtioNet *n;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    sock = packet_socket("dvnet0");
    make_frame(frame, sizeof(frame), our_mac, 3);

    /* a receive buffer the device may only read */
    driver_up(n, BASE_FEATURES);
    post_one(VNET_RX_QUEUE, RXBUF_GPA, 2048);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK(needs_reset(n));

    /* a receive buffer outside guest RAM */
    reset_and_up(n, BASE_FEATURES);
    {
        uint64_t gpa = RAM_SIZE + 0x1000;
        uint32_t len = 2048;
        uint16_t fl = VRING_DESC_F_WRITE;
        ring_post(VNET_RX_QUEUE, &gpa, &len, &fl, 1);
    }
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK(needs_reset(n));

    /* a receive buffer shorter than the header (merged buffers) */
    reset_and_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MRG_RXBUF));
    post_rx(1, 4);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK(needs_reset(n));

    /* a zero-length receive buffer */
    reset_and_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MRG_RXBUF));
    post_rx(1, 0);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK(needs_reset(n));

    /* a transmit chain shorter than the header */
    reset_and_up(n, BASE_FEATURES);
    post_one(VNET_TX_QUEUE, TXBUF_GPA, 4);
    kick(n, VNET_TX_QUEUE);
    CHECK(needs_reset(n));
    CHECK_EQ(ring_used(VNET_TX_QUEUE), 1); /* given back, not lost */

    /* a transmit descriptor loop */
    reset_and_up(n, BASE_FEATURES);
    desc_set(rings[VNET_TX_QUEUE].desc, 0, TXBUF_GPA, 64, VRING_DESC_F_NEXT, 1);
    desc_set(rings[VNET_TX_QUEUE].desc, 1, TXBUF_GPA, 64, VRING_DESC_F_NEXT, 0);
    put16(rings[VNET_TX_QUEUE].avail + 4, 0);
    __atomic_store_n((uint16_t *)(m.ram + rings[VNET_TX_QUEUE].avail + 2), 1,
                     __ATOMIC_RELEASE);
    kick(n, VNET_TX_QUEUE);
    CHECK(needs_reset(n));

    /* a transmit buffer outside guest RAM */
    reset_and_up(n, BASE_FEATURES);
    post_one(VNET_TX_QUEUE, (uint64_t)-4096, 64);
    kick(n, VNET_TX_QUEUE);
    CHECK(needs_reset(n));

    /* a control command without an ack byte */
    reset_and_up(n, BASE_FEATURES);
    post_one(VNET_CTRL_QUEUE, CTRL_GPA, 3);
    kick(n, VNET_CTRL_QUEUE);
    CHECK(needs_reset(n));

    /* and after all that, a reset gives a working device */
    reset_and_up(n, BASE_FEATURES);
    post_rx(1, 2048);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    CHECK_EQ(ring_used(VNET_RX_QUEUE), 1);
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/* Frames the host sends that a NIC must survive: runts and the largest. */
UNIT_TEST(runts_and_big_frames_from_the_host)
{
    static uint8_t frame[9000];
    NetdevSet *set;
    VirtioNet *n;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new(tap_netdev(set));
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MRG_RXBUF));
    sock = packet_socket("dvnet0");
    post_rx(NQ, 4096);
    make_frame(frame, sizeof(frame), our_mac, 11);
    CHECK(send(sock, frame, 14, 0) == 14); /* header only */
    pump_rx(n);
    CHECK(send(sock, frame, sizeof(frame), 0) < 0 || true); /* above the MTU */
    make_frame(frame, 1514, our_mac, 12);
    CHECK(send(sock, frame, 1514, 0) == 1514);
    pump_rx(n);
    CHECK(ring_used(VNET_RX_QUEUE) >= 1);
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/* ---- vhost=on ---- */

static bool have_vhost_net(void)
{
    return access("/dev/vhost-net", F_OK) == 0;
}

/* A transport that only records what the device says it wrote. */
static uint64_t dirty_pages[64];
static unsigned nr_dirty;

static void fake_notify_queue(VirtioDevice *vdev, VirtQueue *vq)
{
}

static void fake_notify_config(VirtioDevice *vdev)
{
}

static void fake_mark_dirty(VirtioDevice *vdev, uint64_t gpa, uint64_t len)
{
    for (uint64_t p = gpa & ~4095ULL; p < gpa + len && nr_dirty < 64; p += 4096) {
        dirty_pages[nr_dirty++] = p;
    }
}

static const VirtioTransportOps fake_transport = {
    fake_notify_queue,
    fake_notify_config,
    fake_mark_dirty,
};

static bool page_marked(uint64_t gpa)
{
    for (unsigned i = 0; i < nr_dirty; i++) {
        if (dirty_pages[i] == (gpa & ~4095ULL)) {
            return true;
        }
    }
    return false;
}

/* Wait for vhost-net to use ring q up to idx, relaying its interrupts. */
static bool vhost_wait_used(VirtioNet *n, unsigned q, uint16_t idx)
{
    for (int waited = 0; waited < WAIT_MS; waited += 5 * n->vdev.nr_io) {
        for (unsigned t = 0; t < n->vdev.nr_io; t++) {
            struct pollfd fds[VIRTIO_MAX_WATCH_FDS];
            unsigned count = n->vdev.ops->watch_fds(&n->vdev, t, fds,
                                                    VIRTIO_MAX_WATCH_FDS);
            if (poll(fds, count, 5) > 0) {
                for (unsigned i = 0; i < count; i++) {
                    if (fds[i].revents) {
                        n->vdev.ops->handle_fd(&n->vdev, t, i, fds[i].revents);
                    }
                }
            }
        }
        if (ring_used(q) == idx) {
            return true;
        }
    }
    fprintf(stderr, "vhost-net did not use queue %u up to %u in %d ms\n", q, idx,
            WAIT_MS);
    return false;
}

/*
 * vhost=on: where /dev/vhost-net is missing the netdev gives QEMU's error
 * (no silent fallback); where it exists (the rig's L1), DRIVER_OK hands the
 * rings over: frames go both ways without the VMM touching them, the I/O
 * thread stops reading the kicks, and a pause takes the rings back where
 * vhost-net left them.
 */
UNIT_TEST(vhost_on_hands_the_rings_to_vhost_net)
{
    static uint8_t frame[300], got[2048];
    VirtioNetOptions o = { .devfn = -1, .has_mac = true, .nr_ram = 1 };
    NetdevConfig cfg;
    NetdevSet *set;
    Netdev *nd;
    VirtioNet *n;
    GError *err = NULL;
    uint64_t gpa[2] = { TXBUF_GPA, TXBUF_GPA + 0x100 };
    uint32_t lens[2] = { NET_VNET_HDR_LEN, sizeof(frame) };
    uint16_t flags[2] = { 0, 0 };
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    CHECK(netdev_parse("tap,id=n0,ifname=dvnet0,script=no,downscript=no,vhost=on", &cfg,
                       &err));
    nd = netdev_open(set, &cfg, &err);
    netdev_config_clear(&cfg);
    if (!have_vhost_net()) {
        CHECK(nd == NULL);
        CHECK_STR(err ? err->message : NULL,
                  "tap: open vhost char device failed: No such file or directory");
        printf("no /dev/vhost-net here: the error is QEMU's; the data path runs in the "
               "rig\n");
        g_clear_error(&err);
        netdev_set_free(set);
        machine_teardown();
        return;
    }
    CHECK(nd != NULL);
    if (!nd) {
        fprintf(stderr, "netdev_open: %s\n", err->message);
        return;
    }
    link_up("dvnet0");
    memcpy(o.mac, our_mac, 6);
    o.netdev = nd;
    o.ram[0] = (VhostMemRegion){ .gpa = 0, .size = RAM_SIZE, .hva = m.ram };
    n = virtio_net_new(&m.mem, &o, &err);
    CHECK(n != NULL);
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MRG_RXBUF) |
                     FEAT(VIRTIO_RING_F_EVENT_IDX));
    CHECK(!needs_reset(n));
    CHECK(n->vhost_running);
    CHECK(n->vdev.vqs[VNET_TX_QUEUE].kick_elsewhere);
    sock = packet_socket("dvnet0");

    /* transmit: the kick goes to vhost-net through the queue's eventfd */
    memset(m.ram + TXBUF_GPA, 0, NET_VNET_HDR_LEN);
    make_frame(m.ram + TXBUF_GPA + 0x100, sizeof(frame), peer_mac, 21);
    ring_post(VNET_TX_QUEUE, gpa, lens, flags, 2);
    virtio_queue_kick(&n->vdev.vqs[VNET_TX_QUEUE]);
    CHECK_EQ(packet_recv(sock, got, sizeof(got)), sizeof(frame));
    CHECK(memcmp(got, m.ram + TXBUF_GPA + 0x100, sizeof(frame)) == 0);
    CHECK(vhost_wait_used(n, VNET_TX_QUEUE, 1));

    /* receive */
    post_rx(4, 2048);
    virtio_queue_kick(&n->vdev.vqs[VNET_RX_QUEUE]);
    make_frame(frame, sizeof(frame), our_mac, 22);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    CHECK(vhost_wait_used(n, VNET_RX_QUEUE, 1));
    {
        uint16_t id = ring_used_id(VNET_RX_QUEUE, 0);
        uint8_t *buf = m.ram + RXBUF_GPA + RXBUF_SLOT * id;
        CHECK_EQ(ring_used_len(VNET_RX_QUEUE, 0), sizeof(frame) + NET_VNET_HDR_LEN);
        CHECK_EQ(pci_get_word(buf + 10), 1);
        CHECK(memcmp(buf + NET_VNET_HDR_LEN, frame, sizeof(frame)) == 0);
    }

    /* migration's dirty log: vhost-net's writes reach it as the device's own */
    n->vdev.transport = &fake_transport;
    nr_dirty = 0;
    n->vdev.ops->dirty_log(&n->vdev, true);
    CHECK(n->log_active);
    make_frame(frame, sizeof(frame), our_mac, 24);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    CHECK(vhost_wait_used(n, VNET_RX_QUEUE, 2));
    n->vdev.ops->dirty_log(&n->vdev, false); /* syncs what is left */
    CHECK(!n->log_active);
    CHECK(page_marked(RXBUF_GPA + RXBUF_SLOT * ring_used_id(VNET_RX_QUEUE, 1)));
    CHECK(page_marked(rings[VNET_RX_QUEUE].used));
    n->vdev.transport = NULL;

    /* pause: the rings come back with vhost-net's indices */
    virtio_device_pause(&n->vdev);
    CHECK(!n->vhost_running);
    CHECK(!n->vdev.vqs[VNET_TX_QUEUE].kick_elsewhere);
    CHECK_EQ(n->vdev.vqs[VNET_TX_QUEUE].last_avail_idx, 1);
    CHECK_EQ(n->vdev.vqs[VNET_TX_QUEUE].used_idx, 1);
    CHECK_EQ(n->vdev.vqs[VNET_RX_QUEUE].last_avail_idx, 2);
    virtio_device_resume(&n->vdev);
    CHECK(n->vhost_running);
    /* and carries on from there */
    make_frame(frame, sizeof(frame), our_mac, 23);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    CHECK(vhost_wait_used(n, VNET_RX_QUEUE, 3));
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/* ---- multi-queue ---- */

static Netdev *mq_netdev(NetdevSet *set)
{
    return open_netdev(set, "tap,id=m0,ifname=dvmq0,script=no,downscript=no,queues=2",
                       "dvmq0");
}

/*
 * Is tap queue q attached?  Asked of the kernel, which refuses to detach
 * a detached queue (EINVAL); an attached one is put back at once.
 */
static bool tap_queue_attached(Netdev *nd, unsigned q)
{
    int fd = net_tap_fd(netdev_tap(nd, q));
    struct ifreq ifr = { .ifr_flags = IFF_DETACH_QUEUE };

    if (ioctl(fd, TUNSETQUEUE, &ifr) < 0) {
        return false;
    }
    ifr.ifr_flags = IFF_ATTACH_QUEUE;
    CHECK(ioctl(fd, TUNSETQUEUE, &ifr) == 0);
    return true;
}

static uint8_t set_pairs(VirtioNet *n, uint16_t pairs)
{
    uint8_t le[2] = { pairs & 0xff, pairs >> 8 };

    return ctrl(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, le, 2);
}

/*
 * queues=2: two pairs and the control queue whatever mq= says (as QEMU);
 * MQ and max_virtqueue_pairs 2 with mq=on.  Until the driver asks for
 * more, one pair is in use and the tap's second queue is detached.
 */
UNIT_TEST(mq_features_and_config)
{
    NetdevSet *set;
    VirtioNet *n;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    for (int mq = 0; mq < 2; mq++) {
        Netdev *nd = mq_netdev(set);
        n = net_new_mq(nd, mq);
        CHECK_EQ(!!(n->vdev.host_features & FEAT(VIRTIO_NET_F_MQ)), mq);
        CHECK_EQ(n->vdev.nr_queues, 5);
        CHECK_EQ(pci_get_word(n->vdev.config + 8), 2);
        CHECK_EQ(n->curr_pairs, 1);
        CHECK(tap_queue_attached(nd, 0));
        CHECK(!tap_queue_attached(nd, 1));
        net_free(n);
        netdev_close(set, nd);
    }
    netdev_set_free(set);
    machine_teardown();
}

/*
 * VQ_PAIRS_SET (5.1.6.5.5): 1 to max_virtqueue_pairs with MQ negotiated,
 * a 16-bit count; anything else is VIRTIO_NET_ERR and changes nothing.
 * A reset goes back to one pair.
 */
UNIT_TEST(mq_vq_pairs_set_bounds)
{
    uint8_t one = 1, wide[4] = { 2, 0, 0, 0 };
    NetdevSet *set;
    VirtioNet *n;
    Netdev *nd;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    nd = mq_netdev(set);
    n = net_new_mq(nd, true);
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MQ));
    CHECK_EQ(ctrl_q, 4);
    CHECK_EQ(set_pairs(n, 0), VIRTIO_NET_ERR);
    CHECK_EQ(set_pairs(n, 3), VIRTIO_NET_ERR);
    CHECK_EQ(set_pairs(n, 0x8000), VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &one, 1),
             VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, wide, 4),
             VIRTIO_NET_ERR);
    CHECK_EQ(ctrl(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, wide, 2),
             VIRTIO_NET_ERR);
    CHECK_EQ(n->curr_pairs, 1);
    CHECK(!tap_queue_attached(nd, 1));

    CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_OK);
    CHECK_EQ(n->curr_pairs, 2);
    CHECK(tap_queue_attached(nd, 0) && tap_queue_attached(nd, 1));
    CHECK_EQ(set_pairs(n, 1), VIRTIO_NET_OK);
    CHECK_EQ(n->curr_pairs, 1);
    CHECK(!tap_queue_attached(nd, 1));
    CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_OK);

    /* reset: one pair again; without MQ the control queue is number 2 */
    virtio_reset(&n->vdev);
    CHECK_EQ(n->curr_pairs, 1);
    CHECK(!tap_queue_attached(nd, 1));
    driver_up(n, BASE_FEATURES);
    CHECK_EQ(ctrl_q, VNET_CTRL_QUEUE);
    CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_ERR);
    CHECK_EQ(n->curr_pairs, 1);
    CHECK(!needs_reset(n));
    end_test(n, -1, set);
}

/* The guest sends a test frame on transmitq(pair+1); the interface gets it. */
static void send_on_pair(VirtioNet *n, int sock, unsigned pair, uint32_t seq)
{
    static uint8_t got[2048];
    uint64_t gpa[2] = { TXBUF_GPA, TXBUF_GPA + 0x100 };
    uint32_t lens[2] = { NET_VNET_HDR_LEN, 256 };
    uint16_t flags[2] = { 0, 0 }, used = ring_used(VNET_TXQ(pair));

    memset(m.ram + TXBUF_GPA, 0, NET_VNET_HDR_LEN);
    make_frame(m.ram + TXBUF_GPA + 0x100, 256, peer_mac, seq);
    ring_post(VNET_TXQ(pair), gpa, lens, flags, 2);
    kick(n, VNET_TXQ(pair));
    CHECK_EQ(ring_used(VNET_TXQ(pair)), (uint16_t)(used + 1));
    CHECK_EQ(packet_recv(sock, got, sizeof(got)), 256);
    CHECK(memcmp(got, m.ram + TXBUF_GPA + 0x100, 256) == 0);
}

/*
 * The interface sends a test frame; return the pair whose receive queue
 * got it (-1: none).  Each receive queue has a buffer posted.
 */
static int receive_on_some_pair(VirtioNet *n, int sock, uint32_t seq)
{
    uint8_t frame[256];
    uint16_t used[2] = { ring_used(VNET_RXQ(0)), ring_used(VNET_RXQ(1)) };

    make_frame(frame, sizeof(frame), our_mac, seq);
    CHECK(send(sock, frame, sizeof(frame), 0) == (ssize_t)sizeof(frame));
    pump_rx(n);
    for (unsigned pair = 0; pair < 2; pair++) {
        if (ring_used(VNET_RXQ(pair)) != used[pair]) {
            uint16_t id = ring_used_id(VNET_RXQ(pair), used[pair]);
            uint64_t gpa = RXBUF_GPA + RXBUF_SLOT * (NQ * pair + id % NQ);
            CHECK_EQ(ring_used_len(VNET_RXQ(pair), used[pair]),
                     sizeof(frame) + NET_VNET_HDR_LEN);
            CHECK(memcmp(m.ram + gpa + NET_VNET_HDR_LEN, frame, sizeof(frame)) == 0);
            return pair;
        }
    }
    return -1;
}

/* A receive buffer on each pair's receive queue (NQ slots per pair). */
static void post_rx_both_pairs(void)
{
    for (unsigned pair = 0; pair < 2; pair++) {
        uint16_t slot = rings[VNET_RXQ(pair)].next_desc % NQ;
        uint64_t gpa = RXBUF_GPA + RXBUF_SLOT * (NQ * pair + slot);
        uint32_t len = 2048;
        uint16_t fl = VRING_DESC_F_WRITE;
        ring_post(VNET_RXQ(pair), &gpa, &len, &fl, 1);
    }
}

/*
 * Pair i moves its frames through tap queue i.  With the tap's queue 0
 * detached behind the device's back, a frame sent to the interface can
 * only reach queue 1 and must arrive on receiveq2.  With both attached,
 * the kernel steers a flow to the queue that last sent it (tun's flow
 * table), so the host's frame follows the pair the guest sent on.
 */
UNIT_TEST(mq_frames_on_pair_1_use_tap_queue_1)
{
    NetdevSet *set;
    VirtioNet *n;
    Netdev *nd;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    nd = mq_netdev(set);
    n = net_new_mq(nd, true);
    driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MQ));
    CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_OK);
    sock = packet_socket("dvmq0");

    CHECK(net_tap_set_enabled(netdev_tap(nd, 0), false, NULL));
    post_rx_both_pairs();
    send_on_pair(n, sock, 1, 0x5151);
    CHECK_EQ(receive_on_some_pair(n, sock, 0x5152), 1);
    CHECK(net_tap_set_enabled(netdev_tap(nd, 0), true, NULL));

    for (unsigned round = 0; round < 4; round++) {
        unsigned pair = round % 2;
        post_rx_both_pairs();
        send_on_pair(n, sock, pair, 0x6000 + round);
        CHECK_EQ(receive_on_some_pair(n, sock, 0x6100 + round), (int)pair);
    }
    CHECK(!needs_reset(n));
    end_test(n, sock, set);
}

/* ---- migration state ---- */

static GByteArray *save_state(VirtioNet *n)
{
    GByteArray *out = g_byte_array_new();

    virtio_device_save(&n->vdev, out);
    return out;
}

static bool load_state(VirtioNet *n, const uint8_t *buf, size_t len, GError **errp)
{
    StateReader r;
    VirtioSnapshot *snap;

    state_reader_init(&r, buf, len);
    snap = virtio_device_parse(&n->vdev, &r, errp);
    if (!snap) {
        return false;
    }
    if (!blob_done(&r)) {
        virtio_snapshot_free(snap);
        g_set_error_literal(errp, g_quark_from_static_string("test"), 1, "stray bytes");
        return false;
    }
    virtio_device_apply(&n->vdev, snap);
    virtio_snapshot_free(snap);
    return true;
}

/*
 * The process's threads (/proc/self/task), io_uring's workers ("iou-wrk-PID") left out:
 * the kernel starts and ends those on its own, whenever a tap write blocks and a while
 * after (one more than expected failed this test in CI).  A task whose comm cannot be
 * read has ended between the listing and the read: not counted either.
 */
static unsigned thread_count(void)
{
    GDir *dir = g_dir_open("/proc/self/task", 0, NULL);
    const char *tid;
    unsigned count = 0;

    CHECK(dir != NULL);
    while (dir && (tid = g_dir_read_name(dir))) {
        char *path = g_strdup_printf("/proc/self/task/%s/comm", tid);
        char *comm = NULL;
        if (g_file_get_contents(path, &comm, NULL, NULL) &&
            !g_str_has_prefix(comm, "iou-")) {
            count++;
        }
        g_free(comm);
        g_free(path);
    }
    if (dir) {
        g_dir_close(dir);
    }
    return count;
}

/*
 * thread_count() once it is want, or after 5 s: a joined thread's task can still be
 * listed a moment after pthread_join returns (the kernel wakes the joiner before it
 * reaps the task), which failed the exact count now and then (2 != 1).
 */
static unsigned thread_count_settled(unsigned want)
{
    unsigned count = thread_count();

    for (int i = 0; i < 500 && count != want; i++) {
        usleep(10000);
        count = thread_count();
    }
    return count;
}

/* A test frame with seq on transmitq(pair+1), kicked the way an ioeventfd does. */
static void post_tx_kicked(VirtioNet *n, unsigned pair, uint32_t seq)
{
    uint64_t gpa[2] = { TXBUF_GPA + 0x1000 * pair, TXBUF_GPA + 0x1000 * pair + 0x100 };
    uint32_t lens[2] = { NET_VNET_HDR_LEN, 128 };
    uint16_t flags[2] = { 0, 0 };

    memset(m.ram + gpa[0], 0, NET_VNET_HDR_LEN);
    make_frame(m.ram + gpa[1], 128, peer_mac, seq);
    ring_post(VNET_TXQ(pair), gpa, lens, flags, 2);
    virtio_queue_kick(&n->vdev.vqs[VNET_TXQ(pair)]);
}

/* Both frames seq0 and seq1 seen on the packet socket (any order)? */
static bool got_both(int sock, uint32_t seq0, uint32_t seq1)
{
    static uint8_t got[2048];
    bool seen[2] = { false, false };

    for (unsigned i = 0; i < 2; i++) {
        uint32_t seq;
        if (packet_recv(sock, got, sizeof(got)) != 128) {
            return false;
        }
        memcpy(&seq, got + 14, 4);
        seen[0] |= seq == seq0;
        seen[1] |= seq == seq1;
    }
    return seen[0] && seen[1];
}

/*
 * With queues=2 each queue of each pair has an I/O thread of its own
 * (receiveq i on thread 2i, transmitq i on 2i + 1, the control queue on
 * thread 0): four threads run while the device does, and both pairs move
 * frames through them.  The control
 * queue changes the pairs in use while pair 1's thread runs, and a reset
 * and a pause (migration's save) come from another thread in between:
 * the frames keep flowing and nothing is left half done (make sanitize
 * runs this under ThreadSanitizer too).
 */
UNIT_TEST(mq_pairs_run_on_their_own_io_threads)
{
    NetdevSet *set;
    VirtioNet *n;
    GByteArray *blob;
    unsigned running;
    int sock;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    n = net_new_mq(mq_netdev(set), true);
    CHECK_EQ(n->vdev.nr_io, 4);
    CHECK_EQ(n->vdev.ops->queue_thread(&n->vdev, VNET_RXQ(0)), 0);
    CHECK_EQ(n->vdev.ops->queue_thread(&n->vdev, VNET_TXQ(0)), 1);
    CHECK_EQ(n->vdev.ops->queue_thread(&n->vdev, VNET_RXQ(1)), 2);
    CHECK_EQ(n->vdev.ops->queue_thread(&n->vdev, VNET_TXQ(1)), 3);
    CHECK_EQ(n->vdev.ops->queue_thread(&n->vdev, 4), 0); /* the control queue */
    CHECK(virtio_device_start(&n->vdev, NULL));
    for (unsigned t = 0; t < 4; t++) {
        CHECK(n->vdev.io[t].started);
    }
    running = thread_count();
    sock = packet_socket("dvmq0");

    for (unsigned round = 0; round < 3; round++) {
        driver_up(n, BASE_FEATURES | FEAT(VIRTIO_NET_F_MQ));
        CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_OK);
        for (uint32_t i = 0; i < 8; i++) {
            uint32_t seq = 0x7000 + 0x100 * round + 2 * i;
            post_tx_kicked(n, 0, seq);
            post_tx_kicked(n, 1, seq + 1);
            CHECK(wait_used(VNET_TXQ(0), i + 1) && wait_used(VNET_TXQ(1), i + 1));
            CHECK(got_both(sock, seq, seq + 1));
            if (i == 3) { /* back to one pair and up again, from thread 0 */
                CHECK_EQ(set_pairs(n, 1), VIRTIO_NET_OK);
                CHECK_EQ(n->curr_pairs, 1);
                CHECK_EQ(set_pairs(n, 2), VIRTIO_NET_OK);
            }
        }
        /* migration's save: with the threads between queues */
        virtio_device_pause(&n->vdev);
        blob = save_state(n);
        CHECK(blob->len > 0);
        g_byte_array_free(blob, TRUE);
        virtio_device_resume(&n->vdev);
        CHECK(!needs_reset(n));
        virtio_reset(&n->vdev);
        CHECK_EQ(n->curr_pairs, 1);
    }
    close(sock);
    net_free(n);
    CHECK_EQ(thread_count_settled(running - 4), running - 4); /* the four ended */
    netdev_set_free(set);
    machine_teardown();
}

UNIT_TEST(state_round_trip_and_corrupt_blobs)
{
    static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 9 };
    uint8_t offb = 0, table[4 + 6 + 4];
    uint8_t vid[2] = { 7, 0 };
    VirtioNet *src, *dst;
    VirtioNetFilter before;
    GByteArray *blob;
    GError *err = NULL;
    size_t filter_at;

    machine_setup();
    src = net_new(NULL);
    driver_up(src, BASE_FEATURES);
    CHECK_EQ(ctrl(src, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &offb, 1),
             VIRTIO_NET_OK);
    pci_set_long(table, 1);
    memcpy(table + 4, other, 6);
    pci_set_long(table + 10, 0);
    CHECK_EQ(ctrl(src, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
                  sizeof(table)),
             VIRTIO_NET_OK);
    CHECK_EQ(ctrl(src, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, vid, 2),
             VIRTIO_NET_OK);
    virtio_net_set_link(src, false);
    blob = save_state(src);

    dst = net_new(NULL);
    before = dst->filter;
    /* corrupt blobs: truncated anywhere, a bad magic, a MAC table too big */
    for (size_t cut = 0; cut < blob->len; cut += 37) {
        CHECK(!load_state(dst, blob->data, cut, &err));
        g_clear_error(&err);
    }
    /* the model's part, last: magic, version, mac, status, link, offloads,
     * 8 flags, the two counts, one address, the VLAN bitmap, the pairs in use */
    filter_at = blob->len -
                (4 + 4 + 6 + 2 + 1 + 8 + 8 + 4 + 4 + 6 + 4 * VNET_VLAN_WORDS + 2);
    {
        GByteArray *bad = g_byte_array_new();
        g_byte_array_append(bad, blob->data, blob->len);
        /* the model's magic sits where its state starts */
        bad->data[filter_at] ^= 0xff;
        CHECK(!load_state(dst, bad->data, bad->len, &err));
        CHECK(err && strstr(err->message, "bad virtio-net state"));
        g_clear_error(&err);
        bad->data[filter_at] ^= 0xff;
        /* nr_uni = 200 */
        pci_set_long(bad->data + filter_at + 4 + 4 + 6 + 2 + 1 + 8 + 8, 200);
        CHECK_EQ(pci_get_long(blob->data + filter_at + 4 + 4 + 6 + 2 + 1 + 8 + 8), 1);
        CHECK(!load_state(dst, bad->data, bad->len, &err));
        CHECK(err && strstr(err->message, "MAC table"));
        g_clear_error(&err);
        g_byte_array_free(bad, TRUE);
    }
    CHECK(memcmp(&dst->filter, &before, sizeof(before)) == 0);
    CHECK_EQ(virtio_get_status(&dst->vdev), 0);
    CHECK(virtio_net_link_up(dst));

    /* the real thing */
    CHECK(load_state(dst, blob->data, blob->len, &err));
    if (err) {
        fprintf(stderr, "load: %s\n", err->message);
        g_clear_error(&err);
    }
    CHECK(memcmp(&dst->filter, &src->filter, sizeof(src->filter)) == 0);
    CHECK(!accepts(dst, peer_mac, -1) && accepts(dst, other, -1));
    CHECK(!virtio_net_link_up(dst));
    CHECK_EQ(pci_get_word(dst->vdev.config + 6), 0);
    CHECK_EQ(dst->vdev.guest_features, src->vdev.guest_features);
    CHECK(virtio_get_status(&dst->vdev) & VIRTIO_CONFIG_S_DRIVER_OK);
    CHECK(dst->announce_pending);
    net_free(dst);

    /*
     * A version 1 stream (before multi-queue: no pair count at the end)
     * still loads, with one pair in use; a version from the future does not.
     */
    CHECK_EQ(pci_get_long(blob->data + filter_at + 4), 2);
    pci_set_long(blob->data + filter_at + 4, 1);
    dst = net_new(NULL);
    CHECK(load_state(dst, blob->data, blob->len - 2, &err));
    g_clear_error(&err);
    CHECK_EQ(dst->curr_pairs, 1);
    CHECK(memcmp(&dst->filter, &src->filter, sizeof(src->filter)) == 0);
    net_free(dst);
    pci_set_long(blob->data + filter_at + 4, 3);
    dst = net_new(NULL);
    CHECK(!load_state(dst, blob->data, blob->len, &err));
    CHECK(err && strstr(err->message, "virtio-net state version 3"));
    g_clear_error(&err);
    g_byte_array_free(blob, TRUE);
    net_free(dst);
    net_free(src);
    machine_teardown();
}

/*
 * The pairs in use cross a migration (state version 2): a destination on
 * the same kind of netdev takes them (its second tap queue attached); one
 * with fewer pairs refuses the state, untouched.
 */
UNIT_TEST(mq_state_carries_the_pairs_in_use)
{
    NetdevSet *set;
    VirtioNet *src, *dst;
    Netdev *nd_src, *nd_dst;
    GByteArray *blob;
    GError *err = NULL;
    NetdevConfig cfg;

    enter_netns();
    machine_setup();
    set = netdev_set_new();
    nd_src = mq_netdev(set);
    src = net_new_mq(nd_src, true);
    driver_up(src, BASE_FEATURES | FEAT(VIRTIO_NET_F_MQ));
    CHECK_EQ(set_pairs(src, 2), VIRTIO_NET_OK);
    blob = save_state(src);

    /* a second netdev with two more queues of the same tap */
    CHECK(netdev_parse("tap,id=m1,ifname=dvmq0,script=no,downscript=no,queues=2", &cfg,
                       NULL));
    nd_dst = netdev_open(set, &cfg, &err);
    netdev_config_clear(&cfg);
    CHECK(nd_dst != NULL);
    dst = net_new_mq(nd_dst, true);
    CHECK(!tap_queue_attached(nd_dst, 1));
    CHECK(load_state(dst, blob->data, blob->len, &err));
    if (err) {
        fprintf(stderr, "load: %s\n", err->message);
        g_clear_error(&err);
    }
    CHECK_EQ(dst->curr_pairs, 2);
    CHECK(tap_queue_attached(nd_dst, 1));
    net_free(dst);

    /* no netdev: one pair only */
    dst = net_new(NULL);
    CHECK(!load_state(dst, blob->data, blob->len, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    CHECK_EQ(dst->curr_pairs, 1);
    CHECK_EQ(virtio_get_status(&dst->vdev), 0);
    net_free(dst);
    g_byte_array_free(blob, TRUE);
    net_free(src);
    netdev_set_free(set);
    machine_teardown();
}

UNIT_MAIN()
