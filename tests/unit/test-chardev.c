/*
 * Chardev tests: both spellings (and QEMU's errors), real unix/tcp clients
 * against server chardevs driven by the GLib default main context, telnet
 * negotiation and stripping, output dropping and bounding, flow control,
 * half-close, Ctrl-A escapes, file and stdio backends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/chardev.h"
#include "unit.h"

/* ---- helpers ---- */

typedef struct Frontend {
    GString *data;
    int opened;
    int closed;
    size_t budget;     /* what can_read() reports */
    size_t max_read;   /* largest single read() seen */
    Chardev *chr;      /* for replies */
    const char *reply; /* written on each read when set */
    size_t reply_len;
} Frontend;

static size_t fe_can_read(void *opaque)
{
    Frontend *fe = opaque;

    return fe->budget;
}

static void fe_read(void *opaque, const uint8_t *buf, size_t len)
{
    Frontend *fe = opaque;

    g_string_append_len(fe->data, (const char *)buf, len);
    fe->max_read = MAX(fe->max_read, len);
    if (fe->budget != SIZE_MAX) {
        fe->budget -= MIN(fe->budget, len);
    }
    if (fe->reply) {
        chardev_write(fe->chr, fe->reply, fe->reply_len);
    }
}

static void fe_event(void *opaque, ChardevEvent event)
{
    Frontend *fe = opaque;

    if (event == CHARDEV_EVENT_OPENED) {
        fe->opened++;
    } else {
        fe->closed++;
    }
}

static const ChardevHandlers fe_handlers = { fe_can_read, fe_read, fe_event };

static void fe_init(Frontend *fe)
{
    memset(fe, 0, sizeof(*fe));
    fe->data = g_string_new(NULL);
    fe->budget = SIZE_MAX;
}

static void fe_clear(Frontend *fe)
{
    g_string_free(fe->data, TRUE);
}

