/*
 * -sandbox (a seccomp filter, system/sandbox.c) and the privileges the
 * process keeps (-runas and capabilities, system/privileges.c): option
 * handlers for the table in options.c and the steps main() takes.
 */
#ifndef SYSTEM_SANDBOX_INT_H
#define SYSTEM_SANDBOX_INT_H

#include <stdbool.h>
#include <glib.h>

#include "system/config.h"

/* -sandbox on[,obsolete=..][,elevateprivileges=..][,spawn=..][,resourcecontrol=..] */
bool opt_sandbox(VmConfig *cfg, const char *arg, GError **errp);
/* -runas USER or -runas UID:GID, looked up when read (QEMU's error). */
bool opt_runas(VmConfig *cfg, const char *arg, GError **errp);
/* Free what the two handlers stored in cfg. */
void sandbox_config_clear(VmConfig *cfg);

/*
 * Install a seccomp filter for each -sandbox on, for every thread
 * (TSYNC).  main() calls it right after the command line is read, as QEMU
 * does; without libseccomp any -sandbox is refused with QEMU's text.
 */
bool sandbox_install(const VmConfig *cfg, GError **errp);

/*
 * Refusals between -sandbox and -runas found before anything starts (a
 * user change that the filter forbids).
 */
bool privileges_check(const VmConfig *cfg, GError **errp);

/*
 * Keep only the capabilities the running VMM may still need (see
 * privileges.c) in the permitted, effective, inheritable, ambient and
 * bounding sets.  Called once the host resources are open and before the
 * VM's first thread exists, so every thread inherits the reduced sets.
 * Nothing to do for a process without capabilities.
 */
bool privileges_drop_capabilities(const VmConfig *cfg, GError **errp);

/*
 * -runas: become that user (setgid, initgroups or setgroups, setuid, in
 * every thread), which clears the remaining capabilities; QEMU's texts.
 */
bool privileges_change_user(const VmConfig *cfg, GError **errp);

#endif
