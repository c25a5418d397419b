/*
 * db_int - what the db_*.c files share: the handle and LMDB helpers.
 *
 * Private to the db modules (db.c, db_batch.c, db_peek.c, db_expire.c,
 * db_wl.c, db_admin.c); nothing else includes it, so <lmdb.h> stays
 * inside them.
 *
 * Threads and the map size (lmdb.h: mdb_env_set_mapsize() only while no
 * transaction of the process is active).  In the daemon two threads use
 * one handle: the store thread runs every write (batches, expiry, the live
 * whitelist) and is the only thread that ever changes the map size (growth
 * on MDB_MAP_FULL, adopting a size another process set on
 * MDB_MAP_RESIZED); the loop thread only keeps the read snapshot of
 * db_peek.c, which holds resize_lock for reading while it is open, and
 * answers MDB_MAP_RESIZED by leaving the request to the store thread.  A
 * map change takes resize_lock for writing, between the store thread's own
 * transactions, so no transaction of the process is open during it.
 * greyholdctl uses a handle from one thread and follows the same rule
 * trivially.  map_size is read and written by the owning thread only.
 */
#ifndef GREYHOLD_DB_INT_H
#define GREYHOLD_DB_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "db.h"
#include "record.h"

struct db {
	MDB_env *env;
	MDB_dbi triplets;
	MDB_dbi clients;
	MDB_dbi meta;
	MDB_dbi whitelist;
	uint64_t max_size;
	uint64_t map_size;	/* the owning thread's: see above */

	/* The loop thread's read snapshot (db_peek.c). */
	pthread_rwlock_t resize_lock;
	MDB_txn *snapshot;
	bool snapshot_open;

	/* Expiry sweep position: which database, and the next key. */
	int sweep_db;
	size_t sweep_key_len;
	char sweep_key[512];
};

/* The one place LMDB's codes become negative errnos. */
int db_errno(int rc);

uint64_t db_usec_since(const struct timespec *start);

/*
 * Begin a transaction on the owning thread, adopting a map size another
 * process set (MDB_MAP_RESIZED).  Returns an LMDB code.
 */
int db_txn_begin(db_t *db, bool writable, MDB_txn **txn);

/*
 * Another process grew the map: adopt exactly the size it recorded
 * (owning thread only, no transaction of ours open).  db_txn_begin()
 * adopts with room above it; this exact form is for reporting the
 * environment's size.  Returns an LMDB code.
 */
int db_adopt_map_size(db_t *db);

/* Double the map, up to max_size (owning thread, no transaction open). */
int db_grow_map(db_t *db);
/* The same, into a small reserve above the cap that only deletes use. */
int db_grow_map_for_deletes(db_t *db);

/*
 * Run fn(db, txn, arg) in a write transaction and commit it; on
 * MDB_MAP_FULL grow the map and run it again.  Returns a negative errno.
 */
int db_write_txn(db_t *db, int (*fn)(db_t *, MDB_txn *, const void *),
		 const void *arg);

/*
 * Read and decode one record into *out and set *found.  A corrupt or
 * unknown-version value is deleted (set *wrote: the deletion must be
 * committed), logged, and reads as absent.  Returns an LMDB code.
 */
int db_read_record(MDB_txn *txn, MDB_dbi dbi, const void *key,
		   size_t key_len, struct record *out, bool *found,
		   bool *wrote, const char *what);

/* Encode and put one record.  Returns an LMDB code. */
int db_write_record(MDB_txn *txn, MDB_dbi dbi, const void *key,
		    size_t key_len, const struct record *r);

MDB_dbi db_table_dbi(db_t *db, enum db_table table);

/* One record in a read transaction of its own: 0, -ENOENT, -EBADMSG. */
int db_get_one(db_t *db, MDB_dbi dbi, const void *key, size_t key_len,
	       struct record *out);

#endif
