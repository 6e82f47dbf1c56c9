/*
 * The incoming side of live migration: accept one connection (or run the
 * exec: command), read the stream on a thread, write RAM straight into the
 * paused guest, keep every other section, and at END hand them to the main
 * thread, which checks them all before applying any, answers the source
 * and starts the guest (or leaves it in the run state it left in: paused
 * stays paused).  A stream that does not load ends the process with
 * status 1.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib-unix.h>

#include "hw/devices.h"
#include "hw/failover.h"
#include "hw/machine.h"
#include "hw/machine-net.h"
#include "migration-int.h"
#include "accel/kvm/kvm-state.h"
#include "util/error.h"

typedef struct Incoming {
    MigrationState *ms;
    int fd;
    IncomingLoad load;
    char *error;
    pthread_t thread;
} Incoming;

/* Pages of this (fresh) guest that still read as zeros without a write. */
static void incoming_find_untouched(IncomingLoad *in, Machine *m)
{
    const uint64_t gpa[2] = { 0, HIGH_RAM_START };
    const uint64_t size[2] = { m->below_4g, m->above_4g };

    for (int i = 0; i < 2; i++) {
        RamRegion *r;
        if (!size[i]) {
            continue;
        }
        r = &in->ram.region[in->ram.nr_regions++];
        r->gpa = gpa[i];
        r->size = size[i];
        r->hva = machine_gpa_to_hva(m, gpa[i], size[i]);
        r->untouched = g_new0(uint64_t, (size[i] / MIG_PAGE_SIZE + 63) / 64);
        ram_find_untouched(r);
    }
}

/* True (and the bit cleared) when gpa's page is still untouched here. */
static bool take_untouched(IncomingLoad *in, uint64_t gpa, bool clear)
{
    for (unsigned i = 0; i < in->ram.nr_regions; i++) {
        RamRegion *r = &in->ram.region[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            uint64_t p = (gpa - r->gpa) / MIG_PAGE_SIZE, bit = 1ULL << (p % 64);
            bool was = r->untouched[p / 64] & bit;
            if (clear) {
                r->untouched[p / 64] &= ~bit;
            }
            return was;
        }
    }
    return false;
}

/*
 * A RAM section (migration-int.h), its payload still on fd: the records are
 * read and every one checked first (a page inside this guest's RAM, a known
 * kind, the data's length what the section says), the zero pages cleared,
 * then the data read straight into the guest's pages and the checksum
 * compared.  A section that fails any of it fails the load, and this guest
 * never runs: what was written into its RAM by then does not matter.
 */
