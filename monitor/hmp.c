/*
 * HMP, the human monitor: a line editor for telnet clients (echo, backspace,
 * arrow-key history), the "(qemu) " prompt, and a command table whose every
 * entry calls the QMP implementation and formats its answer.  Main thread
 * only.
 */
#include <inttypes.h>
#include <string.h>

#include "qapi-commands.h"
#include "config-host.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "monitor-int.h"
#include "util/error.h"
#include "util/subopt.h"

#define HMP_PROMPT "(qemu) "
#define HMP_MAX_LINE 4096
#define HMP_MAX_HISTORY 64

typedef void (*HmpHandler)(Monitor *mon, const char *args);

typedef struct HmpCommand {
    const char *name;        /* "stop|s": aliases after '|' */
    const char *params;
    const char *help;
    HmpHandler fn;
    bool takes_args;
} HmpCommand;

static const HmpCommand hmp_commands[];
static const HmpCommand hmp_info_commands[];

/* Call a QMP handler (taking args) for this monitor; print any error. */
static json_t *hmp_qmp(Monitor *mon, QmpHandler fn, json_t *args)
{
    QmpContext ctx = monitor_qmp_context(mon);
    GError *err = NULL;
    json_t *ret;

    args = args ? args : json_object();
    ret = fn(&ctx, args, &err);
    json_decref(args);

    if (!ret) {
        monitor_printf(mon, "Error: %s\n", err->message);
        g_error_free(err);
    }
    return ret;
}

/*
 * {key: value} for a QMP handler, or NULL (said to the user) when value
 * is not UTF-8: a JSON string cannot carry it, and a handler must never
 * see its required argument missing.
 */
static json_t *hmp_str_arg(Monitor *mon, const char *cmd, const char *key,
                           const char *value)
{
    if (!g_utf8_validate(value, -1, NULL)) {
        monitor_printf(mon, "%s: the %s is not valid UTF-8\n", cmd, key);
        return NULL;
    }
    return json_pack("{s:s}", key, value);
}

static void hmp_info_status(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_status, NULL);
    const char *status;

    if (!ret) {
        return;
    }
    status = json_string_value(json_object_get(ret, "status"));
    if (json_is_true(json_object_get(ret, "running"))) {
        monitor_printf(mon, "VM status: running\n");
    } else if (strcmp(status, "paused") == 0) {
        monitor_printf(mon, "VM status: paused\n");
    } else {
        monitor_printf(mon, "VM status: paused (%s)\n", status);
    }
    json_decref(ret);
}

static void hmp_info_cpus(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_cpus, NULL);
    size_t i;
    json_t *cpu;

    json_array_foreach(ret, i, cpu) {
        monitor_printf(mon, "%c CPU #%" JSON_INTEGER_FORMAT ": pc=0x%016" PRIx64
                       "%s thread_id=%" JSON_INTEGER_FORMAT "\n",
                       json_is_true(json_object_get(cpu, "current")) ? '*' : ' ',
                       json_integer_value(json_object_get(cpu, "CPU")),
                       (uint64_t)json_integer_value(json_object_get(cpu, "pc")),
                       json_is_true(json_object_get(cpu, "halted")) ? " (halted)" : "",
                       json_integer_value(json_object_get(cpu, "thread_id")));
    }
    json_decref(ret);
}

static void hmp_info_kvm(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_kvm, NULL);

    if (ret) {
        monitor_printf(mon, "kvm support: %s\n",
                       json_is_true(json_object_get(ret, "enabled")) ? "enabled"
                                                                    : "disabled");
        json_decref(ret);
    }
}

static void hmp_info_version(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_version, NULL);
    json_t *q;

    if (ret) {
        q = json_object_get(ret, "qemu");
        monitor_printf(mon, "%" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
                       ".%" JSON_INTEGER_FORMAT "%s\n",
                       json_integer_value(json_object_get(q, "major")),
                       json_integer_value(json_object_get(q, "minor")),
                       json_integer_value(json_object_get(q, "micro")),
                       json_string_value(json_object_get(ret, "package")));
        json_decref(ret);
    }
}

static void hmp_info_name(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_name, NULL);
    json_t *name = json_object_get(ret, "name");

    if (name) {
        monitor_printf(mon, "%s\n", json_string_value(name));
    }
    json_decref(ret);
}