static gint64 now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* Run the default main context until *counter reaches want (or 5 s pass). */
static bool pump_until(const int *counter, int want)
{
    gint64 deadline = now_ms() + 5000;

    while (*counter < want && now_ms() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return *counter >= want;
}

static bool pump_until_data(Frontend *fe, size_t len)
{
    gint64 deadline = now_ms() + 5000;

    while (fe->data->len < len && now_ms() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return fe->data->len >= len;
}

static void pump_for(int ms)
{
    gint64 deadline = now_ms() + ms;

    while (now_ms() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Read what fd gets while the main loop runs, until want bytes arrived,
 * EOF (*eof set) or quiet_ms without data.
 */
static GString *client_read(int fd, size_t want, int quiet_ms, bool *eof)
{
    GString *got = g_string_new(NULL);
    gint64 last = now_ms();

    if (eof) {
        *eof = false;
    }
    while (got->len < want && now_ms() - last < quiet_ms) {
        char buf[8192];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_string_append_len(got, buf, n);
            last = now_ms();
            continue;
        }
        if (n == 0) {
            if (eof) {
                *eof = true;
            }
            break;
        }
        g_main_context_iteration(NULL, FALSE);
        g_usleep(500);
    }
    return got;
}

static void send_all(int fd, const void *buf, size_t len)
{
    CHECK_EQ(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static char *tmp_dir(void)
{
    return g_dir_make_tmp("test-chardev-XXXXXX", NULL);
}

static void rm_tmp_dir(char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(dir);
    g_free(dir);
}

/* The error message creating spec gives, or NULL when it succeeds. */
static char *legacy_error(const char *spec)
{
    ChardevSet *set = chardev_set_new();
    GError *err = NULL;
    char *msg = NULL;

    if (!chardev_new_from_legacy(set, spec, "serial0", &err)) {
        msg = g_strdup(err ? err->message : "(no error set)");
        g_clear_error(&err);
    }
    chardev_set_free(set);
    return msg;
}

static char *opts_error(const char *opts)
{
    ChardevSet *set = chardev_set_new();
    GError *err = NULL;
    char *msg = NULL;

    if (!chardev_new_from_opts(set, opts, &err)) {
        msg = g_strdup(err ? err->message : "(no error set)");
        g_clear_error(&err);
    }
    chardev_set_free(set);
    return msg;
}

#define CHECK_LEGACY_ERR(spec, want)                                                     \
    do {                                                                                 \
        g_autofree char *msg_ = legacy_error(spec);                                      \
        CHECK_STR(msg_, want);                                                           \
    } while (0)

#define CHECK_OPTS_ERR(opts, want)                                                       \
    do {                                                                                 \
        g_autofree char *msg_ = opts_error(opts);                                        \
        CHECK_STR(msg_, want);                                                           \
    } while (0)

/* ---- parsing ---- */

UNIT_TEST(legacy_spellings)
{
    static const struct {
        const char *spec;
        const char *filename;
    } cases[] = {
        { "telnet:127.0.0.1:7000,server,nowait",
          "disconnected:telnet:127.0.0.1:7000,server=on" },
        { "telnet:127.0.0.1:7000,server=on,wait=off",
          "disconnected:telnet:127.0.0.1:7000,server=on" },
        { "tcp:127.0.0.1:7001,server,nowait",
          "disconnected:tcp:127.0.0.1:7001,server=on" },
        { "tcp:localhost:7002", "disconnected:tcp:localhost:7002" },
        { "tcp:[::1]:7003,server=on,wait=off", "disconnected:tcp:[::1]:7003,server=on" },
        { "unix:/tmp/x.sock,server,nowait", "disconnected:unix:/tmp/x.sock,server=on" },
        { "unix:/tmp/y.sock", "disconnected:unix:/tmp/y.sock" },
        { "stdio", "stdio" },
        { "file:/tmp/serial.log", "file" },
        { "null", "null" },
        { "mon:telnet:127.0.0.1:7004,server,nowait",
          "disconnected:telnet:127.0.0.1:7004,server=on" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        ChardevSet *set = chardev_set_new();
        GError *err = NULL;
        Chardev *chr = chardev_new_from_legacy(set, cases[i].spec, "serial0", &err);

        CHECK(chr != NULL);
        if (!chr) {
            fprintf(stderr, "%s: %s\n", cases[i].spec, err->message);
            g_clear_error(&err);
        } else {
            CHECK_STR(chardev_id(chr), "serial0");
            CHECK_STR(chardev_filename(chr), cases[i].filename);
            CHECK(!chardev_is_connected(chr));
            CHECK(chardev_find(set, "serial0") == chr);
        }
        chardev_set_free(set);
    }
}

UNIT_TEST(legacy_mon_stdio_and_chardev_reference)
{
    ChardevSet *set = chardev_set_new();
    GError *err = NULL;
    Chardev *mon = chardev_new_from_legacy(set, "mon:stdio", "serial0", &err);
    Chardev *named = chardev_new_from_opts(set, "null,id=con", &err);

    CHECK(mon != NULL);
    CHECK_STR(chardev_filename(mon), "stdio");
    CHECK(named != NULL);
    CHECK(chardev_new_from_legacy(set, "chardev:con", "serial1", &err) == named);
    CHECK(chardev_find(set, "serial1") == NULL);
    /* Only one chardev may own the terminal. */
    CHECK(chardev_new_from_legacy(set, "stdio", "serial2", &err) == NULL);
    CHECK_STR(err ? err->message : NULL,
              "cannot use stdio by multiple character devices");
    g_clear_error(&err);
    chardev_set_free(set);
}

UNIT_TEST(legacy_errors)
{
    CHECK_LEGACY_ERR("foo", "'foo' is not a valid char driver");
    CHECK_LEGACY_ERR("mon:foo", "'foo' is not a valid char driver");
    CHECK_LEGACY_ERR("mon:", "'' is not a valid char driver");
    CHECK_LEGACY_ERR("stdio,x=1", "'stdio,x=1' is not a valid char driver");
    CHECK_LEGACY_ERR("null,x=1", "'null,x=1' is not a valid char driver");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:7000,server,nowait,x=1", "Invalid parameter 'x'");
    CHECK_LEGACY_ERR("telnet:127.0.0.1:7000,server,nowait,bogus",
                     "Invalid parameter 'bogus'");
    CHECK_LEGACY_ERR("unix:/tmp/a.sock,server,nowait,host=h", "Invalid parameter 'host'");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:abc,server,nowait",
                     "address resolution failed for 127.0.0.1:abc: Servname not "
                     "supported for ai_socktype");
    CHECK_LEGACY_ERR("telnet:127.0.0.1:99999,server,nowait",
                     "address resolution failed for 127.0.0.1:99999: port number out "
                     "of range (0-65535)");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:,server", "chardev: socket: no port given");
    CHECK_LEGACY_ERR("telnet:7000,server,nowait", "error parsing address '7000'");
    CHECK_LEGACY_ERR("tcp:[::1,server", "error parsing address '[::1'");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:7000,nowait",
                     "'wait' option is incompatible with socket in client connect mode");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:7000,server,wait=maybe",
                     "Parameter 'wait' expects 'on' or 'off'");
    CHECK_LEGACY_ERR("tcp:127.0.0.1:7000,server,reconnect=1",
                     "chardev: option 'reconnect' is not supported");
    CHECK_LEGACY_ERR("unix:", "chardev: socket: no path given");
    CHECK_LEGACY_ERR("vc", "char driver 'vc' is not supported");
    CHECK_LEGACY_ERR("udp:127.0.0.1:5555",
                     "char driver 'udp:127.0.0.1:5555' is not supported");
    CHECK_LEGACY_ERR("chardev:nope", "chardev 'nope' not found");

    g_autofree char *long_path = g_strnfill(120, 'a');
    g_autofree char *spec = g_strdup_printf("unix:/tmp/%s,server,nowait", long_path);
    g_autofree char *want = g_strdup_printf("UNIX socket path '/tmp/%s' is too long",
                                            long_path);
    CHECK_LEGACY_ERR(spec, want);
}

UNIT_TEST(legacy_duplicate_id)
{
    ChardevSet *set = chardev_set_new();
    GError *err = NULL;

    CHECK(chardev_new_from_legacy(set, "null", "serial0", &err) != NULL);
    CHECK(chardev_new_from_legacy(set, "tcp:127.0.0.1:7000,server,nowait", "serial0",
                                  &err) == NULL);
    CHECK_STR(err ? err->message : NULL, "Duplicate ID 'serial0' for chardev");
    g_clear_error(&err);
    chardev_set_free(set);
}

UNIT_TEST(opts_spellings)
{
    ChardevSet *set = chardev_set_new();
    GError *err = NULL;
    static const struct {
        const char *opts;
        const char *id;
        const char *filename;
    } cases[] = {
        { "socket,id=mon0,path=/tmp/m.sock,server=on,wait=off", "mon0",
          "disconnected:unix:/tmp/m.sock,server=on" },
        { "socket,id=ser0,host=127.0.0.1,port=7000,server,nowait,telnet", "ser0",
          "disconnected:telnet:127.0.0.1:7000,server=on" },
        { "socket,id=t1,host=127.0.0.1,port=7001,server=on,wait=off,telnet=on,nodelay",
          "t1", "disconnected:telnet:127.0.0.1:7001,server=on" },
        { "socket,id=c1,host=localhost,port=7002", "c1",
          "disconnected:tcp:localhost:7002" },
        { "socket,id=c2,path=/tmp/c.sock", "c2", "disconnected:unix:/tmp/c.sock" },
        { "stdio,id=con,signal=off,mux=on", "con", "stdio" },
        { "file,id=log,path=/tmp/x,,y.log,append=on", "log", "file" },
        { "null,id=nothing", "nothing", "null" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Chardev *chr = chardev_new_from_opts(set, cases[i].opts, &err);
        CHECK(chr != NULL);
        if (!chr) {
            fprintf(stderr, "%s: %s\n", cases[i].opts, err->message);
            g_clear_error(&err);
            continue;
        }
        CHECK_STR(chardev_id(chr), cases[i].id);
        CHECK_STR(chardev_filename(chr), cases[i].filename);
        CHECK(chardev_find(set, cases[i].id) == chr);
    }
    chardev_set_free(set);
}

static void collect_id(Chardev *chr, void *opaque)
{
    g_string_append_printf(opaque, "%s;", chardev_id(chr));
}

UNIT_TEST(foreach_in_creation_order)
{
    ChardevSet *set = chardev_set_new();
    GString *ids = g_string_new(NULL);

    CHECK(chardev_new_from_opts(set, "null,id=b", NULL) != NULL);
    CHECK(chardev_new_from_legacy(set, "null", "a", NULL) != NULL);
    CHECK(chardev_new_from_opts(set, "null,id=c", NULL) != NULL);
    chardev_set_foreach(set, collect_id, ids);
    CHECK_STR(ids->str, "b;a;c;");
    g_string_free(ids, TRUE);
    chardev_set_free(set);
}

UNIT_TEST(opts_errors)
{
    CHECK_OPTS_ERR("socket,path=/tmp/x.sock,server=on,wait=off",
                   "chardev: no id specified");
    CHECK_OPTS_ERR("", "chardev: no id specified");
    CHECK_OPTS_ERR("foo", "chardev: no id specified");
    CHECK_OPTS_ERR("id=a", "chardev: \"a\" missing backend");
    CHECK_OPTS_ERR("foo,id=a", "'foo' is not a valid char driver name");
    CHECK_OPTS_ERR("vc,id=a", "char driver 'vc' is not supported");
    CHECK_OPTS_ERR("pty,id=a,foo=1", "Invalid parameter 'foo'");
    CHECK_OPTS_ERR("socket,id=a,fd=abc,server=on,wait=off",
                   "Unable to parse FD number abc");
    CHECK_OPTS_ERR("socket,id=a,fd=999,server=on,wait=off",
                   "File descriptor '999' is not a socket");
    CHECK_OPTS_ERR("socket,id=a,fd=3,path=/tmp/q.sock",
                   "None or one of 'path', 'fd' or 'host' option required.");
    CHECK_OPTS_ERR("socket,id=1a,path=/tmp/q.sock",
                   "Parameter 'id' expects an identifier");
    CHECK_OPTS_ERR("null,id=a,x=y", "Invalid parameter 'x'");
    CHECK_OPTS_ERR("stdio,id=a,x=1", "Invalid parameter 'x'");
    CHECK_OPTS_ERR("socket,id=a,path=/tmp/q.sock,server=on,wait=off,bogus=1",
                   "Invalid parameter 'bogus'");
    CHECK_OPTS_ERR("file,id=a", "chardev: file: no filename given");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1", "chardev: socket: no port given");
    CHECK_OPTS_ERR("socket,id=a", "chardev: socket: 'path' or 'host' option required");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1,port=7000,path=/tmp/q",
                   "None or one of 'path', 'fd' or 'host' option required.");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1,port=abc,server=on,wait=off",
                   "address resolution failed for 127.0.0.1:abc: Servname not "
                   "supported for ai_socktype");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1,port=7000,server=maybe",
                   "Parameter 'server' expects 'on' or 'off'");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1,port=1,wait=off",
                   "'wait' option is incompatible with socket in client connect mode");
    CHECK_OPTS_ERR("socket,id=a,host=127.0.0.1,port=1,server=on,reconnect=1",
                   "chardev: option 'reconnect' is not supported");
    CHECK_OPTS_ERR("null,id=a,logfile=/tmp/l",
                   "chardev: option 'logfile' is not supported");

    ChardevSet *set = chardev_set_new();
    GError *err = NULL;
    CHECK(chardev_new_from_opts(set, "null,id=a", &err) != NULL);
    CHECK(chardev_new_from_opts(set, "null,id=a", &err) == NULL);
    CHECK_STR(err ? err->message : NULL, "Duplicate ID 'a' for chardev");
    g_clear_error(&err);
    chardev_set_free(set);
}

