/*
 * Migration internals: channels, the stream format, and the state shared
 * by the source thread, the incoming thread and the main thread.
 *
 * Stream (version 1, all integers little-endian):
 *   header:  "DVMIGRAT" u32 version u32 flags
 *   section: u8 type, u16 name length, name, u32 section version,
 *            u64 payload length, payload, u32 CRC-32 of all the above
 *   types:   CONFIG (the machine shape), RAM (page records), KVM (in-kernel
 *            irqchip, PIT, clock), CPU (one per vCPU), DEVICE (one per
 *            registered device state), GLOBAL ("globalstate": the run state
 *            the source was in, JSON {"runstate": NAME}), END.  GLOBAL came
 *            later: a stream without it arrives as if running; a VMM that
 *            predates it refuses a stream with it (unknown section type)
 *   RAM payload: records of u64 (gpa | flags): ZERO (no data) or PAGE
 *            (4096 bytes of data follow)
 * After END the destination answers one byte on the same connection: 'A'
 * when everything loaded, 'N' otherwise (exec: has no way back).
 */
#ifndef MIGRATION_INT_H
#define MIGRATION_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <glib.h>
#include <jansson.h>

#include "hw/machine.h"
#include "migration/migration.h"

#define MIG_MAGIC       "DVMIGRAT"
#define MIG_VERSION     2
#define MIG_PAGE_SIZE   4096ULL
#define MIG_MAX_SECTION (64ULL << 20)
#define MIG_ACK_OK      'A'
#define MIG_ACK_FAIL    'N'

enum {
    SEC_CONFIG = 1,
    SEC_RAM = 2,
    SEC_KVM = 3,
    SEC_CPU = 4,
    SEC_DEVICE = 5,
    SEC_END = 6,
    SEC_GLOBAL = 7,
    SEC__MAX = SEC_GLOBAL,
};

#define MIG_GLOBAL_VERSION 1

#define RAM_FLAG_ZERO   1ULL
#define RAM_FLAG_PAGE   2ULL
#define RAM_FLAG_MASK   0xfffULL
#define MIG_RAM_VERSION 2
/* Records in one RAM section at most (the source sends 256). */
#define MIG_RAM_MAX_RECORDS 4096

typedef enum MigUriKind {
    MIG_URI_TCP,
    MIG_URI_UNIX,
    MIG_URI_EXEC,
    MIG_URI_FD /* fd:N, a connected stream the monitor resolved */
} MigUriKind;

typedef struct MigrationUri {
    MigUriKind kind;
    const char *rest; /* points into the caller's string */
} MigrationUri;

bool migration_uri_parse(const char *uri, MigrationUri *out, GError **errp);
int migration_connect(const MigrationUri *uri, pid_t *child, GError **errp);
int migration_listen(const MigrationUri *uri, pid_t *child, GError **errp);
bool chan_write(int fd, const void *buf, size_t len, GError **errp);
bool chan_read(int fd, void *buf, size_t len, GError **errp);
/* All of the iovecs (which it may change), in as few calls as it can. */
bool chan_writev(int fd, struct iovec *iov, int iovcnt, GError **errp);
bool chan_readv(int fd, struct iovec *iov, int iovcnt, GError **errp);
bool chan_wait_readable(int fd, int timeout_ms);

/*
 * The section checksum (checksum.c): XXH64 with seed 0, of the bytes fed
 * to mig_hash_update in order (any split gives the same value).
 */
typedef struct MigHash {
    uint64_t v[4];
    uint8_t buf[32];
    size_t buffered;
    uint64_t total;
} MigHash;

void mig_hash_init(MigHash *h);
void mig_hash_update(MigHash *h, const void *data, size_t len);
/* mig_hash_update of src, copying it to dst in the same pass. */
void mig_hash_copy(MigHash *h, void *dst, const void *src, size_t len);
uint64_t mig_hash_final(const MigHash *h);
uint64_t mig_hash(const void *data, size_t len);

/* One section on the wire (stream.c). */
typedef struct MigSection {
    uint8_t type;
    char *name;
    uint32_t version;
    uint64_t len;        /* the payload's length */
    GByteArray *payload; /* NULL until read (RAM: never, incoming.c reads it) */
    MigHash hash;        /* of the section's bytes read so far */
} MigSection;

bool mig_write_header(int fd, GError **errp);
bool mig_read_header(int fd, GError **errp);
/*
 * Writing a section whose payload the caller hashes itself (as it copies
 * it): start builds the head and hashes it; the caller feeds o->hash the
 * payload, len bytes in order; send writes head, payload and checksum.
 */
typedef struct MigSectionOut {
    uint8_t *head;
    size_t head_len;
    MigHash hash;
} MigSectionOut;

void mig_section_start(MigSectionOut *o, uint8_t type, const char *name, uint32_t version,
                       uint64_t len);
bool mig_section_send(int fd, MigSectionOut *o, const struct iovec *iov, int iovcnt,
                      GError **errp);
/* One section, its payload the iovecs in order, in one gathered write. */
bool mig_write_sectionv(int fd, uint8_t type, const char *name, uint32_t version,
                        const struct iovec *iov, int iovcnt, GError **errp);
bool mig_write_section(int fd, uint8_t type, const char *name, uint32_t version,
                       const uint8_t *payload, size_t len, GError **errp);
