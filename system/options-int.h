/*
 * Option handlers of system/options-domain.c (the options a management
 * engine such as libvirt adds), for the option table in options.c.
 */
#ifndef SYSTEM_OPTIONS_INT_H
#define SYSTEM_OPTIONS_INT_H

#include <stdbool.h>
#include <glib.h>

#include "system/config.h"

/*
 * Set by a handler whose error QEMU reports when it applies the option,
 * without the "-opt ARG: " prefix (-rtc, -boot).
 */
extern bool opt_bare_error;

bool opt_object(VmConfig *cfg, const char *arg, GError **errp);
bool opt_blockdev(VmConfig *cfg, const char *arg, GError **errp);
bool opt_uuid(VmConfig *cfg, const char *arg, GError **errp);
bool opt_rtc(VmConfig *cfg, const char *arg, GError **errp);
bool opt_boot(VmConfig *cfg, const char *arg, GError **errp);
bool opt_msg(VmConfig *cfg, const char *arg, GError **errp);
bool opt_log(VmConfig *cfg, const char *arg, GError **errp);
bool opt_audiodev(VmConfig *cfg, const char *arg, GError **errp);
bool opt_no_hpet(VmConfig *cfg, const char *arg, GError **errp);
bool opt_add_fd(VmConfig *cfg, const char *arg, GError **errp);
bool opt_global(VmConfig *cfg, const char *arg, GError **errp);

GPtrArray *object_opts_new(void);
GPtrArray *blockdev_opts_new(void);

/*
 * A JSON option argument ({"driver": "x", ...}) in the key=value spelling
 * the option's parser reads: type_key's member first, nested objects as
 * dotted keys, booleans as on/off.  NULL with QEMU's JSON error.
 */
char *option_json_to_keyval(const char *arg, const char *type_key, GError **errp);

/*
 * After the whole command line: create the -object secrets (read, decoded)
 * and size RAM from -machine memory-backend=, with QEMU's errors.
 */
bool vm_config_create_objects(VmConfig *cfg, GError **errp);

#endif
