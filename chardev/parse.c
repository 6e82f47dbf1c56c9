/*
 * Chardev specifications: the -chardev spelling ("socket,id=x,path=...")
 * and the legacy one of -serial/-monitor/-qmp ("telnet:HOST:PORT,server,
 * nowait", "mon:stdio", ...), with QEMU's error messages.  Parsing only
 * validates and records; chardev_set_open_all() creates the sockets.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "chardev-int.h"
#include "util/error.h"
#include "util/subopt.h"

/* QEMU knows these backends; this VMM refuses them by name. */
static const char *const unsupported_drivers[] = {
    "vc",      "pipe",      "serial",    "tty",          "parallel", "parport",
    "udp",     "ringbuf",   "memory",    "msmouse",      "wctablet", "braille",
    "testdev", "spicevmc",  "spiceport", "qemu-vdagent", "dbus",     "console",
    "mux",     "stdio-mux", NULL,
};

/* Options QEMU accepts that this VMM does not implement. */
static const char *const unsupported_keys[] = {
    "logfile", "logappend", "reconnect", "tls-creds", "tls-authz", "websocket",
    "tn3270",  "abstract",  "tight",     "to",        NULL,
};

static bool in_list(const char *const *list, const char *word)
{
    for (; *list; list++) {
        if (strcmp(*list, word) == 0) {
            return true;
        }
    }
    return false;
}

bool chardev_valid_id(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
            return false;
        }
    }
    return true;
}

static bool refuse_unsupported_keys(SubOpts *opts, GError **errp)
{
    for (guint i = 0; i < opts->items->len; i++) {
        const SubOpt *item = &g_array_index(opts->items, SubOpt, i);
        if (in_list(unsupported_keys, item->key)) {
            error_setg(errp, "chardev: option '%s' is not supported", item->key);
            return false;
        }
    }
    return true;
}

static bool parse_port(const char *host, const char *port, uint16_t *out, GError **errp)
{
    uint64_t value = 0;

    if (!port[0]) {
        error_setg(errp, "chardev: socket: no port given");
        return false;
    }
    for (const char *p = port; *p; p++) {
        if (!g_ascii_isdigit(*p)) {
            error_setg(errp, "address resolution failed for %s:%s: %s", host, port,
                       "Servname not supported for ai_socktype");
            return false;
        }
        value = value * 10 + (*p - '0');
        if (value > 65535) {
            error_setg(errp, "address resolution failed for %s:%s: %s", host, port,
                       "port number out of range (0-65535)");
            return false;
        }
    }
    *out = value;
    return true;
}

/* server, wait, telnet, nodelay/delay, ipv4, ipv6: shared by both spellings. */
static bool socket_apply_opts(Chardev *chr, SubOpts *opts, GError **errp)
{
    ChardevSocketConfig *cfg = &chr->sock;
    bool server = false, wait = true, telnet = cfg->telnet, delay = true;
    bool nodelay = false, ipv4 = false, ipv6 = false;

    if (!subopts_get_bool(opts, "server", &server, errp) ||
        !subopts_get_bool(opts, "wait", &wait, errp) ||
        !subopts_get_bool(opts, "telnet", &telnet, errp) ||
        !subopts_get_bool(opts, "delay", &delay, errp) ||
        !subopts_get_bool(opts, "nodelay", &nodelay, errp) ||
        !subopts_get_bool(opts, "ipv4", &ipv4, errp) ||
        !subopts_get_bool(opts, "ipv6", &ipv6, errp)) {
        return false;
    }
    if (!server && subopts_has(opts, "wait")) {
        error_setg(errp, "'wait' option is incompatible with socket in client "
                         "connect mode");
        return false;
    }
    cfg->server = server;
    cfg->wait = server && wait;
    cfg->telnet = telnet;
    cfg->nodelay = nodelay || !delay;
    cfg->family = ipv4 && !ipv6 ? AF_INET : ipv6 && !ipv4 ? AF_INET6 : AF_UNSPEC;
    return true;
}

static bool socket_check(Chardev *chr, GError **errp)
{
    struct sockaddr_un sun;

    if (chr->sock.is_unix) {
        if (!chr->sock.path[0]) {
            error_setg(errp, "chardev: socket: no path given");
            return false;
        }
        if (strlen(chr->sock.path) >= sizeof(sun.sun_path)) {
            error_setg(errp, "UNIX socket path '%s' is too long", chr->sock.path);
            return false;
        }
    }
    chardev_socket_update_filename(chr);
    return true;
}

/* "HOST:PORT" or "[V6HOST]:PORT"; HOST may be empty (any address). */
static bool parse_host_port(Chardev *chr, const char *addr, GError **errp)
{
    g_autofree char *host = NULL;
    const char *port;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':') {
            error_setg(errp, "error parsing address '%s'", addr);
            return false;
        }
        host = g_strndup(addr + 1, end - addr - 1);
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) {
            error_setg(errp, "error parsing address '%s'", addr);
            return false;
        }
        host = g_strndup(addr, colon - addr);
        port = colon + 1;
    }
    if (!parse_port(host, port, &chr->sock.port, errp)) {
        return false;
    }
    chr->sock.host = g_steal_pointer(&host);
    return true;
}

