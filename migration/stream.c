/*
 * The migration stream's framing: the header and checksummed sections
 * (see migration-int.h).  Blocking I/O for the migration threads.
 */
#include <string.h>
#include <sys/uio.h>

#include "migration-int.h"
#include "util/error.h"

bool mig_write_header(int fd, GError **errp)
{
    uint8_t hdr[16];
    uint32_t version = GUINT32_TO_LE(MIG_VERSION), flags = 0;

    memcpy(hdr, MIG_MAGIC, 8);
    memcpy(hdr + 8, &version, 4);
    memcpy(hdr + 12, &flags, 4);
    return chan_write(fd, hdr, sizeof(hdr), errp);
}

bool mig_read_header(int fd, GError **errp)
{
    uint8_t hdr[16];
    uint32_t version;

    if (!chan_read(fd, hdr, sizeof(hdr), errp)) {
        return false;
    }
    if (memcmp(hdr, MIG_MAGIC, 8) != 0) {
        error_setg(errp, "not a migration stream of this VMM (bad magic)");
        return false;
    }
    memcpy(&version, hdr + 8, 4);
    version = GUINT32_FROM_LE(version);
    if (version != MIG_VERSION) {
        error_setg(errp, "migration stream version %u, this VMM reads version %u",
                   version, MIG_VERSION);
        return false;
    }
    return true;
}

void mig_section_start(MigSectionOut *o, uint8_t type, const char *name, uint32_t version,
                       uint64_t len)
{
    size_t name_len = strlen(name);
    uint16_t nl = GUINT16_TO_LE(name_len);
    uint32_t v = GUINT32_TO_LE(version);
    uint64_t l = GUINT64_TO_LE(len);

    o->head_len = 3 + name_len + 12;
    o->head = g_malloc(o->head_len);
    o->head[0] = type;
    memcpy(o->head + 1, &nl, 2);
    memcpy(o->head + 3, name, name_len);
    memcpy(o->head + 3 + name_len, &v, 4);
    memcpy(o->head + 7 + name_len, &l, 8);
    mig_hash_init(&o->hash);
    mig_hash_update(&o->hash, o->head, o->head_len);
}

bool mig_section_send(int fd, MigSectionOut *o, const struct iovec *iov, int iovcnt,
                      GError **errp)
{
    struct iovec *all = g_new(struct iovec, iovcnt + 2);
    uint64_t sum = GUINT64_TO_LE(mig_hash_final(&o->hash));
    bool ok;

    all[0] = (struct iovec){ o->head, o->head_len };
    memcpy(all + 1, iov, iovcnt * sizeof(*iov));
    all[iovcnt + 1] = (struct iovec){ &sum, 8 };
    ok = chan_writev(fd, all, iovcnt + 2, errp);
    g_free(all);
    g_free(o->head);
    o->head = NULL;
    return ok;
}

bool mig_write_sectionv(int fd, uint8_t type, const char *name, uint32_t version,
                        const struct iovec *iov, int iovcnt, GError **errp)
{
    MigSectionOut o;
    uint64_t len = 0;

    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    mig_section_start(&o, type, name, version, len);
    for (int i = 0; i < iovcnt; i++) {
        mig_hash_update(&o.hash, iov[i].iov_base, iov[i].iov_len);
    }
    return mig_section_send(fd, &o, iov, iovcnt, errp);
}

bool mig_write_section(int fd, uint8_t type, const char *name, uint32_t version,
                       const uint8_t *payload, size_t len, GError **errp)
{
    struct iovec iov = { (void *)payload, len };

    return mig_write_sectionv(fd, type, name, version, &iov, len ? 1 : 0, errp);
}

void mig_section_free(MigSection *s)
{
    if (s) {
        g_free(s->name);
        if (s->payload) {
            g_byte_array_free(s->payload, TRUE);
        }
        g_free(s);
    }
}

MigSection *mig_read_section_head(int fd, GError **errp)
{
    MigSection *s = g_new0(MigSection, 1);
    uint16_t name_len;
    uint8_t fixed[12];

    if (!chan_read(fd, &s->type, 1, errp) || !chan_read(fd, &name_len, 2, errp)) {
        goto fail;
    }
    mig_hash_init(&s->hash);
    mig_hash_update(&s->hash, &s->type, 1);
    mig_hash_update(&s->hash, &name_len, 2);
    name_len = GUINT16_FROM_LE(name_len);
    s->name = g_malloc0(name_len + 1);
    if (!chan_read(fd, s->name, name_len, errp) || !chan_read(fd, fixed, 12, errp)) {
        goto fail;
    }
    mig_hash_update(&s->hash, s->name, name_len);
    mig_hash_update(&s->hash, fixed, 12);
    memcpy(&s->version, fixed, 4);
    memcpy(&s->len, fixed + 4, 8);
    s->version = GUINT32_FROM_LE(s->version);
    s->len = GUINT64_FROM_LE(s->len);
    if (s->type < SEC_CONFIG || s->type > SEC__MAX || s->len > MIG_MAX_SECTION) {
        error_setg(errp,
                   "migration stream: bad section (type %u, %" G_GUINT64_FORMAT " bytes)",
                   s->type, s->len);
        goto fail;
    }
    return s;
fail:
    mig_section_free(s);
    return NULL;
}

bool mig_read_section_payload(int fd, MigSection *s, GError **errp)
{
    s->payload = g_byte_array_sized_new(s->len);
    g_byte_array_set_size(s->payload, s->len);
    if (!chan_read(fd, s->payload->data, s->len, errp)) {
        return false;
    }
    mig_hash_update(&s->hash, s->payload->data, s->len);
    return true;
}

bool mig_read_section_end(int fd, MigSection *s, GError **errp)
{
    uint64_t want;

    if (!chan_read(fd, &want, 8, errp)) {
        return false;
    }
    if (mig_hash_final(&s->hash) != GUINT64_FROM_LE(want)) {
        error_setg(errp, "migration stream: checksum mismatch in section '%s'", s->name);
        return false;
    }
    return true;
}

MigSection *mig_read_section(int fd, GError **errp)
{
    MigSection *s = mig_read_section_head(fd, errp);

    if (s &&
        (!mig_read_section_payload(fd, s, errp) || !mig_read_section_end(fd, s, errp))) {
        mig_section_free(s);
        return NULL;
    }
    return s;
}
