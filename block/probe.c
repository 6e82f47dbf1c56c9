/*
 * Format probing, as QEMU's -drive does it without format=: the qcow2 magic
 * means qcow2, the magics of other formats QEMU knows are named so that we
 * refuse them clearly instead of showing their bytes as a raw disk, and
 * anything else is raw.  Pure functions, no locking.
 */
#include <string.h>

#include "block-int.h"

typedef struct FormatMagic {
    const char *name;
    size_t offset;
    const char *magic;
    size_t len;
} FormatMagic;

#define MAGIC(name, offset, str)                                                         \
    {                                                                                    \
        name, offset, str, sizeof(str) - 1                                               \
    }

static const FormatMagic format_magics[] = {
    MAGIC("qed", 0, "QED\0"),
    MAGIC("vmdk", 0, "KDMV"),
    MAGIC("vmdk", 0, "# Disk DescriptorFile"),
    MAGIC("vpc", 0, "conectix"),
    MAGIC("vhdx", 0, "vhdxfile"),
    MAGIC("vdi", 0x40, "\x7f\x10\xda\xbe"),
    MAGIC("luks", 0, "LUKS\xba\xbe"),
    MAGIC("bochs", 0, "Bochs Virtual HD Image"),
    MAGIC("parallels", 0, "WithoutFreeSpace"),
    MAGIC("parallels", 0, "WithouFreSpacExt"),
    MAGIC("cloop", 0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0"),
};

const char *block_probe_format(const uint8_t *buf, size_t len)
{
    if (len >= 8 && memcmp(buf, "QFI\xfb", 4) == 0) {
        uint32_t version = (uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 | buf[7];

        return version >= 2 ? "qcow2" : "qcow";
    }
    for (size_t i = 0; i < G_N_ELEMENTS(format_magics); i++) {
        const FormatMagic *m = &format_magics[i];

        if (len >= m->offset + m->len && memcmp(buf + m->offset, m->magic, m->len) == 0) {
            return m->name;
        }
    }
    return "raw";
}