UNIT_TEST(attach_twice_refused)
{
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_opts(set, "null,id=n", NULL);
    Frontend a, b;
    GError *err = NULL;

    fe_init(&a);
    fe_init(&b);
    CHECK(chardev_attach(chr, &fe_handlers, &a, &err));
    CHECK(!chardev_attach(chr, &fe_handlers, &b, &err));
    CHECK_STR(err ? err->message : NULL, "chardev 'n' is already in use");
    g_clear_error(&err);
    chardev_detach(chr);
    CHECK(chardev_attach(chr, &fe_handlers, &b, NULL));
    chardev_set_free(set);
    fe_clear(&a);
    fe_clear(&b);
}

/* ---- unix server: connect, disconnect, reconnect ---- */

UNIT_TEST(unix_server_clients_one_at_a_time)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *opts = g_strdup_printf("socket,id=s,path=%s,server=on,wait=off",
                                            path);
    g_autofree char *connected_name = g_strdup_printf("unix:%s,server=on", path);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_opts(set, opts, NULL);
    GError *err = NULL;
    struct stat st;
    Frontend fe;
    int c1, c2, c3;

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, &err));
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));

    c1 = unix_connect(path);
    CHECK(c1 >= 0);
    CHECK(pump_until(&fe.opened, 1));
    CHECK(chardev_is_connected(chr));
    CHECK_STR(chardev_filename(chr), connected_name);

    send_all(c1, "abc", 3);
    CHECK(pump_until_data(&fe, 3));
    CHECK_STR(fe.data->str, "abc");
    chardev_write(chr, "xyz", 3);
    GString *got = client_read(c1, 3, 2000, NULL);
    CHECK_STR(got->str, "xyz");
    g_string_free(got, TRUE);

    /* A second client waits in the backlog while the first is connected. */
    c2 = unix_connect(path);
    CHECK(c2 >= 0);
    send_all(c2, "from2", 5);
    pump_for(100);
    CHECK_EQ(fe.opened, 1);
    CHECK_STR(fe.data->str, "abc");

    close(c1);
    CHECK(pump_until(&fe.closed, 1));
    CHECK(pump_until(&fe.opened, 2));
    CHECK(pump_until_data(&fe, 8));
    CHECK_STR(fe.data->str, "abcfrom2");
    chardev_write(chr, "to2", 3);
    got = client_read(c2, 3, 2000, NULL);
    CHECK_STR(got->str, "to2");
    g_string_free(got, TRUE);

    close(c2);
    CHECK(pump_until(&fe.closed, 2));
    CHECK(!chardev_is_connected(chr));
    g_autofree char *disconnected = g_strdup_printf("disconnected:%s", connected_name);
    CHECK_STR(chardev_filename(chr), disconnected);

    /* ...and again, any number of times. */
    for (int i = 0; i < 3; i++) {
        c3 = unix_connect(path);
        CHECK(pump_until(&fe.opened, 3 + i));
        close(c3);
        CHECK(pump_until(&fe.closed, 3 + i));
    }

    chardev_set_free(set);
    CHECK(lstat(path, &st) < 0 && errno == ENOENT); /* socket file removed */
    fe_clear(&fe);
    rm_tmp_dir(dir);
}

