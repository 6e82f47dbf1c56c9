/*
 * -smp parsing and topology checks, following QEMU 7.2's rules: omitted
 * members are computed from the given ones, cores preferred over sockets,
 * and the same error texts.
 */
#include <string.h>

#include "system/config.h"
#include "util/error.h"
#include "util/subopt.h"

static bool smp_get(SubOpts *o, const char *key, unsigned *out, bool *zero, GError **errp)
{
    const char *v = subopts_get(o, key);
    uint64_t n;

    *out = 0;
    if (!v) {
        return true;
    }
    if (!parse_uint_value(key, v, &n, NULL) || n > 0xffffffffu) {
        error_setg(errp, "Parameter 'smp.%s' expects integer", key);
        return false;
    }
    *zero |= n == 0;
    *out = n;
    return true;
}

bool smp_parse_opts(SmpConfig *smp, SubOpts *o, GError **errp)
{
    static const char *const keys[] = { "cpus",  "sockets", "dies",
                                        "cores", "threads", "maxcpus" };
    unsigned cpus, sockets, dies, cores, threads, maxcpus;
    unsigned *slots[] = { &cpus, &sockets, &dies, &cores, &threads, &maxcpus };
    bool zero = false;

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (!smp_get(o, keys[i], slots[i], &zero, errp)) {
            return false;
        }
    }
    for (guint i = 0; i < o->items->len; i++) {
        SubOpt *item = &g_array_index(o->items, SubOpt, i);
        if (!item->used) {
            error_setg(errp, "Parameter 'smp.%s' is unexpected", item->key);
            return false;
        }
    }
    if (zero) {
        /* QEMU 7.2 warns and treats a zero as omitted */
        warn_report("Deprecated CPU topology (considered invalid): CPU "
                    "topology parameters must be greater than zero");
    }
    if (dies > 1) {
        error_setg(errp, "dies not supported by this machine's CPU topology");
        return false;
    }
    dies = 1;
    if (cpus == 0 && maxcpus == 0) {
        sockets = sockets ? sockets : 1;
        cores = cores ? cores : 1;
        threads = threads ? threads : 1;
    } else {
        maxcpus = maxcpus ? maxcpus : cpus;
        if (cores == 0) {
            sockets = sockets ? sockets : 1;
            threads = threads ? threads : 1;
            cores = maxcpus / (sockets * dies * threads);
        } else if (sockets == 0) {
            threads = threads ? threads : 1;
            sockets = maxcpus / (dies * cores * threads);
        }
        if (threads == 0) {
            threads = maxcpus / (sockets * dies * cores);
        }
    }
    maxcpus = maxcpus ? maxcpus : sockets * dies * cores * threads;
    cpus = cpus ? cpus : maxcpus;

    if ((uint64_t)sockets * dies * cores * threads != maxcpus) {
        error_setg(errp,
                   "Invalid CPU topology: product of the hierarchy must "
                   "match maxcpus: sockets (%u) * dies (%u) * cores (%u) * "
                   "threads (%u) != maxcpus (%u)",
                   sockets, dies, cores, threads, maxcpus);
        return false;
    }
    if (maxcpus < cpus) {
        error_setg(errp,
                   "Invalid CPU topology: maxcpus must be equal to or "
                   "greater than smp: sockets (%u) * dies (%u) * cores (%u) * "
                   "threads (%u) == maxcpus (%u) < smp_cpus (%u)",
                   sockets, dies, cores, threads, maxcpus, cpus);
        return false;
    }
    if (cpus > MACHINE_MAX_CPUS) {
        error_setg(errp,
                   "Invalid SMP CPUs %u. The max CPUs supported by "
                   "machine 'pc' is %d",
                   cpus, MACHINE_MAX_CPUS);
        return false;
    }
    if (maxcpus > MACHINE_MAX_CPUS) {
        error_setg(errp,
                   "Invalid SMP CPUs %u. The max CPUs supported by "
                   "machine 'pc' is %d",
                   maxcpus, MACHINE_MAX_CPUS);
        return false;
    }
    if (maxcpus != cpus) {
        error_setg(errp,
                   "CPU hotplug is not supported: maxcpus (%u) must "
                   "equal cpus (%u)",
                   maxcpus, cpus);
        return false;
    }
    *smp = (SmpConfig){ cpus, sockets, dies, cores, threads, maxcpus };
    return true;
}

bool smp_parse(SmpConfig *smp, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "cpus", errp);
    bool ok = o && smp_parse_opts(smp, o, errp);

    if (o) {
        subopts_free(o);
    }
    return ok;
}
