/*
 * net/: -netdev tap parsing (every option, every error, QEMU's texts), tap
 * interfaces in a network namespace of the test's own (frames written on
 * the tap reach a packet socket on the interface and back), fd= taps,
 * ifup/ifdown scripts, and vhost-net: QEMU's error where /dev/vhost-net is
 * missing, the kernel interface end to end (a frame through vhost's rings)
 * where it is there.  Needs root (namespaces, /dev/net/tun).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "netns.h"
#include "unit.h"

#define WAIT_MS 3000
/* The IEEE's local experimental EtherType: nothing else sends it. */
#define TEST_ETHERTYPE 0x88b5

/* ---- parsing ---- */

/* Parse arg; return the error text (caller frees) or NULL. */
static char *parse_error(const char *arg, NetdevConfig *cfg)
{
    GError *err = NULL;
    char *msg = NULL;

    if (!netdev_parse(arg, cfg, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    return msg;
}

UNIT_TEST(parse_defaults_are_qemus)
{
    NetdevConfig cfg;

    CHECK(netdev_parse("tap,id=net0", &cfg, NULL));
    CHECK_STR(cfg.id, "net0");
    CHECK(cfg.ifname == NULL);
    CHECK_STR(cfg.script, "/etc/qemu-ifup");
    CHECK_STR(cfg.downscript, "/etc/qemu-ifdown");
    CHECK_EQ(cfg.fd, -1);
    CHECK_EQ(cfg.vhostfd, -1);
    CHECK(!cfg.vhost);
    CHECK_EQ(cfg.queues, 1);
    CHECK_EQ(cfg.sndbuf, 0);
    netdev_config_clear(&cfg);
}

UNIT_TEST(parse_every_option)
{
    NetdevConfig cfg;

    /* The seed's spelling. */
    CHECK(netdev_parse("tap,ifname=tap7,id=tap7,script=no,downscript=no,vhost=on", &cfg,
                       NULL));
    CHECK_STR(cfg.id, "tap7");
    CHECK_STR(cfg.ifname, "tap7");
    CHECK(cfg.script == NULL && cfg.downscript == NULL);
    CHECK(cfg.vhost);
    netdev_config_clear(&cfg);

    CHECK(netdev_parse("type=tap,id=a.b-c_d,ifname=x,,y,script=/s/up,"
                       "downscript=/s/down,vhost=off,queues=4,sndbuf=1M",
                       &cfg, NULL));
    CHECK_STR(cfg.id, "a.b-c_d");
    CHECK_STR(cfg.ifname, "x,y");
    CHECK_STR(cfg.script, "/s/up");
    CHECK_STR(cfg.downscript, "/s/down");
    CHECK(!cfg.vhost);
    CHECK_EQ(cfg.queues, 4);
    CHECK_EQ(cfg.sndbuf, 1 << 20);
    netdev_config_clear(&cfg);

    /* An empty script is none, as in QEMU; queues takes 0x too. */
    CHECK(netdev_parse("tap,id=n,script=,downscript=,queues=0x2", &cfg, NULL));
    CHECK(cfg.script == NULL && cfg.downscript == NULL);
    CHECK_EQ(cfg.queues, 2);
    netdev_config_clear(&cfg);

    /* fd=: no scripts; vhostfd= and vhostforce= imply vhost unless vhost=. */
    CHECK(netdev_parse("tap,id=n,fd=7,vhostfd=8", &cfg, NULL));
    CHECK_EQ(cfg.fd, 7);
    CHECK_EQ(cfg.vhostfd, 8);
    CHECK(cfg.vhost);
    CHECK(cfg.script == NULL && cfg.downscript == NULL);
    netdev_config_clear(&cfg);
    CHECK(netdev_parse("tap,id=n,vhostforce=on", &cfg, NULL));
    CHECK(cfg.vhost);
    netdev_config_clear(&cfg);
    CHECK(netdev_parse("tap,id=n,vhost=off,vhostforce=on", &cfg, NULL));
    CHECK(!cfg.vhost);
    netdev_config_clear(&cfg);

    /* fds= (libvirt's multi-queue taps): one queue per descriptor. */
    CHECK(netdev_parse("tap,id=n,fds=7:8:9,vhostfds=10:11:12", &cfg, NULL));
    CHECK_EQ(cfg.queues, 3);
    CHECK(cfg.fds && cfg.fds[0] == 7 && cfg.fds[2] == 9);
    CHECK(cfg.vhostfds && cfg.vhostfds[1] == 11);
    CHECK(cfg.vhost);
    CHECK(cfg.script == NULL && cfg.downscript == NULL);
    netdev_config_clear(&cfg);
    CHECK(netdev_parse("tap,id=n,fds=7", &cfg, NULL));
    CHECK_EQ(cfg.queues, 1);
    CHECK(!cfg.vhost && cfg.vhostfds == NULL);
    netdev_config_clear(&cfg);

    /* QEMU keeps the first id= and the last of any other key. */
    CHECK(netdev_parse("tap,id=first,queues=2,id=second,queues=3", &cfg, NULL));
    CHECK_STR(cfg.id, "first");
    CHECK_EQ(cfg.queues, 3);
    netdev_config_clear(&cfg);
}

UNIT_TEST(parse_errors_are_qemus)
{
    /* Each text as Debian's QEMU 7.2 prints it after "-netdev ARG: ". */
    static const char *const cases[][2] = {
        { "tap", "Parameter 'id' is missing" },
        { "", "Parameter 'id' is missing" },
        { "foo", "Parameter 'id' is missing" },
        { "id=x", "Parameter 'type' is missing" },
        { "foo,id=x", "Parameter 'type' does not accept value 'foo'" },
        { ",id=x", "Parameter 'type' does not accept value ''" },
        { "tap,id=1x", "Parameter 'id' expects an identifier" },
        { "tap,id=", "Parameter 'id' expects an identifier" },
        { "tap,id=a b", "Parameter 'id' expects an identifier" },
        { "foo,id=1", "Parameter 'id' expects an identifier" },
        { "tap,id=x,vhost=maybe", "Parameter 'vhost' expects 'on' or 'off'" },
        { "tap,id=x,vhostforce=maybe", "Parameter 'vhostforce' expects 'on' or 'off'" },
        { "tap,id=x,queues=abc", "Parameter 'queues' expects a uint64 value" },
        { "tap,id=x,queues=-1", "Parameter 'queues' expects a uint64 value" },
        { "tap,id=x,sndbuf=abc", "Parameter 'sndbuf' expects a size value" },
        { "tap,id=x,sndbuf=-1", "Parameter 'sndbuf' expects a size value" },
        /* typed values are checked before unknown keys, in schema order */
        { "tap,id=x,bogus=2,vhost=maybe", "Parameter 'vhost' expects 'on' or 'off'" },
        { "tap,id=x,queues=abc,vhost=maybe", "Parameter 'vhost' expects 'on' or 'off'" },
        { "tap,id=x,bogus=1", "Invalid parameter 'bogus'" },
        { "tap,id=x,fd=abc", "Invalid file descriptor number 'abc'" },
        { "tap,id=x,fd=3,ifname=foo", "ifname=, script=, downscript=, vnet_hdr=, "
                                      "helper=, queues=, fds=, and vhostfds= are "
                                      "invalid with fd=" },
        { "tap,id=x,queues=2,fd=3", "ifname=, script=, downscript=, vnet_hdr=, "
                                    "helper=, queues=, fds=, and vhostfds= are "
                                    "invalid with fd=" },
        { "tap,id=x,script=no,fd=", "ifname=, script=, downscript=, vnet_hdr=, "
                                    "helper=, queues=, fds=, and vhostfds= are "
                                    "invalid with fd=" },
        { "tap,id=x,vhost=off,vhostfd=0", "vhostfd(s)= is not valid without vhost" },
        { "tap,id=x,vhost=off,fds=3,vhostfds=4",
          "vhostfd(s)= is not valid without vhost" },
        { "tap,id=x,fd=3,fds=4:5", "ifname=, script=, downscript=, vnet_hdr=, "
                                   "helper=, queues=, fds=, and vhostfds= are "
                                   "invalid with fd=" },
        { "tap,id=x,fds=3:4,queues=2", "ifname=, script=, downscript=, vnet_hdr=, "
                                       "helper=, queues=, and vhostfd= are invalid "
                                       "with fds=" },
        { "tap,id=x,fds=3:4,vhostfd=5", "ifname=, script=, downscript=, vnet_hdr=, "
                                        "helper=, queues=, and vhostfd= are invalid "
                                        "with fds=" },
        { "tap,id=x,fds=3:4,vhostfds=5", "The number of fds passed does not match the "
                                         "number of vhostfds passed" },
        { "tap,id=x,fds=3:x", "Invalid file descriptor number 'x'" },
        { "tap,id=x,vhostfds=3:4", "vhostfds= is invalid if fds= wasn't specified" },
    };
    NetdevConfig cfg;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *msg = parse_error(cases[i][0], &cfg);
        if (!msg || strcmp(msg, cases[i][1]) != 0) {
            fprintf(stderr, "-netdev '%s'\n", cases[i][0]);
        }
        CHECK_STR(msg, cases[i][1]);
        g_free(msg);
    }
}

UNIT_TEST(parse_errors_of_our_own)
{
    /* Where QEMU asserts or accepts what this VMM cannot do. */
    static const char *const cases[][2] = {
        { "tap,id=x,queues=0", "Parameter 'queues' expects a number from 1 to 256" },
        { "tap,id=x,queues=257", "Parameter 'queues' expects a number from 1 to 256" },
        { "tap,id=x,queues=2,vhostfd=5",
          "vhostfd= gives one vhost-net, but queues=2 needs one per queue" },
        { "tap,id=x,helper=/h", "tap option 'helper' is not supported by this VMM" },
        { "tap,id=x,vnet_hdr=off", "tap option 'vnet_hdr' is not supported by this VMM" },
    };
    static const char *const others[] = {
        "none", "nic",    "user",    "l2tpv3", "socket",     "stream",     "dgram",
        "vde",  "bridge", "hubport", "netmap", "vhost-user", "vhost-vdpa",
    };
    NetdevConfig cfg;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *msg = parse_error(cases[i][0], &cfg);
        CHECK_STR(msg, cases[i][1]);
        g_free(msg);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(others); i++) {
        char *arg = g_strdup_printf("%s,id=x", others[i]);
        char *want = g_strdup_printf("network backend '%s' is not supported by this "
                                     "VMM (only 'tap' is)",
                                     others[i]);
        char *msg = parse_error(arg, &cfg);
        CHECK_STR(msg, want);
        g_free(msg);
        g_free(want);
        g_free(arg);
    }
}

