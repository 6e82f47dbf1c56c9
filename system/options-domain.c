/*
 * The options a management engine (libvirt) puts on a domain's command
 * line besides the ones a person types: -object, -blockdev, -uuid, -rtc,
 * -boot, -msg, -audiodev, and the JSON spelling of -object, -device and
 * -netdev.  QEMU 7.2's meaning and error texts.  Main thread, start-up only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hw/drives.h"
#include "monitor/blockdev-options.h"
#include "options-int.h"
#include "system/config.h"
#include "util/error.h"
#include "util/fdset.h"
#include "util/subopt.h"

bool opt_bare_error;

/* ---- JSON option arguments ---- */

static void append_escaped(GString *out, const char *s)
{
    for (; *s; s++) {
        if (*s == ',') {
            g_string_append_c(out, ',');
        }
        g_string_append_c(out, *s);
    }
}

/* One JSON member as key=value; nested objects become dotted keys. */
static bool keyval_append(GString *out, const char *key, json_t *value, GError **errp)
{
    const char *member;
    json_t *inner;
    char *text;

    if (json_is_object(value)) {
        json_object_foreach(value, member, inner)
        {
            g_autofree char *dotted = g_strdup_printf("%s.%s", key, member);
            if (!keyval_append(out, dotted, inner, errp)) {
                return false;
            }
        }
        return true;
    }
    if (out->len) {
        g_string_append_c(out, ',');
    }
    append_escaped(out, key);
    g_string_append_c(out, '=');
    if (json_is_string(value)) {
        append_escaped(out, json_string_value(value));
    } else if (json_is_boolean(value)) {
        g_string_append(out, json_is_true(value) ? "on" : "off");
    } else if (json_is_integer(value)) {
        g_string_append_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    } else if (json_is_number(value)) {
        text = json_dumps(value, JSON_ENCODE_ANY);
        g_string_append(out, text);
        free(text);
    } else {
        error_setg(errp, "Invalid parameter type for '%s', expected: string", key);
        return false;
    }
    return true;
}

/* QEMU's wording for a JSON argument that does not parse. */
static json_t *option_json_load(const char *arg, GError **errp)
{
    json_error_t jerr;
    json_t *root = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);

    if (!root) {
        error_setg(errp, "JSON parse error, %s",
                   jerr.position >= (int)strlen(arg) ? "premature EOI" : jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        error_setg(errp, "JSON parse error, expecting an object");
        json_decref(root);
        return NULL;
    }
    return root;
}

char *option_json_to_keyval(const char *arg, const char *type_key, GError **errp)
{
    json_t *root = option_json_load(arg, errp);
    GString *out;
    const char *key;
    json_t *value;

    if (!root) {
        return NULL;
    }
    out = g_string_new(NULL);
    /* the type first: the key=value parsers take it as their implied key */
    value = json_object_get(root, type_key);
    if (value && !keyval_append(out, type_key, value, errp)) {
        goto fail;
    }
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, type_key) != 0 && !keyval_append(out, key, value, errp)) {
            goto fail;
        }
    }
    json_decref(root);
    return g_string_free(out, FALSE);
fail:
    json_decref(root);
    g_string_free(out, TRUE);
    return NULL;
}

/* ---- -object secret / memory-backend-ram ---- */

static void object_opt_free(gpointer p)
{
    ObjectOpt *o = p;

    g_free(o->type);
    g_free(o->id);
    g_free(o->format);
    g_free(o->file);
    g_free(o->data);
    if (o->secret) {
        g_byte_array_free(o->secret, TRUE);
    }
    g_free(o);
}

GPtrArray *object_opts_new(void)
{
    return g_ptr_array_new_with_free_func(object_opt_free);
}

const ObjectOpt *vm_config_find_object(const VmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->objects->len; i++) {
        const ObjectOpt *o = g_ptr_array_index(cfg->objects, i);
        if (strcmp(o->id, id) == 0) {
            return o;
        }
    }
    return NULL;
}

