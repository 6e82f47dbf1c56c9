/*
 * qemu-system-x86_64: start-up order.  Parse the command line, create the
 * VM and its devices, open the chardevs, start the vCPUs, then run the
 * GLib main loop on this thread until the VM shuts down.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib-unix.h>

#include "hw/machine.h"
#include "migration/migration.h"
#include "monitor/monitor.h"
#include "system/config.h"
#include "util/error.h"
#include "util/fdset.h"
#include "sandbox-int.h"
#include "stall-int.h"

typedef struct SignalContext {
    Machine *machine;
    int signo;
} SignalContext;

static gboolean on_terminate_signal(gpointer opaque)
{
    SignalContext *sc = opaque;

    error_report("terminating on signal %d", sc->signo);
    machine_request_shutdown(sc->machine, SHUTDOWN_CAUSE_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

/* Ctrl-A x on a mon:stdio console: quit, as QEMU does. */
static void on_console_quit(void *opaque)
{
    machine_request_shutdown(opaque, SHUTDOWN_CAUSE_HOST_UI);
}

/* Fork for -daemonize; the parent waits for the child's verdict. */
static int daemonize_start(void)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0) {
        error_report("-daemonize: pipe: %s", g_strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        error_report("-daemonize: fork: %s", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        char status = 1;
        close(fds[1]);
        if (read(fds[0], &status, 1) != 1) {
            status = 1;
        }
        _exit(status);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

static void daemonize_finish(int fd, bool ok)
{
    char status = ok ? 0 : 1;
    int null_fd;

    if (fd < 0) {
        return;
    }
    if (ok) {
        null_fd = open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            dup2(null_fd, 0);
            dup2(null_fd, 1);
            dup2(null_fd, 2);
            close(null_fd);
        }
    }
    if (write(fd, &status, 1) != 1) {
        /* the parent is gone: nothing to tell */
    }
    close(fd);
}

static bool pidfile_write(const char *path, GError **errp)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    char buf[32];
    int len;

    if (fd < 0) {
        error_setg(errp, "cannot create PID file: %s", g_strerror(errno));
        return false;
    }
    if (lockf(fd, F_TLOCK, 0) < 0) {
        error_setg(errp, "cannot lock PID file: %s", g_strerror(errno));
        close(fd);
        return false;
    }
    len = snprintf(buf, sizeof(buf), "%d\n", getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, len) != len) {
        error_setg(errp, "cannot write PID file: %s", g_strerror(errno));
        close(fd);
        return false;
    }
    /* the fd stays open (and locked) for the life of the process */
    return true;
}