static bool load_ram(IncomingLoad *in, Machine *m, int fd, MigSection *s, GError **errp)
{
    uint64_t count, *rec = NULL, nr_data = 0;
    struct iovec *iov = NULL;
    bool ok = false;

    if (s->version != MIG_RAM_VERSION) {
        error_setg(errp, "migration stream: RAM section version %u, this VMM reads %u",
                   s->version, MIG_RAM_VERSION);
        return false;
    }
    if (s->len < 8) {
        goto bad;
    }
    if (!chan_read(fd, &count, 8, errp)) {
        return false;
    }
    mig_hash_update(&s->hash, &count, 8);
    count = GUINT64_FROM_LE(count);
    if (count > MIG_RAM_MAX_RECORDS || count > (s->len - 8) / 8) {
        goto bad;
    }
    rec = g_new(uint64_t, count);
    iov = g_new(struct iovec, count);
    if (!chan_read(fd, rec, 8 * count, errp)) {
        goto out;
    }
    mig_hash_update(&s->hash, rec, 8 * count);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gpa, kind;
        uint8_t *dst;

        rec[i] = GUINT64_FROM_LE(rec[i]);
        gpa = rec[i] & ~RAM_FLAG_MASK;
        kind = rec[i] & RAM_FLAG_MASK;
        dst = machine_gpa_to_hva(m, gpa, MIG_PAGE_SIZE);
        if (!dst) {
            error_setg(errp,
                       "migration stream: page 0x%" G_GINT64_MODIFIER "x is "
                       "outside this guest's RAM",
                       gpa);
            goto out;
        }
        if (kind == RAM_FLAG_PAGE) {
            iov[nr_data++] = (struct iovec){ dst, MIG_PAGE_SIZE };
        } else if (kind != RAM_FLAG_ZERO) {
            goto bad;
        }
    }
    if (s->len - 8 - 8 * count != nr_data * MIG_PAGE_SIZE) {
        goto bad;
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gpa = rec[i] & ~RAM_FLAG_MASK;
        if ((rec[i] & RAM_FLAG_MASK) == RAM_FLAG_PAGE) {
            take_untouched(in, gpa, true);
        } else if (!take_untouched(in, gpa, false)) {
            /* a page never touched here is zero already: left unallocated */
            memset(machine_gpa_to_hva(m, gpa, MIG_PAGE_SIZE), 0, MIG_PAGE_SIZE);
        }
    }
    if (!chan_readv(fd, iov, nr_data, errp)) {
        goto out;
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gpa = rec[i] & ~RAM_FLAG_MASK;
        if ((rec[i] & RAM_FLAG_MASK) == RAM_FLAG_PAGE) {
            mig_hash_update(&s->hash, machine_gpa_to_hva(m, gpa, MIG_PAGE_SIZE),
                            MIG_PAGE_SIZE);
        }
    }
    ok = mig_read_section_end(fd, s, errp);
    in->ram_pages += ok ? count : 0;
    goto out;
bad:
    error_setg(errp, "migration stream: malformed RAM section");
out:
    g_free(rec);
    g_free(iov);
    return ok;
}

void incoming_load_init(IncomingLoad *ld, Machine *m)
{
    memset(ld, 0, sizeof(*ld));
    ld->machine = m;
    ld->sections = g_ptr_array_new_with_free_func((GDestroyNotify)mig_section_free);
    ld->arrives = RUN_STATE_RUNNING;
    incoming_find_untouched(ld, m);
}

void incoming_load_destroy(IncomingLoad *ld)
{
    for (unsigned i = 0; i < ld->ram.nr_regions; i++) {
        g_free(ld->ram.region[i].untouched);
    }
    if (ld->sections) {
        g_ptr_array_free(ld->sections, TRUE);
    }
    memset(ld, 0, sizeof(*ld));
}

static MigSection *find_section(IncomingLoad *in, uint8_t type, const char *name)
{
    for (guint i = 0; i < in->sections->len; i++) {
        MigSection *s = g_ptr_array_index(in->sections, i);
        if (s->type == type && strcmp(s->name, name) == 0) {
            return s;
        }
    }
    return NULL;
}

/*
 * A section kept until END must be one this machine has a place for, seen
 * once: a peer cannot make this side hold more than one copy of each (at
 * most MIG_MAX_SECTION bytes), nor sections nobody would look at.  The
 * device list changes only by device_add/device_del, which the monitor
 * refuses while a migration runs either way (monitor_migration_idle), so
 * this thread may look names up in it.
 */
static bool section_expected(IncomingLoad *in, const MigSection *s, GError **errp)
{
    Machine *m = in->machine;
    bool known = false;

    if (find_section(in, s->type, s->name)) {
        error_setg(errp, "migration stream: section '%s' appears twice", s->name);
        return false;
    }
    if (s->type == SEC_DEVICE && !device_state_find(&m->device_states, s->name)) {
        error_setg(errp, "migration stream: unknown device '%s'", s->name);
        return false;
    }
    if (s->type == SEC_KVM) {
        known = strcmp(s->name, "kvm") == 0;
    } else if (s->type == SEC_GLOBAL) {
        known = strcmp(s->name, "globalstate") == 0;
    } else if (s->type == SEC_CPU) {
        for (unsigned i = 0; !known && i < m->nr_vcpus; i++) {
            char name[32];
            snprintf(name, sizeof(name), "cpu%u", i);
            known = strcmp(s->name, name) == 0;
        }
    } else {
        known = s->type == SEC_DEVICE;
    }
    if (!known) {
        error_setg(errp, "migration stream: unexpected section '%s' (type %u)", s->name,
                   s->type);
    }
    return known;
}

