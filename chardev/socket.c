/*
 * Socket chardevs: unix and tcp, server (one client at a time; later
 * clients wait in the listen backlog) or client, optionally telnet.
 * Main thread only; output goes through chardev.c's locked queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev-int.h"
#include "util/error.h"

#define LISTEN_BACKLOG 16

/* IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD, IAC WILL BINARY, IAC DO BINARY */
const uint8_t chardev_telnet_greeting[12] = {
    0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfb, 0x00, 0xff, 0xfd, 0x00,
};

/* "HOST:PORT" of addr, numeric, IPv6 hosts in brackets. */
static char *sockaddr_to_string(const struct sockaddr *addr, socklen_t len)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo(addr, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return g_strdup("?:?");
    }
    if (addr->sa_family == AF_INET6) {
        return g_strdup_printf("[%s]:%s", host, serv);
    }
    return g_strdup_printf("%s:%s", host, serv);
}

static char *fd_address(int fd, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);

    return rc == 0 ? sockaddr_to_string((struct sockaddr *)&ss, len) : NULL;
}

/*
 * QEMU's filename strings: "disconnected:telnet:127.0.0.1:7000,server=on",
 * "telnet:127.0.0.1:7000,server=on <-> 127.0.0.1:50236", "unix:PATH,server=on",
 * "tcp:LOCAL <-> REMOTE" for a connected client.
 */
void chardev_socket_update_filename(Chardev *chr)
{
    const ChardevSocketConfig *cfg = &chr->sock;
    const char *proto = cfg->telnet ? "telnet" : cfg->is_unix ? "unix" : "tcp";
    g_autofree char *addr = NULL;
    g_autofree char *name = NULL;

    if (cfg->is_unix) {
        addr = g_strdup(cfg->path);
    } else if (chr->local && (cfg->server || chr->connected)) {
        addr = g_strdup(chr->local);
    } else {
        addr = g_strdup_printf(strchr(cfg->host, ':') ? "[%s]:%u" : "%s:%u", cfg->host,
                               cfg->port);
    }
    if (cfg->server) {
        name = g_strdup_printf("%s%s:%s,server=on%s%s",
                               chr->connected ? "" : "disconnected:", proto, addr,
                               chr->peer ? " <-> " : "", chr->peer ? chr->peer : "");
    } else {
        name = g_strdup_printf("%s%s:%s%s%s",
                               chr->connected ? "" : "disconnected:", proto, addr,
                               chr->peer ? " <-> " : "", chr->peer ? chr->peer : "");
    }
    chardev_set_filename(chr, name);
}

/* A client is connected on fd (non-blocking): start talking to it. */
static void socket_attach_client(Chardev *chr, int fd)
{
    if (!chr->sock.is_unix) {
        int on = 1;
        if (chr->sock.nodelay) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        }
        if (!chr->sock.server) {
            g_free(chr->local);
            chr->local = fd_address(fd, false);
        }
        g_free(chr->peer);
        chr->peer = fd_address(fd, true);
    }
    chardev_set_output(chr, fd, true);
    chardev_connected(chr, fd, true);
    if (chr->sock.telnet) {
        chardev_write(chr, chardev_telnet_greeting, sizeof(chardev_telnet_greeting));
    }
    chardev_replay_backlog(chr);
    chardev_socket_update_filename(chr);
}

static gboolean socket_accept_cb(gint fd, GIOCondition cond, gpointer data)
{
    Chardev *chr = data;
    int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (client < 0) {
        return G_SOURCE_CONTINUE; /* EAGAIN, ECONNABORTED, EMFILE: try later */
    }
    chr->listen_watch = 0;
    socket_attach_client(chr, client);
    return G_SOURCE_REMOVE;
}

void chardev_socket_resume_listen(Chardev *chr)
{
    if (chr->sock.server && chr->listen_fd >= 0 && !chr->listen_watch &&
        !chr->connected) {
        chr->listen_watch = g_unix_fd_add(chr->listen_fd, G_IO_IN, socket_accept_cb, chr);
    }
}

static bool unix_fill_addr(const char *path, struct sockaddr_un *sun, GError **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return false;
    }
    strcpy(sun->sun_path, path);
    return true;
}

static int unix_listen(Chardev *chr, GError **errp)
{
    const char *path = chr->sock.path;
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    if (!unix_fill_addr(path, &sun, errp)) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    /* A socket file left by an earlier run is stale; anything else is kept. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return -1;
    }
    if (stat(path, &st) == 0) {
        chr->unix_created = true;
        chr->unix_dev = st.st_dev;
        chr->unix_ino = st.st_ino;
    }
    return fd;
}

static struct addrinfo *tcp_resolve(const ChardevSocketConfig *cfg, bool passive,
                                    GError **errp)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    char port[8];
    const char *host = cfg->host[0] ? cfg->host : NULL;
    int rc;

    hints.ai_family = cfg->family;
    if (!host && cfg->family == AF_UNSPEC) {
        hints.ai_family = AF_INET; /* an empty host listens on 0.0.0.0, as QEMU */
    }
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(port, sizeof(port), "%u", cfg->port);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s", cfg->host, port,
                   gai_strerror(rc));
        return NULL;
    }
    return res;
}

