/*
 * stdio and file chardevs.  stdio reads stdin (raw mode on a terminal,
 * restored at exit) and writes stdout through a non-blocking descriptor of
 * its own, so a stalled reader never blocks a vCPU.  Main thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "chardev-int.h"
#include "util/error.h"
#include "util/fdset.h"

/*
 * The terminal is process-wide state: one saved copy, restored by
 * chardev_stdio_close() or at exit, whichever comes first.
 */
static struct termios saved_tty;
static bool tty_saved;
static bool tty_atexit_registered;

static void stdio_restore_tty(void)
{
    if (tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        tty_saved = false;
    }
}

/* Raw input: no line editing or echo; ISIG kept only when signal=on. */
static void stdio_make_raw(bool keep_signals)
{
    struct termios tty;

    if (tty_saved || tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
        return;
    }
    tty = saved_tty;
    tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tty.c_oflag |= OPOST;
    tty.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    if (!keep_signals) {
        tty.c_lflag &= ~ISIG;
    }
    tty.c_cflag &= ~(CSIZE | PARENB);
    tty.c_cflag |= CS8;
    tty.c_cc[VMIN] = 1;
    tty.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &tty) == 0) {
        tty_saved = true;
        if (!tty_atexit_registered) {
            tty_atexit_registered = true;
            atexit(stdio_restore_tty);
        }
    }
}

/*
 * A descriptor for stdout that never blocks.  Pipes and terminals get a
 * fresh open file description (O_NONBLOCK there does not leak into the
 * shell that shares ours); sockets use send(MSG_DONTWAIT); regular files
 * are written through a dup, keeping the shell's offset and O_APPEND.
 */
static int stdio_output_fd(bool *is_socket)
{
    struct stat st;
    int fd = -1;

    *is_socket = false;
    if (fstat(STDOUT_FILENO, &st) < 0) {
        return -1;
    }
    if (S_ISSOCK(st.st_mode)) {
        *is_socket = true;
    } else if (!S_ISREG(st.st_mode)) {
        fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    }
    if (fd < 0) {
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    }
    return fd;
}

bool chardev_stdio_open(Chardev *chr, GError **errp)
{
    struct stat st;
    bool is_socket;
    int in_fd = -1;

    chr->own_out_fd = stdio_output_fd(&is_socket);
    chardev_set_output(chr, chr->own_out_fd, is_socket);
    if (fstat(STDIN_FILENO, &st) == 0) {
        in_fd = STDIN_FILENO;
        if (isatty(STDIN_FILENO)) {
            stdio_make_raw(chr->stdio_signal);
        }
    }
    chardev_set_filename(chr, "stdio");
    chardev_connected(chr, in_fd, in_fd >= 0 && S_ISSOCK(st.st_mode));
    return true;
}

void chardev_stdio_close(Chardev *chr)
{
    if (chr->opened) {
        stdio_restore_tty();
    }
    chr->in_fd = -1;
    chr->connected = false;
}

bool chardev_file_open(Chardev *chr, GError **errp)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (chr->file_append ? O_APPEND : O_TRUNC);
    int fd = fdset_open(chr->file_path, flags, 0666);

    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", chr->file_path);
        return false;
    }
    chr->own_out_fd = fd;
    chardev_set_output(chr, fd, false);
    chardev_set_filename(chr, "file");
    chardev_connected(chr, -1, false);
    return true;
}
