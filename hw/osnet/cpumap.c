/*
 * map.txt: one "vcpu pcpu" pair per line (blank lines, '#' comments and
 * CRLF allowed), checked strictly: every vCPU mapped exactly once, every
 * pCPU online and allowed to this process.  Pure functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/osnet.h"
#include "util/error.h"

bool osnet_parse_cpu_list(const char *text, cpu_set_t *set)
{
    char **parts = g_strsplit(text, ",", -1);
    bool ok = true;

    CPU_ZERO(set);
    for (char **p = parts; *p && ok; p++) {
        char *s = g_strstrip(*p), *end;
        unsigned long lo, hi;

        if (!*s) {
            continue;
        }
        lo = strtoul(s, &end, 10);
        hi = lo;
        if (*end == '-') {
            hi = strtoul(end + 1, &end, 10);
        }
        if (*end || end == s || hi < lo || hi >= CPU_SETSIZE) {
            ok = false;
            break;
        }
        for (unsigned long c = lo; c <= hi; c++) {
            CPU_SET(c, set);
        }
    }
    g_strfreev(parts);
    return ok;
}

/* Parse a whole decimal number (no sign, no junk); false otherwise. */
static bool parse_index(const char *s, long *out)
{
    char *end;

    if (!g_ascii_isdigit(s[0])) {
        return false;
    }
    errno = 0;
    *out = strtol(s, &end, 10);
    return !errno && !*end && *out < (1L << 20);
}

bool osnet_cpumap_parse_text(const char *path, const char *text, unsigned nr_vcpus,
                             const cpu_set_t *allowed, const cpu_set_t *online,
                             OsnetCpuMap *map, GString *warnings, GError **errp)
{
    char **lines = g_strsplit(text, "\n", -1);
    int *pcpu = g_new(int, nr_vcpus ? nr_vcpus : 1);
    unsigned *line_of = g_new0(unsigned, nr_vcpus ? nr_vcpus : 1);
    bool ok = false;

    for (unsigned i = 0; i < nr_vcpus; i++) {
        pcpu[i] = -1;
    }
    for (unsigned n = 0; lines[n]; n++) {
        char *line = lines[n];
        char *hash = strchr(line, '#');
        char **words;
        long vcpu, cpu;
        unsigned lineno = n + 1;

        if (hash) {
            *hash = '\0';
        }
        words = g_strsplit_set(g_strstrip(line), " \t\r", -1);
        /* drop empty fields left by repeated separators */
        unsigned count = 0;
        for (unsigned i = 0; words[i]; i++) {
            if (*words[i]) {
                words[count++] = words[i];
            } else {
                g_free(words[i]);
            }
        }
        words[count] = NULL;
        if (count == 0) {
            g_strfreev(words);
            continue;
        }
        if (count != 2 || !parse_index(words[0], &vcpu) || !parse_index(words[1], &cpu)) {
            error_setg(errp, "%s:%u: expected two numbers, 'vcpu pcpu'", path, lineno);
            g_strfreev(words);
            goto out;
        }
        g_strfreev(words);
        if ((unsigned long)vcpu >= nr_vcpus) {
            error_setg(errp, "%s:%u: vCPU %ld does not exist (the VM has %u: 0-%u)", path,
                       lineno, vcpu, nr_vcpus, nr_vcpus - 1);
            goto out;
        }
        if (pcpu[vcpu] >= 0) {
            error_setg(errp, "%s:%u: vCPU %ld is listed twice (first on line %u)", path,
                       lineno, vcpu, line_of[vcpu]);
            goto out;
        }
        if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, online)) {
            error_setg(errp, "%s:%u: pCPU %ld is not online", path, lineno, cpu);
            goto out;
        }
        if (!CPU_ISSET(cpu, allowed)) {
            error_setg(errp,
                       "%s:%u: pCPU %ld is outside the CPUs this process may "
                       "use (see taskset/cpuset)",
                       path, lineno, cpu);
            goto out;
        }
        pcpu[vcpu] = cpu;
        line_of[vcpu] = lineno;
    }
    for (unsigned i = 0; i < nr_vcpus; i++) {
        if (pcpu[i] < 0) {
            error_setg(errp, "%s: vCPU %u has no pCPU (every vCPU must be mapped)", path,
                       i);
            goto out;
        }
        for (unsigned j = 0; j < i && warnings; j++) {
            if (pcpu[j] == pcpu[i]) {
                g_string_append_printf(warnings,
                                       "%s: vCPUs %u and %u share pCPU %d: "
                                       "those cores are not dedicated\n",
                                       path, j, i, pcpu[i]);
            }
        }
    }
    map->path = g_strdup(path);
    map->nr_vcpus = nr_vcpus;
    map->pcpu = pcpu;
    pcpu = NULL;
    ok = true;
out:
    g_free(pcpu);
    g_free(line_of);
    g_strfreev(lines);
    return ok;
}

bool osnet_cpumap_parse(const char *path, unsigned nr_vcpus, const cpu_set_t *allowed,
                        const cpu_set_t *online, OsnetCpuMap *map, GString *warnings,
                        GError **errp)
{
    GString *text = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    bool ok = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        error_setg(errp, "%s: cannot read the cpumap: %s", path, g_strerror(errno));
        goto out;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0 && text->len < (1 << 20)) {
        g_string_append_len(text, buf, n);
    }
    if (n < 0) {
        error_setg(errp, "%s: cannot read the cpumap: %s", path, g_strerror(errno));
        goto out;
    }
    if (text->len >= (1 << 20)) {
        error_setg(errp, "%s: too large for a cpumap", path);
        goto out;
    }
    if (memchr(text->str, '\0', text->len)) {
        error_setg(errp, "%s: not a text file (it holds a NUL byte)", path);
        goto out;
    }
    ok = osnet_cpumap_parse_text(path, text->str, nr_vcpus, allowed, online, map,
                                 warnings, errp);
out:
    if (fd >= 0) {
        close(fd);
    }
    g_string_free(text, TRUE);
    return ok;
}

void osnet_cpumap_clear(OsnetCpuMap *map)
{
    g_free(map->path);
    g_free(map->pcpu);
    memset(map, 0, sizeof(*map));
}