/* Send buf with nfds descriptors attached (SCM_RIGHTS). */
static void send_with_fds(int sock, const char *buf, const int *fds, int nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = strlen(buf) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *c;

    if (nfds) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    CHECK(sendmsg(sock, &msg, 0) == (ssize_t)iov.iov_len);
}

static int open_fds(void)
{
    GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
    int n = 0;

    while (g_dir_read_name(d)) {
        n++;
    }
    g_dir_close(d);
    return n;
}

/*
 * Descriptors that come with data on a unix socket (QMP getfd): the first
 * of a read is the frontend's to take, the others are closed then; what
 * nobody took goes at the next read that brings data, or at disconnect.
 */
UNIT_TEST(unix_socket_passes_descriptors_with_the_data)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *opts = g_strdup_printf("socket,id=s,path=%s,server=on,wait=off",
                                            path);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_opts(set, opts, NULL);
    GError *err = NULL;
    struct stat want, got;
    Frontend fe;
    int pipe1[2], pipe2[2], c, base, fd;

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, &err));
    CHECK(pipe(pipe1) == 0 && pipe(pipe2) == 0);
    c = unix_connect(path);
    CHECK(pump_until(&fe.opened, 1));
    CHECK_EQ(chardev_take_msgfd(chr), -1);
    base = open_fds();

    /* two with one read: the first is taken, the second closed */
    send_with_fds(c, "a", (int[]){ pipe1[0], pipe2[0] }, 2);
    CHECK(pump_until_data(&fe, 1));
    CHECK_EQ(open_fds(), base + 2);
    fd = chardev_take_msgfd(chr);
    CHECK(fd >= 0 && fstat(fd, &got) == 0 && fstat(pipe1[0], &want) == 0);
    CHECK(got.st_ino == want.st_ino);
    CHECK_EQ(open_fds(), base + 1);
    CHECK_EQ(chardev_take_msgfd(chr), -1);
    close(fd);

    /* one nobody takes: gone with the next read */
    send_with_fds(c, "b", (int[]){ pipe2[1] }, 1);
    CHECK(pump_until_data(&fe, 2));
    CHECK_EQ(open_fds(), base + 1);
    send_with_fds(c, "c", NULL, 0);
    CHECK(pump_until_data(&fe, 3));
    CHECK_EQ(open_fds(), base);
    CHECK_EQ(chardev_take_msgfd(chr), -1);

    /* ...or with the connection */
    send_with_fds(c, "d", (int[]){ pipe1[1] }, 1);
    CHECK(pump_until_data(&fe, 4));
    CHECK_STR(fe.data->str, "abcd");
    close(c);
    CHECK(pump_until(&fe.closed, 1));
    CHECK_EQ(open_fds(), base - 2); /* and both ends of the connection */

    for (int i = 0; i < 2; i++) {
        close(pipe1[i]);
        close(pipe2[i]);
    }
    chardev_set_free(set);
    fe_clear(&fe);
    rm_tmp_dir(dir);
}