static int tcp_listen(Chardev *chr, GError **errp)
{
    struct addrinfo *res = tcp_resolve(&chr->sock, true, errp);
    int err = EADDRNOTAVAIL;
    int on = 1;

    if (!res) {
        return -1;
    }
    /* Prefer IPv4 when a name gives both, as QEMU's listing shows. */
    for (int pass = 0; pass < 2; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            int fd;
            if ((ai->ai_family == AF_INET) != (pass == 0)) {
                continue;
            }
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (fd < 0) {
                err = errno;
                continue;
            }
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                listen(fd, LISTEN_BACKLOG) == 0) {
                freeaddrinfo(res);
                return fd;
            }
            err = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err, "Failed to find an available port");
    return -1;
}

static int socket_connect_fd(Chardev *chr, GError **errp)
{
    const ChardevSocketConfig *cfg = &chr->sock;
    int err = ECONNREFUSED;

    if (cfg->is_unix) {
        struct sockaddr_un sun;
        int fd;
        if (!unix_fill_addr(cfg->path, &sun, errp)) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            return fd;
        }
        error_setg_errno(errp, errno, "Failed to connect to '%s'", cfg->path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }

    struct addrinfo *res = tcp_resolve(cfg, false, errp);
    if (!res) {
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = errno;
        if (fd >= 0) {
            close(fd);
        }
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err, "Failed to connect to '%s:%u'", cfg->host, cfg->port);
    return -1;
}

/* wait=on: block until the first client arrives, as QEMU does at start-up. */
static bool socket_wait_first_client(Chardev *chr, GError **errp)
{
    struct pollfd pfd = { .fd = chr->listen_fd, .events = POLLIN };

    fprintf(stderr, "qemu-system-x86_64: info: QEMU waiting for connection on: %s\n",
            chr->filename);
    for (;;) {
        int client;
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "chardev '%s': waiting for a client", chr->id);
            return false;
        }
        client = accept4(chr->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client >= 0) {
            socket_attach_client(chr, client);
            return true;
        }
    }
}

/*
 * fd=: the socket is the parent's (libvirt binds and names it); a server
 * listens on it, and query-chardev shows the address it is bound to.
 */
static bool socket_open_inherited(Chardev *chr, GError **errp)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = chr->sock.fd;

    chr->sock.fd = -1; /* ours now: closed with the chardev */
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX) {
        chr->sock.is_unix = true;
        g_free(chr->sock.path);
        chr->sock.path = g_strndup(((struct sockaddr_un *)&ss)->sun_path,
                                   len - offsetof(struct sockaddr_un, sun_path));
    } else {
        g_free(chr->sock.host);
        chr->sock.host = g_strdup("");
        chr->local = fd_address(fd, false);
    }
    if (!chr->sock.server) {
        socket_attach_client(chr, fd);
        return true;
    }
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        close(fd);
        return false;
    }
    chr->listen_fd = fd;
    chardev_socket_update_filename(chr);
    if (chr->sock.wait) {
        return socket_wait_first_client(chr, errp);
    }
    chardev_socket_resume_listen(chr);
    return true;
}

bool chardev_socket_open(Chardev *chr, GError **errp)
{
    if (chr->sock.fd >= 0) {
        return socket_open_inherited(chr, errp);
    }
    if (!chr->sock.server) {
        int fd = socket_connect_fd(chr, errp);
        if (fd < 0) {
            return false;
        }
        g_unix_set_fd_nonblocking(fd, TRUE, NULL);
        socket_attach_client(chr, fd);
        return true;
    }
    chr->listen_fd = chr->sock.is_unix ? unix_listen(chr, errp) : tcp_listen(chr, errp);
    if (chr->listen_fd < 0) {
        return false;
    }
    if (chr->sock.is_unix && listen(chr->listen_fd, LISTEN_BACKLOG) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on %s", chr->sock.path);
        return false;
    }
    if (!chr->sock.is_unix) {
        g_free(chr->local);
        chr->local = fd_address(chr->listen_fd, false);
    }
    chardev_socket_update_filename(chr);
    if (chr->sock.wait) {
        return socket_wait_first_client(chr, errp);
    }
    chardev_socket_resume_listen(chr);
    return true;
}

void chardev_socket_close(Chardev *chr)
{
    struct stat st;

    chardev_disconnect(chr, false);
    if (chr->listen_watch) {
        g_source_remove(chr->listen_watch);
        chr->listen_watch = 0;
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        chr->listen_fd = -1;
    }
    /* Remove our socket file, unless someone has replaced it since. */
    if (chr->unix_created && lstat(chr->sock.path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == chr->unix_dev && st.st_ino == chr->unix_ino) {
        unlink(chr->sock.path);
    }
    chr->unix_created = false;
}
