/*
 * Migration channels: tcp:HOST:PORT, unix:PATH, exec:CMD and fd:N, as file
 * descriptors.  Blocking helpers for the migration threads; the listening
 * side is set up on the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migration-int.h"
#include "migration/migration.h"
#include "util/error.h"

static bool split_host_port(const char *spec, char **host, char **port, GError **errp)
{
    const char *colon = strrchr(spec, ':');

    if (!colon || colon == spec || !colon[1]) {
        error_setg(errp, "'%s' is not HOST:PORT", spec);
        return false;
    }
    *host = g_strndup(spec, colon - spec);
    *port = g_strdup(colon + 1);
    if ((*host)[0] == '[') { /* [::1] */
        char *bare = g_strndup(*host + 1, strlen(*host) - 2);
        g_free(*host);
        *host = bare;
    }
    return true;
}

static int tcp_open(const char *spec, bool listen_side, GError **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
    char *host = NULL, *port = NULL;
    int fd = -1, err = 0, one = 1;

    if (!split_host_port(spec, &host, &port, errp)) {
        return -1;
    }
    hints.ai_flags = listen_side ? AI_PASSIVE : 0;
    err = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (err) {
        error_setg(errp, "tcp:%s: %s", spec, gai_strerror(err));
        goto out;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (listen_side) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0) {
                break;
            }
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        error_setg(errp, "Failed to %s tcp:%s: %s",
                   listen_side ? "listen on" : "connect to", spec,
                   g_strerror(err ? err : ECONNREFUSED));
    }
out:
    if (res) {
        freeaddrinfo(res);
    }
    g_free(host);
    g_free(port);
    return fd;
}

static int unix_open(const char *path, bool listen_side, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "unix:%s: path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    if (listen_side) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
            error_setg(errp, "Failed to listen on unix:%s: %s", path, g_strerror(errno));
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg(errp, "Failed to connect to unix:%s: %s", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* exec:CMD: run it with sh; its stdin (source) or stdout (destination). */
static int exec_open(const char *cmd, bool read_side, pid_t *child, GError **errp)
{
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "pipe");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(read_side ? fds[1] : fds[0], read_side ? 1 : 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    *child = pid;
    close(read_side ? fds[1] : fds[0]);
    return read_side ? fds[0] : fds[1];
}

/* fd:N's number, or -1 when rest is no descriptor number. */
static int fd_number(const char *rest, GError **errp)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(rest, &end, 10);
    if (!g_ascii_isdigit(rest[0]) || errno || *end || n > G_MAXINT) {
        error_setg(errp, "fd:%s is not a file descriptor number", rest);
        return -1;
    }
    return (int)n;
}

/*
 * fd:N: a connected stream the process holds (passed by getfd, or
 * inherited); the migration owns it from here and closes it at the end.
 * Blocking, as the migration threads expect.
 */
static int fd_open(const char *rest, GError **errp)
{
    int fd = fd_number(rest, errp), flags;

    if (fd < 0) {
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        error_setg(errp, "fd:%d: %s", fd, g_strerror(errno));
        return -1;
    }
    if ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        error_setg(errp, "fd:%d: %s", fd, g_strerror(errno));
        return -1;
    }
    return fd;
}

bool migration_uri_parse(const char *uri, MigrationUri *out, GError **errp)
{
    memset(out, 0, sizeof(*out));
    if (g_str_has_prefix(uri, "tcp:")) {
        out->kind = MIG_URI_TCP;
    } else if (g_str_has_prefix(uri, "unix:")) {
        out->kind = MIG_URI_UNIX;
    } else if (g_str_has_prefix(uri, "exec:")) {
        out->kind = MIG_URI_EXEC;
    } else if (g_str_has_prefix(uri, "fd:")) {
        out->kind = MIG_URI_FD;
    } else {
        error_setg(errp, "unknown migration protocol: %s", uri);
        return false;
    }
    out->rest = strchr(uri, ':') + 1;
    if (!*out->rest) {
        error_setg(errp, "migration URI '%s' has nothing after the protocol", uri);
        return false;
    }
    if (out->kind == MIG_URI_FD && fd_number(out->rest, NULL) < 0) {
        /* a name: only the monitor knows it (migrate resolves it first) */
        error_setg(errp, "File descriptor named '%s' has not been found", out->rest);
        return false;
    }
    return true;
}

bool migration_uri_check(const char *uri, GError **errp)
{
    MigrationUri parsed;

    return migration_uri_parse(uri, &parsed, errp);
}

int migration_connect(const MigrationUri *uri, pid_t *child, GError **errp)
{
    switch (uri->kind) {
    case MIG_URI_TCP:
        return tcp_open(uri->rest, false, errp);
    case MIG_URI_UNIX:
        return unix_open(uri->rest, false, errp);
    case MIG_URI_FD:
        return fd_open(uri->rest, errp);
    default:
        return exec_open(uri->rest, false, child, errp);
    }
}

int migration_listen(const MigrationUri *uri, pid_t *child, GError **errp)
{
    switch (uri->kind) {
    case MIG_URI_TCP:
        return tcp_open(uri->rest, true, errp);
    case MIG_URI_UNIX:
        return unix_open(uri->rest, true, errp);
    case MIG_URI_FD:
        return fd_open(uri->rest, errp);
    default:
        return exec_open(uri->rest, true, child, errp);
    }
}

/* Drop n bytes done from the front of iov[0..*cnt), and the empty entries
 * there; returns the new front. */
static struct iovec *iov_advance(struct iovec *iov, int *cnt, size_t n)
{
    while (*cnt && n >= iov->iov_len) {
        n -= iov->iov_len;
        iov++;
        (*cnt)--;
    }
    if (*cnt) {
        iov->iov_base = (uint8_t *)iov->iov_base + n;
        iov->iov_len -= n;
    }
    return iov;
}

bool chan_writev(int fd, struct iovec *iov, int iovcnt, GError **errp)
{
    iov = iov_advance(iov, &iovcnt, 0); /* empty entries first */
    while (iovcnt) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = MIN(iovcnt, IOV_MAX) };
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) {
            n = writev(fd, iov, MIN(iovcnt, IOV_MAX));
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg(errp, "migration channel: write failed: %s", g_strerror(errno));
            return false;
        }
        iov = iov_advance(iov, &iovcnt, n);
    }
    return true;
}

bool chan_readv(int fd, struct iovec *iov, int iovcnt, GError **errp)
{
    iov = iov_advance(iov, &iovcnt, 0); /* empty entries first */
    while (iovcnt) {
        ssize_t n = readv(fd, iov, MIN(iovcnt, IOV_MAX));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg(errp, "migration stream: %s",
                       n == 0 ? "unexpected end of stream" : g_strerror(errno));
            return false;
        }
        iov = iov_advance(iov, &iovcnt, n);
    }
    return true;
}

bool chan_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, timeout_ms) > 0;
}

/* One buffer: the vectored calls with a single entry. */
bool chan_write(int fd, const void *buf, size_t len, GError **errp)
{
    struct iovec iov = { (void *)buf, len };

    return chan_writev(fd, &iov, 1, errp);
}

bool chan_read(int fd, void *buf, size_t len, GError **errp)
{
    struct iovec iov = { buf, len };

    return chan_readv(fd, &iov, 1, errp);
}
