/*
 * -netdev: the tap spelling with QEMU's defaults and error texts, and the
 * set of open netdevs (tap queues, scripts, vhost-net instances) by id.
 * Main thread only.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "net-int.h"
#include "util/error.h"
#include "util/subopt.h"

struct Netdev {
    char *id;
    char *ifname;
    char *downscript; /* NULL: none */
    char *info;       /* what HMP's info network says of it */
    unsigned queues;
    NetTap **taps;
    VhostNet **vhosts; /* NULL with vhost=off */
    void *owner;       /* the device using it, or NULL */
};

struct NetdevSet {
    GPtrArray *netdevs; /* of Netdev *, in the order opened */
};

/* Every type QEMU 7.2 knows besides tap: refused by name. */
static const char *const other_types[] = {
    "none", "nic",    "user",    "l2tpv3", "socket",     "stream",     "dgram",
    "vde",  "bridge", "hubport", "netmap", "vhost-user", "vhost-vdpa", NULL,
};

/* Tap options QEMU has and this VMM does not implement. */
static const char *const unsupported_tap_keys[] = {
    "br", "helper", "vnet_hdr", "poll-us", NULL,
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

/* QEMU's identifiers: letters, digits, '-', '.', '_', starting with a letter. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* QEMU keeps the first id= given; every other key the last. */
static const char *first_id(SubOpts *o)
{
    for (guint i = 0; i < o->items->len; i++) {
        SubOpt *item = &g_array_index(o->items, SubOpt, i);
        if (strcmp(item->key, "id") == 0) {
            subopts_get(o, "id"); /* marks every id= as used */
            return item->value;
        }
    }
    return NULL;
}

static bool get_uint(SubOpts *o, const char *key, uint64_t *out, GError **errp)
{
    const char *v = subopts_get(o, key);

    if (v && !parse_uint_value(key, v, out, NULL)) {
        error_setg(errp, "Parameter '%s' expects a uint64 value", key);
        return false;
    }
    return true;
}

static bool get_size(SubOpts *o, const char *key, uint64_t *out, GError **errp)
{
    const char *v = subopts_get(o, key);

    if (v && !parse_size_value(key, v, 0, out, NULL)) {
        error_setg(errp, "Parameter '%s' expects a size value", key);
        return false;
    }
    return true;
}

/* A descriptor number, as QEMU parses fd= on the command line. */
static bool parse_fd(const char *value, int *out, GError **errp)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(value, &end, 10);
    if (!value[0] || *end || errno || v < 0 || v > INT_MAX) {
        error_setg(errp, "Invalid file descriptor number '%s'", value);
        return false;
    }
    *out = (int)v;
    return true;
}

/*
 * fds= and vhostfds=: descriptor numbers joined by ':' (QEMU's spelling),
 * into a new array; *count gets how many.
 */
static int *parse_fd_list(const char *value, unsigned *count, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(value, ":", -1);
    unsigned n = g_strv_length(parts);
    int *fds;

    if (n > NET_TAP_MAX_QUEUES) {
        error_setg(errp, "Parameter 'queues' expects a number from 1 to %d",
                   NET_TAP_MAX_QUEUES);
        return NULL;
    }
    fds = g_new(int, MAX(n, 1));
    for (unsigned i = 0; i < n; i++) {
        if (!parse_fd(parts[i], &fds[i], errp)) {
            g_free(fds);
            return NULL;
        }
    }
    if (n == 0 && !parse_fd(value, &fds[0], errp)) {
        g_free(fds);
        return NULL;
    }
    *count = n;
    return fds;
}

