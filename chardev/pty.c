/*
 * The pty backend (-chardev pty,id=ID): a pseudo-terminal whose slave a
 * user opens (screen, minicom, libvirt's console).  Main thread only.
 *
 * QEMU drops output while nobody holds the slave open.  This backend holds
 * the slave open itself, so the master never sees the hang-up and output
 * written before a reader comes waits in the terminal's buffer (a few KiB;
 * beyond that the chardev's own ring drops the newest bytes), like the
 * serial console's backlog on sockets (docs/architecture.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "chardev-int.h"
#include "util/error.h"

bool chardev_pty_open(Chardev *chr, GError **errp)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    struct termios tio;
    char name[64];
    g_autofree char *filename = NULL;

    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
        ptsname_r(master, name, sizeof(name)) != 0) {
        error_setg_errno(errp, errno, "Failed to create PTY");
        if (master >= 0) {
            close(master);
        }
        return false;
    }
    chr->pty_slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (chr->pty_slave < 0) {
        error_setg_errno(errp, errno, "Failed to create PTY");
        close(master);
        return false;
    }
    /* raw, as QEMU sets it: the guest's bytes pass unchanged both ways */
    if (tcgetattr(chr->pty_slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(chr->pty_slave, TCSAFLUSH, &tio);
    }
    chr->own_out_fd = master;
    filename = g_strdup_printf("pty:%s", name);
    chardev_set_filename(chr, filename);
    /* QEMU's line, which users and tools look for on stdout */
    printf("char device redirected to %s (label %s)\n", name, chr->id);
    fflush(stdout);
    chardev_set_output(chr, master, false);
    chardev_connected(chr, master, false);
    return true;
}

void chardev_pty_close(Chardev *chr)
{
    chardev_disconnect(chr, false);
    if (chr->pty_slave >= 0) {
        close(chr->pty_slave);
        chr->pty_slave = -1;
    }
}
