/*
 * Live migration: QEMU's QMP surface (migrate, migrate_cancel,
 * query-migrate, parameters, capabilities, migrate-incoming, MIGRATION and
 * MIGRATION_PASS events) over this project's own versioned stream.  The
 * source sends RAM in pre-copy passes over KVM's dirty log from a
 * migration thread, then stops the VM for the final pass and the machine
 * state; the destination validates everything before its guest runs and
 * acknowledges, and only then does the source complete.  Main thread API.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include <jansson.h>

typedef struct Machine Machine;
typedef struct MigrationState MigrationState;

typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_WAIT_UNPLUG, /* the passthrough NIC leaves first */
    MIGRATION_STATUS_DEVICE,      /* VM stopped: final pass and state */
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_PRE_SWITCHOVER, /* VM stopped: waits for migrate-continue */
    MIGRATION_STATUS__MAX,
} MigrationStatus;

const char *migration_status_name(MigrationStatus status);

/* Notified on every status change and every RAM pass (main thread). */
typedef void (*MigrationEventFn)(void *opaque, int status, int pass);

MigrationState *migration_new(Machine *m, MigrationEventFn fn, void *opaque);
void migration_free(MigrationState *ms);

/* Whether the "events" capability is on (MIGRATION events are sent). */
bool migration_events_enabled(MigrationState *ms);

/* Source side. */
bool migration_start(MigrationState *ms, const char *uri, GError **errp);
void migration_cancel(MigrationState *ms);
/*
 * migrate-continue: leave the pause named by state (QEMU's status name;
 * only "pre-switchover" is ever paused in here).  QEMU's error when the
 * migration is not in that state.
 */
bool migration_continue(MigrationState *ms, const char *state, GError **errp);
/*
 * Before the guest runs on cont: a destination that left its images to
 * the last moment (late-block-activate) takes them now.
 */
bool migration_activate_drives(MigrationState *ms, GError **errp);

/* RAM figures of query-migrate (QEMU's MigrationStats). */
typedef struct MigrationRamInfo {
    uint64_t transferred, remaining, total, duplicate, normal, normal_bytes;
    double dirty_pages_rate; /* pages/s */
    double mbps;
    uint64_t dirty_sync_count, page_size;
    double pages_per_second;
    uint64_t precopy_bytes;
} MigrationRamInfo;

/* The current or last outgoing migration, as query-migrate shows it. */
typedef struct MigrationInfo {
    MigrationStatus status;         /* NONE: never started; nothing else is set */
    bool has_stats;                 /* times and RAM: once it started */
    int64_t total_time, setup_time; /* ms */
    bool has_downtime;              /* completed */
    int64_t downtime;
    bool has_expected_downtime; /* still running */
    int64_t expected_downtime;
    MigrationRamInfo ram;
    char *error_desc; /* failed: why; NULL otherwise */
    /* ms spent in wait-unplug (failover primaries), part of setup_time */
    bool has_wait_unplug_time;
    int64_t wait_unplug_time;
} MigrationInfo;

void migration_query(MigrationState *ms, MigrationInfo *info);
void migration_info_clear(MigrationInfo *info);

/* migrate-set-parameters / query-migrate-parameters: bytes/s and ms. */
typedef struct MigrationParameters {
    bool has_max_bandwidth;
    int64_t max_bandwidth;
    bool has_downtime_limit;
    int64_t downtime_limit;
} MigrationParameters;

/* Checks every given value first: nothing changes on error. */
bool migration_set_parameters(MigrationState *ms, const MigrationParameters *p,
                              GError **errp);
void migration_query_parameters(MigrationState *ms, MigrationParameters *p);

typedef struct MigrationCapabilityInfo {
    const char *name;
    bool state;
    bool supported; /* query: this VMM can switch it on */
} MigrationCapabilityInfo;

/* Would migration_set_capabilities take these (no migration running, each
 * name known, only supported ones switched on)? */
bool migration_check_capabilities(MigrationState *ms, const MigrationCapabilityInfo *caps,
                                  size_t count, GError **errp);
/* Check them all, then set them: nothing changes on error. */
bool migration_set_capabilities(MigrationState *ms, const MigrationCapabilityInfo *caps,
                                size_t count, GError **errp);
/* Every capability QEMU 7.2 has, in its order, saying which can be
 * switched on here: a GArray of MigrationCapabilityInfo. */
GArray *migration_query_capabilities(MigrationState *ms);

/*
 * Destination side: listen on (or run) uri and load the stream.  On success
 * the guest runs (or stays paused: under -S, or paused at the source, as
 * QEMU); a stream that fails to load ends the process with status 1, as
 * QEMU's destination does.
 */
bool migration_incoming(MigrationState *ms, const char *uri, GError **errp);
/* Is uri a migration URI this VMM knows (tcp:, unix:, exec:, fd:N)?  Nothing is
 * opened: start-up checks -incoming with it before /dev/kvm. */
bool migration_uri_check(const char *uri, GError **errp);

#endif
