/*
 * store - the LMDB store thread: group commit, expiry, relaxed sync.
 *
 * Threads: the submitter (the daemon's loop) only touches the two queues
 * under the mutex.  The store thread owns the db handle outright.  A batch
 * is everything queued when the thread wakes; while it commits, new jobs
 * gather for the next batch, so batches grow with load and one fsync
 * serves many answers.  Decided jobs go to the done queue and the wakeup
 * function tells the submitter to collect them.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"

/* Sweep: records examined per slice, and slices at most once a second. */
#define SWEEP_BUDGET 2000
/* Seconds between full sweep passes once one has finished. */
#define SWEEP_PASS_INTERVAL 600
/* Jobs decided in one transaction at most. */
#define BATCH_MAX 1024

struct job_queue {
	struct store_job *head;
	struct store_job *tail;
};

struct store {
	db_t *db;
	bool relaxed;
	void (*wakeup)(void *arg);
	void *wakeup_arg;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	struct job_queue pending;
	struct job_queue done;
	struct engine_params params;
	struct store_stats stats;
	bool stopping;

	/* Store thread only: */
	time_t last_sweep;
	time_t next_pass;
	time_t last_sync;
	bool unsynced;
	struct log_ratelimit err_limit;
	struct store_job *batch[BATCH_MAX];
};

static void
queue_push(struct job_queue *q, struct store_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static void
log_batch_error(store_t *s, int rc, size_t n)
{
	time_t now = time(NULL);

	if (!log_ratelimit_allow(&s->err_limit, now, 1))
		return;
	log_errno(LOG_LEVEL_ERR, rc,
		  "store: batch of %zu request(s) failed, answering with the "
		  "failure action (%lu similar errors suppressed)", n,
		  s->err_limit.suppressed);
	s->err_limit.suppressed = 0;
}

/* Housekeeping between batches: one sweep slice, the relaxed sync. */
static void
housekeeping(store_t *s, const struct engine_params *p)
{
	time_t now = time(NULL);
	size_t removed;
	bool wrapped;
	int rc;

	if (s->relaxed && s->unsynced && now != s->last_sync) {
		rc = db_sync(s->db);
		if (rc < 0)
			log_errno(LOG_LEVEL_ERR, rc, "store: sync failed");
		s->unsynced = false;
		s->last_sync = now;
	}
	if (now == s->last_sweep || now < s->next_pass)
		return;
	s->last_sweep = now;
	rc = db_expire_slice(s->db, now, p, SWEEP_BUDGET, &removed, &wrapped);
	if (rc < 0) {
		log_errno(LOG_LEVEL_WARN, rc, "store: expiry slice failed");
		return;
	}
	if (removed > 0)
		s->unsynced = true;
	if (wrapped)
		s->next_pass = now + SWEEP_PASS_INTERVAL;
	pthread_mutex_lock(&s->lock);
	s->stats.expired += removed;
	pthread_mutex_unlock(&s->lock);
}

static void
run_batch(store_t *s, size_t n, const struct engine_params *p)
{
	bool committed;
	uint64_t usec;
	size_t i;
	int rc;

	rc = db_decide_batch(s->db, s->batch, n, p, &committed, &usec);
	if (rc < 0)
		log_batch_error(s, rc, n);
	if (committed)
		s->unsynced = true;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++)
		queue_push(&s->done, s->batch[i]);
	s->stats.batches++;
	s->stats.jobs += n;
	if (committed) {
		s->stats.commits++;
		s->stats.commit_usec += usec;
	}
	if (n > s->stats.max_batch)
		s->stats.max_batch = n;
	if (rc < 0)
		s->stats.errors++;
	s->stats.map_size = db_map_size(s->db);
	pthread_mutex_unlock(&s->lock);
	s->wakeup(s->wakeup_arg);
}

static void *
store_thread(void *arg)
{
	store_t *s = arg;
	struct engine_params p;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		size_t n = 0;

		while (s->pending.head == NULL && !s->stopping) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			if (pthread_cond_timedwait(&s->cond, &s->lock, &until) ==
			    ETIMEDOUT) {
				p = s->params;
				pthread_mutex_unlock(&s->lock);
				housekeeping(s, &p);
				pthread_mutex_lock(&s->lock);
			}
		}
		if (s->pending.head == NULL && s->stopping)
			break;
		while (s->pending.head != NULL && n < BATCH_MAX) {
			s->batch[n++] = s->pending.head;
			s->pending.head = s->pending.head->next;
		}
		if (s->pending.head == NULL)
			s->pending.tail = NULL;
		p = s->params;
		pthread_mutex_unlock(&s->lock);

		run_batch(s, n, &p);
		housekeeping(s, &p);

		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int
store_open(store_t **out, const struct store_options *opts, char *err,
	   size_t errsz)
{
	struct db_options dbo = {
		.dir = opts->dbdir,
		.max_size = opts->max_size,
		.relaxed = opts->relaxed,
	};
	store_t *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return -ENOMEM;
	rc = db_open(&s->db, &dbo, err, errsz);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->relaxed = opts->relaxed;
	s->params = opts->params;
	s->wakeup = opts->wakeup;
	s->wakeup_arg = opts->wakeup_arg;
	s->stats.map_size = db_map_size(s->db);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	rc = pthread_create(&s->thread, NULL, store_thread, s);
	if (rc != 0) {
		snprintf(err, errsz, "cannot start the store thread: %s",
			 strerror(rc));
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		db_close(s->db);
		free(s);
		return -rc;
	}
	*out = s;
	return 0;
}

void
store_set_params(store_t *s, const struct engine_params *p)
{
	pthread_mutex_lock(&s->lock);
	s->params = *p;
	pthread_mutex_unlock(&s->lock);
}

void
store_submit(store_t *s, struct store_job *job)
{
	bool was_idle;

	job->err = 0;
	pthread_mutex_lock(&s->lock);
	was_idle = s->pending.head == NULL;
	queue_push(&s->pending, job);
	pthread_mutex_unlock(&s->lock);
	/* A thread that is busy will find the queue when it finishes. */
	if (was_idle)
		pthread_cond_signal(&s->cond);
}

size_t
store_collect(store_t *s, void (*done)(struct store_job *, void *), void *arg)
{
	struct store_job *job;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	job = s->done.head;
	s->done.head = s->done.tail = NULL;
	pthread_mutex_unlock(&s->lock);

	while (job != NULL) {
		struct store_job *next = job->next;

		done(job, arg);
		job = next;
		n++;
	}
	return n;
}

void
store_get_stats(store_t *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}

void
store_close(store_t *s)
{
	int rc;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	if (s->relaxed && (rc = db_sync(s->db)) < 0)
		log_errno(LOG_LEVEL_ERR, rc, "store: final sync failed");
	db_close(s->db);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
