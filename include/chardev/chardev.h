/*
 * Character devices: the backends behind -serial, -chardev, -monitor and
 * -qmp (socket: unix/tcp/telnet, server or client, or a socket passed by
 * descriptor; stdio; file; null; pty).
 *
 * Threads: chardev_write() may be called from any thread (vCPU threads
 * write serial output) and never blocks on a slow or absent peer.  All
 * other calls, and every handler callback, run on the main thread (the
 * GLib default main context); handlers take whatever lock their frontend
 * needs.
 */
#ifndef CHARDEV_CHARDEV_H
#define CHARDEV_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct Chardev Chardev;
typedef struct ChardevSet ChardevSet;

typedef enum ChardevEvent {
    CHARDEV_EVENT_OPENED, /* a client connected (or the backend opened) */
    CHARDEV_EVENT_CLOSED, /* the client went away (EOF or error) */
} ChardevEvent;

typedef struct ChardevHandlers {
    /* Bytes the frontend can take now; 0 pauses reading. */
    size_t (*can_read)(void *opaque);
    void (*read)(void *opaque, const uint8_t *buf, size_t len);
    void (*event)(void *opaque, ChardevEvent event);
} ChardevHandlers;

ChardevSet *chardev_set_new(void);
/* Close every chardev (removing unix socket files it created) and free. */
void chardev_set_free(ChardevSet *set);

/*
 * -chardev BACKEND,id=ID,... (socket, stdio, file, null, pty; QEMU's others
 * refused by name).  Adds it to set under its id; duplicate ids are refused.
 */
Chardev *chardev_new_from_opts(ChardevSet *set, const char *opts, GError **errp);
/*
 * The legacy spelling used by -serial, -monitor and -qmp:
 * "telnet:HOST:PORT,server,nowait", "tcp:HOST:PORT[,server=on,wait=off]",
 * "unix:PATH[,server,nowait]", "stdio", "mon:stdio", "file:PATH", "null".
 * "chardev:ID" returns the existing chardev ID.  The caller handles "none"
 * before calling.  id names the new chardev ("serial0", "compat_monitor0").
 */
Chardev *chardev_new_from_legacy(ChardevSet *set, const char *spec, const char *id,
                                 GError **errp);
Chardev *chardev_find(ChardevSet *set, const char *id);

/*
 * Start listening / open files.  A server socket with wait=on blocks here
 * until its first client connects, as QEMU does before the guest starts.
 */
bool chardev_set_open_all(ChardevSet *set, GError **errp);

/*
 * Attach a frontend.  A chardev has at most one frontend; attaching a
 * second one fails with "chardev 'ID' is already in use".
 */
bool chardev_attach(Chardev *chr, const ChardevHandlers *handlers, void *opaque,
                    GError **errp);

/* Detach the frontend (its handlers are not called again); NULL is a no-op. */
void chardev_detach(Chardev *chr);

/*
 * A console frontend (the UART) asks to keep up to 64 KiB of the newest
 * output while no client is connected and to replay it to the next client,
 * so a telnet console opened after boot still shows the boot messages.
 * Monitors do not: a new QMP client must start with the greeting.
 */
void chardev_keep_backlog(Chardev *chr);
/* Internal to chardev/: send the kept output to a client just connected. */
void chardev_replay_backlog(Chardev *chr);

/*
 * Queue bytes for the peer; while nobody is connected they are dropped,
 * or kept for the next client after chardev_keep_backlog().
 */
void chardev_write(Chardev *chr, const void *buf, size_t len);

/*
 * The frontend can take input again after its can_read() returned 0.  Any
 * thread (a UART calls it when the guest drains its FIFO); the chardev
 * asks can_read() again from the main loop.
 */
void chardev_accept_input(Chardev *chr);

/*
 * What "C-a x" on a muxed console (mon:stdio, mux=on) calls, on the main
 * thread, to quit the VMM cleanly.  Without one, C-a x only warns.
 */
void chardev_set_quit_handler(ChardevSet *set, void (*fn)(void *opaque), void *opaque);

/*
 * The first file descriptor that came (SCM_RIGHTS, over a unix socket)
 * with the data of the last read, now the caller's; any others of that
 * read are closed.  -1 when none came.  Main thread: a frontend calls it
 * while it handles that read (QMP getfd).
 */
int chardev_take_msgfd(Chardev *chr);

const char *chardev_id(const Chardev *chr);
/* Was it given as "mon:...": a human monitor shares it (Ctrl-A c)? */
bool chardev_wants_monitor(const Chardev *chr);
/* QEMU's "filename" string for query-chardev, e.g. "telnet:127.0.0.1:7000,server". */
const char *chardev_filename(const Chardev *chr);
bool chardev_is_connected(const Chardev *chr);
/* Visit every chardev in creation order. */
void chardev_set_foreach(ChardevSet *set, void (*fn)(Chardev *chr, void *opaque),
                         void *opaque);

#endif