/* ---- a namespace, taps and packet sockets ---- */

static bool link_exists(const char *ifname)
{
    return if_nametoindex(ifname) != 0;
}

static bool wait_readable(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    return poll(&pfd, 1, WAIT_MS) == 1;
}

/* A broadcast test frame of len bytes whose payload starts with seq. */
static void make_frame(uint8_t *frame, size_t len, uint32_t seq)
{
    static const uint8_t src[6] = { 0x02, 0x00, 0xc6, 0x12, 0x00, 0x01 };

    memset(frame, 0xff, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = TEST_ETHERTYPE >> 8;
    frame[13] = TEST_ETHERTYPE & 0xff;
    memcpy(frame + 14, &seq, sizeof(seq));
    for (size_t i = 18; i < len; i++) {
        frame[i] = (uint8_t)(i * 7 + seq);
    }
}

static bool is_test_frame(const uint8_t *frame, size_t len)
{
    return len >= 14 && frame[12] == TEST_ETHERTYPE >> 8 &&
           frame[13] == (TEST_ETHERTYPE & 0xff);
}

/* The next test frame at the packet socket (others skipped), or -1. */
static ssize_t packet_recv(int sock, uint8_t *buf, size_t size)
{
    for (;;) {
        ssize_t n = recv(sock, buf, size, 0);
        if (n < 0 && errno == EAGAIN) {
            if (!wait_readable(sock)) {
                fprintf(stderr, "no frame at the packet socket in %d ms\n", WAIT_MS);
                return -1;
            }
            continue;
        }
        if (n < 0 || is_test_frame(buf, n)) {
            return n;
        }
    }
}

/* The next test frame from the tap, header included (others skipped), or -1. */
static ssize_t tap_recv(NetTap *tap, uint8_t *buf, size_t size)
{
    for (;;) {
        struct iovec iov = { buf, size };
        ssize_t n = net_tap_receive(tap, &iov, 1);
        if (n == -EAGAIN) {
            if (!wait_readable(net_tap_fd(tap))) {
                fprintf(stderr, "no frame from the tap in %d ms\n", WAIT_MS);
                return -1;
            }
            continue;
        }
        if (n < 0 || is_test_frame(buf + NET_VNET_HDR_LEN, n - NET_VNET_HDR_LEN)) {
            return n;
        }
    }
}

/*
 * Frames of every size from 60 to 1514 bytes both ways between tap and
 * interface: written on the tap (header and frame in separate iovecs, as a
 * device hands them) they reach the packet socket unchanged; sent on the
 * packet socket they come out of the tap behind an all-zero vnet header.
 */
static void check_frames_both_ways(NetTap *tap, const char *ifname, size_t step)
{
    static uint8_t frame[2048], got[NET_TAP_MAX_FRAME];
    uint8_t hdr[NET_VNET_HDR_LEN] = { 0 }, zero[NET_VNET_HDR_LEN] = { 0 };
    int sock = packet_socket(ifname);
    int bad = 0;

    for (size_t len = 60; len <= 1514 && !bad; len += step) {
        struct iovec iov[2] = { { hdr, sizeof(hdr) }, { frame, len } };
        ssize_t n;

        make_frame(frame, len, (uint32_t)len);
        n = net_tap_send(tap, iov, 2);
        if (n != (ssize_t)(len + NET_VNET_HDR_LEN)) {
            fprintf(stderr, "tap send of %zu bytes: %zd\n", len, n);
            bad = 1;
        }
        n = packet_recv(sock, got, sizeof(got));
        if (n != (ssize_t)len || memcmp(got, frame, len) != 0) {
            fprintf(stderr, "tap to interface, %zu bytes: got %zd differing\n", len, n);
            bad = 1;
        }

        make_frame(frame, len, (uint32_t)len + 1);
        n = send(sock, frame, len, 0);
        if (n != (ssize_t)len) {
            fprintf(stderr, "packet socket send of %zu bytes: %zd (%s)\n", len, n,
                    strerror(errno));
            bad = 1;
        }
        memset(got, 0xaa, sizeof(got)); /* stale bytes would show */
        n = tap_recv(tap, got, sizeof(got));
        if (n != (ssize_t)(len + NET_VNET_HDR_LEN) ||
            memcmp(got, zero, NET_VNET_HDR_LEN) != 0 ||
            memcmp(got + NET_VNET_HDR_LEN, frame, len) != 0) {
            fprintf(stderr, "interface to tap, %zu bytes: got %zd differing\n", len, n);
            for (ssize_t i = 0; i < MIN(n, 40); i++) {
                fprintf(stderr, "%02x%s", got[i], i == 11 ? " | " : " ");
            }
            fprintf(stderr, "\n");
            bad = 1;
        }
    }
    CHECK(!bad);
    close(sock);
}

static Netdev *open_netdev(NetdevSet *set, const char *arg, GError **errp)
{
    NetdevConfig cfg;
    Netdev *nd;

    if (!netdev_parse(arg, &cfg, errp)) {
        return NULL;
    }
    nd = netdev_open(set, &cfg, errp);
    netdev_config_clear(&cfg);
    return nd;
}

static char *open_error(NetdevSet *set, const char *arg)
{
    GError *err = NULL;
    char *msg = NULL;

    if (!open_netdev(set, arg, &err)) {
        msg = g_strdup(err ? err->message : "(no error set)");
        g_clear_error(&err);
    }
    return msg;
}

/* ---- taps ---- */

UNIT_TEST(tap_open_creates_interface_and_close_removes_it)
{
    NetdevSet *set;
    Netdev *nd;
    int flags = 0;
    struct ifreq ifr = { 0 };

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,ifname=dvtap0,script=no,downscript=no", NULL);
    CHECK(nd != NULL);
    if (!nd) {
        netdev_set_free(set);
        return;
    }
    CHECK(netdev_find(set, "n0") == nd);
    CHECK_STR(netdev_id(nd), "n0");
    CHECK_STR(netdev_ifname(nd), "dvtap0");
    CHECK_EQ(netdev_queues(nd), 1);
    CHECK(netdev_vhost(nd, 0) == NULL);
    CHECK(link_exists("dvtap0"));
    /* What the guest's virtio-net expects of the tap. */
    CHECK(ioctl(net_tap_fd(netdev_tap(nd, 0)), TUNGETIFF, &ifr) == 0);
    CHECK_EQ(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN),
             IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    CHECK(ioctl(net_tap_fd(netdev_tap(nd, 0)), TUNGETVNETHDRSZ, &flags) == 0);
    CHECK_EQ(flags, 12);
    CHECK(fcntl(net_tap_fd(netdev_tap(nd, 0)), F_GETFL) & O_NONBLOCK);
    CHECK(ioctl(net_tap_fd(netdev_tap(nd, 0)), TUNGETSNDBUF, &flags) == 0);
    CHECK_EQ(flags, INT_MAX);

    /* Two netdevs may not share an id. */
    {
        char *msg = open_error(set, "tap,id=n0,ifname=dvtap1,script=no");
        CHECK_STR(msg, "Duplicate ID 'n0' for netdev");
        g_free(msg);
        CHECK(!link_exists("dvtap1"));
    }
    /* A second netdev on the same (single-queue) interface: QEMU's error. */
    {
        char *msg = open_error(set, "tap,id=n1,ifname=dvtap0,script=no");
        CHECK_STR(msg, "could not configure /dev/net/tun (dvtap0): Device or "
                       "resource busy");
        g_free(msg);
    }
    netdev_close(set, nd);
    CHECK(netdev_find(set, "n0") == NULL);
    CHECK(!link_exists("dvtap0"));
    netdev_set_free(set);
}

UNIT_TEST(tap_name_picked_by_kernel_and_sndbuf)
{
    NetdevSet *set;
    Netdev *nd;
    int sndbuf = 0;

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,script=no,downscript=no,sndbuf=64k", NULL);
    CHECK(nd != NULL);
    if (nd) {
        CHECK(g_str_has_prefix(netdev_ifname(nd), "tap"));
        CHECK(link_exists(netdev_ifname(nd)));
        CHECK(ioctl(net_tap_fd(netdev_tap(nd, 0)), TUNGETSNDBUF, &sndbuf) == 0);
        CHECK_EQ(sndbuf, 65536);
    }
    netdev_set_free(set);
}

UNIT_TEST(tap_frames_cross_both_ways)
{
    NetdevSet *set;
    Netdev *nd;

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,ifname=dvtap0,script=no,downscript=no", NULL);
    CHECK(nd != NULL);
    if (nd) {
        struct iovec iov;
        uint8_t buf[64];

        link_up("dvtap0");
        check_frames_both_ways(netdev_tap(nd, 0), "dvtap0", 1);
        /* Nothing waiting is -EAGAIN, never a block. */
        while (net_tap_receive(netdev_tap(nd, 0), &(struct iovec){ buf, sizeof(buf) },
                               1) >= 0) {
        }
        iov = (struct iovec){ buf, sizeof(buf) };
        CHECK_EQ(net_tap_receive(netdev_tap(nd, 0), &iov, 1), -EAGAIN);
        /* A frame shorter than its header is refused without a syscall. */
        iov.iov_len = NET_VNET_HDR_LEN - 1;
        CHECK_EQ(net_tap_send(netdev_tap(nd, 0), &iov, 1), -EINVAL);
    }
    netdev_set_free(set);
}

UNIT_TEST(tap_offloads_follow_the_guest)
{
    NetdevSet *set;
    Netdev *nd;

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,ifname=dvtap0,script=no,downscript=no", NULL);
    CHECK(nd != NULL);
    if (nd) {
        NetTap *tap = netdev_tap(nd, 0);
        CHECK(net_tap_has_vnet_hdr(tap));
        CHECK(net_tap_set_offload(tap, true, true, true, true, true, NULL));
        CHECK(net_tap_set_offload(tap, true, true, false, false, false, NULL));
        CHECK(net_tap_set_offload(tap, false, false, false, false, false, NULL));
        /* With offloads on, plain frames still cross unchanged. */
        link_up("dvtap0");
        CHECK(net_tap_set_offload(tap, true, true, true, true, false, NULL));
        check_frames_both_ways(tap, "dvtap0", 97);
    }
    netdev_set_free(set);
}

UNIT_TEST(tap_multi_queue)
{
    NetdevSet *set;
    Netdev *nd;

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,ifname=dvmq0,script=no,downscript=no,queues=3",
                     NULL);
    CHECK(nd != NULL);
    if (nd) {
        struct ifreq ifr = { 0 };
        CHECK_EQ(netdev_queues(nd), 3);
        CHECK(netdev_tap(nd, 3) == NULL);
        for (unsigned i = 0; i < 3; i++) {
            CHECK(ioctl(net_tap_fd(netdev_tap(nd, i)), TUNGETIFF, &ifr) == 0);
            CHECK(ifr.ifr_flags & IFF_MULTI_QUEUE);
            CHECK_STR(ifr.ifr_name, "dvmq0");
        }
        link_up("dvmq0");
        /* Every queue sends; with the others detached, queue 2 receives. */
        CHECK(net_tap_set_enabled(netdev_tap(nd, 0), false, NULL));
        CHECK(net_tap_set_enabled(netdev_tap(nd, 1), false, NULL));
        check_frames_both_ways(netdev_tap(nd, 2), "dvmq0", 331);
        CHECK(net_tap_set_enabled(netdev_tap(nd, 0), true, NULL));
        CHECK(net_tap_set_enabled(netdev_tap(nd, 2), false, NULL));
        check_frames_both_ways(netdev_tap(nd, 0), "dvmq0", 331);
    }
    netdev_set_free(set);
}

