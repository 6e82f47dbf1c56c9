/*
 * fw_cfg: a selector register (0x510, 16-bit), a data register (0x511,
 * byte by byte) and the DMA interface (0x514: the guest writes the
 * big-endian address of a {control, length, address} descriptor, high half
 * first).  Every guest address goes through the GuestMemory it was given.
 * Handlers run with the machine lock held.
 */
#include <string.h>

#include "hw/i386/fw_cfg.h"
#include "util/error.h"

#define FW_CFG_PORT_SEL  0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_PORT_DMA  0x514
#define FW_CFG_MAX_ITEMS 0x100
#define FW_CFG_NAME_LEN  56

#define DMA_CTL_ERROR  0x01
#define DMA_CTL_READ   0x02
#define DMA_CTL_SKIP   0x04
#define DMA_CTL_SELECT 0x08
#define DMA_CTL_WRITE  0x10

#define FW_CFG_DMA_SIGNATURE 0x51454d5520434647ULL /* "QEMU CFG" */

typedef struct FwCfgItem {
    uint16_t key;
    uint8_t *data;
    uint32_t len;
    char name[FW_CFG_NAME_LEN]; /* files only */
} FwCfgItem;

struct FwCfg {
    GuestMemory mem; /* where DMA descriptors and buffers are */
    GArray *items;   /* of FwCfgItem */
    uint16_t next_file_key;
    uint16_t selector;
    uint32_t offset; /* into the selected item */
    uint32_t dma_addr_high;
};

static FwCfgItem *fw_cfg_find(FwCfg *fw, uint16_t key)
{
    for (guint i = 0; i < fw->items->len; i++) {
        FwCfgItem *it = &g_array_index(fw->items, FwCfgItem, i);
        if (it->key == key) {
            return it;
        }
    }
    return NULL;
}

static void fw_cfg_set(FwCfg *fw, uint16_t key, const void *data, size_t len,
                       const char *name)
{
    FwCfgItem *it = fw_cfg_find(fw, key);
    FwCfgItem fresh = { .key = key };

    if (!it) {
        g_array_append_val(fw->items, fresh);
        it = &g_array_index(fw->items, FwCfgItem, fw->items->len - 1);
    }
    g_free(it->data);
    it->data = g_memdup2(data, len);
    it->len = len;
    if (name) {
        g_strlcpy(it->name, name, sizeof(it->name));
    }
}

void fw_cfg_add_bytes(FwCfg *fw, uint16_t key, const void *data, size_t len)
{
    fw_cfg_set(fw, key, data, len, NULL);
}

void fw_cfg_add_u16(FwCfg *fw, uint16_t key, uint16_t value)
{
    uint16_t le = GUINT16_TO_LE(value);

    fw_cfg_add_bytes(fw, key, &le, sizeof(le));
}

void fw_cfg_add_u32(FwCfg *fw, uint16_t key, uint32_t value)
{
    uint32_t le = GUINT32_TO_LE(value);

    fw_cfg_add_bytes(fw, key, &le, sizeof(le));
}

void fw_cfg_add_u64(FwCfg *fw, uint16_t key, uint64_t value)
{
    uint64_t le = GUINT64_TO_LE(value);

    fw_cfg_add_bytes(fw, key, &le, sizeof(le));
}

/* Rebuild the big-endian file directory (item FW_CFG_FILE_DIR). */
static void fw_cfg_update_dir(FwCfg *fw)
{
    GByteArray *dir = g_byte_array_new();
    uint32_t count = 0, be32;

    for (guint i = 0; i < fw->items->len; i++) {
        count += g_array_index(fw->items, FwCfgItem, i).name[0] != '\0';
    }
    be32 = GUINT32_TO_BE(count);
    g_byte_array_append(dir, (guint8 *)&be32, 4);
    for (guint i = 0; i < fw->items->len; i++) {
        FwCfgItem *it = &g_array_index(fw->items, FwCfgItem, i);
        uint16_t be16 = GUINT16_TO_BE(it->key), zero = 0;
        if (!it->name[0]) {
            continue;
        }
        be32 = GUINT32_TO_BE(it->len);
        g_byte_array_append(dir, (guint8 *)&be32, 4);
        g_byte_array_append(dir, (guint8 *)&be16, 2);
        g_byte_array_append(dir, (guint8 *)&zero, 2);
        g_byte_array_append(dir, (guint8 *)it->name, FW_CFG_NAME_LEN);
    }
    fw_cfg_set(fw, FW_CFG_FILE_DIR, dir->data, dir->len, NULL);
    g_byte_array_free(dir, TRUE);
}

bool fw_cfg_add_file(FwCfg *fw, const char *name, const void *data, size_t len,
                     GError **errp)
{
    if (strlen(name) >= FW_CFG_NAME_LEN) {
        error_setg(errp, "fw_cfg file name '%s' is too long", name);
        return false;
    }
    if (fw->next_file_key >= FW_CFG_FILE_FIRST + FW_CFG_MAX_ITEMS) {
        error_setg(errp, "fw_cfg: too many files");
        return false;
    }
    fw_cfg_set(fw, fw->next_file_key++, data, len, name);
    fw_cfg_update_dir(fw);
    return true;
}

