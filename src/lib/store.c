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

#include "db_batch.h"
#include "db_expire.h"
#include "db_peek.h"
#include "db_wl.h"
#include "log.h"
#include "sweep.h"

/* Seconds between full sweep passes once one has finished. */
#define SWEEP_PASS_INTERVAL 600
/* Jobs decided in one transaction at most. */
#define BATCH_MAX 1024
/*
 * Group commit: after a big batch, the clients it answered come back
 * within a fraction of a commit's time.  Starting the next commit on the
 * first one or two of them would split them over two commits, so the
 * thread waits briefly for most of them: at most GATHER_MAX_USEC, and at
 * most a quarter of the last commit's duration.
 */
#define GATHER_MIN_BATCH 8
#define GATHER_MAX_USEC 500

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
	size_t npending;
	bool gathering;			/* the thread waits for more jobs */
	struct job_queue done;
	struct engine_params params;
	struct store_stats stats;
	whitelist_t *live_wl;		/* built, not yet taken */
	bool stopping;

	/* Submitting thread only: */
	struct job_queue staged;
	size_t nstaged;
	struct engine_params loop_params;

	/* Store thread only: */
	struct sweep_pace sweep;	/* this second's budget (sweep.h) */
	time_t next_pass;
	time_t last_sync;
	time_t last_wl_check;
	bool unsynced;
	uint64_t wl_generation;
	size_t last_batch;
	uint64_t last_commit_usec;
	int64_t wl_next_expiry;		/* 0: no entry expires */
	struct log_ratelimit err_limit;
	struct store_job *batch[BATCH_MAX];
};

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

struct wl_build {
	whitelist_t *wl;
	int64_t now;
	int64_t next_expiry;
};

static int
add_live_entry(const struct db_wl_entry *e, void *arg)
{
	struct wl_build *b = arg;
	char err[300];

	if (e->expires != 0 && e->expires <= b->now)
		return 0;
	if (e->expires != 0 && (b->next_expiry == 0 || e->expires < b->next_expiry))
		b->next_expiry = e->expires;
	if (whitelist_add(b->wl, e->kind, e->entry, err, sizeof(err)) < 0)
		log_msg(LOG_LEVEL_WARN, "live whitelist: skipping %s entry: %s",
			e->kind == WHITELIST_CLIENTS ? "client" : "recipient", err);
	return 0;
}

/*
 * Rebuild the live whitelist when its generation moved or an entry
 * expired, and hand it to the loop.  Returns whether one was published.
 */
static bool
refresh_live_whitelist(store_t *s, bool force)
{
	struct wl_build b = {NULL, (int64_t)time(NULL), 0};
	uint64_t gen;
	int rc;

	rc = db_wl_generation(s->db, &gen);
	if (rc < 0) {
		log_errno(LOG_LEVEL_WARN, rc, "live whitelist: cannot read generation");
		return false;
	}
	if (!force && gen == s->wl_generation &&
	    (s->wl_next_expiry == 0 || b.now < s->wl_next_expiry))
		return false;
	if (whitelist_create(&b.wl) < 0)
		return false;
	rc = db_wl_foreach(s->db, add_live_entry, &b);
	if (rc < 0) {
		log_errno(LOG_LEVEL_WARN, rc, "live whitelist: cannot read entries");
		whitelist_free(b.wl);
		return false;
	}
	whitelist_finish(b.wl);
	s->wl_generation = gen;
	s->wl_next_expiry = b.next_expiry;
	pthread_mutex_lock(&s->lock);
	whitelist_free(s->live_wl);	/* never taken: superseded */
	s->live_wl = b.wl;
	pthread_mutex_unlock(&s->lock);
	return true;
}

static uint64_t
usec_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)((now.tv_sec - start->tv_sec) * 1000000 +
			  (now.tv_nsec - start->tv_nsec) / 1000);
}

/*
 * Whether requests wait for the thread, or the store is closing: then the
 * sweep leaves the rest of its second for later.
 */
static bool
sweep_should_yield(store_t *s)
{
	bool yield;

	pthread_mutex_lock(&s->lock);
	yield = s->pending.head != NULL || s->stopping;
	pthread_mutex_unlock(&s->lock);
	return yield;
}

/*
 * The expiry sweep's share of this turn: slices of this second's budget
 * (sweep.h), one short write transaction each, until the budget is spent
 * or requests are waiting; the next turn, after their batch, goes on.
 */
