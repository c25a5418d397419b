/*
 * live_wl - the live whitelist in the store the daemons read it from:
 * the LMDB database or a Redis server (see live_wl.c).
 */
#ifndef GREYHOLD_LIVE_WL_H
#define GREYHOLD_LIVE_WL_H

#include "ctl.h"
#include "db_wl.h"
#include "whitelist.h"

/*
 * Open the store: Redis when the config's store is Redis and no --db was
 * given, otherwise the database as open_db() does.  0, or -1 after saying
 * why on stderr.
 */
int live_wl_open(struct ctl *ctl, enum open_mode mode);

/* As db_wl_put(), db_wl_del() and db_wl_foreach(), in the open store. */
int live_wl_put(struct ctl *ctl, const struct db_wl_entry *e);
int live_wl_del(struct ctl *ctl, enum whitelist_kind kind, const char *entry);
int live_wl_foreach(struct ctl *ctl,
		    int (*fn)(const struct db_wl_entry *, void *), void *arg);

/* Report a failed call (with what Redis said); returns EXIT_ERROR. */
int live_wl_failed(const struct ctl *ctl, const char *what, int rc);

/* Close a Redis connection; nothing for LMDB (main closes ctl->db). */
void live_wl_close(struct ctl *ctl);

#endif
