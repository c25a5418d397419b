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

/*
 * Decide a job from the committed state alone, from a thread other than
 * the one running batches, when the decision writes nothing: an early
 * retry, a retry of a passed triplet whose refresh is not due, an
 * auto-whitelisted client whose count is not due.  Returns true with
 * job->verdict set; false means "ask the store thread".  The answer is
 * as durable as what it read, so nothing answered this way can be lost.
 * The read snapshot stays open (holding off map changes) until
 * db_snapshot_end(), which the caller runs once per batch of peeks.
 */
bool db_peek(db_t *db, struct store_job *job, const struct engine_params *p);
void db_snapshot_end(db_t *db);

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

/* ---- admin access (greyholdctl) ---------------------------------------- */

enum db_table { DB_TRIPLETS, DB_CLIENTS };

/*
 * Records handled per transaction by db_walk() and per db_merge() call
 * from greyholdctl: a write transaction of this size lasts milliseconds,
 * so the daemon's store thread never waits long for the write lock.
 */
#define DB_CHUNK 1000

enum db_walk_action { DB_WALK_KEEP = 0, DB_WALK_DELETE = 1, DB_WALK_STOP = 2 };

/*
 * Walk callback: the key (not NUL-terminated; valid only during the call)
 * and its record, or NULL when the stored value cannot be decoded.
 * Returns a db_walk_action, or a negative errno that stops the walk and
 * is returned by db_walk().
 */
typedef int (*db_walk_fn)(const char *key, size_t key_len,
			  const struct record *r, void *arg);

/*
 * Call fn for every record of a table in key order, DB_CHUNK records per
 * transaction: read transactions, or with writable, write transactions in
 * which DB_WALK_DELETE removes the record (without writable it is
 * -EINVAL).  Between chunks the walk resumes after the last key it saw, so
 * records others add or remove meanwhile may or may not be seen, and the
 * walk is not one snapshot.  Returns 0, or the first error.
 */
int db_walk(db_t *db, enum db_table table, bool writable, db_walk_fn fn,
	    void *arg);

/* Look up, or delete, one record: 0, -ENOENT, -EBADMSG (undecodable). */
int db_record_get(db_t *db, enum db_table table, const char *key,
		  size_t key_len, struct record *out);
int db_record_del(db_t *db, enum db_table table, const char *key,
		  size_t key_len);

/*
 * Read, change and write one record in one write transaction: fn gets the
 * record (NULL when absent or undecodable), fills *out and returns true
 * to store it.
 */
int db_record_update(db_t *db, enum db_table table, const char *key,
		     size_t key_len,
		     bool (*fn)(const struct record *cur, struct record *out,
				void *arg),
		     void *arg);

struct db_item {
	enum db_table table;
	const char *key;
	size_t key_len;
	struct record rec;
};

/*
 * Merge n records in one write transaction (keep n <= DB_CHUNK): an
 * absent record is stored; a present one keeps the earlier first_seen,
 * the later last_seen and the larger pass count.  Items with the same key
 * merge with each other.  Adds to *added and *changed (records that were
 * new, and present records that changed).  Merging the same items twice
 * changes nothing the second time.
 */
int db_merge(db_t *db, const struct db_item *items, size_t n, size_t *added,
	     size_t *changed);

struct db_stats {
	uint64_t triplets;	/* entries */
	uint64_t clients;
	uint64_t whitelist;
	uint64_t page_size;
	uint64_t map_size;	/* bytes mapped now */
	uint64_t map_used;	/* bytes up to the last page in use */
	uint64_t max_size;	/* map size cap */
	uint64_t file_size;	/* data.mdb on disk */
	unsigned readers;	/* reader slots in use */
	unsigned max_readers;
};

int db_stats(db_t *db, struct db_stats *out);

struct db_expire_counts {
	size_t triplets;
	size_t clients;
};

/*
 * A whole expiry pass over both tables now, in slices of DB_CHUNK records
 * (db_expire_slice()), or, with dry_run, only count what it would remove.
 */
int db_expire_all(db_t *db, int64_t now, const struct engine_params *p,
		  bool dry_run, struct db_expire_counts *out);

#endif