static void
sweep(store_t *s, time_t now, const struct engine_params *p)
{
	struct timespec start;
	uint64_t entries, n, usec;
	size_t removed;
	bool wrapped;
	int rc;

	if (now < s->next_pass)
		return;
	if (sweep_pace_new_second(&s->sweep, now)) {
		rc = db_expire_entries(s->db, &entries);
		if (rc < 0)
			entries = 0;	/* the slice will fail and say why */
		sweep_pace_second(&s->sweep, now, entries);
	}
	while ((n = sweep_pace_slice(&s->sweep)) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &start);
		rc = db_expire_slice(s->db, now, p, n, &removed, &wrapped);
		usec = usec_since(&start);
		if (rc < 0) {
			log_errno(LOG_LEVEL_WARN, rc, "store: expiry slice failed");
			sweep_pace_hold(&s->sweep);
			return;
		}
		sweep_pace_done(&s->sweep, n, removed, usec, wrapped);
		if (removed > 0) {
			s->unsynced = true;
			pthread_mutex_lock(&s->lock);
			s->stats.expired += removed;
			pthread_mutex_unlock(&s->lock);
		}
		if (wrapped) {
			s->next_pass = now + SWEEP_PASS_INTERVAL;
			return;
		}
		if (sweep_should_yield(s))
			return;
	}
}

/* Housekeeping between batches: the live whitelist, relaxed sync, sweep. */
static void
housekeeping(store_t *s, const struct engine_params *p)
{
	time_t now = time(NULL);
	int rc;

	if (now != s->last_wl_check) {
		s->last_wl_check = now;
		if (refresh_live_whitelist(s, false))
			s->wakeup(s->wakeup_arg);
	}
	if (s->relaxed && s->unsynced && now != s->last_sync) {
		rc = db_sync(s->db);
		if (rc < 0)
			log_errno(LOG_LEVEL_ERR, rc, "store: sync failed");
		s->unsynced = false;
		s->last_sync = now;
	}
	sweep(s, now, p);
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
	s->last_batch = n;
	s->last_commit_usec = committed ? usec : 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++)
		job_queue_push(&s->done, s->batch[i]);
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

/*
 * With the lock held and jobs pending: if the last batch was big and
 * committed, wait a little for the rest of its clients (see GATHER_*).
 */
static void
gather(store_t *s)
{
	uint64_t wait_usec = s->last_commit_usec / 4;
	struct timespec until;

	if (s->last_batch < GATHER_MIN_BATCH || wait_usec == 0 || s->stopping)
		return;
	if (wait_usec > GATHER_MAX_USEC)
		wait_usec = GATHER_MAX_USEC;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)(wait_usec * 1000);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	s->gathering = true;
	while (s->npending < s->last_batch * 3 / 4 && !s->stopping &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
		;
	s->gathering = false;
}

/*
 * The thread's timed waits measure intervals, so they run on the monotonic
 * clock: on the wall clock, a step back would stretch a wait by the step
 * and hold a queued batch (or the housekeeping) that long.
 */
static void
init_monotonic_cond(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
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

			clock_gettime(CLOCK_MONOTONIC, &until);
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
		gather(s);
		while (s->pending.head != NULL && n < BATCH_MAX) {
			s->batch[n++] = s->pending.head;
			s->pending.head = s->pending.head->next;
		}
		s->npending -= n;
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
	s->loop_params = opts->params;
	s->wakeup = opts->wakeup;
	s->wakeup_arg = opts->wakeup_arg;
	s->stats.map_size = db_map_size(s->db);
	pthread_mutex_init(&s->lock, NULL);
	init_monotonic_cond(&s->cond);
	/* Live entries apply from the first request on. */
	refresh_live_whitelist(s, true);
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
	s->loop_params = *p;
}

bool
store_try_decide(store_t *s, struct store_job *job)
{
	return db_peek(s->db, job, &s->loop_params);
}

void
store_submit(store_t *s, struct store_job *job)
{
	job->err = 0;
	job_queue_push(&s->staged, job);
	s->nstaged++;
}

void
store_flush(store_t *s)
{
	bool wake;

	db_snapshot_end(s->db);
	if (s->staged.head == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	/* A thread that is busy finds the queue when it finishes. */
	wake = s->pending.head == NULL || s->gathering;
	if (s->pending.tail != NULL)
		s->pending.tail->next = s->staged.head;
	else
		s->pending.head = s->staged.head;
	s->pending.tail = s->staged.tail;
	s->npending += s->nstaged;
	pthread_mutex_unlock(&s->lock);
	s->staged.head = s->staged.tail = NULL;
	s->nstaged = 0;
	if (wake)
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

whitelist_t *
store_take_live_whitelist(store_t *s)
{
	whitelist_t *wl;

	pthread_mutex_lock(&s->lock);
	wl = s->live_wl;
	s->live_wl = NULL;
	pthread_mutex_unlock(&s->lock);
	return wl;
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
	store_flush(s);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	if (s->relaxed && (rc = db_sync(s->db)) < 0)
		log_errno(LOG_LEVEL_ERR, rc, "store: final sync failed");
	db_close(s->db);
	whitelist_free(s->live_wl);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
