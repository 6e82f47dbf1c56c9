/*
 * Fuzz target: the -osnet_cpumap map.txt parser (hw/osnet/cpumap.c).
 * Each input is the file's contents, read through osnet_cpumap_parse()
 * from a memfd (so the size and NUL checks run too) for a VM of 4 vCPUs
 * on a host whose online pCPUs are 0-7, of which this process may use
 * 0-5: fixed sets, so that outcomes do not depend on the machine.  A
 * comment line "# vcpus=N" (1-64) sets another vCPU count; the parser
 * ignores it like any comment.
 *
 * Outcome: "ok: vcpu0=cpuA vcpu1=cpuB ... warnings=N" or
 * "refused: <the error>", with the memfd's path shown as "map.txt".
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "hw/osnet.h"

static unsigned vcpus_wanted(const uint8_t *data, size_t size)
{
    static const char key[] = "# vcpus=";
    const char *p = memmem(data, size, key, sizeof(key) - 1);
    unsigned n = 0;

    if (!p) {
        return 4;
    }
    p += sizeof(key) - 1;
    while (p < (const char *)data + size && g_ascii_isdigit(*p) && n <= 64) {
        n = n * 10 + (*p++ - '0');
    }
    return n >= 1 && n <= 64 ? n : 4;
}

/* text with every occurrence of path replaced by "map.txt" */
static char *hide_path(const char *text, const char *path)
{
    char **parts = g_strsplit(text, path, -1);
    char *out = g_strjoinv("map.txt", parts);

    g_strfreev(parts);
    return out;
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    static int fd = -1;
    static char path[64];
    cpu_set_t online, allowed;
    OsnetCpuMap map = { 0 };
    GString *warnings = g_string_new(NULL);
    GError *err = NULL;
    unsigned nr_vcpus = vcpus_wanted(data, size);

    if (fd < 0) {
        fd = memfd_create("fuzz-cpumap", MFD_CLOEXEC);
        g_assert(fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        abort();
    }
    CPU_ZERO(&online);
    CPU_ZERO(&allowed);
    for (int c = 0; c < 8; c++) {
        CPU_SET(c, &online);
        if (c < 6) {
            CPU_SET(c, &allowed);
        }
    }
    if (!osnet_cpumap_parse(path, nr_vcpus, &allowed, &online, &map, warnings, &err)) {
        if (report) {
            char *msg = hide_path(err->message, path);

            fprintf(report, "refused: %s", msg);
            g_free(msg);
        }
        g_error_free(err);
        g_string_free(warnings, TRUE);
        return;
    }
    /* what the parser accepted must be what was asked for */
    g_assert(map.nr_vcpus == nr_vcpus && map.path && strcmp(map.path, path) == 0);
    for (unsigned i = 0; i < map.nr_vcpus; i++) {
        g_assert(map.pcpu[i] >= 0 && map.pcpu[i] < 6);
    }
    if (report) {
        unsigned nwarn = 0;

        fprintf(report, "ok:");
        for (unsigned i = 0; i < map.nr_vcpus; i++) {
            fprintf(report, " vcpu%u=cpu%d", i, map.pcpu[i]);
        }
        for (const char *p = warnings->str; (p = strchr(p, '\n')); p++) {
            nwarn++;
        }
        fprintf(report, " warnings=%u", nwarn);
    }
    osnet_cpumap_clear(&map);
    g_string_free(warnings, TRUE);
}
