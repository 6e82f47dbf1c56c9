/*
 * blockdev-add's arguments (QEMU 7.2's BlockdevOptions for file, raw and
 * qcow2) read from JSON: shared by the QMP command and -blockdev.
 */
#ifndef MONITOR_BLOCKDEV_OPTIONS_H
#define MONITOR_BLOCKDEV_OPTIONS_H

#include <stdbool.h>
#include <glib.h>
#include <jansson.h>

#include "hw/drives.h"

/* Fill o from args (o's strings point into args); QEMU's errors. */
bool blockdev_options_from_json(json_t *args, BlockdevAddOptions *o, GError **errp);

#endif
