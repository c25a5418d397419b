/*
 * db - greyhold's LMDB environment; the db_*.c files are the only ones that
 * include <lmdb.h>.
 *
 * One environment (a directory holding data.mdb and lock.mdb) with named
 * databases: "triplets" (triplet key -> record), "clients" (client key ->
 * record, the auto-whitelist), "whitelist" (the live whitelist, db_wl.h)
 * and "meta" ("schema" -> version, the live whitelist's generation).
 * LMDB errors are mapped to negative errnos in one place.  A second
 * process (greyholdctl) may work on the environment at the same time.
 *
 * Threads: a handle belongs to one owning thread, which alone may change
 * the map size; the daemon's loop thread may also peek (db_peek.h).  The
 * rule is spelled out in db_int.h.  The rest of the API: db_batch.h (the
 * store thread's decisions), db_peek.h, db_expire.h, db_wl.h, db_admin.h.
 */
#ifndef GREYHOLD_DB_H
#define GREYHOLD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define DB_SCHEMA_VERSION 1
#define DB_INITIAL_MAP (16ULL << 20)

enum db_table { DB_TRIPLETS, DB_CLIENTS };

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

#endif