static bool object_secret_parse(ObjectOpt *obj, SubOpts *o, GError **errp)
{
    const char *format = subopts_get(o, "format");

    obj->file = g_strdup(subopts_get(o, "file"));
    obj->data = g_strdup(subopts_get(o, "data"));
    if (subopts_has(o, "keyid") || subopts_has(o, "iv")) {
        error_setg(errp, "secret: keyid= and iv= (an encrypted secret) are not "
                         "supported by this VMM");
        return false;
    }
    if (format && strcmp(format, "raw") != 0 && strcmp(format, "base64") != 0) {
        error_setg(errp, "Parameter 'format' does not accept value '%s'", format);
        return false;
    }
    obj->format = g_strdup(format ? format : "raw");
    return subopts_check_unused(o, errp);
}

static bool object_memory_parse(ObjectOpt *obj, SubOpts *o, GError **errp)
{
    const char *size = subopts_get(o, "size");
    bool share = false, prealloc = false, dump = true, merge = true;

    if (!subopts_get_bool(o, "share", &share, errp) ||
        !subopts_get_bool(o, "prealloc", &prealloc, errp) ||
        !subopts_get_bool(o, "dump", &dump, errp) ||
        !subopts_get_bool(o, "merge", &merge, errp) || !subopts_check_unused(o, errp)) {
        return false;
    }
    if (!size) {
        error_setg(errp, "Parameter 'size' is missing");
        return false;
    }
    if (!parse_size_value("size", size, 0, &obj->size, NULL)) {
        error_setg(errp, "Parameter 'size' expects a size value");
        return false;
    }
    if (share || prealloc) {
        error_setg(errp, "memory-backend-ram: %s=on is not supported by this VMM",
                   share ? "share" : "prealloc");
        return false;
    }
    return true;
}

bool opt_object(VmConfig *cfg, const char *arg, GError **errp)
{
    g_autofree char *keyval = NULL;
    SubOpts *o;
    const char *type, *id;
    ObjectOpt *obj;
    bool ok = false;

    if (arg[0] == '{' && !(keyval = option_json_to_keyval(arg, "qom-type", errp))) {
        return false;
    }
    o = subopts_parse(keyval ? keyval : arg, "qom-type", errp);
    if (!o) {
        return false;
    }
    type = subopts_get(o, "qom-type");
    id = subopts_get(o, "id");
    obj = g_new0(ObjectOpt, 1);
    if (!type) {
        error_setg(errp, "Parameter 'qom-type' is missing");
    } else if (strcmp(type, "secret") != 0 && strcmp(type, "memory-backend-ram") != 0) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
    } else if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (vm_config_find_object(cfg, id)) {
        error_setg(errp, "Duplicate ID '%s' for object", id);
    } else {
        obj->type = g_strdup(type);
        obj->id = g_strdup(id);
        ok = strcmp(type, "secret") == 0 ? object_secret_parse(obj, o, errp)
                                         : object_memory_parse(obj, o, errp);
    }
    subopts_free(o);
    if (!ok) {
        object_opt_free(obj);
        return false;
    }
    g_ptr_array_add(cfg->objects, obj);
    return true;
}

/* A secret's value, read and decoded when the object is created. */
static bool object_secret_load(ObjectOpt *obj, GError **errp)
{
    g_autofree char *contents = NULL;
    gsize len = 0;
    GError *err = NULL;

    if (obj->file && obj->data) {
        error_setg(errp, "'file' and 'data' are mutually exclusive");
        return false;
    }
    if (!obj->file && !obj->data) {
        error_setg(errp, "Either 'file' or 'data' must be provided");
        return false;
    }
    if (obj->file) {
        if (!g_file_get_contents(obj->file, &contents, &len, &err)) {
            error_setg(errp, "Unable to read %s: %s", obj->file, err->message);
            g_error_free(err);
            return false;
        }
    } else {
        contents = g_strdup(obj->data);
        len = strlen(contents);
    }
    if (strcmp(obj->format, "base64") == 0) {
        guchar *raw;
        gsize raw_len;

        for (gsize i = 0; i < len; i++) {
            if (!g_ascii_isalnum(contents[i]) && !strchr("+/=", contents[i])) {
                error_setg(errp, "Base64 data contains invalid characters");
                return false;
            }
        }
        raw = g_base64_decode(contents, &raw_len);
        obj->secret = g_byte_array_new_take(raw, raw_len);
    } else {
        obj->secret = g_byte_array_new();
        g_byte_array_append(obj->secret, (const guint8 *)contents, len);
    }
    return true;
}

