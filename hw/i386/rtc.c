/*
 * The MC146818 RTC and its CMOS memory (ports 0x70/0x71): the time of day
 * from the host clock, and the CMOS bytes firmware reads (memory sizes,
 * CPU count, boot order) as QEMU's pc fills them.  No RTC interrupts.
 * Handlers run with the machine lock held.
 */
#include <string.h>
#include <time.h>

#include "hw/i386/pc.h"
#include "util/error.h"

#define RTC_REG_A         0x0a
#define RTC_REG_B         0x0b
#define RTC_REG_C         0x0c
#define RTC_REG_D         0x0d
#define RTC_B_24H         0x02
#define RTC_B_BIN         0x04
#define RTC_STATE_VERSION 1

struct Rtc {
    uint8_t index;
    uint8_t cmos[128];
    int64_t offset_s; /* guest time minus host time */
};

static uint8_t to_bcd(const Rtc *rtc, int v)
{
    return (rtc->cmos[RTC_REG_B] & RTC_B_BIN) ? v : ((v / 10) << 4) | (v % 10);
}

static int from_bcd(const Rtc *rtc, uint8_t v)
{
    return (rtc->cmos[RTC_REG_B] & RTC_B_BIN) ? v : (v >> 4) * 10 + (v & 15);
}

static struct tm rtc_now(const Rtc *rtc)
{
    time_t t = time(NULL) + rtc->offset_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    return tm;
}

static uint8_t rtc_time_reg(Rtc *rtc, uint8_t reg)
{
    struct tm tm = rtc_now(rtc);
    int hour = tm.tm_hour;

    switch (reg) {
    case 0x00:
        return to_bcd(rtc, tm.tm_sec);
    case 0x02:
        return to_bcd(rtc, tm.tm_min);
    case 0x04:
        if (!(rtc->cmos[RTC_REG_B] & RTC_B_24H)) {
            bool pm = hour >= 12;
            hour = hour % 12 ? hour % 12 : 12;
            return to_bcd(rtc, hour) | (pm ? 0x80 : 0);
        }
        return to_bcd(rtc, hour);
    case 0x06:
        return to_bcd(rtc, tm.tm_wday + 1);
    case 0x07:
        return to_bcd(rtc, tm.tm_mday);
    case 0x08:
        return to_bcd(rtc, tm.tm_mon + 1);
    case 0x09:
        return to_bcd(rtc, tm.tm_year % 100);
    default: /* 0x32, the century */
        return to_bcd(rtc, (tm.tm_year + 1900) / 100);
    }
}

/* A guest setting the clock moves our offset from the host clock. */
static void rtc_set_time_reg(Rtc *rtc, uint8_t reg, uint8_t value)
{
    struct tm tm = rtc_now(rtc);
    int v = from_bcd(rtc, value & (reg == 0x04 ? 0x7f : 0xff));
    time_t before = timegm(&tm);

    switch (reg) {
    case 0x00:
        tm.tm_sec = v;
        break;
    case 0x02:
        tm.tm_min = v;
        break;
    case 0x04:
        tm.tm_hour = v % 24;
        break;
    case 0x07:
        tm.tm_mday = v;
        break;
    case 0x08:
        tm.tm_mon = v - 1;
        break;
    case 0x09:
        tm.tm_year = (tm.tm_year / 100) * 100 + v;
        break;
    default:
        return;
    }
    rtc->offset_s += timegm(&tm) - before;
}

static bool is_time_reg(uint8_t reg)
{
    return reg <= 0x09 ? !(reg & 1) || reg == 0x07 || reg == 0x09 : reg == 0x32;
}

static void rtc_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                   bool is_write)
{
    Rtc *rtc = opaque;
    uint8_t reg = rtc->index & 0x7f;

    if (offset == 0) {
        if (is_write) {
            rtc->index = data[0];
        } else {
            memset(data, 0xff, len);
        }
        return;
    }
    if (is_write) {
        if (is_time_reg(reg) && reg != 0x06) {
            rtc_set_time_reg(rtc, reg, data[0]);
        } else if (reg != RTC_REG_C && reg != RTC_REG_D) {
            rtc->cmos[reg] = reg == RTC_REG_A ? data[0] & 0x7f : data[0];
        }
        return;
    }
    memset(data, 0, len);
    if (is_time_reg(reg)) {
        data[0] = rtc_time_reg(rtc, reg);
    } else if (reg == RTC_REG_C) {
        data[0] = rtc->cmos[reg];
        rtc->cmos[reg] = 0; /* reading C acknowledges */
    } else {
        data[0] = rtc->cmos[reg];
    }
}

