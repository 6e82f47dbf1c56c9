/*
 * The i8042 keyboard controller with no keyboard or mouse attached (ports
 * 0x60 data, 0x64 status/command).  It answers what a BIOS or an OS probe
 * asks of the controller itself (configuration byte, self-tests, port
 * enables, output port) and drives the reset line; bytes meant for the
 * keyboard go nowhere, as on a board with nothing plugged in.  A Linux
 * guest without ACPI probes it directly: with no answer to "read CTR" it
 * logs "i8042: Can't read CTR", which QEMU's guests never see.
 * Handlers run with the machine lock held.
 */
#include <string.h>

#include "hw/bus.h"
#include "hw/i386/i8042.h"
#include "hw/vmstate.h"
#include "util/error.h"

#define I8042_STATE_VERSION 1

/* Status register (port 0x64 read). */
#define STS_OBF      0x01 /* output buffer full */
#define STS_SYSFLAG  0x04 /* POST passed */
#define STS_CMD      0x08 /* last write went to port 0x64 */
#define STS_UNLOCKED 0x10 /* keyboard not inhibited */

/* Controller configuration byte ("command byte", CTR). */
#define CTR_SYSFLAG  0x04
#define CTR_KBD_OFF  0x10
#define CTR_AUX_OFF  0x20
#define CTR_POWER_ON 0x45 /* keyboard interrupt, system flag, translation */

#define OUTPORT_RESET    0x01 /* clear: the CPU's reset line is pulled */
#define OUTPORT_POWER_ON 0x03 /* not in reset, A20 on */

struct I8042 {
    uint8_t ctr;
    uint8_t pending; /* command awaiting its data byte, or 0 */
    uint8_t out;     /* output buffer */
    bool out_full;
    bool last_was_command;
    uint8_t outport;
    I8042ResetFn reset;
    void *reset_opaque;
};

static void i8042_reply(I8042 *c, uint8_t byte)
{
    c->out = byte;
    c->out_full = true;
}

static void i8042_command(I8042 *c, uint8_t cmd)
{
    c->pending = 0;
    switch (cmd) {
    case 0x20: /* read CTR */
        i8042_reply(c, c->ctr);
        break;
    case 0x60: /* write CTR: data follows */
    case 0xd1: /* write output port: data follows */
        c->pending = cmd;
        break;
    case 0xa7: /* disable the aux port */
        c->ctr |= CTR_AUX_OFF;
        break;
    case 0xa8: /* enable the aux port */
        c->ctr &= ~CTR_AUX_OFF;
        break;
    case 0xa9:                /* aux interface test */
        i8042_reply(c, 0x01); /* clock line stuck low: no mouse */
        break;
    case 0xaa: /* controller self-test */
        i8042_reply(c, 0x55);
        break;
    case 0xab: /* keyboard interface test */
        i8042_reply(c, 0x00);
        break;
    case 0xad: /* disable the keyboard port */
        c->ctr |= CTR_KBD_OFF;
        break;
    case 0xae: /* enable the keyboard port */
        c->ctr &= ~CTR_KBD_OFF;
        break;
    case 0xd0: /* read output port */
        i8042_reply(c, c->outport);
        break;
    default:
        /* 0xf0-0xff pulse output lines low for a moment: bit 0 is reset */
        if (cmd >= 0xf0 && !(cmd & 1)) {
            c->reset(c->reset_opaque);
        }
        /* anything else (A20 gate, loopbacks to absent ports): ignored */
        break;
    }
}

static void i8042_data_write(I8042 *c, uint8_t byte)
{
    switch (c->pending) {
    case 0x60:
        c->ctr = byte | CTR_SYSFLAG; /* POST has passed: the flag stays */
        break;
    case 0xd1:
        c->outport = byte;
        if (!(byte & OUTPORT_RESET)) {
            c->reset(c->reset_opaque);
        }
        break;
    default:
        break; /* for the keyboard: none attached */
    }
    c->pending = 0;
}

static void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                          bool is_write)
{
    I8042 *c = opaque;

    if (is_write) {
        c->last_was_command = false;
        i8042_data_write(c, data[0]);
        return;
    }
    memset(data, 0, len);
    data[0] = c->out; /* stale when empty, as on hardware */
    c->out_full = false;
}

static void i8042_command_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                             bool is_write)
{
    I8042 *c = opaque;

    if (is_write) {
        c->last_was_command = true;
        i8042_command(c, data[0]);
        return;
    }
    memset(data, 0, len);
    data[0] = STS_SYSFLAG | STS_UNLOCKED | (c->out_full ? STS_OBF : 0) |
              (c->last_was_command ? STS_CMD : 0);
}

void i8042_reset(I8042 *c)
{
    c->ctr = CTR_POWER_ON;
    c->pending = 0;
    c->out = 0;
    c->out_full = false;
    c->last_was_command = false;
    c->outport = OUTPORT_POWER_ON;
}

static bool i8042_save(void *opaque, GByteArray *out, GError **errp)
{
    I8042 *c = opaque;
    uint8_t blob[5] = { c->ctr, c->pending, c->out, c->out_full, c->outport };

    g_byte_array_append(out, blob, sizeof(blob));
    return true;
}

static bool i8042_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                       GError **errp)
{
    I8042 *c = opaque;

    if (version != I8042_STATE_VERSION || len != 5 || buf[3] > 1) {
        error_setg(errp, "i8042: state version %u, %zu bytes: not understood", version,
                   len);
        return false;
    }
    c->ctr = buf[0];
    c->pending = buf[1];
    c->out = buf[2];
    c->out_full = buf[3];
    c->outport = buf[4];
    return true;
}

static const DeviceStateOps i8042_state_ops = { .save = i8042_save, .load = i8042_load };

I8042 *i8042_new(Bus *io_bus, DeviceStateList *states, I8042ResetFn reset, void *opaque,
                 GError **errp)
{
    I8042 *c = g_new0(I8042, 1);

    c->reset = reset;
    c->reset_opaque = opaque;
    i8042_reset(c);
    if (!bus_register(io_bus, 0x60, 1, i8042_data_io, c, "i8042", errp) ||
        !bus_register(io_bus, 0x64, 1, i8042_command_io, c, "i8042", errp) ||
        !device_state_register(states, "i8042", I8042_STATE_VERSION, &i8042_state_ops, c,
                               errp)) {
        g_free(c);
        return NULL;
    }
    return c;
}

void i8042_free(I8042 *c)
{
    g_free(c);
}
