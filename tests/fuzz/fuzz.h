/*
 * The one function every fuzz target (tests/fuzz/fuzz-NAME.c) defines.
 *
 * Two drivers call it: libfuzzer-main.c under libFuzzer (`make fuzz`,
 * report NULL: nothing is printed) and replay-main.c, which replays the
 * seed corpus under ASan+UBSan in `make check` and passes stdout: the
 * target then writes ONE line, without its newline, saying what became
 * of the input ("ok: ..." or "refused: <the error the VMM gives>").
 * The line must be deterministic (no addresses, times or pids), since
 * tests/fuzz/corpus-NAME.expect holds the line each seed must give.
 */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void fuzz_target(const uint8_t *data, size_t size, FILE *report);

/* An input read front to back as a stream of fields. */
typedef struct Reader {
    const uint8_t *data;
    size_t size, pos;
} Reader;

/* The next len bytes into out; false (and the input used up) when short. */
static inline bool take(Reader *r, void *out, size_t len)
{
    if (r->size - r->pos < len) {
        r->pos = r->size;
        return false;
    }
    memcpy(out, r->data + r->pos, len);
    r->pos += len;
    return true;
}

#endif