static void cmos_put16(Rtc *rtc, uint8_t reg, unsigned v)
{
    rtc->cmos[reg] = v & 0xff;
    rtc->cmos[reg + 1] = (v >> 8) & 0xff;
}

/* The CMOS bytes QEMU's pc machine fills for its firmware. */
static void rtc_fill_cmos(Rtc *rtc, const RtcMachineInfo *info)
{
    uint64_t below_4g = info->below_4g;
    uint64_t ext = below_4g > (1 << 20) ? (below_4g - (1 << 20)) >> 10 : 0;
    uint64_t above16 = below_4g > (16 << 20) ? (below_4g - (16 << 20)) >> 16 : 0;
    uint64_t high = info->above_4g >> 16;

    memset(rtc->cmos, 0, sizeof(rtc->cmos));
    rtc->cmos[RTC_REG_A] = 0x26;
    rtc->cmos[RTC_REG_B] = RTC_B_24H;
    rtc->cmos[RTC_REG_D] = 0x80; /* battery good */
    rtc->cmos[0x14] = 0x02;      /* equipment: FPU, no floppy */
    cmos_put16(rtc, 0x15, 640);  /* base memory, KiB */
    cmos_put16(rtc, 0x17, MIN(ext, 0xffff));
    cmos_put16(rtc, 0x30, MIN(ext, 0xffff));
    cmos_put16(rtc, 0x34, MIN(above16, 0xffff));
    rtc->cmos[0x5b] = high & 0xff;
    rtc->cmos[0x5c] = (high >> 8) & 0xff;
    rtc->cmos[0x5d] = (high >> 16) & 0xff;
    rtc->cmos[0x5f] = info->nr_cpus - 1;
    rtc->cmos[0x3d] = 0x02; /* boot from the hard disk first */
    rtc->cmos[0x38] = 0x01; /* no floppy signature check */
}

static bool rtc_save(void *opaque, GByteArray *out, GError **errp)
{
    Rtc *rtc = opaque;
    int64_t off = GINT64_TO_LE(rtc->offset_s);

    g_byte_array_append(out, &rtc->index, 1);
    g_byte_array_append(out, rtc->cmos, sizeof(rtc->cmos));
    g_byte_array_append(out, (guint8 *)&off, sizeof(off));
    return true;
}

static bool rtc_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp)
{
    Rtc *rtc = opaque;
    int64_t off;

    if (version != RTC_STATE_VERSION || len != 1 + sizeof(rtc->cmos) + sizeof(off)) {
        error_setg(errp, "rtc: state version %u, %zu bytes: not understood", version,
                   len);
        return false;
    }
    rtc->index = buf[0];
    memcpy(rtc->cmos, buf + 1, sizeof(rtc->cmos));
    memcpy(&off, buf + 1 + sizeof(rtc->cmos), sizeof(off));
    rtc->offset_s = GINT64_FROM_LE(off);
    return true;
}

static const DeviceStateOps rtc_state_ops = { .save = rtc_save, .load = rtc_load };

Rtc *rtc_new(Bus *io_bus, DeviceStateList *states, const RtcMachineInfo *info,
             GError **errp)
{
    Rtc *rtc = g_new0(Rtc, 1);

    rtc_fill_cmos(rtc, info);
    if (!bus_register(io_bus, 0x70, 2, rtc_io, rtc, "rtc", errp) ||
        !device_state_register(states, "rtc", RTC_STATE_VERSION, &rtc_state_ops, rtc,
                               errp)) {
        g_free(rtc);
        return NULL;
    }
    return rtc;
}

void rtc_free(Rtc *rtc)
{
    g_free(rtc);
}