/* fds=[,vhostfds=]: one open tap per queue (libvirt's multi-queue spelling). */
static bool parse_tap_fds(SubOpts *o, NetdevConfig *cfg, const char *fds,
                          const char *vhostfds, GError **errp)
{
    unsigned nfds, nvhosts;

    if (subopts_has(o, "ifname") || subopts_has(o, "script") ||
        subopts_has(o, "downscript") || subopts_has(o, "queues") ||
        subopts_has(o, "vhostfd")) {
        error_setg(errp, "ifname=, script=, downscript=, vnet_hdr=, helper=, "
                         "queues=, and vhostfd= are invalid with fds=");
        return false;
    }
    cfg->fds = parse_fd_list(fds, &nfds, errp);
    if (!cfg->fds) {
        return false;
    }
    cfg->queues = nfds;
    if (vhostfds) {
        cfg->vhostfds = parse_fd_list(vhostfds, &nvhosts, errp);
        if (!cfg->vhostfds) {
            return false;
        }
        if (nvhosts != nfds) {
            error_setg(errp, "The number of fds passed does not match the number of "
                             "vhostfds passed");
            return false;
        }
    }
    return true;
}

/* script= and downscript=: "no" and "" mean none. */
static char *script_path(SubOpts *o, const char *key, const char *dflt)
{
    const char *v = subopts_get(o, key);

    if (!v) {
        return g_strdup(dflt);
    }
    return v[0] && strcmp(v, "no") != 0 ? g_strdup(v) : NULL;
}

/*
 * The tap fields, in the order QEMU's schema checks them: typed values
 * first, then unknown keys, then the combinations.
 */
static bool parse_tap(SubOpts *o, NetdevConfig *cfg, GError **errp)
{
    bool has_vhost = subopts_has(o, "vhost");
    bool vhost = false, vhostforce = false;
    const char *fd = subopts_get(o, "fd");
    const char *vhostfd = subopts_get(o, "vhostfd");
    const char *fds = subopts_get(o, "fds");
    const char *vhostfds = subopts_get(o, "vhostfds");
    uint64_t queues = 1;

    if (!get_size(o, "sndbuf", &cfg->sndbuf, errp) ||
        !subopts_get_bool(o, "vhost", &vhost, errp) ||
        !subopts_get_bool(o, "vhostforce", &vhostforce, errp) ||
        !get_uint(o, "queues", &queues, errp)) {
        return false;
    }
    for (guint i = 0; i < o->items->len; i++) {
        SubOpt *item = &g_array_index(o->items, SubOpt, i);
        if (in_list(unsupported_tap_keys, item->key)) {
            error_setg(errp, "tap option '%s' is not supported by this VMM", item->key);
            return false;
        }
    }
    /* The string keys are read below; mark them known before the check. */
    subopts_get(o, "ifname");
    subopts_get(o, "script");
    subopts_get(o, "downscript");
    if (!subopts_check_unused(o, errp)) {
        return false;
    }
    cfg->vhost = has_vhost ? vhost : vhostfd || vhostfds || vhostforce;
    if ((vhostfd || vhostfds) && !cfg->vhost) {
        error_setg(errp, "vhostfd(s)= is not valid without vhost");
        return false;
    }
    if (fd) {
        if (subopts_has(o, "ifname") || subopts_has(o, "script") ||
            subopts_has(o, "downscript") || subopts_has(o, "queues") || fds || vhostfds) {
            error_setg(errp, "ifname=, script=, downscript=, vnet_hdr=, helper=, "
                             "queues=, fds=, and vhostfds= are invalid with fd=");
            return false;
        }
        if (!parse_fd(fd, &cfg->fd, errp)) {
            return false;
        }
    } else if (fds) {
        return parse_tap_fds(o, cfg, fds, vhostfds, errp);
    } else if (vhostfds) {
        error_setg(errp, "vhostfds= is invalid if fds= wasn't specified");
        return false;
    } else {
        cfg->ifname = g_strdup(subopts_get(o, "ifname"));
        cfg->script = script_path(o, "script", NET_DEFAULT_SCRIPT);
        cfg->downscript = script_path(o, "downscript", NET_DEFAULT_DOWNSCRIPT);
    }
    if (queues < 1 || queues > NET_TAP_MAX_QUEUES) {
        error_setg(errp, "Parameter 'queues' expects a number from 1 to %d",
                   NET_TAP_MAX_QUEUES);
        return false;
    }
    cfg->queues = (unsigned)queues;
    if (vhostfd) {
        if (cfg->queues > 1) {
            error_setg(errp,
                       "vhostfd= gives one vhost-net, but queues=%u needs "
                       "one per queue",
                       cfg->queues);
            return false;
        }
        if (!parse_fd(vhostfd, &cfg->vhostfd, errp)) {
            return false;
        }
    }
    return true;
}