bool vm_config_create_objects(VmConfig *cfg, GError **errp)
{
    const ObjectOpt *backend;

    for (guint i = 0; i < cfg->objects->len; i++) {
        ObjectOpt *obj = g_ptr_array_index(cfg->objects, i);
        if (strcmp(obj->type, "secret") == 0 && !object_secret_load(obj, errp)) {
            return false;
        }
    }
    if (!cfg->memory_backend) {
        return true;
    }
    backend = vm_config_find_object(cfg, cfg->memory_backend);
    if (!backend || strcmp(backend->type, "memory-backend-ram") != 0) {
        error_setg(errp, "Memory backend '%s' not found", cfg->memory_backend);
        return false;
    }
    /* -m, when given, must agree; otherwise the backend sets the size */
    if (cfg->ram_size_given && cfg->ram_size != backend->size) {
        error_setg(errp, "Machine memory size does not match the size of the memory "
                         "backend");
        return false;
    }
    cfg->ram_size = backend->size & ~0xfffULL;
    return true;
}

/* ---- -blockdev ---- */

static void blockdev_opt_free(gpointer p)
{
    BlockdevOpt *b = p;

    g_free(b->arg);
    json_decref(b->json);
    g_free(b->opts);
    g_free(b);
}

GPtrArray *blockdev_opts_new(void)
{
    return g_ptr_array_new_with_free_func(blockdev_opt_free);
}

/* The key=value spelling (driver=file,filename=...,node-name=...) as JSON. */
static json_t *blockdev_keyval_to_json(const char *arg, GError **errp)
{
    static const char *const bool_keys[] = { "read-only",      "auto-read-only",
                                             "force-share",    "cache.direct",
                                             "cache.no-flush", NULL };
    SubOpts *o = subopts_parse(arg, NULL, errp);
    json_t *root;

    if (!o) {
        return NULL;
    }
    root = json_object();
    for (guint i = 0; i < o->items->len; i++) {
        const SubOpt *item = &g_array_index(o->items, SubOpt, i);
        char **path = g_strsplit(item->key, ".", -1);
        json_t *parent = root, *value = NULL;
        guint n = g_strv_length(path);
        bool flag;

        for (guint k = 0; k + 1 < n; k++) {
            json_t *child = json_object_get(parent, path[k]);
            if (!json_is_object(child)) {
                child = json_object();
                json_object_set_new(parent, path[k], child);
            }
            parent = child;
        }
        if (g_strv_contains(bool_keys, item->key)) {
            if (!parse_bool_value(item->key, item->value, &flag, errp)) {
                g_strfreev(path);
                json_decref(root);
                subopts_free(o);
                return NULL;
            }
            value = json_boolean(flag);
        } else {
            value = json_string(item->value);
        }
        json_object_set_new(parent, path[n - 1], value);
        g_strfreev(path);
    }
    subopts_free(o);
    return root;
}

bool opt_blockdev(VmConfig *cfg, const char *arg, GError **errp)
{
    BlockdevOpt *b = g_new0(BlockdevOpt, 1);

    b->json = arg[0] == '{' ? option_json_load(arg, errp)
                            : blockdev_keyval_to_json(arg, errp);
    b->opts = g_new0(BlockdevAddOptions, 1);
    b->arg = g_strdup(arg);
    if (!b->json || !blockdev_options_from_json(b->json, b->opts, errp)) {
        blockdev_opt_free(b);
        return false;
    }
    g_ptr_array_add(cfg->blockdevs, b);
    return true;
}

/* ---- -uuid, -rtc, -boot, -msg, -audiodev ---- */

bool opt_uuid(VmConfig *cfg, const char *arg, GError **errp)
{
    static const int dash_at[] = { 8, 13, 18, 23 };
    bool ok = strlen(arg) == 36;

    for (int i = 0; ok && i < 36; i++) {
        bool dash = i == dash_at[0] || i == dash_at[1] || i == dash_at[2] ||
                    i == dash_at[3];
        ok = dash ? arg[i] == '-' : g_ascii_isxdigit(arg[i]);
    }
    if (!ok) {
        error_setg(errp, "failed to parse UUID string: wrong format");
        return false;
    }
    g_free(cfg->uuid);
    cfg->uuid = g_ascii_strdown(arg, -1);
    return true;
}

