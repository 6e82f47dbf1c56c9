/*
 * libFuzzer target for the qcow2 metadata parser and I/O paths: each input
 * is an image file (in a memfd) that is opened and exercised as the corpus
 * replay does it (qcow2-exercise.h).  Build and run: tests/fuzz/README.md.
 * Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qcow2-exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static int fd = -1;

    if (fd < 0) {
        fd = memfd_create("fuzz-qcow2", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        abort();
    }
    fuzz_exercise_image(path);
    return 0;
}