/* One byte of the selected item at the current offset (0 past its end). */
static uint8_t fw_cfg_read_byte(FwCfg *fw)
{
    FwCfgItem *it = fw_cfg_find(fw, fw->selector);
    uint8_t v = 0;

    if (it && fw->offset < it->len) {
        v = it->data[fw->offset];
    }
    if (fw->offset < UINT32_MAX) {
        fw->offset++;
    }
    return v;
}

static void fw_cfg_select(FwCfg *fw, uint16_t key)
{
    fw->selector = key;
    fw->offset = 0;
}

/* Carry out the DMA descriptor at guest address addr. */
static void fw_cfg_dma(FwCfg *fw, uint64_t addr)
{
    uint8_t *desc = guest_memory_hva(&fw->mem, addr, 16);
    uint32_t control, length;
    uint64_t target;
    FwCfgItem *it;

    if (!desc) {
        return; /* nowhere to report an error: ignore, as hardware would */
    }
    memcpy(&control, desc, 4);
    memcpy(&length, desc + 4, 4);
    memcpy(&target, desc + 8, 8);
    control = GUINT32_FROM_BE(control);
    length = GUINT32_FROM_BE(length);
    target = GUINT64_FROM_BE(target);
    if (control & DMA_CTL_SELECT) {
        fw_cfg_select(fw, control >> 16);
    }
    it = fw_cfg_find(fw, fw->selector);
    if (control & (DMA_CTL_READ | DMA_CTL_SKIP)) {
        uint32_t avail = it && fw->offset < it->len ? it->len - fw->offset : 0;
        uint32_t n = MIN(avail, length);
        if (control & DMA_CTL_READ) {
            uint8_t *dst = guest_memory_hva(&fw->mem, target, length);
            if (!dst) {
                control = DMA_CTL_ERROR;
                goto done;
            }
            if (n) {
                memcpy(dst, it->data + fw->offset, n);
            }
            memset(dst + n, 0, length - n); /* past the end reads as zeros */
        }
        fw->offset += n;
        control = 0;
    } else if (control & DMA_CTL_WRITE) {
        control = DMA_CTL_ERROR; /* no writable items */
    } else {
        control = 0;
    }
done:
    control = GUINT32_TO_BE(control);
    memcpy(desc, &control, 4);
}

static void fw_cfg_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                      bool is_write)
{
    FwCfg *fw = opaque;
    uint64_t port = FW_CFG_PORT_SEL + offset;

    if (port == FW_CFG_PORT_SEL) {
        if (is_write) {
            fw_cfg_select(fw, data[0] | (len > 1 ? data[1] << 8 : 0));
        } else {
            memset(data, 0, len);
        }
    } else if (port == FW_CFG_PORT_DATA) {
        if (!is_write) {
            for (unsigned i = 0; i < len; i++) {
                data[i] = fw_cfg_read_byte(fw);
            }
        }
    } else if (port >= FW_CFG_PORT_DMA && port < FW_CFG_PORT_DMA + 8) {
        unsigned pos = port - FW_CFG_PORT_DMA;
        if (!is_write) {
            /* the DMA register reads back the "QEMU CFG" signature */
            for (unsigned i = 0; i < len; i++) {
                unsigned byte = pos + i;
                data[i] = byte < 8 ? FW_CFG_DMA_SIGNATURE >> (56 - 8 * byte) : 0;
            }
            return;
        }
        uint32_t v = 0;
        for (unsigned i = 0; i < len && i < 4; i++) {
            v |= (uint32_t)data[i] << (8 * i);
        }
        v = GUINT32_FROM_BE(v); /* the guest writes big-endian halves */
        if (pos == 0 && len == 4) {
            fw->dma_addr_high = v;
        } else if (pos == 4 && len == 4) {
            fw_cfg_dma(fw, ((uint64_t)fw->dma_addr_high << 32) | v);
            fw->dma_addr_high = 0;
        }
    } else if (!is_write) {
        memset(data, 0, len);
    }
}

FwCfg *fw_cfg_new(Bus *io_bus, const GuestMemory *mem, GError **errp)
{
    FwCfg *fw = g_new0(FwCfg, 1);
    uint32_t id = 3; /* traditional interface and DMA */

    fw->mem = *mem;
    fw->items = g_array_new(FALSE, TRUE, sizeof(FwCfgItem));
    fw->next_file_key = FW_CFG_FILE_FIRST;
    if (!bus_register(io_bus, FW_CFG_PORT_SEL, FW_CFG_PORT_DMA + 8 - FW_CFG_PORT_SEL,
                      fw_cfg_io, fw, "fw_cfg", errp)) {
        fw_cfg_free(fw);
        return NULL;
    }
    fw_cfg_add_bytes(fw, FW_CFG_SIGNATURE, "QEMU", 4);
    fw_cfg_add_u32(fw, FW_CFG_ID, id);
    fw_cfg_update_dir(fw);
    return fw;
}

void fw_cfg_reset(FwCfg *fw)
{
    fw->selector = 0;
    fw->offset = 0;
    fw->dma_addr_high = 0;
}

void fw_cfg_free(FwCfg *fw)
{
    if (!fw) {
        return;
    }
    for (guint i = 0; i < fw->items->len; i++) {
        g_free(g_array_index(fw->items, FwCfgItem, i).data);
    }
    g_array_free(fw->items, TRUE);
    g_free(fw);
}
