/*
 * db_expire - removing stale records: bounded slices for the store thread,
 * whole passes for greyholdctl expire.  The owning thread only (db.h).
 */
#ifndef GREYHOLD_DB_EXPIRE_H
#define GREYHOLD_DB_EXPIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "engine.h"

/*
 * Run one bounded slice of the expiry sweep: examine at most budget
 * records from where the last slice stopped, delete the expired ones.
 * Sets *removed, and *wrapped when the sweep reached the end of both
 * databases (the next slice starts a new pass).
 */
int db_expire_slice(db_t *db, int64_t now, const struct engine_params *p,
		    size_t budget, size_t *removed, bool *wrapped);

/*
 * Records the sweep goes through: the triplets and clients databases'
 * entry counts (mdb_stat, no walk), in *out.
 */
int db_expire_entries(db_t *db, uint64_t *out);

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
