/*
 * Fuzz target: the bytes a human monitor client sends over telnet
 * (-monitor telnet:...,server).  Each input is one session on a machine
 * without KVM (monitor-fake.h): the banner, then the input through the
 * chardev's telnet decoder (IAC commands, option negotiation,
 * subnegotiation, CR NUL) into the line editor (backspace, arrows,
 * history, CR LF) and the command parser and handlers.
 *
 * As for QMP, the input is delivered twice, in 4096-byte reads and in
 * small reads of varying size, and the two outputs must be equal byte for
 * byte; the replay and the fuzzer abort when they are not.
 *
 * Outcome: "ok: prompts=N unknown=N [quit] bytes=N crc=X": prompts on a
 * fresh line after the banner's (one per line entered, none after quit),
 * "unknown command" answers, whether the VMM quit, and the size and crc32
 * of everything the client was sent.  FUZZ_TRANSCRIPT=1 in the
 * environment prints that output on stderr when replaying.
 */
#include <stdlib.h>
#include <zlib.h>

#include "fuzz.h"
#include "monitor-fake.h"

static const size_t small_reads[] = { 1, 7, 2, 64, 3, 13, 1, 5, 300, 2 };
static const size_t whole_reads[] = { CHARDEV_READ_CHUNK };

static GByteArray *run_session(const uint8_t *data, size_t size, const size_t *reads,
                               size_t nreads, bool *quit)
{
    FakeVmm f;
    GByteArray *out;

    fake_vmm_init(&f, false, true);
    fake_vmm_feed(&f, data, size, reads, nreads);
    out = fake_vmm_output(&f);
    *quit = f.m.runstate == RUN_STATE_SHUTDOWN;
    fake_vmm_free(&f);
    return out;
}

static unsigned count(const GByteArray *out, const char *what)
{
    const char *p = (const char *)out->data, *end = p + out->len;
    size_t len = strlen(what);
    unsigned n = 0;

    while ((p = memmem(p, end - p, what, len))) {
        n++;
        p += len;
    }
    return n;
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    bool quit, quit_cut;
    GByteArray *whole = run_session(data, size, whole_reads, 1, &quit);
    GByteArray *cut = run_session(data, size, small_reads, G_N_ELEMENTS(small_reads),
                                  &quit_cut);
    bool same = quit == quit_cut && whole->len == cut->len &&
                memcmp(whole->data, cut->data, cut->len) == 0;

    if (!same) {
        fprintf(stderr,
                "fuzz-hmp: the output depends on where reads end\n"
                "--- in 4096-byte reads:\n%.*s\n--- in small reads:\n%.*s\n",
                (int)whole->len, whole->data, (int)cut->len, cut->data);
        abort();
    }
    if (report && getenv("FUZZ_TRANSCRIPT")) {
        fwrite(whole->data, 1, whole->len, stderr);
    }
    if (report) {
        fprintf(report, "ok: prompts=%u unknown=%u%s bytes=%u crc=%08lx",
                count(whole, "\n(qemu) ") - 1, count(whole, "unknown command: "),
                quit ? " quit" : "", whole->len, crc32(0, whole->data, whole->len));
    }
    g_byte_array_free(whole, TRUE);
    g_byte_array_free(cut, TRUE);
}
