/*
 * Chardev core: the set of chardevs, frontends and the data path.
 * Output: chardev_write() (any thread) sends what the peer takes at once and
 * queues the rest in a bounded ring that the main loop flushes; Chardev.lock
 * guards that state.  Input, events and connection changes run on the main
 * thread only (the GLib default context), never holding Chardev.lock while
 * calling a frontend.
 */
#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chardev-int.h"
#include "util/error.h"
#include "util/fdset.h"

#define WATCH_IN_COND (G_IO_IN | G_IO_HUP | G_IO_ERR)

ChardevSet *chardev_set_new(void)
{
    ChardevSet *set = g_new0(ChardevSet, 1);

    set->chardevs = g_ptr_array_new();
    return set;
}

void chardev_set_free(ChardevSet *set)
{
    if (!set) {
        return;
    }
    for (guint i = set->chardevs->len; i > 0; i--) {
        chardev_destroy(g_ptr_array_index(set->chardevs, i - 1));
    }
    g_ptr_array_free(set->chardevs, TRUE);
    g_free(set);
}

void chardev_set_quit_handler(ChardevSet *set, void (*fn)(void *opaque), void *opaque)
{
    set->quit_fn = fn;
    set->quit_opaque = opaque;
}

Chardev *chardev_find(ChardevSet *set, const char *id)
{
    for (guint i = 0; i < set->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(set->chardevs, i);
        if (strcmp(chr->id, id) == 0) {
            return chr;
        }
    }
    return NULL;
}

void chardev_set_foreach(ChardevSet *set, void (*fn)(Chardev *chr, void *opaque),
                         void *opaque)
{
    for (guint i = 0; i < set->chardevs->len; i++) {
        fn(g_ptr_array_index(set->chardevs, i), opaque);
    }
}

Chardev *chardev_alloc(ChardevSet *set, const char *id, ChardevBackend backend)
{
    Chardev *chr = g_new0(Chardev, 1);

    chr->set = set;
    chr->id = g_strdup(id);
    chr->backend = backend;
    chr->listen_fd = -1;
    chr->in_fd = -1;
    chr->out_fd = -1;
    chr->own_out_fd = -1;
    chr->pty_slave = -1;
    chr->sock.fd = -1;
    chr->stdio_signal = true;
    g_mutex_init(&chr->lock);
    return chr;
}

static void chardev_drop_msgfds(Chardev *chr);

static void remove_source(guint *id)
{
    if (*id) {
        g_source_remove(*id);
        *id = 0;
    }
}

void chardev_destroy(Chardev *chr)
{
    switch (chr->backend) {
    case CHARDEV_BACKEND_SOCKET:
        chardev_socket_close(chr);
        break;
    case CHARDEV_BACKEND_STDIO:
        chardev_stdio_close(chr);
        break;
    case CHARDEV_BACKEND_PTY:
        chardev_pty_close(chr);
        break;
    default:
        break;
    }
    remove_source(&chr->in_watch);
    remove_source(&chr->opened_idle);
    chardev_drop_msgfds(chr);
    g_mutex_lock(&chr->lock);
    chr->out_fd = -1;
    remove_source(&chr->out_watch);
    remove_source(&chr->out_idle);
    remove_source(&chr->in_resume_idle);
    g_mutex_unlock(&chr->lock);
    if (chr->own_out_fd >= 0) {
        fdset_close(chr->own_out_fd); /* a /dev/fdset duplicate leaves its set */
    }
    if (chr->backlog) {
        g_byte_array_free(chr->backlog, TRUE);
    }
    g_mutex_clear(&chr->lock);
    g_free(chr->out_buf);
    g_free(chr->id);
    g_free(chr->sock.path);
    g_free(chr->sock.host);
    g_free(chr->file_path);
    g_free(chr->filename);
    g_free(chr->local);
    g_free(chr->peer);
    g_free(chr);
}

bool chardev_set_open_all(ChardevSet *set, GError **errp)
{
    for (guint i = 0; i < set->chardevs->len; i++) {
        Chardev *chr = g_ptr_array_index(set->chardevs, i);
        bool ok = true;

        if (chr->opened) {
            continue;
        }
        switch (chr->backend) {
        case CHARDEV_BACKEND_SOCKET:
            ok = chardev_socket_open(chr, errp);
            break;
        case CHARDEV_BACKEND_STDIO:
            ok = chardev_stdio_open(chr, errp);
            break;
        case CHARDEV_BACKEND_FILE:
            ok = chardev_file_open(chr, errp);
            break;
        case CHARDEV_BACKEND_NULL:
            chardev_connected(chr, -1, false);
            break;
        case CHARDEV_BACKEND_PTY:
            ok = chardev_pty_open(chr, errp);
            break;
        }
        if (!ok) {
            return false;
        }
        chr->opened = true;
    }
    return true;
}

