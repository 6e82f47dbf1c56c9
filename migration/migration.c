/*
 * The outgoing side of live migration: the state machine, the migration
 * thread that sends RAM in pre-copy passes and then the machine state, and
 * the hand-offs with the main thread, which alone stops and resumes the VM
 * and emits events.  ms->lock protects the status and the statistics.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hw/devices.h"
#include "hw/failover.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "migration-int.h"
#include "accel/kvm/kvm-state.h"
#include "util/error.h"

#define PAGES_PER_SECTION 256
#define MAX_PASSES        30
#define UNPLUG_POLL_US    10000 /* how often wait-unplug looks at the guest */
#define RELEASE_WAIT_MS   60000 /* the longest wait for an ejected primary's close */
#define MIGRATION_NICE    5     /* how much lower the thread's priority is */

const char *migration_status_name(MigrationStatus status)
{
    static const char *const names[MIGRATION_STATUS__MAX] = {
        "none",        "setup",  "cancelling", "cancelled", "active",
        "wait-unplug", "device", "completed",  "failed",    "pre-switchover",
    };

    return status < MIGRATION_STATUS__MAX ? names[status] : "none";
}

static int64_t now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* ---- main-thread hand-offs ---- */

typedef struct MigEvent {
    MigrationState *ms;
    MigrationStatus status;
    int pass;
} MigEvent;

static gboolean migration_event_cb(gpointer opaque)
{
    MigEvent *ev = opaque;

    if (ev->ms->event_fn) {
        ev->ms->event_fn(ev->ms->event_opaque, ev->status, ev->pass);
    }
    g_free(ev);
    return G_SOURCE_REMOVE;
}

static void migration_notify(MigrationState *ms, MigrationStatus status, int pass)
{
    MigEvent *ev = g_new0(MigEvent, 1);

    ev->ms = ms;
    ev->status = status;
    ev->pass = pass;
    g_idle_add(migration_event_cb, ev);
}

void migration_set_status(MigrationState *ms, MigrationStatus status)
{
    pthread_mutex_lock(&ms->lock);
    ms->status = status;
    pthread_mutex_unlock(&ms->lock);
    migration_notify(ms, status, 0);
}

/*
 * On the main thread, with the event sent before the command's reply, as
 * QEMU sends MIGRATION "setup" inside migrate: libvirt takes the job for
 * inactive if it has seen no event once migrate has returned.
 */
void migration_set_status_now(MigrationState *ms, MigrationStatus status)
{
    pthread_mutex_lock(&ms->lock);
    ms->status = status;
    pthread_mutex_unlock(&ms->lock);
    if (ms->event_fn) {
        ms->event_fn(ms->event_opaque, status, 0);
    }
}

static gboolean stop_vm_cb(gpointer opaque)
{
    MigrationState *ms = opaque;
    Machine *m = ms->machine;

    ms->was_running = m->runstate == RUN_STATE_RUNNING;
    ms->state_before = m->runstate;
    /* DID off before the last pass; finish_cb switches it back on if the
     * guest stays here (docs/migration.md) */
    osnet_migration_stop(&m->osnet);
    machine_vm_stop(m);
    machine_settle_reset(m);
    /* disks on shared storage: flushed, and the image locks let go so the
     * destination can take them */
    machine_drives_release(m);
    m->runstate = RUN_STATE_FINISH_MIGRATE;
    pthread_mutex_lock(&ms->lock);
    ms->vm_stopped = true;
    pthread_cond_broadcast(&ms->cond);
    pthread_mutex_unlock(&ms->lock);
    return G_SOURCE_REMOVE;
}

/* Ask the main thread to stop the VM and wait until it has. */
static void migration_stop_vm(MigrationState *ms)
{
    g_idle_add(stop_vm_cb, ms);
    pthread_mutex_lock(&ms->lock);
    while (!ms->vm_stopped) {
        pthread_cond_wait(&ms->cond, &ms->lock);
    }
    pthread_mutex_unlock(&ms->lock);
}