UNIT_TEST(unix_server_replaces_stale_socket_keeps_other_files)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "stale.sock", NULL);
    g_autofree char *regular = g_build_filename(dir, "file", NULL);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    GError *err = NULL;

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    close(fd); /* leaves a stale socket file behind, as a killed VMM does */

    ChardevSet *set = chardev_set_new();
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    CHECK(chardev_new_from_legacy(set, spec, "serial0", &err) != NULL);
    CHECK(chardev_set_open_all(set, &err));
    g_clear_error(&err);
    chardev_set_free(set);

    CHECK(g_file_set_contents(regular, "keep", -1, NULL));
    set = chardev_set_new();
    g_autofree char *spec2 = g_strdup_printf("unix:%s,server,nowait", regular);
    CHECK(chardev_new_from_legacy(set, spec2, "serial0", &err) != NULL);
    CHECK(!chardev_set_open_all(set, &err));
    g_autofree char *want = g_strdup_printf(
        "Failed to bind socket to %s: Address already in use", regular);
    CHECK_STR(err ? err->message : NULL, want);
    g_clear_error(&err);
    chardev_set_free(set);
    g_autofree char *contents = NULL;
    CHECK(g_file_get_contents(regular, &contents, NULL, NULL));
    CHECK_STR(contents, "keep");
    rm_tmp_dir(dir);
}

/* ---- telnet ---- */

static int port_of(const char *filename)
{
    const char *colon = strrchr(filename, ':');

    return colon ? atoi(colon + 1) : -1;
}

UNIT_TEST(telnet_server_negotiates_and_strips)
{
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, "telnet:127.0.0.1:0,server,nowait",
                                           "serial0", NULL);
    static const uint8_t greeting[] = { 0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03,
                                        0xff, 0xfb, 0x00, 0xff, 0xfd, 0x00 };
    /* Commands, options, a subnegotiation, an escaped 0xff and CR NUL. */
    static const uint8_t input[] = {
        'a',  0xff, 0xfb, 0x01, 'b',  0xff, 0xff, 'c',  '\r', 0x00, 'd',
        0xff, 0xfa, 0x18, 0x00, 'x',  't',  0xff, 0xff, 0xff, 0xf0, 'e',
        0xff, 0xf1, 'f',  '\r', '\n', 0xff, 0xfe, 0x22, 'g',
    };
    static const char want[] = "ab\xff"
                               "c\rdef\r\ng";
    Frontend fe;
    GError *err = NULL;
    int port, c;

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, &err));
    CHECK(g_str_has_prefix(chardev_filename(chr), "disconnected:telnet:127.0.0.1:"));
    CHECK(g_str_has_suffix(chardev_filename(chr), ",server=on"));
    port = atoi(chardev_filename(chr) + strlen("disconnected:telnet:127.0.0.1:"));
    CHECK(port > 0);

    c = tcp_connect(port);
    CHECK(c >= 0);
    CHECK(pump_until(&fe.opened, 1));
    GString *got = client_read(c, sizeof(greeting), 2000, NULL);
    CHECK_EQ(got->len, sizeof(greeting));
    CHECK(memcmp(got->str, greeting, sizeof(greeting)) == 0);
    g_string_free(got, TRUE);
    /* "telnet:127.0.0.1:PORT,server=on <-> 127.0.0.1:CLIENTPORT" */
    CHECK(strstr(chardev_filename(chr), ",server=on <-> 127.0.0.1:") != NULL);
    CHECK(!g_str_has_prefix(chardev_filename(chr), "disconnected:"));

    /* All at once, then byte by byte: the decoder keeps state across reads. */
    send_all(c, input, sizeof(input));
    CHECK(pump_until_data(&fe, strlen(want)));
    CHECK_EQ(fe.data->len, strlen(want));
    CHECK(memcmp(fe.data->str, want, strlen(want)) == 0);
    g_string_truncate(fe.data, 0);
    for (size_t i = 0; i < sizeof(input); i++) {
        send_all(c, &input[i], 1);
        pump_for(2);
    }
    CHECK(pump_until_data(&fe, strlen(want)));
    CHECK_EQ(fe.data->len, strlen(want));
    CHECK(memcmp(fe.data->str, want, strlen(want)) == 0);

    close(c);
    CHECK(pump_until(&fe.closed, 1));
    CHECK_EQ(port_of(chardev_filename(chr)), port);
    chardev_set_free(set);
    fe_clear(&fe);
}

/* ---- output ---- */