bool chardev_wants_monitor(const Chardev *chr)
{
    return chr->wants_monitor;
}

void chardev_mux_switch_focus(Chardev *chr)
{
    if (chr->mux_count < 2) {
        return;
    }
    chr->mux_focus = 1 - chr->mux_focus;
    chr->handlers = chr->mux_handlers[chr->mux_focus];
    chr->opaque = chr->mux_opaque[chr->mux_focus];
    /* the frontend that now has the input greets (the monitor's prompt) */
    if (chr->handlers && chr->handlers->event) {
        chr->handlers->event(chr->opaque, CHARDEV_EVENT_OPENED);
    }
    chardev_update_input(chr);
}

const char *chardev_id(const Chardev *chr)
{
    return chr->id;
}

const char *chardev_filename(const Chardev *chr)
{
    return chr->filename ? chr->filename : "";
}

bool chardev_is_connected(const Chardev *chr)
{
    return chr->connected;
}

void chardev_set_filename(Chardev *chr, const char *filename)
{
    g_free(chr->filename);
    chr->filename = g_strdup(filename);
}

/* ---- frontends ---- */

static gboolean chardev_opened_cb(gpointer data)
{
    Chardev *chr = data;

    chr->opened_idle = 0;
    if (chr->connected && chr->handlers && chr->handlers->event) {
        chr->handlers->event(chr->opaque, CHARDEV_EVENT_OPENED);
    }
    chardev_update_input(chr);
    return G_SOURCE_REMOVE;
}

/*
 * OPENED reaches the frontend from the main loop, never from inside the
 * call that connected or attached (the caller may hold the machine lock the
 * frontend's handler takes).  High priority: it runs before any input.
 */
static void chardev_schedule_opened(Chardev *chr)
{
    if (!chr->opened_idle) {
        chr->opened_idle = g_idle_add_full(G_PRIORITY_HIGH, chardev_opened_cb, chr, NULL);
    }
}

bool chardev_attach(Chardev *chr, const ChardevHandlers *handlers, void *opaque,
                    GError **errp)
{
    if (chr->handlers && !(chr->mux && chr->mux_count < 2)) {
        error_setg(errp, "chardev '%s' is already in use", chr->id);
        return false;
    }
    if (chr->mux) {
        /* the newest frontend takes the focus, as on QEMU: the monitor is
         * set up before the UART, and the console starts on the guest */
        chr->mux_focus = chr->mux_count;
        chr->mux_handlers[chr->mux_count] = handlers;
        chr->mux_opaque[chr->mux_count++] = opaque;
    }
    chr->handlers = handlers;
    chr->opaque = opaque;
    if (chr->connected) {
        chardev_schedule_opened(chr);
    }
    return true;
}

void chardev_detach(Chardev *chr)
{
    if (!chr) {
        return;
    }
    chr->handlers = NULL;
    chr->opaque = NULL;
    chr->mux_count = chr->mux_focus = 0;
    remove_source(&chr->opened_idle);
    g_mutex_lock(&chr->lock);
    chr->in_paused = false;
    remove_source(&chr->in_resume_idle);
    g_mutex_unlock(&chr->lock);
    chardev_update_input(chr);
}

/* ---- output ---- */