bool netdev_parse(const char *arg, NetdevConfig *out, GError **errp)
{
    SubOpts *o = subopts_parse(arg, "type", errp);
    const char *id, *type;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->vhostfd = -1;
    out->queues = 1;
    if (!o) {
        return false;
    }
    id = first_id(o);
    type = subopts_get(o, "type");
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
    } else if (!id_wellformed(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
    } else if (!type) {
        error_setg(errp, "Parameter 'type' is missing");
    } else if (in_list(other_types, type)) {
        error_setg(errp,
                   "network backend '%s' is not supported by this VMM "
                   "(only 'tap' is)",
                   type);
    } else if (strcmp(type, "tap") != 0) {
        error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
    } else {
        out->id = g_strdup(id);
        ok = parse_tap(o, out, errp);
    }
    subopts_free(o);
    if (!ok) {
        netdev_config_clear(out);
    }
    return ok;
}

void netdev_config_clear(NetdevConfig *cfg)
{
    g_free(cfg->id);
    g_free(cfg->ifname);
    g_free(cfg->script);
    g_free(cfg->downscript);
    g_free(cfg->fds);
    g_free(cfg->vhostfds);
    memset(cfg, 0, sizeof(*cfg));
    cfg->fd = -1;
    cfg->vhostfd = -1;
}

/* ---- the set of open netdevs ---- */

NetdevSet *netdev_set_new(void)
{
    NetdevSet *set = g_new0(NetdevSet, 1);

    set->netdevs = g_ptr_array_new();
    return set;
}

static void netdev_free(Netdev *nd)
{
    for (unsigned i = 0; i < nd->queues; i++) {
        if (nd->vhosts) {
            vhost_net_close(nd->vhosts[i]);
        }
    }
    if (nd->downscript && nd->taps[0]) {
        GError *err = NULL;
        if (!net_run_script(nd->downscript, nd->ifname, &err)) {
            error_report_err(err, NULL);
        }
    }
    for (unsigned i = 0; i < nd->queues; i++) {
        net_tap_free(nd->taps[i]);
    }
    g_free(nd->vhosts);
    g_free(nd->taps);
    g_free(nd->downscript);
    g_free(nd->info);
    g_free(nd->ifname);
    g_free(nd->id);
    g_free(nd);
}

void netdev_set_free(NetdevSet *set)
{
    if (!set) {
        return;
    }
    while (set->netdevs->len) {
        netdev_close(set, g_ptr_array_index(set->netdevs, set->netdevs->len - 1));
    }
    g_ptr_array_free(set->netdevs, TRUE);
    g_free(set);
}

Netdev *netdev_find(NetdevSet *set, const char *id)
{
    for (guint i = 0; i < set->netdevs->len; i++) {
        Netdev *nd = g_ptr_array_index(set->netdevs, i);
        if (strcmp(nd->id, id) == 0) {
            return nd;
        }
    }
    return NULL;
}

/* Open the queues: the first creates the interface, the rest join it. */
static bool open_taps(Netdev *nd, const NetdevConfig *cfg, GError **errp)
{
    if (cfg->fd >= 0) {
        nd->taps[0] = net_tap_from_fd(cfg->fd, cfg->id, errp);
        if (!nd->taps[0]) {
            return false;
        }
    } else if (cfg->fds) {
        for (unsigned i = 0; i < nd->queues; i++) {
            nd->taps[i] = net_tap_from_fd(cfg->fds[i], cfg->id, errp);
            if (!nd->taps[i]) {
                return false;
            }
            if (net_tap_has_vnet_hdr(nd->taps[i]) != net_tap_has_vnet_hdr(nd->taps[0])) {
                error_setg(errp, "vnet_hdr not consistent across given tap fds");
                return false;
            }
        }
    } else {
        for (unsigned i = 0; i < nd->queues; i++) {
            nd->taps[i] = net_tap_open(i ? nd->ifname : cfg->ifname, nd->queues > 1,
                                       errp);
            if (!nd->taps[i]) {
                return false;
            }
            if (i == 0) {
                nd->ifname = g_strdup(net_tap_ifname(nd->taps[0]));
                if (cfg->script && !net_run_script(cfg->script, nd->ifname, errp)) {
                    return false;
                }
            }
        }
    }
    if (!nd->ifname) {
        nd->ifname = g_strdup(net_tap_ifname(nd->taps[0]));
    }
    for (unsigned i = 0; i < nd->queues; i++) {
        if (!net_tap_set_sndbuf(nd->taps[i], cfg->sndbuf, errp)) {
            return false;
        }
    }
    return true;
}