/* A tap as libvirt opens it, before handing its descriptor over. */
static int open_tap_fd(const char *ifname, bool vnet_hdr)
{
    struct ifreq ifr = { 0 };
    int fd = open("/dev/net/tun", O_RDWR);

    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    g_strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
    CHECK(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0);
    return fd;
}

UNIT_TEST(tap_fd_passed_in)
{
    NetdevSet *set;
    int fds[2];

    enter_netns();
    set = netdev_set_new();
    for (int vnet_hdr = 1; vnet_hdr >= 0; vnet_hdr--) {
        const char *ifname = vnet_hdr ? "dvfd0" : "dvfd1";
        int fd = open_tap_fd(ifname, vnet_hdr);
        char *arg = g_strdup_printf("tap,id=f%d,fd=%d", vnet_hdr, fd);
        Netdev *nd = open_netdev(set, arg, NULL);

        CHECK(nd != NULL);
        g_free(arg);
        if (!nd) {
            close(fd);
            continue;
        }
        /* The netdev owns the descriptor now, as QEMU does. */
        CHECK_STR(netdev_ifname(nd), ifname);
        CHECK(net_tap_has_vnet_hdr(netdev_tap(nd, 0)) == vnet_hdr);
        /* Without vnet headers the backend adds and drops them itself. */
        link_up(ifname);
        check_frames_both_ways(netdev_tap(nd, 0), ifname, 113);
        if (!vnet_hdr) {
            CHECK(!net_tap_set_offload(netdev_tap(nd, 0), true, false, false, false,
                                       false, NULL));
            CHECK(net_tap_set_offload(netdev_tap(nd, 0), false, false, false, false,
                                      false, NULL));
        }
    }

    /* Descriptors that are not taps, each with QEMU's text. */
    CHECK(pipe(fds) == 0);
    {
        char *arg = g_strdup_printf("tap,id=p,fd=%d", fds[0]);
        char *want = g_strdup_printf("Unable to query TUNGETIFF on FD %d: "
                                     "Inappropriate ioctl for device",
                                     fds[0]);
        char *msg = open_error(set, arg);
        CHECK_STR(msg, want);
        g_free(msg);
        g_free(want);
        g_free(arg);
    }
    close(fds[1]);
    close(fds[0]);
    {
        char *arg = g_strdup_printf("tap,id=p,fd=%d", fds[0]);
        char *want = g_strdup_printf("p: Can't use file descriptor %d: Bad file "
                                     "descriptor",
                                     fds[0]);
        char *msg = open_error(set, arg);
        CHECK_STR(msg, want);
        g_free(msg);
        g_free(want);
        g_free(arg);
    }
    {
        int fd = open("/dev/net/tun", O_RDWR); /* never configured */
        char *arg = g_strdup_printf("tap,id=p,fd=%d", fd);
        char *want = g_strdup_printf("Unable to query TUNGETIFF on FD %d: File "
                                     "descriptor in bad state",
                                     fd);
        char *msg = open_error(set, arg);
        CHECK_STR(msg, want);
        g_free(msg);
        g_free(want);
        g_free(arg);
        close(fd);
    }
    netdev_set_free(set);
}

