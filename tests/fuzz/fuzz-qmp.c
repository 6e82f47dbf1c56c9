/*
 * Fuzz target: the bytes a QMP client sends.  Each input is one client
 * session on a machine without KVM (monitor-fake.h): the greeting, then
 * the input through the chardev's input path into the QMP splitter,
 * capabilities negotiation, the generated command table's argument checks,
 * the handlers and the error replies.
 *
 * The input is delivered twice, in fresh sessions: in 4096-byte reads
 * (what one recv() brings) and in small reads of varying size.  Where a
 * value is cut between reads must not change the replies, so the two
 * transcripts (timestamps removed) must be equal; the replay and the
 * fuzzer abort when they are not.  Junk longer than the splitter waits
 * for (4096 bytes) is judged as it arrives, so only shorter inputs are
 * compared.
 *
 * Outcome: "ok: replies=N errors=N events=N classes=A,B crc=X", crc32
 * over the replies and events after the greeting, each re-encoded
 * without its timestamp.  FUZZ_TRANSCRIPT=1 in the environment prints
 * the transcript itself on stderr when replaying.
 */
#include <stdlib.h>
#include <zlib.h>

#include "fuzz.h"
#include "monitor-fake.h"

/* Read sizes of the second delivery, cycled. */
static const size_t small_reads[] = { 1, 7, 2, 64, 3, 13, 1, 5, 300, 2 };
static const size_t whole_reads[] = { CHARDEV_READ_CHUNK };

typedef struct Transcript {
    GString *text; /* replies and events, one re-encoded line each */
    unsigned replies, errors, events;
    GPtrArray *classes;
} Transcript;

static void transcript_line(Transcript *t, const char *line, size_t len)
{
    json_t *v = json_loadb(line, len, 0, NULL);
    json_t *err;
    char *text;

    if (!v) {
        /* the backlog keeps the newest bytes: its first line may be cut */
        g_string_append_len(t->text, line, len);
        g_string_append_c(t->text, '\n');
        return;
    }
    if (json_object_get(v, "QMP")) {
        json_decref(v); /* the greeting: its version string is not hashed */
        return;
    }
    json_object_del(v, "timestamp");
    err = json_object_get(v, "error");
    if (err) {
        const char *cls = json_string_value(json_object_get(err, "class"));
        bool seen = false;

        t->errors++;
        for (guint i = 0; cls && i < t->classes->len; i++) {
            seen |= strcmp(g_ptr_array_index(t->classes, i), cls) == 0;
        }
        if (cls && !seen) {
            g_ptr_array_add(t->classes, g_strdup(cls));
        }
    } else if (json_object_get(v, "event")) {
        t->events++;
    } else {
        t->replies++;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    g_string_append(t->text, text);
    g_string_append_c(t->text, '\n');
    free(text);
    json_decref(v);
}

static void run_session(const uint8_t *data, size_t size, const size_t *reads,
                        size_t nreads, Transcript *t)
{
    FakeVmm f;
    GByteArray *out;
    size_t start = 0;

    fake_vmm_init(&f, true, false);
    fake_vmm_feed(&f, data, size, reads, nreads);
    out = fake_vmm_output(&f);
    fake_vmm_free(&f);

    t->text = g_string_new(NULL);
    t->classes = g_ptr_array_new_with_free_func(g_free);
    t->replies = t->errors = t->events = 0;
    for (size_t i = 0; i + 1 < out->len; i++) {
        if (out->data[i] == '\r' && out->data[i + 1] == '\n') {
            transcript_line(t, (const char *)out->data + start, i - start);
            start = i + 2;
            i++;
        }
    }
    g_byte_array_free(out, TRUE);
}

static void transcript_free(Transcript *t)
{
    g_string_free(t->text, TRUE);
    g_ptr_array_free(t->classes, TRUE);
}

static gint compare_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    Transcript whole, cut;

    run_session(data, size, whole_reads, G_N_ELEMENTS(whole_reads), &whole);
    if (size < 4096) {
        run_session(data, size, small_reads, G_N_ELEMENTS(small_reads), &cut);
        if (strcmp(whole.text->str, cut.text->str) != 0) {
            fprintf(stderr,
                    "fuzz-qmp: the replies depend on where reads end\n"
                    "--- in 4096-byte reads:\n%s--- in small reads:\n%s",
                    whole.text->str, cut.text->str);
            abort();
        }
        transcript_free(&cut);
    }
    if (report && getenv("FUZZ_TRANSCRIPT")) {
        fputs(whole.text->str, stderr); /* for checking an outcome by hand */
    }
    if (report) {
        char *classes;

        g_ptr_array_sort(whole.classes, compare_str);
        g_ptr_array_add(whole.classes, NULL);
        classes = g_strjoinv(",", (char **)whole.classes->pdata);
        fprintf(report, "ok: replies=%u errors=%u events=%u classes=%s crc=%08lx",
                whole.replies, whole.errors, whole.events, *classes ? classes : "-",
                crc32(0, (const Bytef *)whole.text->str, whole.text->len));
        g_free(classes);
        g_ptr_array_remove_index(whole.classes, whole.classes->len - 1);
    }
    transcript_free(&whole);
}