static void hmp_info_chardev(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_chardev, NULL);
    size_t i;
    json_t *chr;

    json_array_foreach(ret, i, chr) {
        monitor_printf(mon, "%s: filename=%s\n",
                       json_string_value(json_object_get(chr, "label")),
                       json_string_value(json_object_get(chr, "filename")));
    }
    json_decref(ret);
}

static void hmp_info_registers(Monitor *mon, const char *args)
{
    Machine *m = mon->set->machine;
    VCpuSnapshot s;
    const struct kvm_regs *r = &s.regs;

    vcpu_snapshot(m->vcpus[0], &s);
    if (!s.valid) {
        monitor_printf(mon, "Error: cannot read the registers of CPU 0\n");
        return;
    }
    monitor_printf(mon, "CPU#0\n"
                   "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
                   "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
                   "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
                   "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
                   "RIP=%016llx RFL=%08llx CPL=%u HLT=%d\n"
                   "CS =%04x %016llx  SS =%04x %016llx\n"
                   "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%016llx\n",
                   r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp,
                   r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
                   r->rip, r->rflags, s.sregs.cs.dpl,
                   s.mp_state.mp_state == KVM_MP_STATE_HALTED, s.sregs.cs.selector,
                   s.sregs.cs.base, s.sregs.ss.selector, s.sregs.ss.base, s.sregs.cr0,
                   s.sregs.cr2, s.sregs.cr3, s.sregs.cr4, s.sregs.efer);
}

static void hmp_info_osnet(Monitor *mon, const char *args)
{
    json_t *map = hmp_qmp(mon, qmp_query_osnet_cpumap, NULL);
    json_t *did = map ? hmp_qmp(mon, qmp_query_osnet_did, NULL) : NULL;
    json_t *stats = did ? hmp_qmp(mon, qmp_query_osnet_stats, NULL) : NULL;
    size_t i;
    json_t *e;

    if (!stats) {
        json_decref(map);
        json_decref(did);
        return;
    }
    monitor_printf(mon, "DID: %s (mode %s, did at start: %s), exits disabled:%s%s%s%s, "
                   "halt-poll-ns %" JSON_INTEGER_FORMAT "\n",
                   json_is_true(json_object_get(did, "active")) ? "on" : "off",
                   json_string_value(json_object_get(did, "mode")),
                   json_is_true(json_object_get(did, "did-at-start")) ? "yes" : "no",
                   json_is_true(json_object_get(did, "hlt-exits-disabled")) ? " hlt" : "",
                   json_is_true(json_object_get(did, "pause-exits-disabled")) ? " pause" : "",
                   json_is_true(json_object_get(did, "mwait-exits-disabled")) ? " mwait" : "",
                   json_is_true(json_object_get(did, "cstate-exits-disabled")) ? " cstate"
                                                                                : "",
                   json_integer_value(json_object_get(did, "halt-poll-ns")));
    monitor_printf(mon, "vcpu pcpu thread_id  exits/s   halt/s    irq/s   mmio/s  "
                   "user/s   exits(total)\n");
    json_array_foreach(stats, i, e) {
        json_t *rate = json_object_get(e, "per-second");
        json_t *total = json_object_get(e, "total");
        monitor_printf(mon, "%4" JSON_INTEGER_FORMAT " %4" JSON_INTEGER_FORMAT
                       " %9" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
                       " %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
                       " %8" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT
                       " %14" JSON_INTEGER_FORMAT "\n",
                       json_integer_value(json_object_get(e, "cpu-index")),
                       json_integer_value(json_object_get(e, "pcpu")),
                       json_integer_value(json_object_get(e, "thread-id")),
                       json_integer_value(json_object_get(rate, "exits")),
                       json_integer_value(json_object_get(rate, "halt-exits")),
                       json_integer_value(json_object_get(rate, "irq-exits")),
                       json_integer_value(json_object_get(rate, "mmio-exits")),
                       json_integer_value(json_object_get(rate, "userspace-exits")),
                       json_integer_value(json_object_get(total, "exits")));
    }
    json_decref(map);
    json_decref(did);
    json_decref(stats);
}

