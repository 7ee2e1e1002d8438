/* proxy/reload.h - follow the publish directory and swap in each new route
 * table as soon as it is renamed into place. */
#ifndef WEIR_PROXY_RELOAD_H
#define WEIR_PROXY_RELOAD_H

/* Load <dir>/routes.json now if present (publishing it), then follow the
 * directory with inotify in a thread (the dir may not exist yet: wait for
 * it). Each rename/close-write of routes.json -> table_load -> table_publish,
 * or on failure log an error and keep the old table. Counts
 * metrics_reload(ok, generation). While it runs, the thread is the table
 * reaper (table_set_reaper): a table whose last reference a worker drops is
 * freed there. dir is copied. Returns 0, or WEIR_E* when the thread cannot
 * start (or is already running). */
int reload_start(const char *dir);

/* Stop the thread started by reload_start and join it. Safe to call when
 * not started. The current table stays published. */
void reload_stop(void);

#endif