static ssize_t chardev_raw_write(int fd, bool is_socket, const uint8_t *buf, size_t len)
{
    ssize_t n;

    do {
        if (is_socket) {
            n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            n = write(fd, buf, len);
        }
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    return n == 0 && len ? -EIO : n;
}

/* Send what the fd takes from the ring.  [lock] held.  False on a hard error. */
static bool chardev_out_drain_locked(Chardev *chr)
{
    while (chr->out_len) {
        size_t chunk = MIN(chr->out_len, CHARDEV_OUT_BUF_SIZE - chr->out_start);
        ssize_t n = chardev_raw_write(chr->out_fd, chr->out_is_socket,
                                      chr->out_buf + chr->out_start, chunk);
        if (n == -EAGAIN) {
            return true;
        }
        if (n < 0) {
            chr->out_failed = true;
            chr->out_len = 0;
            return false;
        }
        chr->out_start = (chr->out_start + n) % CHARDEV_OUT_BUF_SIZE;
        chr->out_len -= n;
    }
    chr->out_start = 0;
    return true;
}

/*
 * Queue bytes behind what is already waiting.  When the ring is full the
 * NEWEST bytes are dropped: the peer then sees an intact prefix of the
 * stream and a gap, rather than a queue whose start keeps shifting under a
 * partial send.  [lock] held.
 */
static void chardev_out_queue_locked(Chardev *chr, const uint8_t *buf, size_t len)
{
    size_t room = CHARDEV_OUT_BUF_SIZE - chr->out_len;
    size_t tail, first;

    if (len > room) {
        chr->out_dropped += len - room;
        len = room;
    }
    if (!len) {
        return;
    }
    if (!chr->out_buf) {
        chr->out_buf = g_malloc(CHARDEV_OUT_BUF_SIZE);
    }
    tail = (chr->out_start + chr->out_len) % CHARDEV_OUT_BUF_SIZE;
    first = MIN(len, CHARDEV_OUT_BUF_SIZE - tail);
    memcpy(chr->out_buf + tail, buf, first);
    memcpy(chr->out_buf, buf + first, len - first);
    chr->out_len += len;
}

static void chardev_output_failed(Chardev *chr)
{
    if (chr->backend == CHARDEV_BACKEND_SOCKET) {
        chardev_disconnect(chr, true);
        return;
    }
    g_mutex_lock(&chr->lock);
    chr->out_fd = -1;
    chr->out_len = 0;
    g_mutex_unlock(&chr->lock);
    warn_report("chardev '%s': output failed; dropping further output", chr->id);
}

static gboolean chardev_out_writable_cb(gint fd, GIOCondition cond, gpointer data)
{
    Chardev *chr = data;
    bool ok, done, close_now;

    g_mutex_lock(&chr->lock);
    ok = chr->out_fd >= 0 && chardev_out_drain_locked(chr);
    done = !ok || chr->out_len == 0;
    close_now = ok && done && chr->closing;
    if (done) {
        chr->out_watch = 0;
    }
    g_mutex_unlock(&chr->lock);
    if (!ok) {
        chardev_output_failed(chr);
    } else if (close_now) {
        chardev_disconnect(chr, true);
    } else if (done) {
        chardev_update_input(chr); /* drained: read the peer again */
    }
    return done ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

/* Main thread: flush, then wait for writability if anything is left. */
static gboolean chardev_out_idle_cb(gpointer data)
{
    Chardev *chr = data;
    bool failed, close_now = false, drained = false;

    g_mutex_lock(&chr->lock);
    chr->out_idle = 0;
    failed = chr->out_failed;
    if (!failed && chr->out_fd >= 0) {
        failed = !chardev_out_drain_locked(chr);
        if (!failed && chr->out_len && !chr->out_watch) {
            chr->out_watch = g_unix_fd_add(chr->out_fd, G_IO_OUT, chardev_out_writable_cb,
                                           chr);
        }
        close_now = !failed && !chr->out_len && chr->closing;
        drained = !failed && !chr->out_len;
    }
    g_mutex_unlock(&chr->lock);
    if (failed) {
        chardev_output_failed(chr);
    } else if (close_now) {
        chardev_disconnect(chr, true);
    } else if (drained) {
        chardev_update_input(chr); /* read the peer again */
    }
    return G_SOURCE_REMOVE;
}

/* [lock] held.  g_idle_add is thread-safe and wakes the main context. */
static void chardev_out_schedule_locked(Chardev *chr)
{
    if (!chr->out_idle && !chr->out_watch) {
        chr->out_idle = g_idle_add(chardev_out_idle_cb, chr);
    }
}

void chardev_write(Chardev *chr, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (!chr || !len) {
        return;
    }
    g_mutex_lock(&chr->lock);
    if (chr->out_fd < 0 && chr->backlog) {
        g_byte_array_append(chr->backlog, p, len);
        /* trim in big steps, so a byte-at-a-time guest costs little */
        if (chr->backlog->len > 2 * CHARDEV_BACKLOG_SIZE) {
            g_byte_array_remove_range(chr->backlog, 0,
                                      chr->backlog->len - CHARDEV_BACKLOG_SIZE);
        }
        g_mutex_unlock(&chr->lock);
        return;
    }
    if (chr->out_fd < 0 || chr->out_failed) {
        g_mutex_unlock(&chr->lock);
        return;
    }
    if (chr->out_len == 0) {
        ssize_t n = chardev_raw_write(chr->out_fd, chr->out_is_socket, p, len);
        if (n >= 0) {
            p += n;
            len -= n;
        } else if (n != -EAGAIN) {
            chr->out_failed = true;
            chardev_out_schedule_locked(chr);
            len = 0;
        }
    }
    if (len) {
        chardev_out_queue_locked(chr, p, len);
        chardev_out_schedule_locked(chr);
    }
    g_mutex_unlock(&chr->lock);
}

void chardev_keep_backlog(Chardev *chr)
{
    g_mutex_lock(&chr->lock);
    if (!chr->backlog) {
        chr->backlog = g_byte_array_new();
    }
    g_mutex_unlock(&chr->lock);
}

void chardev_replay_backlog(Chardev *chr)
{
    GByteArray *old = NULL;

    g_mutex_lock(&chr->lock);
    if (chr->backlog && chr->backlog->len) {
        if (chr->backlog->len > CHARDEV_BACKLOG_SIZE) {
            g_byte_array_remove_range(chr->backlog, 0,
                                      chr->backlog->len - CHARDEV_BACKLOG_SIZE);
        }
        old = chr->backlog;
        chr->backlog = g_byte_array_new();
    }
    g_mutex_unlock(&chr->lock);
    if (old) {
        chardev_write(chr, old->data, old->len);
        g_byte_array_free(old, TRUE);
    }
}

void chardev_set_output(Chardev *chr, int fd, bool is_socket)
{
    g_mutex_lock(&chr->lock);
    chr->out_fd = fd;
    chr->out_is_socket = is_socket;
    chr->out_failed = false;
    chr->closing = false;
    chr->out_start = 0;
    chr->out_len = 0;
    g_mutex_unlock(&chr->lock);
}

/* ---- input ---- */

static gboolean chardev_resume_cb(gpointer data)
{
    Chardev *chr = data;

    g_mutex_lock(&chr->lock);
    chr->in_resume_idle = 0;
    g_mutex_unlock(&chr->lock);
    chardev_update_input(chr);
    return G_SOURCE_REMOVE;
}

void chardev_accept_input(Chardev *chr)
{
    if (!chr) {
        return;
    }
    g_mutex_lock(&chr->lock);
    if (chr->in_paused && !chr->in_resume_idle) {
        chr->in_resume_idle = g_idle_add(chardev_resume_cb, chr);
    }
    g_mutex_unlock(&chr->lock);
}

/* Bytes the frontend takes now; without a frontend input is discarded. */
static size_t chardev_input_room(Chardev *chr)
{
    size_t room;
    bool backlogged;

    /*
     * While output to the peer is queued (it is not reading what it is
     * sent), its input is not read either; chardev_out_writable_cb() reads
     * again once the queue has drained.  So what a frontend writes in
     * answer to one read always finds the whole queue free: a QMP client
     * sending a long batch gets every reply, never a truncated stream.
     */
    g_mutex_lock(&chr->lock);
    backlogged = chr->out_len > 0 && chr->out_fd >= 0 && !chr->out_failed;
    g_mutex_unlock(&chr->lock);
    if (backlogged) {
        return 0;
    }
    if (!chr->handlers) {
        return CHARDEV_READ_CHUNK;
    }
    if (!chr->handlers->can_read) {
        return chr->handlers->read ? CHARDEV_READ_CHUNK : 0;
    }
    /*
     * Mark paused before asking, so a chardev_accept_input() racing with
     * this question is never lost.
     */
    g_mutex_lock(&chr->lock);
    chr->in_paused = true;
    g_mutex_unlock(&chr->lock);
    room = chr->handlers->can_read(chr->opaque);
    if (room) {
        g_mutex_lock(&chr->lock);
        chr->in_paused = false;
        g_mutex_unlock(&chr->lock);
    }
    return MIN(room, CHARDEV_READ_CHUNK);
}

static gboolean chardev_in_ready_cb(gint fd, GIOCondition cond, gpointer data);

static void chardev_drop_msgfds(Chardev *chr)
{
    for (int i = 0; i < chr->nr_msgfds; i++) {
        close(chr->msgfds[i]);
    }
    chr->nr_msgfds = 0;
}

int chardev_take_msgfd(Chardev *chr)
{
    int fd = -1;

    if (chr->nr_msgfds) {
        fd = chr->msgfds[0];
        chr->msgfds[0] = -1;
        for (int i = 1; i < chr->nr_msgfds; i++) {
            close(chr->msgfds[i]);
        }
        chr->nr_msgfds = 0;
    }
    return fd;
}

/*
 * recv() that also takes the descriptors a unix-socket peer attached
 * (QMP getfd, add-fd); on other sockets none ever come.
 */
static ssize_t chardev_recv(Chardev *chr, int fd, uint8_t *buf, size_t len)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * CHARDEV_MAX_MSGFDS)];
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);

    if (n <= 0) {
        return n;
    }
    /* as QEMU: what the previous read brought and nobody took goes now */
    chardev_drop_msgfds(chr);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        size_t count;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int passed;
            memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (chr->nr_msgfds < CHARDEV_MAX_MSGFDS) {
                chr->msgfds[chr->nr_msgfds++] = passed;
            } else {
                close(passed);
            }
        }
    }
    return n;
}