UNIT_TEST(output_dropped_while_nobody_connected)
{
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, "tcp:127.0.0.1:0,server,nowait",
                                           "serial0", NULL);
    Frontend fe;
    int c;

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, NULL));
    chardev_write(chr, "lost", 4);
    pump_for(20);
    c = tcp_connect(port_of(chardev_filename(chr)));
    CHECK(pump_until(&fe.opened, 1));
    chardev_write(chr, "kept", 4);
    GString *got = client_read(c, 100, 300, NULL);
    CHECK_STR(got->str, "kept");
    g_string_free(got, TRUE);
    close(c);
    CHECK(pump_until(&fe.closed, 1));
    chardev_write(chr, "lost again", 10); /* no peer: silently dropped */
    chardev_set_free(set);
    fe_clear(&fe);
}

/*
 * A unix-socket server chardev ("unix:DIR/NAME,server,nowait") with the id
 * given, alone in its set, and a frontend: server_new() makes them,
 * server_connect() attaches the frontend, opens the set and connects a
 * client (c), server_free() closes the client (unless the test did: c -1)
 * and frees everything.
 */
typedef struct UnixServer {
    char *dir;
    char *path;
    ChardevSet *set;
    Chardev *chr;
    Frontend fe;
    int c;
} UnixServer;

static void server_new(UnixServer *s, const char *name, const char *id)
{
    g_autofree char *spec = NULL;

    s->dir = tmp_dir();
    s->path = g_build_filename(s->dir, name, NULL);
    spec = g_strdup_printf("unix:%s,server,nowait", s->path);
    s->set = chardev_set_new();
    s->chr = chardev_new_from_legacy(s->set, spec, id, NULL);
    s->c = -1;
    fe_init(&s->fe);
}

static void server_connect(UnixServer *s)
{
    CHECK(chardev_attach(s->chr, &fe_handlers, &s->fe, NULL));
    CHECK(chardev_set_open_all(s->set, NULL));
    s->c = unix_connect(s->path);
    CHECK(pump_until(&s->fe.opened, 1));
}

static void server_free(UnixServer *s)
{
    if (s->c >= 0) {
        close(s->c);
    }
    chardev_set_free(s->set);
    fe_clear(&s->fe);
    g_free(s->path);
    rm_tmp_dir(s->dir);
}

UNIT_TEST(output_bounded_when_peer_stalls)
{
    UnixServer s;
    const size_t total = 4 * 1024 * 1024;
    uint8_t *pattern = g_malloc(total);
    gint64 start;

    for (size_t i = 0; i < total; i++) {
        pattern[i] = (uint8_t)(i * 7 + i / 251);
    }
    server_new(&s, "o.sock", "serial0");
    server_connect(&s);

    /* The peer reads nothing: writes must still return at once. */
    start = now_ms();
    for (size_t off = 0; off < total; off += 4096) {
        chardev_write(s.chr, pattern + off, 4096);
    }
    CHECK(now_ms() - start < 2000);

    GString *got = client_read(s.c, total, 500, NULL);
    /* Newest bytes were dropped: the peer sees an intact prefix. */
    CHECK(got->len >= 64 * 1024);
    CHECK(got->len < total);
    CHECK(memcmp(got->str, pattern, got->len) == 0);
    g_string_free(got, TRUE);

    /* Once drained, output flows again. */
    chardev_write(s.chr, "tail", 4);
    got = client_read(s.c, 4, 2000, NULL);
    CHECK_STR(got->str, "tail");
    g_string_free(got, TRUE);

    server_free(&s);
    g_free(pattern);
}

typedef struct WriterArgs {
    Chardev *chr;
    int index;
} WriterArgs;

static void *writer_thread(void *opaque)
{
    WriterArgs *args = opaque;
    char record[32]; /* "<I:NNNNNN>" is 10 bytes */

    for (int i = 0; i < 1000; i++) {
        snprintf(record, sizeof(record), "<%d:%06d>", args->index, i);
        chardev_write(args->chr, record, 10);
    }
    return NULL;
}

UNIT_TEST(write_from_many_threads)
{
    UnixServer s;
    pthread_t threads[4];
    WriterArgs args[4];
    int counts[4] = { 0 };

    server_new(&s, "t.sock", "serial0");
    server_connect(&s);
    for (int i = 0; i < 4; i++) {
        args[i] = (WriterArgs){ s.chr, i };
        pthread_create(&threads[i], NULL, writer_thread, &args[i]);
    }
    GString *got = client_read(s.c, 40000, 2000, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
    }
    /* 40 kB fit the queue: nothing lost, no record torn. */
    CHECK_EQ(got->len, 40000);
    for (size_t off = 0; off + 10 <= got->len; off += 10) {
        int who = got->str[off + 1] - '0';
        CHECK(got->str[off] == '<' && got->str[off + 9] == '>');
        if (who >= 0 && who < 4) {
            CHECK_EQ(atoi(got->str + off + 3), counts[who]);
            counts[who]++;
        }
    }
    g_string_free(got, TRUE);
    server_free(&s);
}

/* ---- input flow control ---- */

UNIT_TEST(input_respects_can_read)
{
    UnixServer s;
    char msg[100];

    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = 'A' + i % 26;
    }
    server_new(&s, "f.sock", "serial0");
    s.fe.budget = 10;
    server_connect(&s);
    send_all(s.c, msg, sizeof(msg));
    CHECK(pump_until_data(&s.fe, 10));
    pump_for(50);
    CHECK_EQ(s.fe.data->len, 10); /* paused at the budget */

    for (size_t want = 10; want < sizeof(msg);) {
        s.fe.budget = 16;
        s.fe.max_read = 0;
        chardev_accept_input(s.chr);
        want = MIN(want + 16, sizeof(msg));
        CHECK(pump_until_data(&s.fe, want));
        pump_for(5);
        CHECK_EQ(s.fe.data->len, want);
        CHECK(s.fe.max_read <= 16);
    }
    CHECK(memcmp(s.fe.data->str, msg, sizeof(msg)) == 0);
    close(s.c);
    s.c = -1;
    CHECK(pump_until(&s.fe.closed, 1) || s.fe.budget == 0);
    server_free(&s);
}

