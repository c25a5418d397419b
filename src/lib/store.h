/*
 * store - the asynchronous decision store.
 *
 * The daemon submits "decide this triplet" jobs from its loop thread and
 * gets them back, decided, through store_collect() after the store calls
 * the wakeup function (from its own thread; the daemon passes a function
 * that wakes its loop, e.g. uv_async_send).  Nothing here blocks the
 * caller: submit only links the job into a queue.
 *
 * The LMDB store runs one thread that takes every job queued since its
 * last commit and decides them all in one write transaction (group
 * commit), so two jobs for one triplet in a batch see each other, and
 * hands them back only after the commit: an answered deferral is on disk.
 * The same thread runs the incremental expiry sweep and, in relaxed
 * durability, the once-a-second sync.
 *
 * Ownership: a submitted job belongs to the store until it comes back
 * from store_collect(); the caller allocates and frees jobs.
 */
#ifndef GREYHOLD_STORE_H
#define GREYHOLD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "job.h"
#include "whitelist.h"

typedef struct store store_t;

struct store_options {
	const char *dbdir;
	uint64_t max_size;	/* map size cap in bytes */
	bool relaxed;		/* commit unsynced, sync once a second */
	struct engine_params params;
	void (*wakeup)(void *arg);
	void *wakeup_arg;
};

struct store_stats {
	uint64_t batches;
	uint64_t jobs;
	uint64_t commits;	/* batches that wrote something */
	uint64_t commit_usec;	/* total time spent committing */
	uint64_t max_batch;
	uint64_t errors;	/* batches that failed */
	uint64_t expired;	/* records removed by the sweep */
	uint64_t map_size;	/* current map size in bytes */
	/* Redis behind Sentinel (sentinel://) only: */
	bool sentinel;
	char primary[300];	/* "HOST:PORT" in use; "" while none */
	uint64_t failovers;	/* times the primary moved */
	uint64_t no_primary_msec;	/* total time without one */
	uint64_t no_primary_now_msec;	/* the current outage; 0: none */
};

/* Open the environment and start the store thread. */
int store_open(store_t **out, const struct store_options *opts, char *err,
	       size_t errsz);

/* New engine parameters for batches that start after this call. */
void store_set_params(store_t *s, const struct engine_params *p);

/*
 * Decide a job at once, from committed state, when that needs no write
 * (see db_peek()): retries of passed triplets, early retries and
 * auto-whitelisted clients never wait for the store thread or a commit.
 * Returns true with job->verdict set.  Submitting thread only.
 */
bool store_try_decide(store_t *s, struct store_job *job);

/*
 * Queue a job (submitting thread).  Jobs collect until store_flush() hands
 * them all to the store thread with one wake-up; they come back through
 * store_collect().
 */
void store_submit(store_t *s, struct store_job *job);

/*
 * End of a loop turn: hand the queued jobs to the store thread and close
 * the read snapshot store_try_decide() used.  Call once per turn.
 */
void store_flush(store_t *s);

/*
 * Hand every decided job to done(job, arg), in submission order.  Returns
 * how many.  Call from the submitting thread after a wakeup.
 */
size_t store_collect(store_t *s, void (*done)(struct store_job *, void *),
		     void *arg);

void store_get_stats(store_t *s, struct store_stats *out);

/*
 * The live whitelist (entries greyholdctl keeps in the database), rebuilt
 * by the store thread within a second of a change or of an entry
 * expiring.  Returns a newly built one that the caller now owns, or NULL
 * when nothing changed since the last call.  The first call after
 * store_open() always returns one.
 */
whitelist_t *store_take_live_whitelist(store_t *s);

/*
 * Decide everything still queued, commit, sync, stop the thread and close
 * the environment.  Jobs decided but not collected are dropped: collect
 * first.
 */
void store_close(store_t *s);

#endif
