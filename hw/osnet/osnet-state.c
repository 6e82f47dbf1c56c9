/*
 * osnet's migration state: whether DID was on at the source's final stop,
 * so that the destination switches it on again once the guest is there.
 * An optional section ("osnet", DeviceStateOps.needed): sent only by a
 * source started with DID, so a stream from a source without DID, or from
 * a VMM that predates the section, loads as before.  Save and load run
 * with the VM stopped (the machine lock held); parse is pure.
 */
#include <string.h>

#include "hw/osnet.h"
#include "util/error.h"

bool osnet_state_parse(const uint8_t *buf, size_t len, uint32_t version,
                       OsnetMigState *st, GError **errp)
{
    uint32_t flags;

    if (version != OSNET_STATE_VERSION) {
        error_setg(errp, "osnet state: version %u is not this VMM's %u", version,
                   OSNET_STATE_VERSION);
        return false;
    }
    if (len != sizeof(flags)) {
        error_setg(errp, "osnet state: %zu bytes, expected %zu", len, sizeof(flags));
        return false;
    }
    memcpy(&flags, buf, sizeof(flags));
    flags = GUINT32_FROM_LE(flags);
    if (flags & ~OSNET_STATE_KNOWN) {
        error_setg(errp, "osnet state: unknown flags 0x%x", flags & ~OSNET_STATE_KNOWN);
        return false;
    }
    st->flags = flags;
    return true;
}

bool osnet_state_apply(OsnetState *os, const OsnetMigState *st, GError **errp)
{
    bool on = st->flags & OSNET_STATE_DID_ON;

    /*
     * Exits can only be given to the guest when the VM is created, and the
     * guest saw CPUID bits (MWAIT) that go with them: a destination started
     * without DID cannot go on as the source was.  Refused, as a machine
     * that differs from the source's (the source then runs on, DID back).
     */
    if (on && !os->did.requested) {
        error_setg(errp, "the source had direct interrupt delivery on: start the "
                         "destination with -osnet_cpumap path=FILE,did=on or "
                         "-overcommit cpu-pm=on");
        return false;
    }
    os->incoming_did = on;
    return true;
}

static bool osnet_state_save(void *opaque, GByteArray *out, GError **errp)
{
    OsnetState *os = opaque;
    uint32_t flags = GUINT32_TO_LE(os->did.off_for_migration ? OSNET_STATE_DID_ON : 0);

    g_byte_array_append(out, (const guint8 *)&flags, sizeof(flags));
    return true;
}

static bool osnet_state_load(void *opaque, const uint8_t *buf, size_t len,
                             uint32_t version, GError **errp)
{
    OsnetMigState st;

    return osnet_state_parse(buf, len, version, &st, errp) &&
           osnet_state_apply(opaque, &st, errp);
}

/* Only a source started with DID has anything to say. */
static bool osnet_state_needed(void *opaque)
{
    OsnetState *os = opaque;

    return os->did.requested;
}

static const DeviceStateOps osnet_state_ops = {
    .save = osnet_state_save,
    .load = osnet_state_load,
    .needed = osnet_state_needed,
};

bool osnet_register_state(OsnetState *os, DeviceStateList *states, GError **errp)
{
    return device_state_register(states, "osnet", OSNET_STATE_VERSION, &osnet_state_ops,
                                 os, errp);
}
