/*
 * db_wl - the live whitelist kept in the LMDB environment.
 */
#ifndef GREYHOLD_DB_WL_H
#define GREYHOLD_DB_WL_H

#include <stdint.h>

#include "db.h"
#include "whitelist.h"

/*
 * Live whitelist: entries managed by greyholdctl, applied by the daemon
 * without a reload.  Every change bumps a generation counter in "meta";
 * the daemon polls it once a second and rebuilds its matcher when it moved.
 */
#define DB_WL_COMMENT_MAX 200

struct db_wl_entry {
	enum whitelist_kind kind;
	char entry[WHITELIST_MAX_ENTRY];
	int64_t added;
	int64_t expires;	/* 0: never */
	char comment[DB_WL_COMMENT_MAX + 1];
};

/* Add or replace an entry (validate it with whitelist_add() first). */
int db_wl_put(db_t *db, const struct db_wl_entry *e);
/* Remove an entry: 0, or -ENOENT when there was none. */
int db_wl_del(db_t *db, enum whitelist_kind kind, const char *entry);
int db_wl_generation(db_t *db, uint64_t *out);
/* Call fn for every entry (expired ones too); stops at fn's nonzero. */
int db_wl_foreach(db_t *db, int (*fn)(const struct db_wl_entry *, void *),
		  void *arg);

#endif