UNIT_TEST(tap_fds_passed_in)
{
    NetdevSet *set;
    int fds[3], plain;
    char *arg, *msg;
    Netdev *nd;

    enter_netns();
    set = netdev_set_new();
    /* Three queues of one multi-queue tap, opened as libvirt does. */
    for (unsigned i = 0; i < 3; i++) {
        struct ifreq ifr = { 0 };
        fds[i] = open("/dev/net/tun", O_RDWR);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        g_strlcpy(ifr.ifr_name, "dvfds0", sizeof(ifr.ifr_name));
        CHECK(fds[i] >= 0 && ioctl(fds[i], TUNSETIFF, &ifr) == 0);
    }
    arg = g_strdup_printf("tap,id=m,fds=%d:%d:%d", fds[0], fds[1], fds[2]);
    nd = open_netdev(set, arg, NULL);
    g_free(arg);
    CHECK(nd != NULL);
    if (nd) {
        CHECK_EQ(netdev_queues(nd), 3);
        CHECK_STR(netdev_ifname(nd), "dvfds0");
        for (unsigned i = 0; i < 3; i++) {
            CHECK_EQ(net_tap_fd(netdev_tap(nd, i)), fds[i]);
        }
        link_up("dvfds0");
        CHECK(net_tap_set_enabled(netdev_tap(nd, 0), false, NULL));
        CHECK(net_tap_set_enabled(netdev_tap(nd, 2), false, NULL));
        check_frames_both_ways(netdev_tap(nd, 1), "dvfds0", 211);
    }

    /* A queue without vnet headers beside one with them: QEMU's refusal. */
    plain = open_tap_fd("dvfds1", false);
    fds[0] = open_tap_fd("dvfds2", true);
    arg = g_strdup_printf("tap,id=x,fds=%d:%d", fds[0], plain);
    msg = open_error(set, arg);
    CHECK_STR(msg, "vnet_hdr not consistent across given tap fds");
    /* Both descriptors stay the caller's. */
    CHECK(fcntl(fds[0], F_GETFD) >= 0 && fcntl(plain, F_GETFD) >= 0);
    g_free(msg);
    g_free(arg);
    close(plain);
    close(fds[0]);
    netdev_set_free(set);
}