int main(int argc, char **argv)
{
    VmConfig *cfg = vm_config_new();
    Machine machine;
    MonitorSet *monitors;
    SignalContext sig_ctx[3];
    static const int term_signals[] = { SIGINT, SIGTERM, SIGHUP };
    GError *err = NULL;
    bool exit_now = false;
    int daemon_fd = -1;
    int status = 0;

    signal(SIGPIPE, SIG_IGN);
    if (!vm_config_parse_argv(cfg, argc, argv, &exit_now, &err)) {
        error_report_err(err, NULL);
        vm_config_free(cfg);
        return 1;
    }
    if (exit_now) {
        vm_config_free(cfg);
        return 0;
    }
    /* -add-fd's sets hold copies: the inherited numbers go, as in QEMU */
    fdset_close_inherited();
    if (cfg->incoming && strcmp(cfg->incoming, "defer") != 0 &&
        !migration_uri_check(cfg->incoming, &err)) {
        error_report("-incoming %s: %s", cfg->incoming, err->message);
        g_error_free(err);
        vm_config_free(cfg);
        return 1;
    }
    if (cfg->daemonize) {
        /* as QEMU: only while -nographic would put a default device on stdio */
        if (cfg->nographic && !cfg->nodefaults) {
            error_report("-nographic cannot be used with -daemonize");
            vm_config_free(cfg);
            return 1;
        }
        daemon_fd = daemonize_start();
    }
    /*
     * -sandbox where QEMU installs it, once the command line is read, but
     * after the -daemonize fork (QEMU 7.2's spawn=deny kills that fork).
     */
    if (!privileges_check(cfg, &err) || !sandbox_install(cfg, &err)) {
        error_report_err(err, NULL);
        daemonize_finish(daemon_fd, false);
        vm_config_free(cfg);
        return 1;
    }
    if (cfg->pidfile && !pidfile_write(cfg->pidfile, &err)) {
        error_report_err(err, cfg->pidfile);
        daemonize_finish(daemon_fd, false);
        vm_config_free(cfg);
        return 1;
    }
    /* -overcommit mem-lock=on (VFIO pins guest RAM anyway); after the fork */
    if (cfg->mem_lock && mlockall(MCL_CURRENT | MCL_FUTURE) < 0) {
        error_report("mlockall: %s", g_strerror(errno));
        error_report("locking memory failed");
        daemonize_finish(daemon_fd, false);
        if (cfg->pidfile) {
            unlink(cfg->pidfile);
        }
        vm_config_free(cfg);
        return 1;
    }
    monitors = monitor_set_new(&machine);
    /* the whole command line is checked before /dev/kvm is opened */
    /* (chardevs open before KVM too, as QEMU's do: wait=on waits there) */
    if (!machine_prepare(&machine, cfg, &err) ||
        !monitor_set_configure(monitors, machine.chardevs, &err) ||
        !chardev_set_open_all(machine.chardevs, &err) ||
        /* host resources open, the VM's threads not yet there: they inherit */
        !privileges_drop_capabilities(cfg, &err) ||
        !(machine.event_fn = monitor_machine_event, machine.event_opaque = monitors,
          machine_init(&machine, &err)) ||
        !machine_start(&machine, &err)) {
        error_report_err(err, NULL);
        daemonize_finish(daemon_fd, false);
        machine_cleanup(&machine);
        monitor_set_free(monitors);
        if (cfg->pidfile) {
            unlink(cfg->pidfile);
        }
        vm_config_free(cfg);
        return 1;
    }
    chardev_set_quit_handler(machine.chardevs, on_console_quit, &machine);
    machine.migration = migration_new(&machine, monitor_migration_event, monitors);
    if (cfg->incoming && strcmp(cfg->incoming, "defer") != 0 &&
        !migration_incoming(machine.migration, cfg->incoming, &err)) {
        error_report("-incoming %s: %s", cfg->incoming, err->message);
        g_error_free(err);
        daemonize_finish(daemon_fd, false);
        migration_free(machine.migration);
        machine_cleanup(&machine);
        monitor_set_free(monitors);
        vm_config_free(cfg);
        return 1;
    }
    /* -runas once everything is set up, as QEMU's os_setup_post */
    if (!privileges_change_user(cfg, &err)) {
        error_report_err(err, NULL);
        daemonize_finish(daemon_fd, false);
        if (cfg->pidfile) {
            unlink(cfg->pidfile);
        }
        exit(1);
    }
    daemonize_finish(daemon_fd, true);

    machine.main_loop = g_main_loop_new(NULL, FALSE);
    for (size_t i = 0; i < G_N_ELEMENTS(term_signals); i++) {
        sig_ctx[i] = (SignalContext){ &machine, term_signals[i] };
        g_unix_signal_add(term_signals[i], on_terminate_signal, &sig_ctx[i]);
    }
    if (cfg->log_stall && !stall_watch_start(&err)) {
        error_report_err(err, NULL);
        exit(1);
    }
    g_main_loop_run(machine.main_loop);
    stall_watch_end();
    status = machine.exit_status;

    machine_pause(&machine);
    migration_free(machine.migration);
    machine.migration = NULL;
    if (cfg->pidfile) {
        unlink(cfg->pidfile);
    }
    g_main_loop_unref(machine.main_loop);
    machine.main_loop = NULL;
    machine_cleanup(&machine);
    monitor_set_free(monitors);
    vm_config_free(cfg);
    return status;
}
