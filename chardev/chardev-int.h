/*
 * Internal shape of a Chardev, shared by the files of chardev/ only.
 * Locking: fields marked [lock] are guarded by Chardev.lock (writer threads
 * touch them); every other field belongs to the main thread.
 */
#ifndef CHARDEV_INT_H
#define CHARDEV_INT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chardev/chardev.h"

/* Output queued for a slow peer; beyond this the newest bytes are dropped. */
#define CHARDEV_OUT_BUF_SIZE (64 * 1024)
/* Output a console frontend keeps for the next client (newest bytes). */
#define CHARDEV_BACKLOG_SIZE (64 * 1024)
/* Largest single read from a peer. */
#define CHARDEV_READ_CHUNK 4096

typedef enum ChardevBackend {
    CHARDEV_BACKEND_SOCKET,
    CHARDEV_BACKEND_STDIO,
    CHARDEV_BACKEND_FILE,
    CHARDEV_BACKEND_NULL,
    CHARDEV_BACKEND_PTY,
} ChardevBackend;

typedef struct ChardevSocketConfig {
    bool is_unix;
    char *path;    /* unix */
    char *host;    /* tcp: "" means any address */
    uint16_t port; /* tcp */
    bool server;
    bool wait; /* server only: block in open_all until a client comes */
    bool telnet;
    bool nodelay;
    int family; /* AF_UNSPEC, or AF_INET / AF_INET6 from ipv4= / ipv6= */
    int fd;     /* fd=: a socket the parent process opened, or -1 */
} ChardevSocketConfig;

/* Telnet input decoder (RFC 854): strips commands, keeps data bytes. */
typedef enum TelnetState {
    TELNET_DATA,
    TELNET_CR,       /* saw CR: a following NUL is dropped */
    TELNET_IAC_SEEN, /* saw IAC */
    TELNET_OPTION,   /* saw IAC WILL/WONT/DO/DONT: next byte is the option */
    TELNET_SUB,      /* inside IAC SB ... IAC SE */
    TELNET_SUB_IAC,  /* saw IAC inside a subnegotiation */
} TelnetState;

#define CHARDEV_MAX_MSGFDS 16

struct Chardev {
    ChardevSet *set;
    char *id;
    ChardevBackend backend;

    /* Configuration, fixed after parsing. */
    ChardevSocketConfig sock;
    char *file_path;
    bool file_append;
    bool stdio_signal;  /* keep ISIG: Ctrl-C reaches the VMM, not the guest */
    bool mux;           /* Ctrl-A escapes (mon:stdio, mux=on) */
    bool wants_monitor; /* "mon:": a human monitor shares this chardev */
    /* A mux serves up to two frontends; Ctrl-A c moves the input focus. */
    const ChardevHandlers *mux_handlers[2];
    void *mux_opaque[2];
    int mux_count, mux_focus;

    /* Frontend. */
    const ChardevHandlers *handlers;
    void *opaque;
    guint opened_idle; /* deferred CHARDEV_EVENT_OPENED */

    /* Connection (main thread). */
    bool opened; /* chardev_set_open_all reached it */
    bool connected;
    int listen_fd;
    guint listen_watch;
    dev_t unix_dev; /* identity of the socket file we created */
    ino_t unix_ino;
    bool unix_created;
    int in_fd; /* read side: socket, stdin or -1 */
    bool in_is_socket;
    bool in_eof; /* peer half-closed (or stdin ended): no more reading */
    /* descriptors that came with the last read (SCM_RIGHTS), as QEMU:
     * the next read that brings data closes those nobody took */
    int msgfds[CHARDEV_MAX_MSGFDS];
    int nr_msgfds;
    guint in_watch;
    GIOCondition in_cond;
    char *filename;
    char *local;    /* tcp: "HOST:PORT" we listen on / connect from */
    char *peer;     /* tcp: "HOST:PORT" of the connected peer, or NULL */
    int own_out_fd; /* stdio/file output fd we opened, closed at free */
    int pty_slave;  /* pty: the slave end, held open (see pty.c) */
    TelnetState telnet_state;
    bool mux_escape; /* saw Ctrl-A */

    /* Output, shared with writer threads. */
    GMutex lock;
    int out_fd;           /* [lock] -1: nobody connected, output dropped */
    bool out_is_socket;   /* [lock] use send(MSG_NOSIGNAL) */
    bool out_failed;      /* [lock] write error seen: main thread closes */
    bool closing;         /* [lock] peer half-closed: close once drained */
    uint8_t *out_buf;     /* [lock] ring buffer of CHARDEV_OUT_BUF_SIZE */
    size_t out_start;     /* [lock] */
    size_t out_len;       /* [lock] */
    uint64_t out_dropped; /* [lock] bytes lost to overflow */
    GByteArray *backlog;  /* [lock] output kept while disconnected, or NULL */
    guint out_idle;       /* [lock] main-thread flush scheduled */
    guint out_watch;      /* main thread: waiting for the fd to be writable */
    bool in_paused;       /* [lock] frontend said can_read() == 0 */
    guint in_resume_idle; /* [lock] recheck scheduled by accept_input */
};

struct ChardevSet {
    GPtrArray *chardevs; /* of Chardev *, creation order */
    void (*quit_fn)(void *opaque);
    void *quit_opaque;
    bool stdio_used;
};

/* chardev.c */
Chardev *chardev_alloc(ChardevSet *set, const char *id, ChardevBackend backend);
void chardev_destroy(Chardev *chr);
void chardev_set_output(Chardev *chr, int fd, bool is_socket);
void chardev_connected(Chardev *chr, int in_fd, bool in_is_socket);
void chardev_disconnect(Chardev *chr, bool notify);
void chardev_update_input(Chardev *chr);
void chardev_set_filename(Chardev *chr, const char *filename);
/*
 * Bytes read from the peer (at most the frontend's can_read()): telnet
 * commands and mux escapes are filtered out in place, the rest goes to the
 * frontend.  The fuzz targets feed client bytes through here too.
 */
void chardev_deliver_input(Chardev *chr, uint8_t *buf, size_t len);

/* parse.c */
bool chardev_valid_id(const char *id);

/* socket.c */
bool chardev_socket_open(Chardev *chr, GError **errp);
void chardev_socket_close(Chardev *chr);
void chardev_socket_update_filename(Chardev *chr);
void chardev_socket_resume_listen(Chardev *chr);
/* The chardev's own telnet negotiation, sent when a client connects. */
extern const uint8_t chardev_telnet_greeting[12];

/* stdio.c */
bool chardev_stdio_open(Chardev *chr, GError **errp);
bool chardev_file_open(Chardev *chr, GError **errp);
void chardev_stdio_close(Chardev *chr);

/* pty.c */
bool chardev_pty_open(Chardev *chr, GError **errp);
void chardev_pty_close(Chardev *chr);

/* filter.c: decode input in place; returns the bytes left for the frontend. */
size_t chardev_telnet_decode(TelnetState *state, uint8_t *buf, size_t len);
size_t chardev_mux_filter(Chardev *chr, uint8_t *buf, size_t len);
/* Ctrl-A c: give the input to the other frontend of a mux. */
void chardev_mux_switch_focus(Chardev *chr);

#endif