/* Add chr to set, or free it and fail. */
static Chardev *chardev_register(ChardevSet *set, Chardev *chr, GError **errp)
{
    if (chardev_find(set, chr->id)) {
        error_setg(errp, "Duplicate ID '%s' for chardev", chr->id);
        chardev_destroy(chr);
        return NULL;
    }
    if (chr->backend == CHARDEV_BACKEND_STDIO) {
        if (set->stdio_used) {
            error_setg(errp, "cannot use stdio by multiple character devices");
            chardev_destroy(chr);
            return NULL;
        }
        set->stdio_used = true;
    }
    g_ptr_array_add(set->chardevs, chr);
    return chr;
}

/* ---- -chardev BACKEND,id=ID,... ---- */

/* fd=N: a socket the parent left open for this process (libvirt's monitor). */
static bool socket_fd_param(Chardev *chr, const char *value, GError **errp)
{
    struct stat st;
    char *end;
    long fd;

    errno = 0;
    fd = strtol(value, &end, 10);
    if (errno || end == value || *end || fd < 0 || fd > G_MAXINT) {
        error_setg(errp, "Unable to parse FD number %s", value);
        return false;
    }
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        error_setg(errp, "File descriptor '%s' is not a socket", value);
        return false;
    }
    chr->sock.fd = fd;
    return true;
}

static bool opts_socket(Chardev *chr, SubOpts *opts, GError **errp)
{
    const char *path = subopts_get(opts, "path");
    const char *host = subopts_get(opts, "host");
    const char *port = subopts_get(opts, "port");
    const char *fd = subopts_get(opts, "fd");

    if (!socket_apply_opts(chr, opts, errp) || !subopts_check_unused(opts, errp)) {
        return false;
    }
    if (!!path + !!host + !!fd > 1) {
        error_setg(errp, "None or one of 'path', 'fd' or 'host' option required.");
        return false;
    }
    if (fd) {
        return socket_fd_param(chr, fd, errp);
    }
    if (path) {
        chr->sock.is_unix = true;
        chr->sock.path = g_strdup(path);
    } else if (host) {
        if (!port) {
            error_setg(errp, "chardev: socket: no port given");
            return false;
        }
        if (!parse_port(host, port, &chr->sock.port, errp)) {
            return false;
        }
        chr->sock.host = g_strdup(host);
    } else {
        error_setg(errp, "chardev: socket: 'path' or 'host' option required");
        return false;
    }
    return socket_check(chr, errp);
}

static bool opts_backend(Chardev *chr, SubOpts *opts, GError **errp)
{
    switch (chr->backend) {
    case CHARDEV_BACKEND_SOCKET:
        return opts_socket(chr, opts, errp);
    case CHARDEV_BACKEND_STDIO:
        if (!subopts_get_bool(opts, "signal", &chr->stdio_signal, errp) ||
            !subopts_check_unused(opts, errp)) {
            return false;
        }
        chardev_set_filename(chr, "stdio");
        return true;
    case CHARDEV_BACKEND_FILE: {
        const char *path = subopts_get(opts, "path");
        if (!subopts_get_bool(opts, "append", &chr->file_append, errp) ||
            !subopts_check_unused(opts, errp)) {
            return false;
        }
        if (!path) {
            error_setg(errp, "chardev: file: no filename given");
            return false;
        }
        chr->file_path = g_strdup(path);
        chardev_set_filename(chr, "file");
        return true;
    }
    case CHARDEV_BACKEND_NULL:
        chardev_set_filename(chr, "null");
        return subopts_check_unused(opts, errp);
    case CHARDEV_BACKEND_PTY:
        chardev_set_filename(chr, "pty");
        return subopts_check_unused(opts, errp);
    }
    return false;
}

static bool backend_from_name(const char *name, ChardevBackend *out, GError **errp)
{
    static const struct {
        const char *name;
        ChardevBackend backend;
    } names[] = {
        { "socket", CHARDEV_BACKEND_SOCKET }, { "stdio", CHARDEV_BACKEND_STDIO },
        { "file", CHARDEV_BACKEND_FILE },     { "null", CHARDEV_BACKEND_NULL },
        { "pty", CHARDEV_BACKEND_PTY },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (strcmp(names[i].name, name) == 0) {
            *out = names[i].backend;
            return true;
        }
    }
    if (in_list(unsupported_drivers, name)) {
        error_setg(errp, "char driver '%s' is not supported", name);
    } else {
        error_setg(errp, "'%s' is not a valid char driver name", name);
    }
    return false;
}

