/*
 * job - one request to decide, as every backend takes it.
 *
 * The daemon fills in the keys and the time and hands the job to its
 * backend (the LMDB store thread, store.h, or the Redis client); the
 * backend fills in the verdict or an error and hands it back.  A plain
 * value type, so the LMDB layer (db_batch.h), the store thread and the
 * Redis backend depend on it and not on each other.
 *
 * Ownership: the submitter allocates and frees jobs; between submission
 * and hand-back a job belongs to the backend, including its next link.
 */
#ifndef GREYHOLD_JOB_H
#define GREYHOLD_JOB_H

#include <stdint.h>

#include "engine.h"
#include "triplet.h"

struct store_job {
	/* Set by the submitter. */
	struct triplet_key key;	/* client key and triplet key */
	int64_t now;
	void *owner;

	/* Set by the backend. */
	struct engine_verdict verdict;
	int err;		/* 0, or negative errno: no verdict */

	struct store_job *next;	/* queue link, the backend's while submitted */
};

#endif
