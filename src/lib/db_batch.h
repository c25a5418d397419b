/*
 * db_batch - the store thread's batch decisions on the LMDB environment.
 */
#ifndef GREYHOLD_DB_BATCH_H
#define GREYHOLD_DB_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "engine.h"
#include "job.h"

/*
 * Decide n jobs in one write transaction: for each, in order, read the
 * records, decide_request() (decide.h), write what it says.  On MDB_MAP_FULL the
 * transaction is aborted, the map grown (up to max_size) and the batch
 * replayed.  On success every job has a verdict and err 0; on failure
 * every job has err set and nothing was written.  *committed tells whether
 * anything was written, *commit_usec how long the commit took.  Store
 * thread only (it may change the map size: db_int.h).
 */
int db_decide_batch(db_t *db, struct store_job **jobs, size_t n,
		    const struct engine_params *p, bool *committed,
		    uint64_t *commit_usec);

#endif