static bool open_vhosts(Netdev *nd, const NetdevConfig *cfg, GError **errp)
{
    nd->vhosts = g_new0(VhostNet *, nd->queues);
    for (unsigned i = 0; i < nd->queues; i++) {
        nd->vhosts[i] = vhost_net_open(cfg->vhostfds ? cfg->vhostfds[i] : cfg->vhostfd,
                                       errp);
        if (!nd->vhosts[i]) {
            return false;
        }
    }
    return true;
}

Netdev *netdev_open(NetdevSet *set, const NetdevConfig *cfg, GError **errp)
{
    Netdev *nd;

    if (netdev_find(set, cfg->id)) {
        error_setg(errp, "Duplicate ID '%s' for netdev", cfg->id);
        return NULL;
    }
    nd = g_new0(Netdev, 1);
    nd->id = g_strdup(cfg->id);
    nd->queues = cfg->fd >= 0 ? 1 : MAX(cfg->queues, 1);
    nd->taps = g_new0(NetTap *, nd->queues);
    if (!open_taps(nd, cfg, errp) || (cfg->vhost && !open_vhosts(nd, cfg, errp))) {
        /* The caller keeps fd(s)= and vhostfd(s)= when the netdev fails. */
        for (unsigned i = 0; i < nd->queues; i++) {
            if ((cfg->fd >= 0 || cfg->fds) && nd->taps[i]) {
                net_tap_release_fd(nd->taps[i]);
            }
            if ((cfg->vhostfd >= 0 || cfg->vhostfds) && nd->vhosts && nd->vhosts[i]) {
                vhost_net_release_fd(nd->vhosts[i]);
            }
        }
        netdev_free(nd); /* no downscript: it is set only once all is open */
        return NULL;
    }
    nd->downscript = g_strdup(cfg->downscript);
    nd->info = cfg->fd >= 0 || cfg->fds
                   ? g_strdup_printf("fd=%d", cfg->fds ? cfg->fds[0] : cfg->fd)
                   : g_strdup_printf("ifname=%s,script=%s,downscript=%s", nd->ifname,
                                     cfg->script ? cfg->script : "no",
                                     cfg->downscript ? cfg->downscript : "no");
    g_ptr_array_add(set->netdevs, nd);
    return nd;
}

void netdev_close(NetdevSet *set, Netdev *nd)
{
    g_ptr_array_remove(set->netdevs, nd);
    netdev_free(nd);
}

GPtrArray *netdev_list(NetdevSet *set)
{
    return set->netdevs;
}

const char *netdev_id(Netdev *nd)
{
    return nd->id;
}

const char *netdev_ifname(Netdev *nd)
{
    return nd->ifname;
}

const char *netdev_info(Netdev *nd)
{
    return nd->info;
}

unsigned netdev_queues(Netdev *nd)
{
    return nd->queues;
}

NetTap *netdev_tap(Netdev *nd, unsigned queue)
{
    return queue < nd->queues ? nd->taps[queue] : NULL;
}

VhostNet *netdev_vhost(Netdev *nd, unsigned queue)
{
    return nd->vhosts && queue < nd->queues ? nd->vhosts[queue] : NULL;
}

bool netdev_claim(Netdev *nd, void *owner)
{
    if (nd->owner && nd->owner != owner) {
        return false;
    }
    nd->owner = owner;
    return true;
}

void netdev_release(Netdev *nd, void *owner)
{
    if (nd->owner == owner) {
        nd->owner = NULL;
    }
}

void *netdev_owner(Netdev *nd)
{
    return nd->owner;
}
