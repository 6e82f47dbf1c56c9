/*
 * Host IRQs of a passed-through device's vectors and their affinity: Linux
 * names the IRQ it requests for vector N of a vfio-pci device
 * "vfio-msix[N](BDF)" or "vfio-msi[N](BDF)" in /proc/interrupts, and
 * /proc/irq/IRQ/smp_affinity_list steers it.  The /proc root is a
 * parameter so that tests give a fake one.  Any thread; no state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hw/vfio-pci.h"
#include "util/error.h"

int vfio_host_irq(const char *proc_root, const char *bdf, bool msix, unsigned vector)
{
    char *path = g_strdup_printf("%s/interrupts", proc_root);
    char *name = g_strdup_printf("vfio-%s[%u](%s)", msix ? "msix" : "msi", vector, bdf);
    char *text = NULL;
    int irq = -1;

    if (g_file_get_contents(path, &text, NULL, NULL)) {
        char **lines = g_strsplit(text, "\n", -1);

        for (char **l = lines; *l && irq < 0; l++) {
            char **words = g_strsplit_set(g_strstrip(*l), " \t", -1);
            guint n = g_strv_length(words);
            char *end;
            long v;

            /* "35:  0  0  IR-PCI-MSI 16384-edge  vfio-msix[0](0000:01:00.0)" */
            if (n >= 2 && strcmp(words[n - 1], name) == 0) {
                v = strtol(words[0], &end, 10);
                if (end != words[0] && *end == ':' && v >= 0 && v < 1 << 24) {
                    irq = v;
                }
            }
            g_strfreev(words);
        }
        g_strfreev(lines);
    }
    g_free(text);
    g_free(name);
    g_free(path);
    return irq;
}

bool vfio_host_irq_remapped(const char *proc_root, int irq)
{
    char *path = g_strdup_printf("%s/interrupts", proc_root);
    char *prefix = g_strdup_printf("%d:", irq);
    char *text = NULL;
    bool remapped = false;

    if (g_file_get_contents(path, &text, NULL, NULL)) {
        char **lines = g_strsplit(text, "\n", -1);

        for (char **l = lines; *l; l++) {
            const char *s = g_strstrip(*l);
            if (g_str_has_prefix(s, prefix)) {
                /* the chip name: IR-PCI-MSI (VT-d), AMD-IR-... */
                remapped = strstr(s, "IR-") != NULL;
                break;
            }
        }
        g_strfreev(lines);
    }
    g_free(text);
    g_free(prefix);
    g_free(path);
    return remapped;
}

bool vfio_host_irq_set_affinity(const char *proc_root, int irq, int pcpu, GError **errp)
{
    char *path = g_strdup_printf("%s/irq/%d/smp_affinity_list", proc_root, irq);
    char value[16];
    FILE *f = fopen(path, "w");
    bool ok = f != NULL;

    g_snprintf(value, sizeof(value), "%d\n", pcpu);
    ok = ok && fputs(value, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok) {
        error_setg_errno(errp, errno, "%s: cannot steer IRQ %d to CPU %d", path, irq,
                         pcpu);
    }
    g_free(path);
    return ok;
}

char *vfio_host_irq_affinity(const char *proc_root, int irq)
{
    char *path = g_strdup_printf("%s/irq/%d/smp_affinity_list", proc_root, irq);
    char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        text = NULL;
    } else {
        g_strstrip(text);
    }
    g_free(path);
    return text;
}