void chardev_update_input(Chardev *chr)
{
    bool want = chr->connected && chr->in_fd >= 0 && !chr->in_eof && !chr->opened_idle &&
                chardev_input_room(chr) > 0;

    if (want && !chr->in_watch) {
        chr->in_watch = g_unix_fd_add(chr->in_fd, WATCH_IN_COND, chardev_in_ready_cb,
                                      chr);
    } else if (!want) {
        remove_source(&chr->in_watch);
    }
}

/* The peer sent EOF: stop reading, let queued output out, then close. */
static void chardev_input_ended(Chardev *chr)
{
    bool close_now;

    chr->in_eof = true;
    remove_source(&chr->in_watch);
    if (chr->backend != CHARDEV_BACKEND_SOCKET) {
        return; /* stdin ended: keep writing to stdout */
    }
    g_mutex_lock(&chr->lock);
    close_now = chr->out_len == 0 || chr->out_failed || chr->out_fd < 0;
    if (!close_now) {
        chr->closing = true;
        chardev_out_schedule_locked(chr);
    }
    g_mutex_unlock(&chr->lock);
    if (close_now) {
        chardev_disconnect(chr, true);
    }
}

static gboolean chardev_in_ready_cb(gint fd, GIOCondition cond, gpointer data)
{
    Chardev *chr = data;
    uint8_t buf[CHARDEV_READ_CHUNK];
    size_t room = chardev_input_room(chr);
    ssize_t n;

    if (room == 0) {
        chr->in_watch = 0;
        return G_SOURCE_REMOVE;
    }
    do {
        n = chr->in_is_socket ? chardev_recv(chr, fd, buf, room) : read(fd, buf, room);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && chr->backend == CHARDEV_BACKEND_SOCKET) {
        chardev_disconnect(chr, true); /* reset by peer and the like */
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        chardev_input_ended(chr);
        return G_SOURCE_CONTINUE;
    }
    chardev_deliver_input(chr, buf, n);
    chardev_update_input(chr);
    return G_SOURCE_CONTINUE;
}