/* ---- scripts ---- */

/*
 * A script that records its arguments in dir/NAME.out and whether the
 * interface named existed while it ran.
 */
static char *write_script(const char *dir, const char *name)
{
    char *path = g_build_filename(dir, name, NULL);
    char *text = g_strdup_printf("#!/bin/sh\n"
                                 "grep -q \"^ *$1:\" /proc/net/dev && up=exists\n"
                                 "echo \"$# $1 $up\" > %s.out\n",
                                 path);

    CHECK(g_file_set_contents(path, text, -1, NULL));
    chmod(path, 0755);
    g_free(text);
    return path;
}

static char *read_out(const char *script)
{
    char *path = g_strdup_printf("%s.out", script);
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        text = g_strdup("(script did not run)");
    }
    g_free(path);
    return text;
}

UNIT_TEST(scripts_run_with_the_interface_name)
{
    char *dir = g_dir_make_tmp("test-net-XXXXXX", NULL);
    char *up = write_script(dir, "ifup");
    char *down = write_script(dir, "ifdown");
    char *arg = g_strdup_printf("tap,id=n0,script=%s,downscript=%s", up, down);
    NetdevSet *set;
    Netdev *nd;
    char *text, *want;

    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, arg, NULL);
    CHECK(nd != NULL);
    if (nd) {
        want = g_strdup_printf("1 %s exists\n", netdev_ifname(nd));
        text = read_out(up);
        CHECK_STR(text, want);
        g_free(text);
        text = read_out(down);
        CHECK_STR(text, "(script did not run)");
        g_free(text);
        /* The downscript runs at close, while the interface still exists. */
        netdev_close(set, nd);
        text = read_out(down);
        CHECK_STR(text, want);
        g_free(text);
        g_free(want);
    }

    /* A failing script fails the netdev (QEMU's text: the raw status). */
    g_free(arg);
    arg = g_strdup_printf("tap,id=n1,ifname=dvfail0,script=/bin/false,downscript=%s",
                          down);
    text = open_error(set, arg);
    CHECK_STR(text, "network script /bin/false failed with status 256");
    g_free(text);
    CHECK(!link_exists("dvfail0"));
    text = open_error(set, "tap,id=n1,ifname=dvfail0,script=/nonexistent/up");
    CHECK_STR(text, "network script /nonexistent/up failed with status 256");
    g_free(text);
    CHECK(netdev_find(set, "n1") == NULL);

    netdev_set_free(set);
    unlink(up);
    unlink(down);
    text = g_strdup_printf("%s.out", up);
    unlink(text);
    g_free(text);
    text = g_strdup_printf("%s.out", down);
    unlink(text);
    g_free(text);
    rmdir(dir);
    g_free(arg);
    g_free(up);
    g_free(down);
    g_free(dir);
}

