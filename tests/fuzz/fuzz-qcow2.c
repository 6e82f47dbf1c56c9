/*
 * The qcow2 driver's untrusted input is the image itself, and the image
 * its backing file names.  An input is one image, or two joined as
 *
 *     "QCOW2CHAIN\n" | top length (u32 LE) | top image | base image
 *
 * written to top.qcow2 and base.qcow2 in a private directory (a top whose
 * backing file name is "base.qcow2" opens on that base).  The top is
 * opened as qcow2 and then probed read-only; each open that succeeds is
 * read, written, zeroed, discarded and flushed around (qcow2-exercise.h).
 * Replayed, the outcome says per open what the guest would have seen: the
 * size and a CRC of the first MiB, or the error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "fuzz.h"
#include "qcow2-exercise.h"

#define CHAIN_MAGIC "QCOW2CHAIN\n"

static char *dir, *top_path, *base_path;

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    GError *err = NULL;

    if (!g_file_set_contents(path, (const char *)data, len, &err)) {
        fprintf(stderr, "fuzz-qcow2: %s\n", err->message);
        abort();
    }
}

static void cleanup(void)
{
    g_unlink(top_path);
    g_unlink(base_path);
    g_rmdir(dir);
}

static void setup(void)
{
    GError *err = NULL;

    dir = g_dir_make_tmp("fuzz-qcow2-XXXXXX", &err);
    if (!dir) {
        fprintf(stderr, "fuzz-qcow2: %s\n", err->message);
        abort();
    }
    top_path = g_build_filename(dir, "top.qcow2", NULL);
    base_path = g_build_filename(dir, "base.qcow2", NULL);
    atexit(cleanup);
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    size_t magic = strlen(CHAIN_MAGIC);

    if (!dir) {
        setup();
    }
    g_unlink(base_path);
    if (size >= magic + 4 && memcmp(data, CHAIN_MAGIC, magic) == 0) {
        uint32_t top_len = data[magic] | data[magic + 1] << 8 | data[magic + 2] << 16 |
                           (uint32_t)data[magic + 3] << 24;

        data += magic + 4;
        size -= magic + 4;
        if (top_len > size) {
            if (report) {
                fprintf(report, "refused: chain header: top length %u > %zu bytes",
                        top_len, size);
            }
            return;
        }
        write_file(base_path, data + top_len, size - top_len);
        size = top_len;
    }
    write_file(top_path, data, size);
    if (!report) {
        fuzz_exercise_image(top_path, NULL);
        return;
    }
    /* the private directory's name changes per run: say DIR instead */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);

    fuzz_exercise_image(top_path, mem);
    fclose(mem);
    gchar **parts = g_strsplit(text, dir, -1);
    gchar *joined = g_strjoinv("DIR", parts);

    fputs(joined, report);
    g_free(joined);
    g_strfreev(parts);
    free(text);
}
