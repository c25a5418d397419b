/*
 * live_wl - the live whitelist in the store the daemons read it from.
 *
 * whitelist add|del|list change the list where the daemons look: with
 * store = lmdb (or any store when --db names a directory) the LMDB
 * database (db_wl_*, which the daemon rereads within a second); with a
 * Redis store the Redis server (redis_admin_wl_*), which every daemon
 * sharing it polls once a second.  Entries are struct db_wl_entry either
 * way; the caller validates them with whitelist_add() first.  Without
 * hiredis a Redis store is refused by config_load() before any command
 * runs, so only the LMDB path is built.
 *
 * Ownership: live_wl_open() sets ctl->db (through open_db()) or
 * ctl->redis; live_wl_close() frees the Redis connection.  Errors are
 * negative errnos, as from db.h and redis_admin.h.
 */
#include "live_wl.h"

#include <stdio.h>
#include <string.h>

#ifdef HAVE_HIREDIS
#include "redis_admin.h"
#endif

int
live_wl_open(struct ctl *ctl, enum open_mode mode)
{
#ifdef HAVE_HIREDIS
	char err[512];

	if (!ctl->dbdir_given && redis_admin_wanted(ctl->cfg)) {
		if (redis_admin_open(&ctl->redis, ctl->cfg, err,
				     sizeof(err)) == 0)
			return 0;
		fprintf(stderr, "greyholdctl: %s\n", err);
		return -1;
	}
#endif
	return open_db(ctl, mode);
}

int
live_wl_put(struct ctl *ctl, const struct db_wl_entry *e)
{
#ifdef HAVE_HIREDIS
	if (ctl->redis != NULL)
		return redis_admin_wl_put(ctl->redis, e);
#endif
	return db_wl_put(ctl->db, e);
}

int
live_wl_del(struct ctl *ctl, enum whitelist_kind kind, const char *entry)
{
#ifdef HAVE_HIREDIS
	if (ctl->redis != NULL)
		return redis_admin_wl_del(ctl->redis, kind, entry);
#endif
	return db_wl_del(ctl->db, kind, entry);
}

int
live_wl_foreach(struct ctl *ctl, int (*fn)(const struct db_wl_entry *, void *),
		void *arg)
{
#ifdef HAVE_HIREDIS
	if (ctl->redis != NULL)
		return redis_admin_wl_foreach(ctl->redis, fn, arg);
#endif
	return db_wl_foreach(ctl->db, fn, arg);
}

int
live_wl_failed(const struct ctl *ctl, const char *what, int rc)
{
#ifdef HAVE_HIREDIS
	if (ctl->redis != NULL) {
		const char *why = redis_admin_error(ctl->redis);

		fprintf(stderr, "greyholdctl: %s in %s: %s%s%s\n", what,
			ctl->cfg->store, strerror(-rc), why[0] ? ": " : "", why);
		return EXIT_ERROR;
	}
#endif
	return db_failed(what, rc);
}

void
live_wl_close(struct ctl *ctl)
{
#ifdef HAVE_HIREDIS
	redis_admin_close(ctl->redis);
#endif
	ctl->redis = NULL;
}