static void hmp_osnet_set_cpumap(Monitor *mon, const char *args)
{
    json_t *qargs;

    if (!*args) {
        monitor_printf(mon, "osnet_set_cpumap: a path is required\n");
        return;
    }
    qargs = hmp_str_arg(mon, "osnet_set_cpumap", "path", args);
    if (qargs) {
        json_decref(hmp_qmp(mon, qmp_osnet_set_cpumap, qargs));
    }
}

static void hmp_osnet_did(Monitor *mon, const char *args)
{
    if (strcmp(args, "on") == 0) {
        json_decref(hmp_qmp(mon, qmp_osnet_did_enable, NULL));
    } else if (strcmp(args, "off") == 0) {
        json_decref(hmp_qmp(mon, qmp_osnet_did_disable, NULL));
    } else {
        monitor_printf(mon, "osnet_did: expected 'on' or 'off'\n");
    }
}

static void hmp_migrate(Monitor *mon, const char *args)
{
    const char *uri = args;
    json_t *qargs;

    /* -d (detach) is how QEMU's HMP always behaves now: return at once */
    if (g_str_has_prefix(uri, "-d ")) {
        uri = g_strchug((char *)uri + 3);
    }
    if (!*uri) {
        monitor_printf(mon, "migrate: a URI is required\n");
        return;
    }
    qargs = hmp_str_arg(mon, "migrate", "uri", uri);
    if (qargs) {
        json_decref(hmp_qmp(mon, qmp_migrate, qargs));
    }
}

static void hmp_migrate_cancel(Monitor *mon, const char *args)
{
    json_decref(hmp_qmp(mon, qmp_migrate_cancel, NULL));
}

/* "32M", "1G", or a bare number of bytes per second, as QEMU's HMP takes */
static void hmp_migrate_set_speed(Monitor *mon, const char *args)
{
    uint64_t bytes;
    GError *err = NULL;

    if (!parse_size_value("speed", args, 'B', &bytes, &err)) {
        monitor_printf(mon, "%s\n", err->message);
        g_error_free(err);
        return;
    }
    json_decref(hmp_qmp(mon, qmp_migrate_set_parameters,
                        json_pack("{s:I}", "max-bandwidth", (json_int_t)bytes)));
}

static void hmp_migrate_set_downtime(Monitor *mon, const char *args)
{
    char *end;
    double seconds = g_ascii_strtod(args, &end);
    json_int_t ms;

    if (end == args || *end || !(seconds >= 0)) { /* NaN too */
        monitor_printf(mon, "migrate_set_downtime: expected seconds, e.g. 0.3\n");
        return;
    }
    /* beyond the largest limit: converted only once it fits (1e300, inf) */
    ms = seconds < 1e12 ? (json_int_t)(seconds * 1000 + 0.5) : (json_int_t)1e15;
    json_decref(hmp_qmp(mon, qmp_migrate_set_parameters,
                        json_pack("{s:I}", "downtime-limit", ms)));
}

static void hmp_info_migrate(Monitor *mon, const char *args)
{
    json_t *info = hmp_qmp(mon, qmp_query_migrate, NULL);
    json_t *caps = hmp_qmp(mon, qmp_query_migrate_capabilities, NULL);
    json_t *ram = json_object_get(info, "ram");
    const char *key;
    json_t *v;
    size_t i;

    monitor_printf(mon, "capabilities:");
    json_array_foreach(caps, i, v) {
        monitor_printf(mon, " %s: %s", json_string_value(json_object_get(v, "capability")),
                       json_is_true(json_object_get(v, "state")) ? "on" : "off");
    }
    monitor_printf(mon, "\n");
    if (json_object_get(info, "status")) {
        monitor_printf(mon, "Migration status: %s\n",
                       json_string_value(json_object_get(info, "status")));
    }
    json_object_foreach(info, key, v) {
        if (json_is_integer(v)) {
            monitor_printf(mon, "%s: %" JSON_INTEGER_FORMAT " ms\n", key,
                           json_integer_value(v));
        } else if (json_is_string(v) && strcmp(key, "status")) {
            monitor_printf(mon, "%s: %s\n", key, json_string_value(v));
        }
    }
    json_object_foreach(ram, key, v) {
        if (json_is_integer(v)) {
            monitor_printf(mon, "%s: %" JSON_INTEGER_FORMAT "\n", key, json_integer_value(v));
        } else if (json_is_real(v)) {
            monitor_printf(mon, "%s: %.2f\n", key, json_real_value(v));
        }
    }
    json_decref(info);
    json_decref(caps);
}