static bool cancelled(MigrationState *ms)
{
    bool c;

    pthread_mutex_lock(&ms->lock);
    c = ms->cancel_requested;
    pthread_mutex_unlock(&ms->lock);
    return c;
}

/*
 * The end, on the main thread: the final status and the source's run state
 * change together, so no QMP client sees "completed" while the VM is still
 * in finish-migrate, or "failed" before the guest runs again.
 */
static gboolean finish_cb(gpointer opaque)
{
    MigrationState *ms = opaque;
    Machine *m = ms->machine;
    MigrationStatus status;

    pthread_join(ms->thread, NULL);
    ms->thread_running = false;
    status = ms->outcome;
    if (status == MIGRATION_STATUS_FAILED && cancelled(ms)) {
        status = MIGRATION_STATUS_CANCELLED;
    }
    if (status != MIGRATION_STATUS_COMPLETED) {
        /* failover primaries: a pending eject withdrawn, an ejected one back */
        machine_failover_replug_all(m);
        /* DID as before the final stop, before the guest runs again */
        osnet_migration_failed(&m->osnet);
    }
    if (status == MIGRATION_STATUS_COMPLETED) {
        m->runstate = RUN_STATE_POSTMIGRATE;
    } else if (ms->vm_stopped) {
        /* the guest goes on here as if nothing had happened */
        GError *err = NULL;
        m->runstate = ms->was_running ? RUN_STATE_PAUSED : ms->state_before;
        if (!machine_drives_acquire(m, &err)) {
            error_report_err(err, "migration failed and the disks cannot be taken "
                                  "back; the VM stays paused");
        } else if (ms->was_running) {
            machine_vm_cont(m, NULL);
        }
    }
    if (ms->error_desc && status == MIGRATION_STATUS_FAILED) {
        error_report("migration failed: %s", ms->error_desc);
    }
    migration_set_status(ms, status);
    return G_SOURCE_REMOVE;
}

/* ---- the RAM passes ---- */

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;

    for (size_t i = 0; i < MIG_PAGE_SIZE / 8; i++) {
        if (w[i]) {
            return false;
        }
    }
    return true;
}

/* Sleep as needed to keep under max-bandwidth since t0 (ms). */
static void throttle(MigrationState *ms, uint64_t sent, int64_t t0)
{
    if (ms->max_bandwidth) {
        int64_t due = t0 + (int64_t)(sent * 1000 / ms->max_bandwidth);
        int64_t now = now_ms();
        if (due > now) {
            g_usleep((due - now) * 1000);
        }
    }
}

/*
 * A RAM section (migration-int.h): the record count, the records, then the
 * data of its PAGE records in order, so that the destination can read the
 * data straight into its guest.  The records are gathered first; then each
 * data page is copied into a buffer and hashed in the same pass, and the
 * buffer is sent: the checksum has to be of the bytes sent, and a running
 * guest may write a page between a checksum over guest memory and the
 * socket's own copy of it.  (A page that changed since it was found zero
 * or not is dirty again and goes in a later pass.)
 */
typedef struct RamBatch {
    uint64_t rec[1 + PAGES_PER_SECTION]; /* [0]: the count */
    const uint8_t *page[PAGES_PER_SECTION];
    uint8_t *data; /* PAGES_PER_SECTION pages */
    unsigned nr, nr_data;
} RamBatch;

static bool ram_batch_send(MigrationState *ms, RamBatch *b, GError **errp)
{
    struct iovec iov[2] = {
        { b->rec, 8 * (1 + b->nr) },
        { b->data, b->nr_data * MIG_PAGE_SIZE },
    };
    MigSectionOut o;
    bool ok;

    b->rec[0] = GUINT64_TO_LE(b->nr);
    mig_section_start(&o, SEC_RAM, "ram", MIG_RAM_VERSION,
                      iov[0].iov_len + iov[1].iov_len);
    mig_hash_update(&o.hash, iov[0].iov_base, iov[0].iov_len);
    for (unsigned i = 0; i < b->nr_data; i++) {
        mig_hash_copy(&o.hash, b->data + i * MIG_PAGE_SIZE, b->page[i], MIG_PAGE_SIZE);
    }
    ok = mig_section_send(ms->fd, &o, iov, 2, errp);
    pthread_mutex_lock(&ms->lock);
    ms->transferred += iov[0].iov_len + iov[1].iov_len;
    pthread_mutex_unlock(&ms->lock);
    b->nr = b->nr_data = 0;
    return ok;
}

