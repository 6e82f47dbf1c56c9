/*
 * -d stall (system/stall.c): the main loop's long stints without polling,
 * said on stderr with what the main thread was doing in them.
 */
#ifndef SYSTEM_STALL_INT_H
#define SYSTEM_STALL_INT_H

#include <stdbool.h>
#include <glib.h>

/*
 * Wrap the default main context's poll function and start the thread that
 * samples the calling (main) thread; before g_main_loop_run.
 */
bool stall_watch_start(GError **errp);
/* After g_main_loop_run: the last stint, which no poll ended. */
void stall_watch_end(void);

#endif