bool incoming_load_stream(IncomingLoad *ld, int fd, GError **errp)
{
    Machine *m = ld->machine;
    bool seen_config = false, ok = mig_read_header(fd, errp);

    while (ok) {
        MigSection *s = mig_read_section_head(fd, errp);
        if (!s) {
            return false;
        }
        ld->nr_sections++;
        if (s->type != SEC_RAM && (!mig_read_section_payload(fd, s, errp) ||
                                   !mig_read_section_end(fd, s, errp))) {
            ok = false;
        } else if (!seen_config && s->type != SEC_CONFIG) {
            error_setg(errp, "migration stream: no machine description first");
            ok = false;
        } else if (s->type == SEC_CONFIG) {
            ok = migration_config_check(m, s, errp);
            seen_config = true;
        } else if (s->type == SEC_RAM) {
            ok = load_ram(ld, m, fd, s, errp);
        } else if (s->type == SEC_END) {
            mig_section_free(s);
            return true;
        } else if (section_expected(ld, s, errp)) {
            g_ptr_array_add(ld->sections, s);
            continue;
        } else {
            ok = false;
        }
        mig_section_free(s);
    }
    return false;
}

static gboolean incoming_done_cb(gpointer opaque);

static void *incoming_thread(void *opaque)
{
    Incoming *in = opaque;
    GError *err = NULL;

    incoming_load_init(&in->load, in->ms->machine);
    if (!incoming_load_stream(&in->load, in->fd, &err)) {
        in->error = g_strdup(err->message);
        g_error_free(err);
    }
    g_idle_add(incoming_done_cb, in);
    return NULL;
}

/*
 * The run state the source had ("globalstate", as QEMU's section of that
 * name): the states a source can migrate from.  A stream without it (from
 * before it was sent) arrives as a running guest.
 */
static bool check_global_state(IncomingLoad *in, GError **errp)
{
    static const RunState allowed[] = {
        RUN_STATE_RUNNING,  RUN_STATE_PAUSED,         RUN_STATE_PRELAUNCH,
        RUN_STATE_SHUTDOWN, RUN_STATE_INTERNAL_ERROR,
    };
    MigSection *s = find_section(in, SEC_GLOBAL, "globalstate");
    const char *name = NULL;
    json_t *global;

    in->arrives = RUN_STATE_RUNNING;
    if (!s) {
        return true;
    }
    if (s->version > MIG_GLOBAL_VERSION) {
        error_setg(errp,
                   "migration stream: global state version %u is newer than this "
                   "VMM's %u",
                   s->version, MIG_GLOBAL_VERSION);
        return false;
    }
    global = json_loadb((const char *)s->payload->data, s->payload->len, 0, NULL);
    if (global && json_unpack(global, "{s:s}", "runstate", &name) == 0) {
        for (size_t i = 0; i < G_N_ELEMENTS(allowed); i++) {
            if (strcmp(name, runstate_name(allowed[i])) == 0) {
                in->arrives = allowed[i];
                json_decref(global);
                return true;
            }
        }
    }
    error_setg(errp, "migration stream: unknown run state %s%s%s", name ? "'" : "",
               name ? name : "(unreadable)", name ? "'" : "");
    json_decref(global);
    return false;
}

/*
 * Every section known, every vCPU and device present, and the KVM records
 * well formed, before applying any.
 */