Chardev *chardev_new_from_opts(ChardevSet *set, const char *opts, GError **errp)
{
    SubOpts *o = subopts_parse(opts, "backend", errp);
    const char *id, *backend_name;
    ChardevBackend backend;
    Chardev *chr = NULL;
    bool mux = false;

    if (!o) {
        return NULL;
    }
    id = subopts_get(o, "id");
    backend_name = subopts_get(o, "backend");
    if (!id) {
        error_setg(errp, "chardev: no id specified");
    } else if (!chardev_valid_id(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
    } else if (!backend_name) {
        error_setg(errp, "chardev: \"%s\" missing backend", id);
    } else if (backend_from_name(backend_name, &backend, errp) &&
               refuse_unsupported_keys(o, errp) &&
               subopts_get_bool(o, "mux", &mux, errp)) {
        chr = chardev_alloc(set, id, backend);
        chr->mux = mux;
        if (!opts_backend(chr, o, errp)) {
            chardev_destroy(chr);
            chr = NULL;
        } else {
            chr = chardev_register(set, chr, errp);
        }
    }
    subopts_free(o);
    return chr;
}

/* ---- legacy: -serial / -monitor / -qmp ---- */

/* "ADDR[,opts]" after "tcp:", "telnet:" or "unix:". */
static Chardev *legacy_socket(ChardevSet *set, const char *id, const char *rest,
                              bool is_unix, bool telnet, GError **errp)
{
    const char *comma = strchr(rest, ',');
    g_autofree char *addr = g_strndup(rest,
                                      comma ? (size_t)(comma - rest) : strlen(rest));
    SubOpts *opts = subopts_parse(comma ? comma + 1 : "", NULL, errp);
    Chardev *chr;
    bool ok;

    if (!opts) {
        return NULL;
    }
    chr = chardev_alloc(set, id, CHARDEV_BACKEND_SOCKET);
    chr->sock.telnet = telnet;
    chr->sock.is_unix = is_unix;
    if (is_unix) {
        chr->sock.path = g_strdup(addr);
        ok = true;
    } else {
        ok = parse_host_port(chr, addr, errp);
    }
    ok = ok && refuse_unsupported_keys(opts, errp) &&
         socket_apply_opts(chr, opts, errp) && subopts_check_unused(opts, errp) &&
         socket_check(chr, errp);
    subopts_free(opts);
    if (!ok) {
        chardev_destroy(chr);
        return NULL;
    }
    return chardev_register(set, chr, errp);
}

static bool legacy_is_unsupported(const char *spec)
{
    for (const char *const *p = unsupported_drivers; *p; p++) {
        size_t n = strlen(*p);
        if (strncmp(spec, *p, n) == 0 && (spec[n] == '\0' || spec[n] == ':')) {
            return true;
        }
    }
    return g_str_has_prefix(spec, "/dev/") || g_str_has_prefix(spec, "COM");
}

static Chardev *legacy_new(ChardevSet *set, const char *spec, const char *id, bool mux,
                           GError **errp)
{
    const char *rest;
    Chardev *chr = NULL;

    if (strcmp(spec, "stdio") == 0) {
        chr = chardev_alloc(set, id, CHARDEV_BACKEND_STDIO);
        /* mon:stdio passes Ctrl-C to the guest; C-a x quits instead. */
        chr->stdio_signal = !mux;
        chardev_set_filename(chr, "stdio");
    } else if (strcmp(spec, "null") == 0) {
        chr = chardev_alloc(set, id, CHARDEV_BACKEND_NULL);
        chardev_set_filename(chr, "null");
    } else if (strcmp(spec, "pty") == 0) {
        chr = chardev_alloc(set, id, CHARDEV_BACKEND_PTY);
        chardev_set_filename(chr, "pty");
    } else if ((rest = g_str_has_prefix(spec, "file:") ? spec + 5 : NULL)) {
        chr = chardev_alloc(set, id, CHARDEV_BACKEND_FILE);
        chr->file_path = g_strdup(rest);
        chardev_set_filename(chr, "file");
    } else if (g_str_has_prefix(spec, "tcp:")) {
        chr = legacy_socket(set, id, spec + 4, false, false, errp);
    } else if (g_str_has_prefix(spec, "telnet:")) {
        chr = legacy_socket(set, id, spec + 7, false, true, errp);
    } else if (g_str_has_prefix(spec, "unix:")) {
        chr = legacy_socket(set, id, spec + 5, true, false, errp);
    } else if (legacy_is_unsupported(spec)) {
        error_setg(errp, "char driver '%s' is not supported", spec);
        return NULL;
    } else {
        error_setg(errp, "'%s' is not a valid char driver", spec);
        return NULL;
    }
    if (chr && chr->backend != CHARDEV_BACKEND_SOCKET) {
        chr = chardev_register(set, chr, errp);
    }
    if (chr) {
        chr->mux = mux;
    }
    return chr;
}

Chardev *chardev_new_from_legacy(ChardevSet *set, const char *spec, const char *id,
                                 GError **errp)
{
    if (g_str_has_prefix(spec, "chardev:")) {
        Chardev *chr = chardev_find(set, spec + 8);
        if (!chr) {
            error_setg(errp, "chardev '%s' not found", spec + 8);
        }
        return chr;
    }
    if (g_str_has_prefix(spec, "mon:")) {
        Chardev *chr = legacy_new(set, spec + 4, id, true, errp);
        if (chr) {
            chr->wants_monitor = true;
        }
        return chr;
    }
    return legacy_new(set, spec, id, false, errp);
}
