/*
 * dv-udpecho PORT: the guest's half of bench/outage.py.  Sends every UDP
 * datagram that arrives on PORT straight back to its sender, unchanged, so
 * that the peer sees which of its packets reached the guest and when.
 * Static (the test guest has no C library); never ends.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    char buf[2048];
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: dv-udpecho PORT\n");
        return 2;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("dv-udpecho: socket");
        return 1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("dv-udpecho: bind");
        return 1;
    }
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);

        if (n < 0) {
            continue;
        }
        /* a send that fails (no route for a moment) loses this one only */
        (void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}