/* Send every page whose bit is set, clearing the bits. */
static bool send_dirty_pages(MigrationState *ms, RamState *rs, bool final,
                             bool first_pass, GError **errp)
{
    RamBatch *b = g_new0(RamBatch, 1);
    uint64_t sent = 0;
    int64_t t0 = now_ms();
    bool ok = true;

    b->data = g_malloc(PAGES_PER_SECTION * MIG_PAGE_SIZE);
    for (unsigned i = 0; ok && i < rs->nr_regions; i++) {
        RamRegion *r = &rs->region[i];
        uint64_t pages = r->size / MIG_PAGE_SIZE;
        for (uint64_t p = 0; ok && p < pages; p++) {
            uint64_t bit = 1ULL << (p % 64), gpa = r->gpa + p * MIG_PAGE_SIZE;
            const uint8_t *page;
            if (!(__atomic_load_n(&r->bitmap[p / 64], __ATOMIC_RELAXED) & bit)) {
                continue;
            }
            __atomic_and_fetch(&r->bitmap[p / 64], ~bit, __ATOMIC_RELAXED);
            page = r->hva + p * MIG_PAGE_SIZE;
            if ((first_pass && (r->untouched[p / 64] & bit)) || page_is_zero(page)) {
                b->rec[1 + b->nr++] = GUINT64_TO_LE(gpa | RAM_FLAG_ZERO);
                ms->duplicate++;
            } else {
                b->rec[1 + b->nr++] = GUINT64_TO_LE(gpa | RAM_FLAG_PAGE);
                b->page[b->nr_data++] = page;
                ms->normal++;
            }
            if (b->nr == PAGES_PER_SECTION) {
                sent += 8 * (1 + b->nr) + b->nr_data * MIG_PAGE_SIZE;
                ok = ram_batch_send(ms, b, errp);
                if (ok && !final) {
                    throttle(ms, sent, t0);
                    if (cancelled(ms)) {
                        error_setg(errp, "cancelled");
                        ok = false;
                    }
                }
            }
        }
    }
    if (ok && b->nr) {
        ok = ram_batch_send(ms, b, errp);
    }
    g_free(b->data);
    g_free(b);
    return ok;
}

/* The run state the guest had before the final stop, so that a paused
 * guest arrives paused (QEMU's "globalstate" section). */
static bool send_global_state(MigrationState *ms, GError **errp)
{
    json_t *global = json_pack("{s:s}", "runstate", runstate_name(ms->state_before));
    char *text = json_dumps(global, JSON_COMPACT);
    bool ok = mig_write_section(ms->fd, SEC_GLOBAL, "globalstate", MIG_GLOBAL_VERSION,
                                (uint8_t *)text, strlen(text), errp);

    free(text);
    json_decref(global);
    return ok;
}

/* Everything but RAM, with the VM stopped. */
static bool send_machine_state(MigrationState *ms, GError **errp)
{
    Machine *m = ms->machine;
    GByteArray *buf = g_byte_array_new();
    bool ok = kvm_vm_state_save(&m->kvm, buf, errp) &&
              mig_write_section(ms->fd, SEC_KVM, "kvm", 1, buf->data, buf->len, errp);

    for (unsigned i = 0; ok && i < m->nr_vcpus; i++) {
        char name[32];
        g_byte_array_set_size(buf, 0);
        snprintf(name, sizeof(name), "cpu%u", i);
        ok = vcpu_state_save(m->vcpus[i], buf, errp) &&
             mig_write_section(ms->fd, SEC_CPU, name, 1, buf->data, buf->len, errp);
    }
    for (guint i = 0; ok && i < m->device_states.entries->len; i++) {
        DeviceStateEntry *e = g_ptr_array_index(m->device_states.entries, i);
        if (e->ops->needed && !e->ops->needed(e->opaque)) {
            continue; /* optional state with nothing to say */
        }
        g_byte_array_set_size(buf, 0);
        machine_lock(m);
        ok = e->ops->save(e->opaque, buf, errp);
        machine_unlock(m);
        ok = ok && mig_write_section(ms->fd, SEC_DEVICE, e->name, e->version, buf->data,
                                     buf->len, errp);
    }
    g_byte_array_free(buf, TRUE);
    return ok && send_global_state(ms, errp) &&
           mig_write_section(ms->fd, SEC_END, "end", 1, NULL, 0, errp);
}