static void *accept_input_thread(void *opaque)
{
    chardev_accept_input(opaque);
    return NULL;
}

UNIT_TEST(accept_input_from_another_thread)
{
    UnixServer s;
    pthread_t thread;

    server_new(&s, "a.sock", "serial0");
    s.fe.budget = 0;
    server_connect(&s);
    send_all(s.c, "hello", 5);
    pump_for(30);
    CHECK_EQ(s.fe.data->len, 0);
    s.fe.budget = 100;
    pthread_create(&thread, NULL, accept_input_thread, s.chr);
    pthread_join(thread, NULL);
    CHECK(pump_until_data(&s.fe, 5));
    CHECK_STR(s.fe.data->str, "hello");
    server_free(&s);
}

/* ---- misbehaving and half-closing clients ---- */

UNIT_TEST(half_close_gets_every_reply_then_close)
{
    UnixServer s;
    const size_t reply_len = 1024 * 1024;
    char *reply = g_malloc(reply_len);
    bool eof;

    for (size_t i = 0; i < reply_len; i++) {
        reply[i] = 'a' + i % 23;
    }
    server_new(&s, "h.sock", "compat_monitor0");
    s.fe.chr = s.chr;
    s.fe.reply = reply;
    s.fe.reply_len = reply_len;
    server_connect(&s);
    send_all(s.c, "cmd", 3);
    shutdown(s.c, SHUT_WR);
    /* The queued part of the reply is flushed before the server closes. */
    GString *got = client_read(s.c, SIZE_MAX, 3000, &eof);
    CHECK(eof);
    CHECK(got->len > 64 * 1024);
    CHECK(memcmp(got->str, reply, got->len) == 0);
    CHECK_STR(s.fe.data->str, "cmd");
    CHECK(pump_until(&s.fe.closed, 1));
    g_string_free(got, TRUE);
    server_free(&s);
    g_free(reply);
}

UNIT_TEST(peer_reset_and_epipe_do_not_crash)
{
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, "tcp:127.0.0.1:0,server,nowait",
                                           "serial0", NULL);
    struct linger lin = { .l_onoff = 1, .l_linger = 0 };
    char big[65536];
    Frontend fe;
    int c;

    /* SIGPIPE is left at its default here: MSG_NOSIGNAL must cover it. */
    memset(big, 'z', sizeof(big));
    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, NULL));
    c = tcp_connect(port_of(chardev_filename(chr)));
    CHECK(pump_until(&fe.opened, 1));
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
    close(c); /* RST */
    g_usleep(20000);
    for (int i = 0; i < 64; i++) {
        chardev_write(chr, big, sizeof(big));
    }
    CHECK(pump_until(&fe.closed, 1));
    CHECK(!chardev_is_connected(chr));

    /* The next client is served normally. */
    c = tcp_connect(port_of(chardev_filename(chr)));
    CHECK(pump_until(&fe.opened, 2));
    chardev_write(chr, "ok", 2);
    GString *got = client_read(c, 2, 2000, NULL);
    CHECK_STR(got->str, "ok");
    g_string_free(got, TRUE);
    close(c);
    CHECK(pump_until(&fe.closed, 2));
    chardev_set_free(set);
    fe_clear(&fe);
}

/* ---- client mode, wait=on ---- */

UNIT_TEST(client_mode_connects_at_open)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "peer.sock", NULL);
    g_autofree char *opts = g_strdup_printf("socket,id=cl,path=%s", path);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_opts(set, opts, NULL);
    GError *err = NULL;
    Frontend fe;
    int peer;

    CHECK(!chardev_set_open_all(set, &err)); /* nobody listening yet */
    g_autofree char *want = g_strdup_printf(
        "Failed to connect to '%s': No such file or directory", path);
    CHECK_STR(err ? err->message : NULL, want);
    g_clear_error(&err);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    CHECK(listen(lfd, 1) == 0);
    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, &err));
    peer = accept(lfd, NULL, NULL);
    CHECK(peer >= 0);
    CHECK(pump_until(&fe.opened, 1));
    g_autofree char *name = g_strdup_printf("unix:%s", path);
    CHECK_STR(chardev_filename(chr), name);
    send_all(peer, "in", 2);
    CHECK(pump_until_data(&fe, 2));
    chardev_write(chr, "out", 3);
    GString *got = client_read(peer, 3, 2000, NULL);
    CHECK_STR(got->str, "out");
    g_string_free(got, TRUE);
    close(peer);
    CHECK(pump_until(&fe.closed, 1));
    g_autofree char *gone = g_strdup_printf("disconnected:unix:%s", path);
    CHECK_STR(chardev_filename(chr), gone);
    close(lfd);
    chardev_set_free(set);
    fe_clear(&fe);
    rm_tmp_dir(dir);
}

static void *connect_later(void *opaque)
{
    g_usleep(100000);
    return GINT_TO_POINTER(unix_connect(opaque));
}

