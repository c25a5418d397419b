/*
 * db - greyhold's LMDB environment: the only module that includes <lmdb.h>.
 *
 * One environment (a directory holding data.mdb and lock.mdb) with named
 * databases: "triplets" (triplet key -> record), "clients" (client key ->
 * record, the auto-whitelist) and "meta" ("schema" -> version).  LMDB
 * errors are mapped to negative errnos in one place (db_errno()).
 *
 * A db handle is used by one thread at a time; the environment is opened
 * MDB_NOTLS so a second process (greyholdctl) can work on it at once.
 */
#ifndef GREYHOLD_DB_H
#define GREYHOLD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "record.h"
#include "store.h"
#include "whitelist.h"

#define DB_SCHEMA_VERSION 1
#define DB_INITIAL_MAP (16ULL << 20)

typedef struct db db_t;

struct db_options {
	const char *dir;
	uint64_t max_size;	/* map size cap; growth stops here */
	bool relaxed;		/* MDB_NOSYNC: the caller syncs */
	bool readonly;
};

int db_open(db_t **out, const struct db_options *opts, char *err,
	    size_t errsz);
void db_close(db_t *db);

/*
 * Decide n jobs in one write transaction: for each, in order, read the
 * records, run the engine, write what changed.  On MDB_MAP_FULL the
 * transaction is aborted, the map grown (up to max_size) and the batch
 * replayed.  On success every job has a verdict and err 0; on failure
 * every job has err set and nothing was written.  *committed tells whether
 * anything was written, *commit_usec how long the commit took.
 */
int db_decide_batch(db_t *db, struct store_job **jobs, size_t n,
		    const struct engine_params *p, bool *committed,
		    uint64_t *commit_usec);

/*
 * Run one bounded slice of the expiry sweep: examine at most budget
 * records from where the last slice stopped, delete the expired ones.
 * Sets *removed, and *wrapped when the sweep reached the end of both
 * databases (the next slice starts a new pass).
 */
int db_expire_slice(db_t *db, int64_t now, const struct engine_params *p,
		    size_t budget, size_t *removed, bool *wrapped);

/* Flush to disk (relaxed durability). */
int db_sync(db_t *db);

uint64_t db_map_size(db_t *db);

/* Look up one record without changing anything (tests, admin CLI). */
int db_get_triplet(db_t *db, const char *key, size_t key_len,
		   struct record *out);
int db_get_client(db_t *db, const char *client, struct record *out);
/* Store a record as is (tests, admin CLI load). */
int db_put_triplet(db_t *db, const char *key, size_t key_len,
		   const struct record *r);

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
