/*
 * The migration stream's framing: the header and CRC-checked sections
 * (see migration-int.h).  Blocking I/O for the migration threads.
 */
#include <string.h>
#include <zlib.h>

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

/*
 * The CRC's last step.  A section without payload (END) has always carried
 * 0: zlib's crc32() answers 0 for a NULL buffer, which is what an empty
 * payload was.  Kept that way, on purpose now, so streams stay readable.
 */
static uint32_t section_crc_end(uint32_t crc, const uint8_t *payload, size_t len)
{
    return len ? crc32(crc, payload, len) : 0;
}

bool mig_write_section(int fd, uint8_t type, const char *name, uint32_t version,
                       const uint8_t *payload, size_t len, GError **errp)
{
    GByteArray *head = g_byte_array_new();
    uint16_t name_len = GUINT16_TO_LE(strlen(name));
    uint32_t v = GUINT32_TO_LE(version), crc;
    uint64_t l = GUINT64_TO_LE(len);
    bool ok;

    g_byte_array_append(head, &type, 1);
    g_byte_array_append(head, (guint8 *)&name_len, 2);
    g_byte_array_append(head, (const guint8 *)name, strlen(name));
    g_byte_array_append(head, (guint8 *)&v, 4);
    g_byte_array_append(head, (guint8 *)&l, 8);
    crc = crc32(0, head->data, head->len);
    crc = section_crc_end(crc, payload, len);
    crc = GUINT32_TO_LE(crc);
    ok = chan_write(fd, head->data, head->len, errp) &&
         chan_write(fd, payload, len, errp) && chan_write(fd, &crc, 4, errp);
    g_byte_array_free(head, TRUE);
    return ok;
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

MigSection *mig_read_section(int fd, GError **errp)
{
    MigSection *s = g_new0(MigSection, 1);
    uint16_t name_len;
    uint32_t crc, want;
    uint64_t len;
    uint8_t fixed[12];

    if (!chan_read(fd, &s->type, 1, errp) || !chan_read(fd, &name_len, 2, errp)) {
        goto fail;
    }
    name_len = GUINT16_FROM_LE(name_len);
    s->name = g_malloc0(name_len + 1);
    if (!chan_read(fd, s->name, name_len, errp) || !chan_read(fd, fixed, 12, errp)) {
        goto fail;
    }
    memcpy(&s->version, fixed, 4);
    memcpy(&len, fixed + 4, 8);
    s->version = GUINT32_FROM_LE(s->version);
    len = GUINT64_FROM_LE(len);
    if (s->type < SEC_CONFIG || s->type > SEC__MAX || len > MIG_MAX_SECTION) {
        error_setg(errp,
                   "migration stream: bad section (type %u, %" G_GUINT64_FORMAT " bytes)",
                   s->type, len);
        goto fail;
    }
    s->payload = g_byte_array_sized_new(len);
    g_byte_array_set_size(s->payload, len);
    if (!chan_read(fd, s->payload->data, len, errp) || !chan_read(fd, &want, 4, errp)) {
        goto fail;
    }
    crc = crc32(0, &s->type, 1);
    name_len = GUINT16_TO_LE(name_len);
    crc = crc32(crc, (uint8_t *)&name_len, 2);
    crc = crc32(crc, (uint8_t *)s->name, strlen(s->name));
    crc = crc32(crc, fixed, 12);
    crc = section_crc_end(crc, s->payload->data, len);
    if (crc != GUINT32_FROM_LE(want)) {
        error_setg(errp, "migration stream: checksum mismatch in section '%s'", s->name);
        goto fail;
    }
    return s;
fail:
    mig_section_free(s);
    return NULL;
}
