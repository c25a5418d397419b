/*
 * job - one request to decide, as every backend takes it.
 *
 * The daemon fills in the keys and the time and hands the job to its
 * backend (the LMDB store thread, store.h, or the Redis client); the
 * backend fills in the verdict or an error and hands it back.  A plain
 * value type, so the LMDB layer (db_batch.h), the store thread and the
 * Redis backend depend on it and not on each other.
 *
 * Identities (decide.h): key is always the client network (identity 0);
 * more[] holds the request's further identities (a verified name's
 * organisational domain, an SPF-validated sender domain), each with its
 * own auto-whitelist and triplet keys.
 *
 * Ownership: the submitter allocates and frees jobs; between submission
 * and hand-back a job belongs to the backend, including its next link.
 */
#ifndef GREYHOLD_JOB_H
#define GREYHOLD_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "triplet.h"

/* Identities besides the network; 1 + JOB_MAX_MORE == DECIDE_MAX_IDS. */
#define JOB_MAX_MORE 2

struct job_ident {
	struct triplet_key key;	/* client part "n:DOMAIN" or "s:DOMAIN" */
	bool awl;		/* may auto-whitelist (with awl_passes > 0) */
};

struct store_job {
	/* Set by the submitter. */
	struct triplet_key key;	/* identity 0: client network keys */
	size_t n_more;
	struct job_ident more[JOB_MAX_MORE];
	int64_t now;
	int64_t delay;		/* > 0: this request's delay instead of the
				   configured one (a listed client's longer
				   delay) */
	void *owner;

	/* Set by the backend. */
	struct engine_verdict verdict;
	size_t matched;		/* identity that decided (0: the network) */
	int err;		/* 0, or negative errno: no verdict */

	struct store_job *next;	/* queue link, the backend's while submitted */
};

/* A FIFO of jobs linked through their next field (the owner's lock, if any). */
struct job_queue {
	struct store_job *head;
	struct store_job *tail;
};

/* Append job at the tail. */
void job_queue_push(struct job_queue *q, struct store_job *job);

/* Identities of a job: 1 + n_more. */
size_t job_ids(const struct store_job *job);

/* Keys of identity i (0: the network). */
const struct triplet_key *job_id_key(const struct store_job *job, size_t i);

/* Whether identity i may be auto-whitelisted under params p. */
bool job_id_awl(const struct store_job *job, size_t i,
		const struct engine_params *p);

/* The parameters this job is decided with (its own delay, if set). */
struct engine_params job_params(const struct store_job *job,
				const struct engine_params *p);

#endif
