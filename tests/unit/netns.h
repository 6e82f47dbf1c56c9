/*
 * What the networking unit tests (test-net.c, test-virtio-net.c) share: a
 * network namespace of the test process's own, so every interface it makes
 * vanishes with it and no frame leaves it, interfaces brought up quietly,
 * and packet sockets that see every frame on an interface.
 */
#ifndef TESTS_UNIT_NETNS_H
#define TESTS_UNIT_NETNS_H

#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>

#include "unit.h"

/* A network namespace of this process's own: interfaces vanish with it. */
static inline void enter_netns(void)
{
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "unshare(CLONE_NEWNET): %s (tests need root)\n", strerror(errno));
        exit(1);
    }
}

/* Bring ifname up with IPv6 off (so it sends nothing of its own). */
static inline void link_up(const char *ifname)
{
    struct ifreq ifr = { 0 };
    char *path = g_strdup_printf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    /* Absent without IPv6; /proc files take a plain write, not a rename. */
    if (fd >= 0) {
        CHECK(write(fd, "1", 1) == 1);
        close(fd);
    }
    g_free(path);
    g_strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
    CHECK(ioctl(sock, SIOCGIFFLAGS, &ifr) == 0);
    ifr.ifr_flags |= IFF_UP;
    CHECK(ioctl(sock, SIOCSIFFLAGS, &ifr) == 0);
    close(sock);
}

/* A packet socket bound to ifname, seeing every frame on it. */
static inline int packet_socket(const char *ifname)
{
    struct sockaddr_ll addr = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = (int)if_nametoindex(ifname),
    };
    int sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      htons(ETH_P_ALL));

    CHECK(sock >= 0);
    CHECK(bind(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    return sock;
}

#endif