/* The destination's verdict: 'A' once it has loaded everything. */
static bool wait_for_ack(MigrationState *ms, GError **errp)
{
    uint8_t ack = 0;

    if (ms->child) {
        return true; /* exec: a one-way pipe, no verdict to wait for */
    }
    if (!chan_wait_readable(ms->fd, 120000) || !chan_read(ms->fd, &ack, 1, errp)) {
        if (errp && !*errp) {
            error_setg(errp, "the destination did not answer");
        }
        return false;
    }
    if (ack != MIG_ACK_OK) {
        error_setg(errp, "the destination could not load the machine state");
        return false;
    }
    return true;
}

static bool run_passes(MigrationState *ms, RamState *rs, GError **errp)
{
    for (int pass = 1;; pass++) {
        int64_t t0 = now_ms();
        uint64_t before = ms->transferred;
        double bw;

        migration_notify(ms, MIGRATION_STATUS_ACTIVE, pass);
        if (pass == 1) {
            /* only the first pass sees pages the guest never touched */
            for (unsigned i = 0; i < rs->nr_regions; i++) {
                ram_find_untouched(&rs->region[i]);
            }
        }
        if (!send_dirty_pages(ms, rs, false, pass == 1, errp) ||
            !ram_sync_dirty(rs, ms->machine, errp)) {
            return false;
        }
        bw = (double)(ms->transferred - before) / MAX(now_ms() - t0, 1); /* bytes/ms */
        pthread_mutex_lock(&ms->lock);
        ms->dirty_sync_count++;
        ms->remaining = rs->dirty_pages * MIG_PAGE_SIZE;
        ms->mbps = bw * 1000 * 8 / 1e6;
        ms->dirty_pages_rate = rs->dirty_pages * 1000.0 / MAX(now_ms() - t0, 1);
        ms->pages_per_second = (ms->normal + ms->duplicate) * 1000.0 /
                               MAX(now_ms() - ms->start_ms, 1);
        ms->expected_downtime_ms = bw > 0 ? ms->remaining / bw : 0;
        pthread_mutex_unlock(&ms->lock);
        if ((uint64_t)ms->expected_downtime_ms <= ms->downtime_limit_ms ||
            pass >= MAX_PASSES) {
            return true;
        }
        if (cancelled(ms)) {
            error_setg(errp, "cancelled");
            return false;
        }
    }
}

/*
 * wait-unplug: until the guest has ejected every failover primary it was
 * asked to (UNPLUG_PRIMARY at migrate).  A cancel ends the wait at once:
 * finish_cb then withdraws the request or plugs the primary back.
 */
static bool wait_unplug(MigrationState *ms, GError **errp)
{
    int64_t t0 = now_ms();
    bool ok = true;

    if (!ms->unplug_asked) {
        return true;
    }
    if (cancelled(ms)) {
        /* cancelled during the set-up: the status stays cancelling */
        error_setg(errp, "cancelled");
        return false;
    }
    /* shown even when the guest was quicker than the set-up */
    migration_set_status(ms, MIGRATION_STATUS_WAIT_UNPLUG);
    while (machine_failover_unplug_pending(ms->machine)) {
        if (cancelled(ms)) {
            error_setg(errp, "cancelled");
            ok = false;
            break;
        }
        g_usleep(UNPLUG_POLL_US);
    }
    pthread_mutex_lock(&ms->lock);
    ms->wait_unplug_ms = now_ms() - t0;
    pthread_mutex_unlock(&ms->lock);
    return ok;
}

