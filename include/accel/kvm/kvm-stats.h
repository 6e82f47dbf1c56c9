/*
 * KVM's binary statistics (KVM_GET_STATS_FD): the descriptors and a
 * snapshot of the values for one VM or vCPU.  Reading is a pread on the
 * stats fd, safe from any thread.
 */
#ifndef ACCEL_KVM_KVM_STATS_H
#define ACCEL_KVM_KVM_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct KvmStatDesc {
    char *name;
    uint32_t flags; /* KVM_STATS_TYPE/UNIT/BASE bits */
    int16_t exponent;
    uint16_t size;   /* number of u64 values */
    uint32_t offset; /* in the data block */
    uint32_t bucket_size;
} KvmStatDesc;

typedef struct KvmStatsFd {
    int fd; /* -1 until opened */
    uint32_t data_offset;
    size_t data_size;
    KvmStatDesc *descs;
    unsigned nr_descs;
    uint64_t *data; /* the last snapshot */
} KvmStatsFd;

/* Ask KVM for obj_fd's stats fd (a VM or vCPU fd) and read its layout. */
bool kvm_stats_open(KvmStatsFd *s, int obj_fd, GError **errp);
/* Parse a stats fd's header and descriptors (exposed for unit tests). */
bool kvm_stats_open_fd(KvmStatsFd *s, int stats_fd, GError **errp);
bool kvm_stats_refresh(KvmStatsFd *s, GError **errp);
void kvm_stats_close(KvmStatsFd *s);
/* The value(s) of a named statistic in the last snapshot, or NULL. */
const uint64_t *kvm_stats_find(const KvmStatsFd *s, const char *name,
                               const KvmStatDesc **desc);
/* One statistic as a plain number (0 when absent). */
uint64_t kvm_stats_get(const KvmStatsFd *s, const char *name);

/* QAPI names: "cumulative", "log2-histogram", ...; "seconds", ... */
const char *kvm_stat_type_name(uint32_t flags);
const char *kvm_stat_unit_name(uint32_t flags); /* NULL for none */
unsigned kvm_stat_base(uint32_t flags);         /* 10 or 2 */

#endif