static void hmp_info_block(Monitor *mon, const char *args)
{
    json_t *list = hmp_qmp(mon, qmp_query_block, NULL);
    size_t i;
    json_t *b;

    json_array_foreach(list, i, b) {
        json_t *ins = json_object_get(b, "inserted");
        json_t *cache = json_object_get(ins, "cache");
        const char *mode = json_is_true(json_object_get(cache, "no-flush")) ? "writeback, ignore flushes"
                           : json_is_true(json_object_get(cache, "direct"))
                               ? (json_is_true(json_object_get(cache, "writeback")) ? "writeback, direct"
                                                                                   : "writethrough, direct")
                               : (json_is_true(json_object_get(cache, "writeback")) ? "writeback"
                                                                                   : "writethrough");
        monitor_printf(mon, "%s (%s): %s (%s%s)\n    Attached to:      %s\n"
                       "    Cache mode:       %s\n",
                       json_string_value(json_object_get(b, "device")),
                       json_string_value(json_object_get(ins, "node-name")),
                       json_string_value(json_object_get(ins, "file")),
                       json_string_value(json_object_get(ins, "drv")),
                       json_is_true(json_object_get(ins, "ro")) ? ", read-only" : "",
                       json_string_value(json_object_get(b, "qdev")), mode);
        if (json_object_get(ins, "backing_file")) {
            monitor_printf(mon, "    Backing file:     %s\n",
                           json_string_value(json_object_get(ins, "backing_file")));
        }
    }
    json_decref(list);
}

static void hmp_info_pci(Monitor *mon, const char *args)
{
    json_t *ret = hmp_qmp(mon, qmp_query_pci, NULL);
    char *text = ret ? pci_format_info(ret) : NULL;

    if (text) {
        monitor_printf(mon, "%s", text);
    }
    g_free(text);
    json_decref(ret);
}

static void hmp_stop(Monitor *mon, const char *args)
{
    json_decref(hmp_qmp(mon, qmp_stop, NULL));
}

static void hmp_cont(Monitor *mon, const char *args)
{
    json_decref(hmp_qmp(mon, qmp_cont, NULL));
}

static void hmp_system_reset(Monitor *mon, const char *args)
{
    json_decref(hmp_qmp(mon, qmp_system_reset, NULL));
}

static void hmp_quit(Monitor *mon, const char *args)
{
    json_decref(hmp_qmp(mon, qmp_quit, NULL));
}

static bool name_matches(const char *names, const char *word)
{
    char **alts = g_strsplit(names, "|", -1);
    bool found = false;

    for (char **a = alts; *a; a++) {
        found |= strcmp(*a, word) == 0;
    }
    g_strfreev(alts);
    return found;
}

static const HmpCommand *find_command(const HmpCommand *table, const char *word)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (name_matches(c->name, word)) {
            return c;
        }
    }
    return NULL;
}

static void print_help(Monitor *mon, const HmpCommand *table, const char *prefix,
                       const char *only)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (!only || name_matches(c->name, only)) {
            monitor_printf(mon, "%s%s %s -- %s\n", prefix, c->name, c->params,
                           c->help);
        }
    }
}

static void hmp_help(Monitor *mon, const char *args)
{
    char **words = g_strsplit_set(args, " \t", -1);
    const char *first = words[0] && *words[0] ? words[0] : NULL;

    if (first && strcmp(first, "info") == 0) {
        const char *sub = words[1] && *words[1] ? words[1] : NULL;
        print_help(mon, hmp_info_commands, "info ", sub);
    } else if (first && !find_command(hmp_commands, first)) {
        monitor_printf(mon, "unknown command: '%s'\n", first);
    } else {
        print_help(mon, hmp_commands, "", first);
        if (!first) {
            print_help(mon, hmp_info_commands, "info ", NULL);
        }
    }
    g_strfreev(words);
}