bool incoming_load_check(IncomingLoad *in, GError **errp)
{
    Machine *m = in->machine;
    MigSection *kvm;

    if (!check_global_state(in, errp)) {
        return false;
    }

    kvm = find_section(in, SEC_KVM, "kvm");
    if (!kvm) {
        error_setg(errp, "migration stream: the interrupt controllers' state is missing");
        return false;
    }
    if (!kvm_vm_state_check(kvm->payload->data, kvm->payload->len, errp)) {
        return false;
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        char name[32];
        MigSection *s;
        snprintf(name, sizeof(name), "cpu%u", i);
        s = find_section(in, SEC_CPU, name);
        if (!s) {
            error_setg(errp, "migration stream: the state of vCPU %u is missing", i);
            return false;
        }
        if (!vcpu_state_check(s->payload->data, s->payload->len, errp)) {
            g_prefix_error(errp, "vCPU %u: ", i);
            return false;
        }
    }
    for (guint i = 0; i < in->sections->len; i++) {
        MigSection *s = g_ptr_array_index(in->sections, i);
        DeviceStateEntry *e;
        if (s->type != SEC_DEVICE) {
            continue;
        }
        e = device_state_find(&m->device_states, s->name);
        if (!e) {
            error_setg(errp, "migration stream: unknown device '%s'", s->name);
            return false;
        }
        if (s->version > e->version) {
            error_setg(errp,
                       "migration stream: device '%s' state version %u is newer "
                       "than this VMM's %u",
                       s->name, s->version, e->version);
            return false;
        }
    }
    for (guint i = 0; i < m->device_states.entries->len; i++) {
        DeviceStateEntry *e = g_ptr_array_index(m->device_states.entries, i);
        /* optional state (ops->needed): a source may have had nothing to say */
        if (!e->ops->needed && !find_section(in, SEC_DEVICE, e->name)) {
            error_setg(errp, "migration stream: device '%s' is missing", e->name);
            return false;
        }
    }
    return true;
}

bool incoming_load_apply_devices(IncomingLoad *in, GError **errp)
{
    Machine *m = in->machine;
    bool ok = true;

    for (guint i = 0; ok && i < in->sections->len; i++) {
        MigSection *s = g_ptr_array_index(in->sections, i);
        DeviceStateEntry *e;
        if (s->type != SEC_DEVICE) {
            continue;
        }
        e = device_state_find(&m->device_states, s->name);
        machine_lock(m);
        ok = e->ops->load(e->opaque, s->payload->data, s->payload->len, s->version, errp);
        machine_unlock(m);
    }
    return ok;
}

static bool apply_sections(IncomingLoad *in, GError **errp)
{
    Machine *m = in->machine;
    MigSection *kvm = find_section(in, SEC_KVM, "kvm");
    bool ok = kvm_vm_state_load(&m->kvm, kvm->payload->data, kvm->payload->len, errp);

    for (unsigned i = 0; ok && i < m->nr_vcpus; i++) {
        char name[32];
        snprintf(name, sizeof(name), "cpu%u", i);
        MigSection *s = find_section(in, SEC_CPU, name);
        ok = vcpu_state_load(m->vcpus[i], s->payload->data, s->payload->len, errp);
    }
    return ok && incoming_load_apply_devices(in, errp);
}

static void incoming_free(Incoming *in)
{
    incoming_load_destroy(&in->load);
    g_free(in->error);
    g_free(in);
}

/*
 * As QEMU after every incoming migration (its announce-* parameters'
 * defaults): a RARP from each NIC's MAC, and GUEST_ANNOUNCE where the
 * driver negotiated it, at once and 4 more times 50, 150, 250 and 350 ms
 * apart, so that the switches learn the guest's new port.  The guest's
 * own announce is not enough: under net_failover or a bond the virtio-net
 * is a slave without the addresses its gratuitous ARPs would carry, and
 * the peer's frames went on to the source's port until the guest sent.
 */
static void announce_after_migration(Machine *m)
{
    MachineAnnounceParams p = {
        .initial = 50, .max = 550, .rounds = 5, .step = 100, .id = "migration"
    };

    machine_announce_self(m, &p);
}

