/*
 * db_peek - decide from the committed state, on the daemon's loop thread.
 *
 * Most requests (retries of passed triplets, early retries, listed
 * clients) need no write: the loop thread answers them from a read
 * snapshot without waiting for the store thread or a commit.  It answers
 * only when decide_request() (decide.h) says nothing is to be written, so the
 * answer is exactly the store thread's and as durable as what it read.
 *
 * Threads: one thread (the loop) peeks while another (the store thread)
 * runs batches on the same handle.  The peek thread never changes the
 * map size: when another process grew the map (MDB_MAP_RESIZED) it
 * declines, the store thread adopts the new size on its next transaction
 * (db_int.h), and later peeks succeed again.
 */
#ifndef GREYHOLD_DB_PEEK_H
#define GREYHOLD_DB_PEEK_H

#include <stdbool.h>

#include "db.h"
#include "engine.h"
#include "job.h"

/*
 * Returns true with job->verdict set (and job->err 0); false means "ask
 * the store thread".  When it declines only because the decision writes
 * (a first pass, a refresh or a count that is due), job->verdict holds
 * that decision as a hint, which the store will repeat on its records;
 * otherwise job->verdict is left as the caller set it.  The read snapshot stays open (holding off map
 * changes) until db_snapshot_end(), which the caller runs once per batch
 * of peeks (once per loop turn).
 */
bool db_peek(db_t *db, struct store_job *job, const struct engine_params *p);
void db_snapshot_end(db_t *db);

#endif