/* Without /dev/net/tun (hidden in a mount namespace of a child): QEMU's text. */
UNIT_TEST(missing_tun_device)
{
    int pipefd[2];
    pid_t pid;
    char buf[256] = "";
    int status;

    CHECK(pipe(pipefd) == 0);
    pid = fork();
    if (pid == 0) {
        NetdevSet *set;
        char *msg;

        close(pipefd[0]);
        if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("none", "/dev/net", "tmpfs", 0, NULL) < 0) {
            _exit(2);
        }
        set = netdev_set_new();
        msg = open_error(set, "tap,id=n0,script=no");
        if (write(pipefd[1], msg ? msg : "", msg ? strlen(msg) : 0) < 0) {
            _exit(3);
        }
        g_free(msg);
        netdev_set_free(set);
        _exit(0);
    }
    close(pipefd[1]);
    CHECK(read(pipefd[0], buf, sizeof(buf) - 1) >= 0);
    close(pipefd[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_STR(buf, "could not open /dev/net/tun: No such file or directory");
}

/* ---- vhost-net ---- */

static bool have_vhost_net(void)
{
    return access("/dev/vhost-net", F_OK) == 0;
}

UNIT_TEST(vhost_missing_device_is_an_error)
{
    GError *err = NULL;
    NetdevSet *set;

    if (have_vhost_net()) {
        printf("/dev/vhost-net exists here: see vhost_net_moves_frames\n");
        return;
    }
    /* QEMU's text, and no silent fallback to the VMM's own data path. */
    CHECK(vhost_net_open(-1, &err) == NULL);
    CHECK_STR(err ? err->message : NULL,
              "tap: open vhost char device failed: No such file or directory");
    g_clear_error(&err);

    enter_netns();
    set = netdev_set_new();
    {
        char *msg = open_error(set, "tap,id=n0,ifname=dvvh0,script=no,vhost=on");
        CHECK_STR(msg, "tap: open vhost char device failed: No such file or directory");
        g_free(msg);
    }
    CHECK(!link_exists("dvvh0"));
    CHECK(netdev_find(set, "n0") == NULL);
    netdev_set_free(set);
}

UNIT_TEST(vhost_fd_that_is_not_vhost)
{
    GError *err = NULL;
    int fds[2];

    /* vhostfd= of something else: QEMU's text for the first ioctl. */
    CHECK(pipe(fds) == 0);
    CHECK(vhost_net_open(fds[0], &err) == NULL);
    CHECK_STR(err ? err->message : NULL,
              "vhost_set_owner failed: Inappropriate ioctl for device");
    g_clear_error(&err);
    /* A descriptor given and refused stays open, its giver's to close. */
    CHECK(fcntl(fds[0], F_GETFD) >= 0);
    close(fds[0]);
    close(fds[1]);
}

/*
 * Guest memory for the vhost smoke test: one region holding a receive
 * and a transmit ring of 8 entries and their buffers.
 */
#define RING_NUM 8
#define MEM_SIZE (1 << 20)
#define MEM_GPA  0x100000ULL

typedef struct TestRing {
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint64_t used_gpa;
    int kick, call;
} TestRing;

static void *gpa_to_hva(uint8_t *mem, uint64_t gpa)
{
    return mem + (gpa - MEM_GPA);
}

static void ring_layout(TestRing *r, uint8_t *mem, uint64_t gpa)
{
    r->desc = gpa_to_hva(mem, gpa);
    r->avail = gpa_to_hva(mem, gpa + 0x1000);
    r->used = gpa_to_hva(mem, gpa + 0x2000);
    r->used_gpa = gpa + 0x2000;
    r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* Post one buffer (gpa, len) on the ring at slot idx and kick. */
static void ring_post(TestRing *r, uint16_t idx, uint64_t gpa, uint32_t len,
                      bool device_writes)
{
    uint64_t one = 1;

    r->desc[idx % RING_NUM] = (struct vring_desc){
        .addr = gpa,
        .len = len,
        .flags = device_writes ? VRING_DESC_F_WRITE : 0,
    };
    r->avail->ring[idx % RING_NUM] = idx % RING_NUM;
    __atomic_store_n(&r->avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
    CHECK(write(r->kick, &one, sizeof(one)) == sizeof(one));
}

/* Wait for the device to return entry idx; its length, or -1. */
static long ring_wait_used(TestRing *r, uint16_t idx)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        struct pollfd pfd = { .fd = r->call, .events = POLLIN };
        if (__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE) != idx) {
            return r->used->ring[idx % RING_NUM].len;
        }
        poll(&pfd, 1, 10);
    }
    fprintf(stderr, "vhost-net did not use buffer %u in %d ms\n", idx, WAIT_MS);
    return -1;
}

