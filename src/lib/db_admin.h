/*
 * db_admin - record access for greyholdctl: walks, single records, merges,
 * statistics.  One thread; see db.h.
 */
#ifndef GREYHOLD_DB_ADMIN_H
#define GREYHOLD_DB_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "record.h"

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

/*
 * Read every record of every database, LMDB's free-page and main
 * databases included, which visits every page a later lookup or write
 * can reach: 0, or the first error.  On a data.mdb whose pages were
 * overwritten this may fault instead of failing (LMDB keeps no
 * checksums), so a caller that must not crash runs it in a child process
 * (backend_lmdb.c).  It reads the whole file once: measured, 1 s for a
 * million triplets (a 180 MB data.mdb) from the page cache.
 */
int db_read_all(db_t *db);

#endif