static void hmp_info(Monitor *mon, const char *args)
{
    const HmpCommand *c;
    char **words = g_strsplit_set(args, " \t", 2);

    if (!words[0] || !*words[0]) {
        print_help(mon, hmp_info_commands, "info ", NULL);
    } else if (!(c = find_command(hmp_info_commands, words[0]))) {
        monitor_printf(mon, "unknown command: 'info %s'\n", words[0]);
    } else {
        c->fn(mon, words[1] ? words[1] : "");
    }
    g_strfreev(words);
}

static const HmpCommand hmp_commands[] = {
    { "help|?", "[cmd]", "show the help", hmp_help, true },
    { "info", "[subcommand]", "show various information about the system state",
      hmp_info, true },
    { "stop|s", "", "stop emulation", hmp_stop, false },
    { "cont|c", "", "resume emulation", hmp_cont, false },
    { "system_reset", "", "reset the system", hmp_system_reset, false },
    { "quit|q", "", "quit the emulator", hmp_quit, false },
    { "migrate", "[-d] uri", "migrate to uri (tcp:HOST:PORT, unix:PATH, exec:CMD)",
      hmp_migrate, true },
    { "migrate_cancel", "", "cancel the current migration", hmp_migrate_cancel, false },
    { "migrate_set_speed", "value", "set the migration speed limit (bytes/s, "
      "suffixes k M G)", hmp_migrate_set_speed, true },
    { "migrate_set_downtime", "seconds", "set the largest tolerated downtime",
      hmp_migrate_set_downtime, true },
    { "osnet_set_cpumap", "path", "load a new vCPU->pCPU map and move the vCPUs",
      hmp_osnet_set_cpumap, true },
    { "osnet_did", "on|off", "switch direct interrupt delivery on or off",
      hmp_osnet_did, true },
    { NULL },
};

static const HmpCommand hmp_info_commands[] = {
    { "block", "", "show the block devices", hmp_info_block, false },
    { "chardev", "", "show the character devices", hmp_info_chardev, false },
    { "cpus", "", "show infos for each CPU", hmp_info_cpus, false },
    { "kvm", "", "show KVM information", hmp_info_kvm, false },
    { "migrate", "", "show migration status", hmp_info_migrate, false },
    { "name", "", "show the current VM name", hmp_info_name, false },
    { "osnet", "", "show dedicated cores, DID state and exit rates", hmp_info_osnet,
      false },
    { "pci", "", "show PCI info", hmp_info_pci, false },
    { "registers", "", "show the cpu registers", hmp_info_registers, false },
    { "status", "", "show the current VM status (running|paused)", hmp_info_status,
      false },
    { "version", "", "show the version of QEMU", hmp_info_version, false },
    { NULL },
};

/* Run one command line, printing to mon. */
static void hmp_execute(Monitor *mon, const char *line)
{
    char *copy = g_strstrip(g_strdup(line));
    char *args = copy + strcspn(copy, " \t");
    const HmpCommand *c;
    const char *name;

    if (*args) {
        *args++ = '\0';
        args = g_strchug(args);
    }
    if (!*copy) {
        goto out;
    }
    c = find_command(hmp_commands, copy);
    if (!c) {
        monitor_printf(mon, "unknown command: '%s'\n", copy);
        goto out;
    }
    name = c->name;
    if (!c->takes_args && *args) {
        monitor_printf(mon, "%.*s: extraneous characters at the end of line\n"
                       "Try \"help %s\" for more information\n",
                       (int)strcspn(name, "|"), name, copy);
        goto out;
    }
    c->fn(mon, args);
out:
    g_free(copy);
}

char *hmp_run_command(MonitorSet *set, Monitor *mon, const char *line)
{
    Monitor tmp = { .set = set };
    Monitor *target = mon ? mon : &tmp;
    GString *saved = target->capture;
    GString *out = g_string_new(NULL);

    target->capture = out;
    hmp_execute(target, line);
    target->capture = saved;
    return g_string_free(out, FALSE);
}

/* ---- the line editor ---- */