/* An error QEMU reports when it applies the option, without the option's name. */
static bool bare_error(GError **errp, const char *message)
{
    error_setg(errp, "%s", message);
    opt_bare_error = true;
    return false;
}

static bool bad_option_value(GError **errp, const char *value)
{
    g_autofree char *message = g_strdup_printf("invalid option value '%s'", value);

    return bare_error(errp, message);
}

bool opt_rtc(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, NULL, errp);
    const char *base, *clock, *driftfix;
    bool ok = false;

    if (!o) {
        return false;
    }
    base = subopts_get(o, "base");
    clock = subopts_get(o, "clock");
    driftfix = subopts_get(o, "driftfix");
    if (!subopts_check_unused(o, errp)) {
        goto out;
    }
    if (base && strcmp(base, "utc") != 0) {
        if (strcmp(base, "localtime") == 0 || g_ascii_isdigit(base[0])) {
            error_setg(errp, "base=%s is not supported: this VMM's RTC keeps UTC", base);
        } else {
            bare_error(errp, "invalid datetime format\nvalid formats: "
                             "'2006-06-17T16:01:21' or '2006-06-17'");
        }
        goto out;
    }
    if (clock && strcmp(clock, "host") && strcmp(clock, "rt") && strcmp(clock, "vm")) {
        bad_option_value(errp, clock);
        goto out;
    }
    /* slew: lost RTC ticks are made up; KVM's in-kernel timers lose none */
    if (driftfix && strcmp(driftfix, "none") && strcmp(driftfix, "slew")) {
        bad_option_value(errp, driftfix);
        goto out;
    }
    ok = true;
out:
    subopts_free(o);
    return ok;
}

bool opt_boot(VmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const string_keys[] = { "order", "once", "splash", NULL };
    static const char *const uint_keys[] = { "splash-time", "reboot-timeout", NULL };
    SubOpts *o = subopts_parse(arg, "order", errp);
    bool ok = true;

    if (!o) {
        return false;
    }
    /* -kernel boots whatever the order says; SeaBIOS reads none of it today */
    for (guint i = 0; ok && i < o->items->len; i++) {
        SubOpt *item = &g_array_index(o->items, SubOpt, i);
        g_autofree char *name = g_strdup_printf("boot.%s", item->key);
        uint64_t number;
        bool flag;

        if (strcmp(item->key, "strict") == 0 || strcmp(item->key, "menu") == 0) {
            ok = parse_bool_value(name, item->value, &flag, errp);
        } else if (g_strv_contains(uint_keys, item->key)) {
            ok = parse_uint_value(name, item->value, &number, errp);
        } else if (!g_strv_contains(string_keys, item->key)) {
            error_setg(errp, "Parameter '%s' is unexpected", name);
            ok = false;
        }
        opt_bare_error = !ok;
    }
    subopts_free(o);
    return ok;
}

bool opt_msg(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, NULL, errp);
    bool timestamp = false, guest_name = false, ok;

    if (!o) {
        return false;
    }
    ok = subopts_get_bool(o, "timestamp", &timestamp, errp) &&
         subopts_get_bool(o, "guest-name", &guest_name, errp) &&
         subopts_check_unused(o, errp);
    if (ok) {
        error_set_timestamps(timestamp);
    }
    subopts_free(o);
    return ok;
}

/*
 * -d: QEMU's log items.  cpu_reset is the one this VMM shares with QEMU:
 * each reset or power off the guest asks for is said on stderr with what
 * the guest did (a triple fault, port 0xcf9, the i8042...) and every
 * vCPU's registers.  stall is this VMM's own (system/stall.c): the main
 * loop's stints of 200 ms or more without polling, and what it sat in.
 * QEMU's other items (TCG's) are refused by name.
 */
bool opt_log(VmConfig *cfg, const char *arg, GError **errp)
{
    g_auto(GStrv) items = g_strsplit(arg, ",", -1);

    for (char **it = items; *it; it++) {
        if (g_str_equal(*it, "help")) {
            printf("Log items (comma separated):\n"
                   "cpu_reset  say each guest reset's cause, with the vCPUs' registers\n"
                   "stall      say each time the main loop went 200 ms or more without\n"
                   "           polling, and the system calls it was seen in\n");
            exit(0);
        } else if (g_str_equal(*it, "cpu_reset")) {
            cfg->log_cpu_reset = true;
        } else if (g_str_equal(*it, "stall")) {
            cfg->log_stall = true;
        } else {
            error_setg(errp,
                       "log item '%s' is not one this VMM has (cpu_reset, stall, help)",
                       *it);
            return false;
        }
    }
    return true;
}

