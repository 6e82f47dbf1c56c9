/*
 * KVM binary statistics reader: header, descriptors, and snapshots of the
 * data block of a VM or vCPU stats fd.  No shared state; callers serialise
 * use of one KvmStatsFd.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "accel/kvm/kvm-stats.h"
#include "util/error.h"

bool kvm_stats_open(KvmStatsFd *s, int obj_fd, GError **errp)
{
    int fd = ioctl(obj_fd, KVM_GET_STATS_FD, NULL);

    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if (fd < 0) {
        error_setg_errno(errp, errno,
                         "KVM_GET_STATS_FD failed (KVM binary "
                         "statistics need Linux 5.14 or later)");
        return false;
    }
    return kvm_stats_open_fd(s, fd, errp);
}

bool kvm_stats_open_fd(KvmStatsFd *s, int stats_fd, GError **errp)
{
    struct kvm_stats_header hdr;
    size_t desc_size;
    uint8_t *raw = NULL;

    memset(s, 0, sizeof(*s));
    s->fd = stats_fd;
    if (pread(stats_fd, &hdr, sizeof(hdr), 0) != sizeof(hdr)) {
        error_setg(errp, "KVM stats: short header");
        goto fail;
    }
    if (hdr.num_desc == 0 || hdr.num_desc > 4096 || hdr.name_size == 0 ||
        hdr.name_size > 1024) {
        error_setg(errp,
                   "KVM stats: implausible header (%u descriptors, "
                   "names of %u bytes)",
                   hdr.num_desc, hdr.name_size);
        goto fail;
    }
    desc_size = sizeof(struct kvm_stats_desc) + hdr.name_size;
    raw = g_malloc(desc_size * hdr.num_desc);
    if (pread(stats_fd, raw, desc_size * hdr.num_desc, hdr.desc_offset) !=
        (ssize_t)(desc_size * hdr.num_desc)) {
        error_setg(errp, "KVM stats: short descriptor table");
        goto fail;
    }
    s->descs = g_new0(KvmStatDesc, hdr.num_desc);
    for (uint32_t i = 0; i < hdr.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(raw + i * desc_size);
        KvmStatDesc *out = &s->descs[s->nr_descs];
        size_t end = (size_t)d->offset + (size_t)d->size * sizeof(uint64_t);

        if (d->size == 0 || d->offset % sizeof(uint64_t)) {
            continue; /* not something we can read: skip it */
        }
        out->name = g_strndup(d->name, hdr.name_size);
        out->flags = d->flags;
        out->exponent = d->exponent;
        out->size = d->size;
        out->offset = d->offset;
        out->bucket_size = d->bucket_size;
        s->data_size = MAX(s->data_size, end);
        s->nr_descs++;
    }
    g_free(raw);
    s->data_offset = hdr.data_offset;
    s->data = g_malloc0(MAX(s->data_size, sizeof(uint64_t)));
    return kvm_stats_refresh(s, errp);
fail:
    g_free(raw);
    kvm_stats_close(s);
    return false;
}

bool kvm_stats_refresh(KvmStatsFd *s, GError **errp)
{
    if (s->fd < 0) {
        error_setg(errp, "KVM stats not open");
        return false;
    }
    if (pread(s->fd, s->data, s->data_size, s->data_offset) != (ssize_t)s->data_size) {
        error_setg_errno(errp, errno, "reading KVM statistics failed");
        return false;
    }
    return true;
}

void kvm_stats_close(KvmStatsFd *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    for (unsigned i = 0; i < s->nr_descs; i++) {
        g_free(s->descs[i].name);
    }
    g_free(s->descs);
    g_free(s->data);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

const uint64_t *kvm_stats_find(const KvmStatsFd *s, const char *name,
                               const KvmStatDesc **desc)
{
    for (unsigned i = 0; i < s->nr_descs; i++) {
        if (strcmp(s->descs[i].name, name) == 0) {
            if (desc) {
                *desc = &s->descs[i];
            }
            return s->data + s->descs[i].offset / sizeof(uint64_t);
        }
    }
    return NULL;
}

uint64_t kvm_stats_get(const KvmStatsFd *s, const char *name)
{
    const uint64_t *v = kvm_stats_find(s, name, NULL);

    return v ? v[0] : 0;
}

const char *kvm_stat_type_name(uint32_t flags)
{
    switch (flags & KVM_STATS_TYPE_MASK) {
    case KVM_STATS_TYPE_CUMULATIVE:
        return "cumulative";
    case KVM_STATS_TYPE_INSTANT:
        return "instant";
    case KVM_STATS_TYPE_PEAK:
        return "peak";
    case KVM_STATS_TYPE_LINEAR_HIST:
        return "linear-histogram";
    case KVM_STATS_TYPE_LOG_HIST:
        return "log2-histogram";
    default:
        return "instant";
    }
}

const char *kvm_stat_unit_name(uint32_t flags)
{
    switch (flags & KVM_STATS_UNIT_MASK) {
    case KVM_STATS_UNIT_BYTES:
        return "bytes";
    case KVM_STATS_UNIT_SECONDS:
        return "seconds";
    case KVM_STATS_UNIT_CYCLES:
        return "cycles";
    case KVM_STATS_UNIT_BOOLEAN:
        return "boolean";
    default:
        return NULL;
    }
}

unsigned kvm_stat_base(uint32_t flags)
{
    return (flags & KVM_STATS_BASE_MASK) == KVM_STATS_BASE_POW2 ? 2 : 10;
}