static gboolean incoming_done_cb(gpointer opaque)
{
    Incoming *in = opaque;
    MigrationState *ms = in->ms;
    Machine *m = ms->machine;
    GError *err = NULL;
    bool ok;
    uint8_t ack;

    pthread_join(in->thread, NULL);
    /*
     * The source let go of the images before its last section.  With
     * late-block-activate a guest that does not run at once (-S, or paused
     * at the source) takes them only on cont, as QEMU's destination.
     */
    ok = !in->error && incoming_load_check(&in->load, &err) &&
         apply_sections(&in->load, &err);
    /* arrives: what the stream's globalstate said (incoming_load_check) */
    ms->drives_inactive = ok && ms->cap_late_block_activate &&
                          (in->load.arrives != RUN_STATE_RUNNING || m->cfg->start_paused);
    ok = ok && (ms->drives_inactive || machine_drives_acquire(m, &err));
    ack = ok ? MIG_ACK_OK : MIG_ACK_FAIL;
    if (in->fd >= 0 && !ms->incoming_child) {
        chan_write(in->fd, &ack, 1, NULL);
    }
    if (in->fd >= 0) {
        close(in->fd);
    }
    if (!ok) {
        error_report("load of migration failed: %s",
                     in->error ? in->error : err->message);
        g_clear_error(&err);
        migration_set_status(ms, MIGRATION_STATUS_FAILED);
        incoming_free(in);
        m->exit_status = 1;
        machine_shutdown(m, SHUTDOWN_CAUSE_HOST_ERROR);
        return G_SOURCE_REMOVE;
    }
    /* failover: the standbys' state says STANDBY, so their primaries come now */
    machine_failover_loaded(m);
    /* DID as the source had it (or this VM's own did=on), before RESUME */
    osnet_incoming_done(&m->osnet);
    /* As QEMU: a guest that was running runs on unless -S; any other state
     * (paused, say) is the state it arrives in, -S or not. */
    m->runstate = in->load.arrives == RUN_STATE_RUNNING ? RUN_STATE_PAUSED
                                                        : in->load.arrives;
    if (in->load.arrives == RUN_STATE_RUNNING && !m->cfg->start_paused) {
        machine_vm_cont(m, NULL);
    }
    announce_after_migration(m);
    incoming_free(in);
    migration_set_status(ms, MIGRATION_STATUS_COMPLETED);
    return G_SOURCE_REMOVE;
}

static void incoming_start(MigrationState *ms, int fd)
{
    Incoming *in = g_new0(Incoming, 1);

    in->ms = ms;
    in->fd = fd;
    migration_set_status(ms, MIGRATION_STATUS_ACTIVE);
    pthread_create(&in->thread, NULL, incoming_thread, in);
}

static gboolean incoming_accept_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MigrationState *ms = opaque;
    int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (conn < 0) {
        return G_SOURCE_CONTINUE;
    }
    /* one migration per process, as QEMU: stop listening */
    close(ms->listen_fd);
    ms->listen_fd = -1;
    ms->listen_watch = 0;
    incoming_start(ms, conn);
    return G_SOURCE_REMOVE;
}

bool migration_incoming(MigrationState *ms, const char *uri, GError **errp)
{
    MigrationUri parsed;
    pid_t child = 0;
    int fd;

    if (ms->listen_fd >= 0 || ms->machine->runstate != RUN_STATE_INMIGRATE) {
        error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    if (!migration_uri_parse(uri, &parsed, errp)) {
        return false;
    }
    fd = migration_listen(&parsed, &child, errp);
    if (fd < 0) {
        return false;
    }
    if (parsed.kind == MIG_URI_EXEC || parsed.kind == MIG_URI_FD) {
        /* a stream already: exec:'s pipe, or the connection fd: names */
        ms->incoming_child = child;
        incoming_start(ms, fd);
        return true;
    }
    ms->listen_fd = fd;
    ms->listen_watch = g_unix_fd_add(fd, G_IO_IN, incoming_accept_cb, ms);
    migration_set_status_now(ms, MIGRATION_STATUS_SETUP);
    return true;
}