void hmp_session_reset(HmpSession *s)
{
    if (!s->line) {
        s->line = g_string_new(NULL);
        s->history = g_ptr_array_new_with_free_func(g_free);
    }
    g_string_truncate(s->line, 0);
    s->cursor = 0;
    s->history_pos = -1;
    s->esc_state = 0;
    s->last_was_cr = false;
}

void hmp_session_free(HmpSession *s)
{
    if (s->line) {
        g_string_free(s->line, TRUE);
        g_ptr_array_free(s->history, TRUE);
        s->line = NULL;
    }
}

void hmp_session_greet(Monitor *mon)
{
    monitor_printf(mon, "QEMU 4.2.0 monitor - type 'help' for more information\n"
                   HMP_PROMPT);
}

static void hmp_redraw(Monitor *mon)
{
    HmpSession *s = &mon->hmp;
    size_t back = s->line->len - s->cursor;

    monitor_printf(mon, "\r" HMP_PROMPT "%s\033[K", s->line->str);
    if (back) {
        monitor_printf(mon, "\033[%zuD", back);
    }
}

static void hmp_history_move(Monitor *mon, int step)
{
    HmpSession *s = &mon->hmp;
    int n = s->history->len;
    int pos = s->history_pos < 0 ? n : s->history_pos;

    pos += step;
    if (pos < 0 || pos > n) {
        return;
    }
    s->history_pos = pos == n ? -1 : pos;
    g_string_assign(s->line, pos == n ? "" : g_ptr_array_index(s->history, pos));
    s->cursor = s->line->len;
    hmp_redraw(mon);
}

static void hmp_enter(Monitor *mon)
{
    HmpSession *s = &mon->hmp;
    char *line = g_strdup(s->line->str);

    monitor_printf(mon, "\n");
    if (*line) {
        if (s->history->len >= HMP_MAX_HISTORY) {
            g_ptr_array_remove_index(s->history, 0);
        }
        g_ptr_array_add(s->history, g_strdup(line));
    }
    g_string_truncate(s->line, 0);
    s->cursor = 0;
    s->history_pos = -1;
    hmp_execute(mon, line);
    g_free(line);
    if (monitor_takes_input(mon)) {
        monitor_printf(mon, HMP_PROMPT);
    }
}

static void hmp_escape(Monitor *mon, uint8_t c)
{
    HmpSession *s = &mon->hmp;

    s->esc_state = 0;
    switch (c) {
    case 'A':
        hmp_history_move(mon, -1);
        break;
    case 'B':
        hmp_history_move(mon, 1);
        break;
    case 'C':
        if (s->cursor < s->line->len) {
            s->cursor++;
            monitor_printf(mon, "\033[C");
        }
        break;
    case 'D':
        if (s->cursor > 0) {
            s->cursor--;
            monitor_printf(mon, "\033[D");
        }
        break;
    default:
        break;
    }
}

static void hmp_key(Monitor *mon, uint8_t c)
{
    HmpSession *s = &mon->hmp;

    if (s->esc_state == 1) {
        s->esc_state = c == '[' || c == 'O' ? 2 : 0;
        return;
    }
    if (s->esc_state == 2) {
        hmp_escape(mon, c);
        return;
    }
    if (c == '\n' && s->last_was_cr) {
        s->last_was_cr = false;       /* the LF of a CR LF pair */
        return;
    }
    s->last_was_cr = c == '\r';
    switch (c) {
    case '\r':
    case '\n':
        hmp_enter(mon);
        break;
    case 0x1b:
        s->esc_state = 1;
        break;
    case 0x7f:
    case 0x08:
        if (s->cursor > 0) {
            g_string_erase(s->line, --s->cursor, 1);
            if (s->cursor == s->line->len) {
                monitor_printf(mon, "\b \b");
            } else {
                hmp_redraw(mon);
            }
        }
        break;
    default:
        if (c < 0x20 || s->line->len >= HMP_MAX_LINE) {
            break;        /* other control characters are ignored */
        }
        g_string_insert_c(s->line, s->cursor++, c);
        if (s->cursor == s->line->len) {
            monitor_printf(mon, "%c", c);
        } else {
            hmp_redraw(mon);
        }
        break;
    }
}

void hmp_session_input(Monitor *mon, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len && monitor_takes_input(mon); i++) {
        hmp_key(mon, buf[i]);
    }
}