/*
 * Before the final stop: a failover primary the guest ejected may still be
 * closing in the background (the host resets it and unpins guest RAM,
 * seconds in a nested rig).  The destination plugs the same host device
 * once it runs, and the kernel refuses it while this process holds it, so
 * the switch-over waits (up to RELEASE_WAIT_MS) with the guest running;
 * what it dirtied meanwhile is sent before the stop.
 */
static bool wait_released(MigrationState *ms, RamState *rs, GError **errp)
{
    int64_t t0 = now_ms();

    if (!machine_failover_releasing(ms->machine)) {
        return true;
    }
    while (machine_failover_releasing(ms->machine)) {
        if (cancelled(ms)) {
            error_setg(errp, "cancelled");
            return false;
        }
        if (now_ms() - t0 > RELEASE_WAIT_MS) {
            warn_report("migration: a failover primary is still being closed after "
                        "%d s; the destination may not get it",
                        RELEASE_WAIT_MS / 1000);
            break;
        }
        g_usleep(UNPLUG_POLL_US);
    }
    return send_dirty_pages(ms, rs, false, false, errp) &&
           ram_sync_dirty(rs, ms->machine, errp);
}

/*
 * pause-before-switchover: with the VM stopped, wait in pre-switchover
 * until migrate-continue (the management tool does its own switch-over
 * work meanwhile) or a cancel, which ends the migration and lets the
 * guest run on here.
 */
static bool pause_before_switchover(MigrationState *ms, GError **errp)
{
    bool ok;

    if (!ms->cap_pause_before_switchover) {
        return true;
    }
    pthread_mutex_lock(&ms->lock);
    if (ms->cancel_requested) {
        pthread_mutex_unlock(&ms->lock);
        error_setg(errp, "cancelled");
        return false;
    }
    ms->continue_requested = false;
    ms->status = MIGRATION_STATUS_PRE_SWITCHOVER;
    pthread_mutex_unlock(&ms->lock);
    migration_notify(ms, MIGRATION_STATUS_PRE_SWITCHOVER, 0);
    pthread_mutex_lock(&ms->lock);
    while (!ms->continue_requested && !ms->cancel_requested) {
        pthread_cond_wait(&ms->cond, &ms->lock);
    }
    ok = !ms->cancel_requested;
    pthread_mutex_unlock(&ms->lock);
    if (!ok) {
        error_setg(errp, "cancelled");
    }
    return ok;
}

/* Device DMA into guest RAM, which KVM's dirty log does not see. */
static void migration_dma_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
    MigrationState *ms = opaque;

    /* under the lock: the thread may be letting go of the bitmaps */
    pthread_mutex_lock(&ms->lock);
    if (ms->ram) {
        ram_mark_dirty(ms->ram, gpa, len);
    }
    pthread_mutex_unlock(&ms->lock);
}

/*
 * The guest's vCPUs and device threads go first where they share CPUs with
 * this thread: the pre-copy's length is no outage, a guest that waits for a
 * CPU while RAM is copied is (in the nested rig, where the L2 guest, this
 * thread and the destination share L1's two vCPUs, the guest lost half of
 * a 10 ms UDP stream during pre-copy under load).  Linux's nice is per
 * thread; a sandbox that denies it leaves the priority as it is.  The
 * destination's incoming thread keeps its priority: between two hosts it
 * never competes with this guest, and a lower priority there would only
 * stretch the downtime on a busy destination.
 */
static void migration_thread_yield_to_guest(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int cur;

    errno = 0;
    cur = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && cur < 19) {
        (void)setpriority(PRIO_PROCESS, tid, MIN(cur + MIGRATION_NICE, 19));
    }
}