void chardev_deliver_input(Chardev *chr, uint8_t *buf, size_t len)
{
    if (chr->sock.telnet) {
        len = chardev_telnet_decode(&chr->telnet_state, buf, len);
    }
    if (chr->mux) {
        len = chardev_mux_filter(chr, buf, len);
    }
    if (len > 0 && chr->handlers && chr->handlers->read) {
        chr->handlers->read(chr->opaque, buf, len);
    }
}

/* ---- connection life cycle (main thread) ---- */

void chardev_connected(Chardev *chr, int in_fd, bool in_is_socket)
{
    chr->connected = true;
    chr->in_fd = in_fd;
    chr->in_is_socket = in_is_socket;
    chr->in_eof = false;
    chr->telnet_state = TELNET_DATA;
    chr->mux_escape = false;
    if (chr->handlers) {
        chardev_schedule_opened(chr);
    } else {
        chardev_update_input(chr);
    }
}

void chardev_disconnect(Chardev *chr, bool notify)
{
    bool open_pending = chr->opened_idle != 0;

    if (!chr->connected) {
        return;
    }
    remove_source(&chr->in_watch);
    remove_source(&chr->opened_idle);
    chardev_drop_msgfds(chr);
    g_mutex_lock(&chr->lock);
    chr->out_fd = -1;
    chr->out_len = 0;
    chr->out_failed = false;
    chr->closing = false;
    chr->in_paused = false;
    remove_source(&chr->out_watch);
    remove_source(&chr->out_idle);
    remove_source(&chr->in_resume_idle);
    g_mutex_unlock(&chr->lock);
    if (chr->in_is_socket && chr->in_fd >= 0) {
        close(chr->in_fd);
    }
    chr->in_fd = -1;
    chr->connected = false;
    g_clear_pointer(&chr->peer, g_free);
    if (chr->backend == CHARDEV_BACKEND_SOCKET) {
        chardev_socket_update_filename(chr);
    }
    if (notify && !open_pending && chr->handlers && chr->handlers->event) {
        chr->handlers->event(chr->opaque, CHARDEV_EVENT_CLOSED);
    }
    if (notify && chr->backend == CHARDEV_BACKEND_SOCKET) {
        chardev_socket_resume_listen(chr);
    }
}