static void mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
    uint64_t *dirty = opaque;

    dirty[0] = MIN(dirty[0], gpa);
    dirty[1] = MAX(dirty[1], gpa + len);
}

/*
 * The whole kernel interface as a virtio-net device will drive it: a
 * frame the "guest" posts on the transmit ring reaches a packet socket on
 * the interface, a frame sent there lands in the receive ring's buffer
 * behind a vnet header, and with dirty logging on the pages written are
 * reported.  Only where /dev/vhost-net exists (the rig's L1).
 */
UNIT_TEST(vhost_net_moves_frames)
{
    uint8_t *mem, frame[128], got[256];
    TestRing rx, tx;
    NetdevSet *set;
    Netdev *nd;
    VhostNet *vn;
    uint64_t features, dirty[2] = { UINT64_MAX, 0 };
    uint16_t base = 0;
    int sock;
    long len;

    if (!have_vhost_net()) {
        printf("no /dev/vhost-net here: see vhost_missing_device_is_an_error\n");
        return;
    }
    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set, "tap,id=n0,ifname=dvvh0,script=no,downscript=no,vhost=on",
                     NULL);
    CHECK(nd != NULL);
    if (!nd) {
        netdev_set_free(set);
        return;
    }
    vn = netdev_vhost(nd, 0);
    CHECK(vn != NULL);
    features = vhost_net_get_features(vn);
    CHECK(features & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
    CHECK(features & (1ULL << VIRTIO_F_VERSION_1));
    CHECK(features & (1ULL << VHOST_F_LOG_ALL));
    CHECK(vhost_net_set_features(
        vn, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF), NULL));

    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    CHECK(mem != MAP_FAILED);
    CHECK(vhost_net_set_mem_table(
        vn, &(VhostMemRegion){ .gpa = MEM_GPA, .size = MEM_SIZE, .hva = mem }, 1, NULL));
    ring_layout(&rx, mem, MEM_GPA);
    ring_layout(&tx, mem, MEM_GPA + 0x4000);
    CHECK(vhost_net_set_ring(vn, VHOST_NET_RING_RX,
                             &(VhostRing){ .num = RING_NUM,
                                           .desc = rx.desc,
                                           .avail = rx.avail,
                                           .used = rx.used,
                                           .used_gpa = rx.used_gpa,
                                           .kick_fd = rx.kick,
                                           .call_fd = rx.call },
                             NULL));
    CHECK(vhost_net_set_ring(vn, VHOST_NET_RING_TX,
                             &(VhostRing){ .num = RING_NUM,
                                           .desc = tx.desc,
                                           .avail = tx.avail,
                                           .used = tx.used,
                                           .used_gpa = tx.used_gpa,
                                           .kick_fd = tx.kick,
                                           .call_fd = tx.call },
                             NULL));
    CHECK(vhost_net_log_start(vn, MEM_GPA + MEM_SIZE, -1, NULL));
    link_up("dvvh0");
    sock = packet_socket("dvvh0");
    CHECK(vhost_net_set_backend(vn, net_tap_fd(netdev_tap(nd, 0)), NULL));

    /* Transmit: header + frame in one buffer at gpa 0x80000. */
    make_frame(frame, sizeof(frame), 42);
    memset(gpa_to_hva(mem, MEM_GPA + 0x80000), 0, NET_VNET_HDR_LEN);
    memcpy(gpa_to_hva(mem, MEM_GPA + 0x80000 + NET_VNET_HDR_LEN), frame, sizeof(frame));
    ring_post(&tx, 0, MEM_GPA + 0x80000, NET_VNET_HDR_LEN + sizeof(frame), false);
    CHECK(ring_wait_used(&tx, 0) >= 0);
    CHECK_EQ(packet_recv(sock, got, sizeof(got)), sizeof(frame));
    CHECK(memcmp(got, frame, sizeof(frame)) == 0);

    /* Receive: a 2 KiB buffer at gpa 0x90000. */
    ring_post(&rx, 0, MEM_GPA + 0x90000, 2048, true);
    make_frame(frame, sizeof(frame), 43);
    CHECK(send(sock, frame, sizeof(frame), 0) == sizeof(frame));
    len = ring_wait_used(&rx, 0);
    CHECK_EQ(len, NET_VNET_HDR_LEN + sizeof(frame));
    CHECK(memcmp(gpa_to_hva(mem, MEM_GPA + 0x90000 + NET_VNET_HDR_LEN), frame,
                 sizeof(frame)) == 0);
    /* num_buffers of virtio_net_hdr_mrg_rxbuf: one buffer. */
    CHECK_EQ(*(uint16_t *)gpa_to_hva(mem, MEM_GPA + 0x90000 + 10), 1);

    /* The received buffer's page (and the used rings) were logged dirty. */
    vhost_net_log_sync(vn, mark_dirty, dirty);
    CHECK(dirty[0] <= MEM_GPA + 0x2000);
    CHECK(dirty[1] >= MEM_GPA + 0x91000);
    CHECK(vhost_net_log_stop(vn, NULL));

    /* Stop, and read where the rings would resume. */
    CHECK(vhost_net_set_backend(vn, -1, NULL));
    CHECK(vhost_net_get_ring_base(vn, VHOST_NET_RING_TX, &base, NULL));
    CHECK_EQ(base, 1);
    CHECK(vhost_net_get_ring_base(vn, VHOST_NET_RING_RX, &base, NULL));
    CHECK_EQ(base, 1);

    close(sock);
    netdev_set_free(set);
    munmap(mem, MEM_SIZE);
    close(rx.kick);
    close(rx.call);
    close(tx.kick);
    close(tx.call);
}

/* queues=N with vhost=on: one vhost-net instance per queue pair. */
UNIT_TEST(vhost_net_per_queue)
{
    NetdevSet *set;
    Netdev *nd;

    if (!have_vhost_net()) {
        printf("no /dev/vhost-net here: see vhost_missing_device_is_an_error\n");
        return;
    }
    enter_netns();
    set = netdev_set_new();
    nd = open_netdev(set,
                     "tap,id=n0,ifname=dvvh0,script=no,downscript=no,vhost=on,"
                     "queues=2",
                     NULL);
    CHECK(nd != NULL);
    if (nd) {
        CHECK(netdev_vhost(nd, 0) != NULL && netdev_vhost(nd, 1) != NULL);
        CHECK(netdev_vhost(nd, 0) != netdev_vhost(nd, 1));
        CHECK(vhost_net_get_features(netdev_vhost(nd, 1)) & (1ULL << VIRTIO_F_VERSION_1));
    }
    netdev_set_free(set);
}

UNIT_MAIN()
