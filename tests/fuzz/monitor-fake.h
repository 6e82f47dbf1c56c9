/*
 * A machine without KVM for the monitor fuzz targets (fuzz-qmp.c,
 * fuzz-hmp.c): one vCPU that never ran (fd -1: reading its registers or
 * statistics fails), no RAM, no board, vm_fd -1, one monitor on a
 * "null" chardev that keeps what the monitor writes in its backlog (the
 * output a client would read).  Client bytes go in through the chardev's
 * real input path (chardev_deliver_input: telnet decoding, then the
 * monitor's read handler) in reads of at most the monitor's can_read().
 *
 * What a command could reach outside the process is held back by the
 * state itself, not by a stub: an outgoing migration is marked as
 * running, so `migrate` refuses ("There's a migration process in
 * progress") before it parses its URI, connects or runs an exec: command;
 * `migrate-incoming` refuses without `-incoming defer`; system_reset's
 * KVM calls fail on fd -1 (the machine goes to internal-error, as a reset
 * that fails does).  osnet-set-cpumap opens the path it is given,
 * read-only: the seeds name files that do not exist.
 *
 * Everything is built afresh for each input and freed after it.
 * Single-threaded.
 */
#ifndef TESTS_FUZZ_MONITOR_FAKE_H
#define TESTS_FUZZ_MONITOR_FAKE_H

#include <string.h>

#include "chardev/chardev-int.h"
#include "hw/machine.h"
#include "migration/migration-int.h"
#include "monitor/monitor-int.h"

typedef struct FakeVmm {
    VmConfig *cfg;
    Machine m;
    VCpu *cpu;
    MonitorSet *monitors;
    Monitor *mon;
    Chardev *chr;
} FakeVmm;

/* Run what the chardev scheduled (the OPENED event, output flushes). */
static void fake_vmm_settle(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void fake_vmm_init(FakeVmm *f, bool control, bool telnet)
{
    GError *err = NULL;

    memset(f, 0, sizeof(*f));
    f->cfg = vm_config_new();
    f->m.cfg = f->cfg;
    f->m.kvm.vm_fd = f->m.kvm.sys_fd = -1;
    pthread_mutex_init(&f->m.lock, NULL);
    f->m.chardevs = chardev_set_new();
    f->m.drives = g_ptr_array_new();
    f->m.runstate = RUN_STATE_RUNNING;
    /* vCPU 0, never started: fd -1, so its ioctls fail as on a lost VM */
    f->cpu = g_new0(VCpu, 1);
    f->cpu->kvm = &f->m.kvm;
    f->cpu->fd = -1;
    f->cpu->pin_pcpu = -1;
    f->cpu->run = g_new0(struct kvm_run, 1);
    pthread_mutex_init(&f->cpu->lock, NULL);
    pthread_cond_init(&f->cpu->cond, NULL);
    f->m.vcpus = &f->cpu;
    f->m.nr_vcpus = 1;
    f->m.osnet.kvm = &f->m.kvm;
    f->m.osnet.vcpus = f->m.vcpus;
    f->m.osnet.nr_vcpus = 1;
    f->m.osnet.vcpu_stats = g_new0(KvmStatsFd, 1);
    f->m.osnet.vcpu_stats[0].fd = -1;
    f->m.osnet.vm_stats.fd = -1;
    f->m.osnet.rates = g_new0(OsnetVcpuRate, 1);
    f->monitors = monitor_set_new(&f->m);
    f->m.event_fn = monitor_machine_event;
    f->m.event_opaque = f->monitors;
    f->chr = chardev_new_from_opts(f->m.chardevs, "null,id=fuzzmon", &err);
    g_assert_no_error(err);
    f->chr->sock.telnet = telnet;
    chardev_keep_backlog(f->chr);
    f->mon = monitor_add(f->monitors, f->chr, control, &err);
    g_assert_no_error(err);
    f->m.migration = migration_new(&f->m, monitor_migration_event, f->monitors);
    f->m.migration->thread_running = true;
    /* a client connects: the greeting or banner */
    chardev_connected(f->chr, -1, false);
    fake_vmm_settle();
}

/* The session has ended: the VMM quit, or the monitor lost its client. */
static bool fake_vmm_done(FakeVmm *f)
{
    return f->m.runstate == RUN_STATE_SHUTDOWN || !f->mon->connected;
}

/* Deliver data in reads of the given sizes (cycled), as recv() would. */
static void fake_vmm_feed(FakeVmm *f, const uint8_t *data, size_t size,
                          const size_t *reads, size_t nreads)
{
    uint8_t buf[CHARDEV_READ_CHUNK];
    size_t done = 0;

    for (size_t i = 0; done < size && !fake_vmm_done(f); i++) {
        size_t n = MIN(MIN(reads[i % nreads], sizeof(buf)), size - done);

        memcpy(buf, data + done, n);
        chardev_deliver_input(f->chr, buf, n);
        fake_vmm_settle();
        done += n;
    }
}

/* What the client was sent; free with g_byte_array_free. */
static GByteArray *fake_vmm_output(FakeVmm *f)
{
    GByteArray *out = g_byte_array_new();

    g_mutex_lock(&f->chr->lock);
    g_byte_array_append(out, f->chr->backlog->data, f->chr->backlog->len);
    g_mutex_unlock(&f->chr->lock);
    return out;
}

static void fake_vmm_free(FakeVmm *f)
{
    f->m.migration->thread_running = false;
    migration_free(f->m.migration);
    chardev_disconnect(f->chr, false);
    monitor_set_free(f->monitors);
    chardev_set_free(f->m.chardevs);
    fake_vmm_settle();
    osnet_cleanup(&f->m.osnet);
    pthread_mutex_destroy(&f->cpu->lock);
    pthread_cond_destroy(&f->cpu->cond);
    g_free(f->cpu->run);
    g_free(f->cpu);
    g_ptr_array_free(f->m.drives, TRUE);
    pthread_mutex_destroy(&f->m.lock);
    vm_config_free(f->cfg);
}

#endif