bool opt_audiodev(VmConfig *cfg, const char *arg, GError **errp)
{
    static const char *const other_drivers[] = { "alsa",  "coreaudio", "dbus", "dsound",
                                                 "jack",  "oss",       "pa",   "sdl",
                                                 "spice", "wav",       NULL };
    g_autofree char *keyval = NULL;
    SubOpts *o;
    const char *id, *driver;
    uint64_t period;
    bool ok = false;

    if (arg[0] == '{' && !(keyval = option_json_to_keyval(arg, "driver", errp))) {
        return false;
    }
    o = subopts_parse(keyval ? keyval : arg, "driver", errp);
    if (!o) {
        return false;
    }
    id = subopts_get(o, "id");
    driver = subopts_get(o, "driver");
    if (!subopts_get_uint(o, "timer-period", &period, errp)) {
        goto out;
    }
    for (guint i = 0; i < o->items->len; i++) {
        const SubOpt *item = &g_array_index(o->items, SubOpt, i);
        if (!item->used && strcmp(item->key, "id") && strcmp(item->key, "driver")) {
            error_setg(errp, "Parameter '%s' is unexpected", item->key);
            goto out;
        }
    }
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (!driver) {
        error_setg(errp, "Parameter 'driver' is missing");
    } else if (g_strv_contains(other_drivers, driver)) {
        error_setg(errp,
                   "audio driver '%s' is not supported: this VMM has no sound "
                   "devices (use driver=none)",
                   driver);
    } else if (strcmp(driver, "none") != 0) {
        error_setg(errp, "Parameter 'driver' does not accept value '%s'", driver);
    } else {
        ok = true;
    }
out:
    subopts_free(o);
    return ok;
}

/* -no-hpet: there is no HPET to leave out. */
bool opt_no_hpet(VmConfig *cfg, const char *arg, GError **errp)
{
    return true;
}

/* A signed decimal sub-option (absent: -1), in QEMU's -add-fd wording. */
static bool add_fd_get_number(SubOpts *o, const char *key, int64_t *out, GError **errp)
{
    const char *text = subopts_get(o, key);
    char *end;

    *out = -1;
    if (!text) {
        return true;
    }
    errno = 0;
    *out = strtoll(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0') {
        error_setg(errp, "Parameter '%s' expects a number", key);
        return false;
    }
    return true;
}

/*
 * -add-fd fd=N,set=S[,opaque=STR]: put (a duplicate of) the inherited
 * descriptor N into fd set S, to be opened later as "/dev/fdset/S".
 */
bool opt_add_fd(VmConfig *cfg, const char *arg, GError **errp)
{
    SubOpts *o = subopts_parse(arg, NULL, errp);
    const char *opaque;
    int64_t fd, set_id;
    bool ok;

    if (!o) {
        return false;
    }
    ok = add_fd_get_number(o, "fd", &fd, errp) &&
         add_fd_get_number(o, "set", &set_id, errp);
    opaque = subopts_get(o, "opaque");
    ok = ok && subopts_check_unused(o, errp) && fdset_add_fd(fd, set_id, opaque, errp);
    subopts_free(o);
    return ok;
}

/*
 * -global DRIVER.PROP=VALUE: only what libvirt sets for <timer name='pit'
 * tickpolicy='delay'/>, which is what KVM's in-kernel PIT does anyway
 * (late ticks are delivered late, none dropped).
 */
bool opt_global(VmConfig *cfg, const char *arg, GError **errp)
{
    const char *eq = strchr(arg, '=');

    if (g_str_has_prefix(arg, "kvm-pit.lost_tick_policy=")) {
        if (strcmp(eq + 1, "delay") == 0) {
            return true;
        }
        error_setg(errp,
                   "lost_tick_policy=%s is not supported: KVM's in-kernel PIT "
                   "delivers late ticks (delay)",
                   eq + 1);
        return false;
    }
    error_setg(errp, "global property '%.*s' is not supported by this VMM",
               eq ? (int)(eq - arg) : (int)strlen(arg), arg);
    return false;
}