UNIT_TEST(wait_on_blocks_until_first_client)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "w.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server", path);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, spec, "serial0", NULL);
    pthread_t thread;
    void *result;
    gint64 start = now_ms();
    Frontend fe;

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    pthread_create(&thread, NULL, connect_later, path);
    CHECK(chardev_set_open_all(set, NULL));
    CHECK(now_ms() - start >= 90);
    CHECK(chardev_is_connected(chr));
    pthread_join(thread, &result);
    CHECK(GPOINTER_TO_INT(result) >= 0);
    CHECK(pump_until(&fe.opened, 1));
    close(GPOINTER_TO_INT(result));
    CHECK(pump_until(&fe.closed, 1));
    chardev_set_free(set);
    fe_clear(&fe);
    rm_tmp_dir(dir);
}

/* ---- Ctrl-A escapes ---- */

static void count_quit(void *opaque)
{
    (*(int *)opaque)++;
}

UNIT_TEST(mux_escapes)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "m.sock", NULL);
    g_autofree char *spec = g_strdup_printf("mon:unix:%s,server,nowait", path);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, spec, "serial0", NULL);
    int quits = 0;
    Frontend fe;
    int c;

    chardev_set_quit_handler(set, count_quit, &quits);
    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, NULL));
    c = unix_connect(path);
    CHECK(pump_until(&fe.opened, 1));
    send_all(c,
             "a\x01\x01"
             "b\x01hc\x01qd",
             10);
    CHECK(pump_until_data(&fe, 5));
    pump_for(20);
    CHECK_STR(fe.data->str, "a\x01"
                            "bcd");
    GString *got = client_read(c, 1000, 200, NULL);
    CHECK(strstr(got->str, "C-a x    exit emulator") != NULL);
    g_string_free(got, TRUE);
    CHECK_EQ(quits, 0);
    send_all(c, "\x01x", 2);
    CHECK(pump_until(&quits, 1));
    got = client_read(c, 1000, 200, NULL);
    CHECK_STR(got->str, "QEMU: Terminated\n\r");
    g_string_free(got, TRUE);
    close(c);
    chardev_set_free(set);
    fe_clear(&fe);
    rm_tmp_dir(dir);
}

/* ---- file and stdio ---- */

UNIT_TEST(file_backend_truncates_or_appends)
{
    char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "out.log", NULL);
    g_autofree char *spec = g_strdup_printf("file:%s", path);
    g_autofree char *opts = g_strdup_printf("file,id=f,path=%s,append=on", path);
    g_autofree char *contents = NULL;
    ChardevSet *set;
    Chardev *chr;

    CHECK(g_file_set_contents(path, "old contents\n", -1, NULL));
    set = chardev_set_new();
    chr = chardev_new_from_legacy(set, spec, "serial0", NULL);
    CHECK(chardev_set_open_all(set, NULL));
    CHECK(chardev_is_connected(chr));
    chardev_write(chr, "hello\n", 6);
    chardev_set_free(set);
    CHECK(g_file_get_contents(path, &contents, NULL, NULL));
    CHECK_STR(contents, "hello\n");
    g_clear_pointer(&contents, g_free);

    set = chardev_set_new();
    chr = chardev_new_from_opts(set, opts, NULL);
    CHECK(chardev_set_open_all(set, NULL));
    chardev_write(chr, "more\n", 5);
    chardev_set_free(set);
    CHECK(g_file_get_contents(path, &contents, NULL, NULL));
    CHECK_STR(contents, "hello\nmore\n");

    set = chardev_set_new();
    g_autofree char *bad = g_strdup_printf("file:%s/no/such/dir/x", dir);
    GError *err = NULL;
    CHECK(chardev_new_from_legacy(set, bad, "serial0", NULL) != NULL);
    CHECK(!chardev_set_open_all(set, &err));
    CHECK(err && g_str_has_prefix(err->message, "Could not open '"));
    CHECK(err && g_str_has_suffix(err->message, "': No such file or directory"));
    g_clear_error(&err);
    chardev_set_free(set);
    rm_tmp_dir(dir);
}

UNIT_TEST(stdio_reads_stdin_until_eof_and_writes_stdout)
{
    int in_pipe[2], out_pipe[2];
    int saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, "stdio", "serial0", NULL);
    char buf[64] = { 0 };
    Frontend fe;

    CHECK(pipe(in_pipe) == 0 && pipe(out_pipe) == 0);
    fflush(stdout);
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    close(in_pipe[0]);
    close(out_pipe[1]);

    fe_init(&fe);
    CHECK(chardev_attach(chr, &fe_handlers, &fe, NULL));
    CHECK(chardev_set_open_all(set, NULL));
    CHECK(pump_until(&fe.opened, 1));
    CHECK(write(in_pipe[1], "typed", 5) == 5);
    close(in_pipe[1]);
    CHECK(pump_until_data(&fe, 5));
    pump_for(20);
    CHECK_STR(fe.data->str, "typed");
    CHECK_EQ(fe.closed, 0); /* stdin EOF only stops reading */
    chardev_write(chr, "shown", 5);
    pump_for(10);

    chardev_set_free(set);
    dup2(saved_in, STDIN_FILENO);
    dup2(saved_out, STDOUT_FILENO);
    close(saved_in);
    close(saved_out);
    CHECK_EQ(read(out_pipe[0], buf, sizeof(buf) - 1), 5);
    CHECK_STR(buf, "shown");
    close(out_pipe[0]);
    fe_clear(&fe);
}

UNIT_MAIN()
