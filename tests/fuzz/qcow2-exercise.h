/*
 * What the qcow2 fuzz target (tests/fuzz/fuzz-qcow2.c) does with one
 * input image: open it (as qcow2, then probed and read-only), then read,
 * write, zero, discard and flush around it.  Errors are fine; crashes,
 * hangs and sanitizer reports are not.
 */
#ifndef TESTS_FUZZ_QCOW2_EXERCISE_H
#define TESTS_FUZZ_QCOW2_EXERCISE_H

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "block/block.h"

static void fuzz_exercise_io(BlockDriverState *bs)
{
    static uint8_t buf[3 * 65536 + 7];
    uint64_t size = bdrv_getlength(bs);
    const uint64_t lens[] = { 512, 4096, 65536 + 3, sizeof(buf) };
    const uint64_t offsets[] = { 0, 511, size / 3, size / 2 + 4093, size - 1 };

    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            uint64_t off = offsets[i], len = lens[j];

            if (off >= size) {
                continue;
            }
            len = len < size - off ? len : size - off;
            bdrv_pread(bs, off, buf, len);
            memset(buf, (int)(i * 7 + j), len);
            if (j % 2 == 0) {
                bdrv_pwrite(bs, off, buf, len);
            }
            bdrv_pread(bs, off, buf, len);
        }
    }
    bdrv_write_zeroes(bs, size / 4, size / 8, true);
    bdrv_write_zeroes(bs, size / 5, 70000 < size / 5 ? 70000 : 0, false);
    bdrv_discard(bs, size / 2, size / 4);
    bdrv_flush(bs);
    bdrv_pread(bs, size / 4, buf, 4096 < size / 4 ? 4096 : size / 4);
}

/* What a guest would read first: the size and a CRC of the first MiB. */
static void fuzz_report_contents(BlockDriverState *bs, FILE *report)
{
    static uint8_t buf[1 << 20];
    uint64_t size = bdrv_getlength(bs);
    size_t len = size < sizeof(buf) ? size : sizeof(buf);
    int ret = bdrv_pread(bs, 0, buf, len);

    if (ret < 0) {
        fprintf(report, "ok size=%llu read error %d", (unsigned long long)size, ret);
        return;
    }
    fprintf(report, "ok size=%llu crc=%08lx%s", (unsigned long long)size,
            crc32(0, buf, len), bdrv_backing_filename(bs) ? " backed" : "");
}

/*
 * Opens the image as qcow2, then probed read-only, exercising each open
 * that succeeds; with a report, says per open what it gave.
 */
static void fuzz_exercise_image(const char *path, FILE *report)
{
    const char *formats[] = { "qcow2", NULL };

    for (int f = 0; f < 2; f++) {
        BlockOptions opts = {
            .filename = path,
            .format = formats[f],
            .cache = BLOCK_CACHE_UNSAFE,
            .discard_unmap = true,
            .read_only = f == 1, /* probed, read-only: no raw warning */
        };
        GError *err = NULL;
        BlockDriverState *bs = bdrv_open(&opts, &err);

        if (report) {
            fprintf(report, "%s%s: ", f ? "; " : "", f ? "probed" : "qcow2");
        }
        if (!bs) {
            if (report) {
                fprintf(report, "refused: %s", err->message);
            }
            g_error_free(err);
            continue;
        }
        if (report) {
            fuzz_report_contents(bs, report);
        }
        fuzz_exercise_io(bs);
        bdrv_close(bs);
    }
}

#endif