void *migration_thread(void *opaque)
{
    MigrationState *ms = opaque;
    Machine *m = ms->machine;
    RamState rs = { 0 };
    GError *err = NULL;
    MigrationUri uri;
    int64_t stop_at;
    bool ok;

    migration_thread_yield_to_guest();
    ok = migration_uri_parse(ms->uri, &uri, &err) &&
         (ms->fd = migration_connect(&uri, &ms->child, &err)) >= 0 &&
         mig_write_header(ms->fd, &err) && migration_config_write(ms->fd, m, &err) &&
         wait_unplug(ms, &err) &&
         /* the dirty log after the eject: it write-protects all of RAM (and
          * splits its huge pages), which taxes the guest's every write
          * while it ejects the primary, and nothing is sent until then */
         ram_state_init(&rs, m, &err);
    ms->setup_ms = now_ms() - ms->start_ms; /* wait-unplug included, as QEMU */
    if (ok && m->pci) {
        pthread_mutex_lock(&ms->lock);
        ms->ram = &rs;
        pthread_mutex_unlock(&ms->lock);
        pci_set_dma_dirty_log(m->pci, migration_dma_dirty, ms);
    }
    if (ok) {
        migration_set_status(ms, MIGRATION_STATUS_ACTIVE);
        ok = run_passes(ms, &rs, &err) && wait_released(ms, &rs, &err);
    }
    if (ok) {
        migration_stop_vm(ms);
        stop_at = now_ms();
        ok = pause_before_switchover(ms, &err);
    }
    if (ok) {
        migration_set_status(ms, MIGRATION_STATUS_DEVICE);
        ok = ram_sync_dirty(&rs, m, &err) &&
             send_dirty_pages(ms, &rs, true, false, &err) &&
             send_machine_state(ms, &err) && wait_for_ack(ms, &err);
        ms->downtime_ms = now_ms() - stop_at;
        if (ok) {
            /* everything went in the stop-and-copy: nothing remains (QEMU: 0) */
            pthread_mutex_lock(&ms->lock);
            ms->remaining = 0;
            pthread_mutex_unlock(&ms->lock);
        }
    }
    ms->total_ms = now_ms() - ms->start_ms;
    if (m->pci) {
        pthread_mutex_lock(&ms->lock);
        ms->ram = NULL;
        pthread_mutex_unlock(&ms->lock);
        pci_set_dma_dirty_log(m->pci, NULL, NULL);
    }
    if (rs.nr_regions) {
        ram_state_destroy(&rs, m);
    }
    if (ms->fd >= 0) {
        close(ms->fd);
        ms->fd = -1;
    }
    if (ms->child > 0) {
        waitpid(ms->child, NULL, 0);
        ms->child = 0;
    }
    pthread_mutex_lock(&ms->lock);
    g_free(ms->error_desc);
    ms->error_desc = err ? g_strdup(err->message) : NULL;
    pthread_mutex_unlock(&ms->lock);
    /* the main thread makes it the status together with the run state */
    ms->outcome = ok ? MIGRATION_STATUS_COMPLETED : MIGRATION_STATUS_FAILED;
    g_clear_error(&err);
    g_idle_add(finish_cb, ms);
    return NULL;
}

/* ---- main-thread API ---- */

MigrationState *migration_new(Machine *m, MigrationEventFn fn, void *opaque)
{
    MigrationState *ms = g_new0(MigrationState, 1);

    ms->machine = m;
    ms->event_fn = fn;
    ms->event_opaque = opaque;
    ms->max_bandwidth = 128ULL << 20; /* QEMU's default, 128 MiB/s */
    ms->downtime_limit_ms = 300;      /* QEMU's default */
    ms->caps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    ms->fd = -1;
    ms->listen_fd = -1;
    pthread_mutex_init(&ms->lock, NULL);
    pthread_cond_init(&ms->cond, NULL);
    return ms;
}

void migration_free(MigrationState *ms)
{
    if (!ms) {
        return;
    }
    if (ms->thread_running) {
        migration_cancel(ms);
        pthread_join(ms->thread, NULL);
    }
    if (ms->listen_watch) {
        g_source_remove(ms->listen_watch);
    }
    if (ms->listen_fd >= 0) {
        close(ms->listen_fd);
    }
    g_hash_table_destroy(ms->caps);
    g_free(ms->uri);
    g_free(ms->error_desc);
    g_free(ms);
}

