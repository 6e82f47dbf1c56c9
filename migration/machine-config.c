/*
 * The CONFIG section, which both halves of a migration use: the source
 * describes the machine's shape (RAM layout, vCPU topology) as JSON and
 * the destination refuses a stream whose shape differs from its own.
 * No locking: the shape does not change once the machine is built.
 */
#include <stdlib.h>
#include <string.h>

#include "migration-int.h"
#include "util/error.h"

/* The same JSON on both sides, so that they can be compared. */
static json_t *machine_config_json(Machine *m)
{
    const SmpConfig *smp = &m->cfg->smp;

    return json_pack("{s:I,s:I,s:I,s:i,s:i,s:i,s:i}", "ram-size", (json_int_t)m->ram_size,
                     "below-4g", (json_int_t)m->below_4g, "above-4g",
                     (json_int_t)m->above_4g, "cpus", (int)m->nr_vcpus, "sockets",
                     (int)smp->sockets, "cores", (int)smp->cores, "threads",
                     (int)smp->threads);
}

bool migration_config_write(int fd, Machine *m, GError **errp)
{
    json_t *cfg = machine_config_json(m);
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    bool ok = mig_write_section(fd, SEC_CONFIG, "config", 1, (uint8_t *)text,
                                strlen(text), errp);

    free(text);
    json_decref(cfg);
    return ok;
}

bool migration_config_check(Machine *m, const MigSection *s, GError **errp)
{
    json_t *mine = machine_config_json(m);
    json_error_t jerr;
    json_t *theirs = json_loadb((const char *)s->payload->data, s->payload->len, 0,
                                &jerr);
    bool ok = theirs && json_equal(mine, theirs);

    if (!ok) {
        char *a = json_dumps(mine, JSON_COMPACT | JSON_SORT_KEYS);
        char *b = theirs ? json_dumps(theirs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        error_setg(errp, "the source machine %s does not match this one %s",
                   b ? b : "(unreadable)", a);
        free(a);
        free(b);
    }
    json_decref(mine);
    json_decref(theirs);
    return ok;
}