/*
 * Reading a section in steps: its head (type, name, version, length;
 * checked for a known type and at most MIG_MAX_SECTION bytes), then its
 * payload (into s->payload, or by the caller, who feeds s->hash every byte
 * in order), then its checksum.  mig_read_section does all three; NULL
 * with errp set when any fails.
 */
MigSection *mig_read_section_head(int fd, GError **errp);
bool mig_read_section_payload(int fd, MigSection *s, GError **errp);
bool mig_read_section_end(int fd, MigSection *s, GError **errp);
MigSection *mig_read_section(int fd, GError **errp);
void mig_section_free(MigSection *s);

/* RAM (ram.c): dirty tracking and page records. */
typedef struct RamRegion {
    uint64_t gpa, size;
    uint8_t *hva;
    uint64_t *bitmap;    /* dirty pages still to send */
    uint64_t *scratch;   /* KVM's fresh bitmap */
    uint64_t *untouched; /* pages never touched, for the first pass */
} RamRegion;

typedef struct RamState {
    RamRegion region[2];
    unsigned nr_regions;
    uint64_t total_pages;
    uint64_t dirty_pages; /* set bits in all bitmaps */
} RamState;

bool ram_state_init(RamState *rs, Machine *m, GError **errp);
/*
 * Mark in r->untouched the pages the guest never touched (neither in
 * memory nor swapped out, per /proc/self/pagemap): they read as zeros,
 * and reading them would only fault in the zero page.  Best effort: a page
 * whose entry cannot be read counts as touched.
 */
void ram_find_untouched(RamRegion *r);
void ram_state_destroy(RamState *rs, Machine *m);
/* Mark guest memory a device wrote by DMA (any thread). */
void ram_mark_dirty(RamState *rs, uint64_t gpa, uint64_t len);
/* Fold KVM's dirty log into the bitmaps. */
bool ram_sync_dirty(RamState *rs, Machine *m, GError **errp);

/*
 * Loading an incoming stream (incoming.c), in steps that need neither a
 * socket nor a vCPU until the KVM records are applied, so that bytes can
 * be fed to it directly (tests/fuzz/fuzz-migration.c):
 *   incoming_load_stream  reads the header and the sections up to END from
 *                         fd, checks CONFIG, writes RAM into the guest at
 *                         once and keeps the other sections;
 *   incoming_load_check   checks every kept section against the machine
 *                         (run state, KVM and vCPU records, the devices);
 *   incoming_load_apply_devices  hands each device its blob (a device's
 *                         load refuses a blob it does not understand).
 * The KVM and vCPU records are applied by incoming.c itself.
 */
typedef struct IncomingLoad {
    Machine *machine;
    RamState ram;         /* only the regions' untouched bitmaps are used */
    GPtrArray *sections;  /* kept sections (KVM, CPU, DEVICE, GLOBAL) */
    RunState arrives;     /* the source's run state (GLOBAL), or RUNNING */
    unsigned nr_sections; /* sections read, END included */
    uint64_t ram_pages;   /* RAM page records loaded (data or zero) */
} IncomingLoad;

void incoming_load_init(IncomingLoad *ld, Machine *m);
bool incoming_load_stream(IncomingLoad *ld, int fd, GError **errp);
bool incoming_load_check(IncomingLoad *ld, GError **errp);
bool incoming_load_apply_devices(IncomingLoad *ld, GError **errp);
void incoming_load_destroy(IncomingLoad *ld);

struct MigrationState {
    Machine *machine;
    MigrationEventFn event_fn;
    void *event_opaque;

    /* parameters and capabilities (main thread) */
    uint64_t max_bandwidth; /* bytes/s */
    uint64_t downtime_limit_ms;
    bool cap_events;
    bool cap_pause_before_switchover, cap_late_block_activate;
    GHashTable *caps; /* name -> GINT_TO_POINTER(bool) */

    /* the current or last outgoing migration; [lock] */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    MigrationStatus status;
    MigrationStatus outcome; /* the thread's verdict, for finish_cb */
    bool cancel_requested;
    bool stop_requested, vm_stopped, was_running;
    bool continue_requested; /* migrate-continue in pre-switchover */
    RunState state_before;   /* run state when the VM was stopped for the end */
    pthread_t thread;
    bool thread_running;
    char *uri;
    char *error_desc;
    int fd;
    pid_t child;
    int64_t start_ms, setup_ms, total_ms, downtime_ms, expected_downtime_ms;
    int64_t wait_unplug_ms; /* failover primaries' eject (part of setup_ms) */
    unsigned unplug_asked;  /* failover primaries asked to go at migrate */
    uint64_t transferred, duplicate, normal, dirty_sync_count, remaining;
    uint64_t total_ram;
    double mbps, dirty_pages_rate, pages_per_second;

    /* incoming: the images wait for cont (late-block-activate) */
    bool drives_inactive;
    RamState *ram; /* while RAM is tracked: device DMA marks it */

    int listen_fd;
    guint listen_watch;
    pid_t incoming_child;
};

/* Source thread (migration.c) and incoming (incoming.c). */
void *migration_thread(void *opaque);
void migration_set_status(MigrationState *ms, MigrationStatus status);
/* Main thread only: the status and its event at once. */
void migration_set_status_now(MigrationState *ms, MigrationStatus status);
/*
 * The CONFIG section (machine-config.c): the source writes the machine's
 * shape; the destination refuses a shape that differs from its own.
 */
bool migration_config_write(int fd, Machine *m, GError **errp);
bool migration_config_check(Machine *m, const MigSection *s, GError **errp);

#endif