bool migration_start(MigrationState *ms, const char *uri, GError **errp)
{
    MigrationUri parsed;
    Machine *m = ms->machine;
    GError *err = NULL;

    if (ms->thread_running) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (m->runstate == RUN_STATE_INMIGRATE || m->runstate == RUN_STATE_POSTMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (!device_state_migratable(&m->device_states, errp)) {
        return false; /* a device that cannot move (vfio-pci): the VM runs on */
    }
    if (!migration_uri_parse(uri, &parsed, &err)) {
        /* as QEMU: a URI it cannot open leaves the migration failed */
        pthread_mutex_lock(&ms->lock);
        g_free(ms->error_desc);
        ms->error_desc = g_strdup(err->message);
        ms->start_ms = 0;
        pthread_mutex_unlock(&ms->lock);
        g_propagate_error(errp, err);
        migration_set_status(ms, MIGRATION_STATUS_FAILED);
        return false;
    }
    g_free(ms->uri);
    ms->uri = g_strdup(uri);
    ms->cancel_requested = ms->vm_stopped = ms->continue_requested = false;
    ms->transferred = ms->duplicate = ms->normal = ms->dirty_sync_count = 0;
    ms->remaining = ms->downtime_ms = ms->total_ms = ms->expected_downtime_ms = 0;
    ms->wait_unplug_ms = -1; /* no wait-unplug (yet) */
    ms->total_ram = m->ram_size;
    ms->start_ms = now_ms();
    g_clear_pointer(&ms->error_desc, g_free);
    migration_set_status_now(ms, MIGRATION_STATUS_SETUP);
    /* UNPLUG_PRIMARY for each: the thread waits for them */
    ms->unplug_asked = machine_failover_unplug_all(m);
    if (pthread_create(&ms->thread, NULL, migration_thread, ms) != 0) {
        error_setg(errp, "cannot start the migration thread");
        machine_failover_replug_all(m);
        migration_set_status(ms, MIGRATION_STATUS_FAILED);
        return false;
    }
    ms->thread_running = true;
    return true;
}

void migration_cancel(MigrationState *ms)
{
    bool notify = false;

    pthread_mutex_lock(&ms->lock);
    if (ms->thread_running &&
        (ms->status == MIGRATION_STATUS_SETUP || ms->status == MIGRATION_STATUS_ACTIVE ||
         ms->status == MIGRATION_STATUS_WAIT_UNPLUG ||
         ms->status == MIGRATION_STATUS_PRE_SWITCHOVER)) {
        ms->cancel_requested = true;
        ms->status = MIGRATION_STATUS_CANCELLING;
        notify = true;
        pthread_cond_broadcast(&ms->cond); /* out of pre-switchover */
        if (ms->fd >= 0) {
            shutdown(ms->fd, SHUT_RDWR); /* unblock a blocked write */
        }
    }
    pthread_mutex_unlock(&ms->lock);
    if (notify) {
        migration_notify(ms, MIGRATION_STATUS_CANCELLING, 0);
    }
}

bool migration_continue(MigrationState *ms, const char *state, GError **errp)
{
    bool ok;

    pthread_mutex_lock(&ms->lock);
    ok = strcmp(migration_status_name(ms->status), state) == 0;
    if (ok) {
        ms->continue_requested = true;
        pthread_cond_broadcast(&ms->cond);
    } else {
        error_setg(errp, "Migration not in expected state: %s",
                   migration_status_name(ms->status));
    }
    pthread_mutex_unlock(&ms->lock);
    return ok;
}

bool migration_activate_drives(MigrationState *ms, GError **errp)
{
    if (!ms || !ms->drives_inactive) {
        return true;
    }
    if (!machine_drives_acquire(ms->machine, errp)) {
        return false;
    }
    ms->drives_inactive = false;
    return true;
}
