/*
 * Replays seed files through a fuzz target (fuzz.h), printing
 * "NAME: OUTCOME" per file, NAME being the file's base name.  Built with
 * ASan+UBSan (`make fuzz-replay`); a sanitizer report ends the run with a
 * non-zero status, as does a file that cannot be read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "fuzz.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEED...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        GError *err = NULL;
        gchar *data = NULL, *base;
        gsize len = 0;

        if (!g_file_get_contents(argv[i], &data, &len, &err)) {
            fprintf(stderr, "%s\n", err->message);
            g_error_free(err);
            return 1;
        }
        base = g_path_get_basename(argv[i]);
        printf("%s: ", base);
        fflush(stdout);
        fuzz_target((const uint8_t *)data, len, stdout);
        printf("\n");
        fflush(stdout);
        g_free(base);
        g_free(data);
    }
    return 0;
}
