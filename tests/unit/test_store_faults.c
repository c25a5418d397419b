/*
 * test_store_faults - the store's rare error paths, forced by link-time
 * wrapping of LMDB's write calls.
 *
 * This binary is linked with -Wl,--wrap=mdb_put, --wrap=mdb_txn_commit
 * and --wrap=mdb_env_set_mapsize, so every call the library (db.c) makes
 * to those functions lands in the __wrap_ functions below.  They call the
 * real function unless a fault is armed: then the Nth call from arming
 * (and, for a repeating fault, every later one) returns the injected code
 * instead.  An injected commit failure aborts the transaction first, as a
 * real failed mdb_txn_commit() frees it, so the write lock is released.
 *
 * What must hold (issue 5, db.h, store.h): on MDB_MAP_FULL the map grows
 * and the batch is replayed, each job decided exactly once; at the cap,
 * or when growing fails, every job of the batch fails and nothing of it
 * is written; a failed put or commit fails the whole batch atomically and
 * the next batch works; a record of an unknown version is deleted, logged
 * and read as absent; the asynchronous store keeps serving after a failed
 * batch and counts it in its stats.
 *
 * The library logs to stderr; tests that check a log line capture fd 2
 * into a temporary file around the call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "db_admin.h"
#include "db_batch.h"
#include "db_expire.h"
#include "db_peek.h"
#include "db_wl.h"
#include "engine.h"
#include "record.h"
#include "store.h"
#include "store_helpers.h"
#include "triplet.h"

/* ---- fault injection ----------------------------------------------------- */

struct fault {
	unsigned after;		/* calls let through before the fault */
	bool armed;
	bool repeat;		/* keep failing once triggered */
	int rc;			/* the code to return */
	unsigned calls;		/* calls seen since arming or reset */
	unsigned injected;	/* faults returned */
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault put_fault, commit_fault, mapsize_fault;
static unsigned total_injected;	/* over the whole run, for the summary */

int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
		   unsigned int flags);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
		   unsigned int flags);
int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);
int __real_mdb_env_set_mapsize(MDB_env *env, size_t size);
int __wrap_mdb_env_set_mapsize(MDB_env *env, size_t size);

/* Count a call; returns the code to inject, or 0 to call the real one. */
static int
fault_hit(struct fault *f)
{
	int rc = 0;

	pthread_mutex_lock(&fault_lock);
	f->calls++;
	if (f->armed && f->calls > f->after) {
		rc = f->rc;
		f->injected++;
		total_injected++;
		if (!f->repeat)
			f->armed = false;
	}
	pthread_mutex_unlock(&fault_lock);
	return rc;
}

/* Fail the (after + 1)-th call from now with rc, once or from then on. */
static void
fault_arm(struct fault *f, unsigned after, int rc, bool repeat)
{
	pthread_mutex_lock(&fault_lock);
	f->after = after;
	f->rc = rc;
	f->repeat = repeat;
	f->armed = true;
	f->calls = 0;
	f->injected = 0;
	pthread_mutex_unlock(&fault_lock);
}

static void
fault_reset(struct fault *f)
{
	pthread_mutex_lock(&fault_lock);
	memset(f, 0, sizeof(*f));
	pthread_mutex_unlock(&fault_lock);
}

static unsigned
fault_calls(struct fault *f)
{
	unsigned n;

	pthread_mutex_lock(&fault_lock);
	n = f->calls;
	pthread_mutex_unlock(&fault_lock);
	return n;
}

static unsigned
fault_injected(struct fault *f)
{
	unsigned n;

	pthread_mutex_lock(&fault_lock);
	n = f->injected;
	pthread_mutex_unlock(&fault_lock);
	return n;
}

int
__wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
	       unsigned int flags)
{
	int rc = fault_hit(&put_fault);

	if (rc != 0)
		return rc;
	return __real_mdb_put(txn, dbi, key, data, flags);
}

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
	int rc = fault_hit(&commit_fault);

	if (rc != 0) {
		/* A failed commit frees the transaction (lmdb.h). */
		mdb_txn_abort(txn);
		return rc;
	}
	return __real_mdb_txn_commit(txn);
}

int
__wrap_mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	int rc = fault_hit(&mapsize_fault);

	if (rc != 0)
		return rc;
	return __real_mdb_env_set_mapsize(env, size);
}

/* ---- per-test setup ------------------------------------------------------ */

/* A temporary directory (store_helpers), and no fault left armed. */
static int
setup(void **state)
{
	fault_reset(&put_fault);
	fault_reset(&commit_fault);
	fault_reset(&mapsize_fault);
	return make_tmp(state);
}

static int
teardown(void **state)
{
	fault_reset(&put_fault);
	fault_reset(&commit_fault);
	fault_reset(&mapsize_fault);
	return remove_tmp(state);
}

static unsigned
count_lines_with(const char *text, const char *needle)
{
	unsigned n = 0;
	const char *p = text;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* ---- helpers ------------------------------------------------------------- */

/* Job id: 192.0.2.7, sender@example.org, user<id>@example.net. */
static void
make_numbered_job(struct store_job *job, unsigned id, int64_t now)
{
	char rcpt[64];

	snprintf(rcpt, sizeof(rcpt), "user%u@example.net", id);
	make_job(job, "192.0.2.7", "sender@example.org", rcpt, now);
}

/* Jobs first..first+n-1, one per triplet. */
static struct store_job *
make_jobs(unsigned first, size_t n, int64_t now)
{
	struct store_job *jobs = calloc(n, sizeof(*jobs));
	size_t i;

	assert_non_null(jobs);
	for (i = 0; i < n; i++)
		make_numbered_job(&jobs[i], first + (unsigned)i, now);
	return jobs;
}

static void
assert_all_new(const struct store_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (jobs[i].err != 0)
			fail_msg("job %zu failed: %d", i, jobs[i].err);
		if (jobs[i].verdict.action != ENGINE_DEFER ||
		    jobs[i].verdict.reason != ENGINE_NEW)
			fail_msg("job %zu: verdict %s, want new (decided "
				 "twice?)", i,
				 engine_reason_name(jobs[i].verdict.reason));
	}
}

static void
assert_all_failed(const struct store_job *jobs, size_t n, int want)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (jobs[i].err >= 0 || (want != 0 && jobs[i].err != want))
			fail_msg("job %zu: err %d, want %d", i, jobs[i].err,
				 want);
	}
}

static int
get_triplet(db_t *db, const struct store_job *job, struct record *r)
{
	return db_get_triplet(db, job->key.key, job->key.key_len, r);
}

static void
assert_stored(db_t *db, const struct store_job *jobs, size_t n, int64_t now)
{
	struct record r;
	size_t i;

	for (i = 0; i < n; i++) {
		int rc = get_triplet(db, &jobs[i], &r);

		if (rc != 0)
			fail_msg("triplet %zu not stored (%d)", i, rc);
		assert_int_equal(r.first_seen, now);
		assert_int_equal(r.last_seen, now);
		assert_int_equal(r.passes, 0);
	}
}

static void
assert_none_stored(db_t *db, const struct store_job *jobs, size_t n)
{
	struct record r;
	size_t i;

	for (i = 0; i < n; i++) {
		int rc = get_triplet(db, &jobs[i], &r);

		if (rc != -ENOENT)
			fail_msg("triplet %zu of a failed batch is in the "
				 "database (%d)", i, rc);
	}
}

static uint64_t
triplet_count(db_t *db)
{
	struct db_stats st;

	assert_int_equal(db_stats(db, &st), 0);
	return st.triplets;
}

/* A first batch that succeeds, to check it survives later faults. */
#define EARLIER 20

static struct store_job *
store_earlier(db_t *db)
{
	struct store_job *jobs = make_jobs(1000, EARLIER, T0);
	bool committed = false;

	assert_int_equal(decide(db, jobs, EARLIER, &test_params, &committed), 0);
	assert_true(committed);
	assert_all_new(jobs, EARLIER);
	return jobs;
}

/* ---- MDB_MAP_FULL: growth and replay ------------------------------------- */

#define BATCH 50

static void
test_map_full_once_grows_and_replays(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = false;
	char *log;

	assert_int_equal(db_map_size(db), DB_INITIAL_MAP);
	/* The 10th put of the batch reports a full map. */
	fault_arm(&put_fault, 9, MDB_MAP_FULL, false);
	fault_arm(&mapsize_fault, 1000, 0, false);	/* count calls only */
	capture_start(t);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), 0);
	log = capture_end(t);

	assert_int_equal(fault_injected(&put_fault), 1);
	assert_true(committed);
	/* Grown once, by doubling. */
	assert_int_equal(fault_calls(&mapsize_fault), 1);
	assert_int_equal(db_map_size(db), 2 * DB_INITIAL_MAP);
	if (strstr(log, "database map grown to 32 MiB") == NULL)
		fail_msg("growth not logged: \"%s\"", log);
	/* Replayed from the start: 9 puts lost to the abort, then all 50. */
	assert_int_equal(fault_calls(&put_fault), 10 + BATCH);
	/* Each job decided once: new, not an early retry of its own replay. */
	assert_all_new(jobs, BATCH);
	assert_stored(db, jobs, BATCH, T0);
	assert_stored(db, earlier, EARLIER, T0);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	free(log);
	free(jobs);
	free(earlier);
	db_close(db);

	/* Durable: the grown map and the data survive a reopen. */
	db = open_db(t->dir, 64 * MIB, false);
	jobs = make_jobs(0, BATCH, T0);
	assert_stored(db, jobs, BATCH, T0);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	free(jobs);
	db_close(db);
}

/* Two jobs for one triplet in a replayed batch still see each other once. */
static void
test_map_full_replay_keeps_in_batch_order(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job jobs[3];
	bool committed = false;
	struct record r;

	make_numbered_job(&jobs[0], 1, T0);
	make_numbered_job(&jobs[1], 2, T0);
	make_numbered_job(&jobs[2], 1, T0 + 10);	/* same triplet as jobs[0] */
	fault_arm(&put_fault, 1, MDB_MAP_FULL, false);	/* the 2nd put */
	assert_int_equal(decide(db, jobs, 3, &test_params, &committed), 0);
	assert_int_equal(fault_injected(&put_fault), 1);
	assert_true(committed);
	assert_int_equal(jobs[0].err, 0);
	assert_int_equal(jobs[1].err, 0);
	assert_int_equal(jobs[2].err, 0);
	assert_int_equal(jobs[0].verdict.reason, ENGINE_NEW);
	assert_int_equal(jobs[1].verdict.reason, ENGINE_NEW);
	assert_int_equal(jobs[2].verdict.reason, ENGINE_EARLY);
	assert_int_equal(jobs[2].verdict.seconds_left, 290);
	assert_int_equal(get_triplet(db, &jobs[0], &r), 0);
	/* Not restarted by the replay. */
	assert_int_equal(r.first_seen, T0);
	assert_int_equal(triplet_count(db), 2);
	db_close(db);
}

/* MDB_MAP_FULL may come from the commit too (freelist pages). */
static void
test_map_full_on_commit_grows_and_replays(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = false;

	fault_arm(&commit_fault, 0, MDB_MAP_FULL, false);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), 0);
	assert_int_equal(fault_injected(&commit_fault), 1);
	assert_int_equal(fault_calls(&commit_fault), 2);
	assert_true(committed);
	assert_int_equal(db_map_size(db), 2 * DB_INITIAL_MAP);
	assert_all_new(jobs, BATCH);
	assert_int_equal(triplet_count(db), BATCH);
	free(jobs);
	db_close(db);
}

/* ---- MDB_MAP_FULL at the cap --------------------------------------------- */

static void
test_map_full_at_cap_fails_whole_batch(void **state)
{
	struct tmp *t = *state;
	/* The cap is the initial map: there is no room to grow. */
	db_t *db = open_db(t->dir, DB_INITIAL_MAP, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = true;
	int rc;

	fault_arm(&put_fault, 30, MDB_MAP_FULL, false);
	fault_arm(&mapsize_fault, 1000, 0, false);
	rc = decide(db, jobs, BATCH, &test_params, &committed);
	assert_int_equal(rc, -ENOSPC);
	assert_false(committed);
	assert_int_equal(fault_injected(&put_fault), 1);
	/* No growth tried. */
	assert_int_equal(fault_calls(&mapsize_fault), 0);
	assert_int_equal(db_map_size(db), DB_INITIAL_MAP);
	assert_all_failed(jobs, BATCH, -ENOSPC);
	assert_none_stored(db, jobs, BATCH);
	assert_stored(db, earlier, EARLIER, T0);
	assert_int_equal(triplet_count(db), EARLIER);

	/* The fault is gone: the same batch now goes through. */
	free(jobs);
	jobs = make_jobs(0, BATCH, T0);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), 0);
	assert_all_new(jobs, BATCH);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	free(jobs);
	free(earlier);
	db_close(db);
}

/* A map that keeps filling grows step by step to the cap, then fails. */
static void
test_map_full_every_put_grows_to_cap_then_fails(void **state)
{
	struct tmp *t = *state;
	uint64_t cap = 4 * DB_INITIAL_MAP;
	db_t *db = open_db(t->dir, cap, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = true;

	fault_arm(&put_fault, 0, MDB_MAP_FULL, true);
	/* A third growth would pass the cap: refuse it, so that a ladder
	 * that ignores the cap fails here instead of growing forever. */
	fault_arm(&mapsize_fault, 2, EINVAL, true);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), -ENOSPC);
	assert_false(committed);
	/* 16 -> 32 -> 64 MiB, then the cap stops the ladder. */
	assert_int_equal(fault_calls(&mapsize_fault), 2);
	assert_int_equal(db_map_size(db), cap);
	assert_int_equal(fault_injected(&put_fault), 3);
	assert_all_failed(jobs, BATCH, -ENOSPC);
	fault_reset(&put_fault);
	assert_none_stored(db, jobs, BATCH);
	assert_stored(db, earlier, EARLIER, T0);
	assert_int_equal(triplet_count(db), EARLIER);
	free(jobs);
	free(earlier);
	db_close(db);
}

/* Growing fails (mdb_env_set_mapsize refuses): the batch fails cleanly. */
static void
test_map_growth_failure_fails_whole_batch(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = true;
	int rc;

	fault_arm(&put_fault, 5, MDB_MAP_FULL, false);
	fault_arm(&mapsize_fault, 0, ENOMEM, true);
	rc = decide(db, jobs, BATCH, &test_params, &committed);
	if (rc >= 0)
		fail_msg("batch succeeded although the map could not grow");
	assert_false(committed);
	assert_int_equal(fault_injected(&mapsize_fault), 1);
	/* The map size the db reports is the one LMDB still has. */
	assert_int_equal(db_map_size(db), DB_INITIAL_MAP);
	assert_all_failed(jobs, BATCH, rc);
	fault_reset(&mapsize_fault);
	assert_none_stored(db, jobs, BATCH);
	assert_stored(db, earlier, EARLIER, T0);

	/* Later batches work, and growth works again when it can. */
	free(jobs);
	jobs = make_jobs(0, BATCH, T0);
	fault_arm(&put_fault, 5, MDB_MAP_FULL, false);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), 0);
	assert_int_equal(db_map_size(db), 2 * DB_INITIAL_MAP);
	assert_all_new(jobs, BATCH);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	free(jobs);
	free(earlier);
	db_close(db);
}

/* ---- failed puts and commits --------------------------------------------- */

static void
test_commit_eio_fails_batch_then_next_batch_works(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, BATCH, T0);
	bool committed = true;

	fault_arm(&commit_fault, 0, EIO, false);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), -EIO);
	assert_int_equal(fault_injected(&commit_fault), 1);
	assert_false(committed);
	assert_all_failed(jobs, BATCH, -EIO);
	assert_none_stored(db, jobs, BATCH);
	assert_stored(db, earlier, EARLIER, T0);
	assert_int_equal(triplet_count(db), EARLIER);

	/* The next batch takes the write lock and commits. */
	free(jobs);
	jobs = make_jobs(0, BATCH, T0 + 1);
	assert_int_equal(decide(db, jobs, BATCH, &test_params, &committed), 0);
	assert_true(committed);
	assert_all_new(jobs, BATCH);
	assert_stored(db, jobs, BATCH, T0 + 1);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	free(jobs);
	free(earlier);
	db_close(db);

	/* And the environment reopens cleanly. */
	db = open_db(t->dir, 64 * MIB, false);
	assert_int_equal(triplet_count(db), BATCH + EARLIER);
	db_close(db);
}

static void
test_put_eio_on_third_job_fails_batch_atomically(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *earlier = store_earlier(db);
	struct store_job *jobs = make_jobs(0, 5, T0);
	bool committed = true;

	/* awl_passes = 0: one put per new triplet, so the 3rd put is job 3. */
	fault_arm(&put_fault, 2, EIO, false);
	fault_arm(&commit_fault, 1000, 0, false);
	assert_int_equal(decide(db, jobs, 5, &test_params, &committed), -EIO);
	assert_int_equal(fault_injected(&put_fault), 1);
	/* Stopped at job 3, never committed. */
	assert_int_equal(fault_calls(&put_fault), 3);
	assert_int_equal(fault_calls(&commit_fault), 0);
	assert_false(committed);
	assert_all_failed(jobs, 5, -EIO);
	/* Jobs 1 and 2 were put before the failure: not written either. */
	assert_none_stored(db, jobs, 5);
	assert_stored(db, earlier, EARLIER, T0);
	assert_int_equal(triplet_count(db), EARLIER);

	free(jobs);
	jobs = make_jobs(0, 5, T0);
	assert_int_equal(decide(db, jobs, 5, &test_params, &committed), 0);
	assert_all_new(jobs, 5);
	assert_int_equal(triplet_count(db), 5 + EARLIER);
	free(jobs);
	free(earlier);
	db_close(db);
}

/* A failure of the client (auto-whitelist) write fails the batch too. */
static void
test_put_failure_on_client_record_fails_batch(void **state)
{
	struct tmp *t = *state;
	struct engine_params p = test_params;
	db_t *db = open_db(t->dir, 64 * MIB, false);
	struct store_job *jobs[2];
	struct store_job a, b;
	struct record r;
	bool committed;
	uint64_t usec;

	p.awl_passes = 5;
	make_numbered_job(&a, 1, T0);
	jobs[0] = &a;
	assert_int_equal(db_decide_batch(db, jobs, 1, &p, &committed, &usec),
			 0);
	/* The retry passes: put triplet (1st), then put client (2nd). */
	make_numbered_job(&a, 1, T0 + 300);
	make_numbered_job(&b, 2, T0 + 300);
	jobs[0] = &a;
	jobs[1] = &b;
	fault_arm(&put_fault, 1, EIO, false);
	assert_int_equal(db_decide_batch(db, jobs, 2, &p, &committed, &usec),
			 -EIO);
	assert_int_equal(a.err, -EIO);
	assert_int_equal(b.err, -EIO);
	/* The triplet is still pending, the client unknown. */
	assert_int_equal(db_get_triplet(db, a.key.key, a.key.key_len, &r), 0);
	assert_int_equal(r.passes, 0);
	assert_int_equal(db_get_client(db, a.key.client, &r), -ENOENT);
	assert_int_equal(db_get_triplet(db, b.key.key, b.key.key_len, &r),
			 -ENOENT);
	db_close(db);
}

/* ---- records of an unknown version --------------------------------------- */

/* Write a raw value with the library's handle closed. */
static void
raw_put(const char *dir, const char *dbname, const void *key, size_t klen,
	const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)(uintptr_t)key};
	MDB_val v = {vlen, (void *)(uintptr_t)val};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	assert_int_equal(__real_mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(__real_mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
test_unknown_record_version_deleted_logged_and_new(void **state)
{
	struct tmp *t = *state;
	struct store_job jobs[3];
	uint8_t future[RECORD_SIZE], zero[RECORD_SIZE], longer[RECORD_SIZE + 8];
	struct record good = {T0 - 100, T0 - 100, 0};
	struct record r;
	bool committed = false;
	char *log;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	db_close(db);
	make_numbered_job(&jobs[0], 1, T0);
	make_numbered_job(&jobs[1], 2, T0);
	make_numbered_job(&jobs[2], 3, T0);
	/* Version 2 (from a future greyhold), version 0, and a v1 record
	 * with the wrong size: a valid encoding with its version byte
	 * changed, so only the version makes it unreadable. */
	record_encode(future, &good);
	future[0] = RECORD_VERSION + 1;
	record_encode(zero, &good);
	zero[0] = 0;
	memset(longer, 0, sizeof(longer));
	record_encode(longer, &good);
	raw_put(t->dir, "triplets", jobs[0].key.key, jobs[0].key.key_len,
		future, sizeof(future));
	raw_put(t->dir, "triplets", jobs[1].key.key, jobs[1].key.key_len,
		zero, sizeof(zero));
	raw_put(t->dir, "triplets", jobs[2].key.key, jobs[2].key.key_len,
		longer, sizeof(longer));

	db = open_db(t->dir, 64 * MIB, false);
	assert_int_equal(get_triplet(db, &jobs[0], &r), -EBADMSG);
	capture_start(t);
	assert_int_equal(decide(db, jobs, 3, &test_params, &committed), 0);
	log = capture_end(t);
	assert_true(committed);
	/* Treated as absent: new, with the full delay, not early-retry. */
	assert_all_new(jobs, 3);
	assert_int_equal(jobs[0].verdict.seconds_left, 300);
	assert_stored(db, jobs, 3, T0);
	if (count_lines_with(log, "deleting corrupt triplet record") != 3)
		fail_msg("want 3 corrupt-record warnings, log: \"%s\"", log);
	if (strstr(log, "(24 bytes)") == NULL ||
	    strstr(log, "(32 bytes)") == NULL)
		fail_msg("warning does not give the value size: \"%s\"", log);
	if (strstr(log, "user1@example.net") == NULL)
		fail_msg("warning does not name the key: \"%s\"", log);
	free(log);
	db_close(db);

	/* Rewritten as version 1: the next decision finds it. */
	db = open_db(t->dir, 64 * MIB, false);
	make_numbered_job(&jobs[0], 1, T0 + 10);
	assert_int_equal(decide(db, jobs, 1, &test_params, &committed), 0);
	assert_int_equal(jobs[0].verdict.reason, ENGINE_EARLY);
	db_close(db);
}

/* The deletion is part of the batch: a failed batch leaves it for later. */
static void
test_unknown_version_in_failed_batch_is_kept_then_deleted(void **state)
{
	struct tmp *t = *state;
	struct store_job job;
	uint8_t future[RECORD_SIZE];
	struct record good = {T0, T0, 0};
	struct record r;
	bool committed;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	db_close(db);
	make_numbered_job(&job, 1, T0);
	record_encode(future, &good);
	future[0] = 0x7f;
	raw_put(t->dir, "triplets", job.key.key, job.key.key_len, future,
		sizeof(future));
	db = open_db(t->dir, 64 * MIB, false);
	fault_arm(&commit_fault, 0, EIO, false);
	assert_int_equal(decide(db, &job, 1, &test_params, &committed), -EIO);
	assert_int_equal(job.err, -EIO);
	assert_int_equal(db_get_triplet(db, job.key.key, job.key.key_len, &r),
			 -EBADMSG);
	make_numbered_job(&job, 1, T0);
	assert_int_equal(decide(db, &job, 1, &test_params, &committed), 0);
	assert_int_equal(job.verdict.reason, ENGINE_NEW);
	assert_int_equal(db_get_triplet(db, job.key.key, job.key.key_len, &r),
			 0);
	db_close(db);
}

/* ---- live whitelist and merge writes (write_txn) ------------------------- */

static void
test_write_txn_grows_on_map_full_and_fails_at_cap(void **state)
{
	struct tmp *t = *state;
	struct db_wl_entry e;
	uint64_t gen = 0;
	db_t *db = open_db(t->dir, 2 * DB_INITIAL_MAP, false);

	memset(&e, 0, sizeof(e));
	e.kind = WHITELIST_CLIENTS;
	snprintf(e.entry, sizeof(e.entry), "198.51.100.0/24");
	e.added = T0;
	fault_arm(&put_fault, 0, MDB_MAP_FULL, false);
	assert_int_equal(db_wl_put(db, &e), 0);
	assert_int_equal(db_map_size(db), 2 * DB_INITIAL_MAP);
	assert_int_equal(db_wl_generation(db, &gen), 0);
	assert_int_equal(gen, 1);	/* applied once */

	/* At the cap: -ENOSPC and nothing changed. */
	snprintf(e.entry, sizeof(e.entry), "203.0.113.0/24");
	fault_arm(&put_fault, 0, MDB_MAP_FULL, true);
	assert_int_equal(db_wl_put(db, &e), -ENOSPC);
	fault_reset(&put_fault);
	assert_int_equal(db_wl_generation(db, &gen), 0);
	assert_int_equal(gen, 1);
	assert_int_equal(db_wl_del(db, WHITELIST_CLIENTS, "203.0.113.0/24"),
			 -ENOENT);

	/* A commit failure of a merge: nothing added, and no count. */
	{
		static const char key[] =
			"192.0.2.0/24\0a@example.org\0b@example.net";
		struct db_item item;
		size_t added = 0, changed = 0;

		memset(&item, 0, sizeof(item));
		item.table = DB_TRIPLETS;
		item.key = key;
		item.key_len = sizeof(key) - 1;
		item.rec.first_seen = T0;
		item.rec.last_seen = T0;
		fault_arm(&commit_fault, 0, EIO, false);
		assert_int_equal(db_merge(db, &item, 1, &added, &changed),
				 -EIO);
		assert_int_equal(added, 0);
		assert_int_equal(triplet_count(db), 0);
		assert_int_equal(db_merge(db, &item, 1, &added, &changed), 0);
		assert_int_equal(added, 1);
		assert_int_equal(triplet_count(db), 1);
	}
	db_close(db);
}

/* ---- the asynchronous store ---------------------------------------------- */

static void
count_done(struct store_job *job, void *arg)
{
	size_t *n = arg;

	(void)job;
	(*n)++;
}

/* Submit n jobs and wait until all are back. */
static void
run_async(store_t *s, struct waiter *w, unsigned *seen, struct store_job *jobs,
	  size_t n)
{
	size_t got = 0;
	size_t i;

	for (i = 0; i < n; i++)
		store_submit(s, &jobs[i]);
	/* One batch: the store thread takes them all. */
	store_flush(s);
	while (got < n) {
		if (!wait_wakeup(w, seen))
			fail_msg("only %zu of %zu jobs came back", got, n);
		store_collect(s, count_done, &got);
	}
	assert_int_equal(got, n);
}

#define FAILED_BATCHES 5

static void
test_async_store_serves_after_commit_failures(void **state)
{
	struct tmp *t = *state;
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0};
	int64_t now = (int64_t)time(NULL);
	struct store_job *jobs;
	struct store_stats st;
	unsigned seen = 0;
	time_t started;
	unsigned lines;
	uint64_t failed;
	store_t *s = NULL;
	char *log;
	size_t i;
	int b;

	s = open_store(t->dir, 64 * MIB, false, &w);
	capture_start(t);
	started = time(NULL);
	/* FAILED_BATCHES commits in a row fail. */
	fault_arm(&commit_fault, 0, EIO, true);
	for (b = 0; b < FAILED_BATCHES; b++) {
		jobs = make_jobs((unsigned)b * 10, 10, now);
		run_async(s, &w, &seen, jobs, 10);
		assert_all_failed(jobs, 10, -EIO);
		free(jobs);
	}
	fault_reset(&commit_fault);
	store_get_stats(s, &st);
	/* Each flush handed over one batch, and every batch failed. */
	assert_int_equal(st.batches, FAILED_BATCHES);
	assert_int_equal(st.errors, FAILED_BATCHES);
	assert_int_equal(st.jobs, FAILED_BATCHES * 10);
	assert_int_equal(st.commits, 0);
	failed = st.errors;
	/* Nothing of a failed batch is visible to the read path either: a
	 * retry cannot be decided from the snapshot (the triplet is new). */
	{
		struct store_job probe;

		make_numbered_job(&probe, 0, now + 10);
		assert_false(store_try_decide(s, &probe));
		store_flush(s);
	}

	/* The store keeps serving: the same triplets are new, and stored. */
	jobs = make_jobs(0, 10, now);
	run_async(s, &w, &seen, jobs, 10);
	assert_all_new(jobs, 10);
	store_get_stats(s, &st);
	assert_int_equal(st.errors, failed);
	assert_true(st.commits >= 1);
	log = capture_end(t);
	/* Logged, at most once a second. */
	lines = count_lines_with(log, "store: batch of");
	if (lines < 1 || lines > (unsigned)(time(NULL) - started) + 1)
		fail_msg("%u batch error lines for %d failed batches in %lds: "
			 "\"%s\"", lines, FAILED_BATCHES,
			 (long)(time(NULL) - started), log);
	if (strstr(log, "failure action") == NULL)
		fail_msg("batch error does not say what was answered: "
			 "\"%s\"", log);
	free(log);
	store_close(s);

	/* What the store answered after the failures is on disk. */
	{
		db_t *db = open_db(t->dir, 64 * MIB, false);

		assert_stored(db, jobs, 10, now);
		for (i = 10; i < FAILED_BATCHES * 10; i += 10) {
			struct store_job probe;
			struct record r;

			make_numbered_job(&probe, (unsigned)i, now);
			assert_int_equal(db_get_triplet(db, probe.key.key,
							probe.key.key_len, &r),
					 -ENOENT);
		}
		db_close(db);
	}
	free(jobs);
}

/* Map full at the cap through the store thread: errors, then recovery. */
static void
test_async_store_map_full_at_cap_keeps_serving(void **state)
{
	struct tmp *t = *state;
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0};
	int64_t now = (int64_t)time(NULL);
	struct store_job *jobs;
	struct store_stats st;
	unsigned seen = 0;
	store_t *s = NULL;

	s = open_store(t->dir, DB_INITIAL_MAP, false, &w);
	fault_arm(&put_fault, 0, MDB_MAP_FULL, true);
	jobs = make_jobs(0, 20, now);
	run_async(s, &w, &seen, jobs, 20);
	assert_all_failed(jobs, 20, -ENOSPC);
	free(jobs);
	fault_reset(&put_fault);
	store_get_stats(s, &st);
	assert_true(st.errors >= 1);
	assert_int_equal(st.map_size, DB_INITIAL_MAP);

	jobs = make_jobs(0, 20, now);
	run_async(s, &w, &seen, jobs, 20);
	assert_all_new(jobs, 20);
	free(jobs);
	store_close(s);
}

/*
 * The map grows while the submitting thread decides from a read snapshot
 * (store_try_decide()).  LMDB forbids resizing with a transaction open,
 * so the growth must wait until the snapshot ends (store_flush()), then
 * replay the batch; the early retry decided from the snapshot stays right.
 */
static void
test_async_map_growth_waits_for_open_snapshot(void **state)
{
	struct tmp *t = *state;
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0};
	struct timespec hold = {0, 300000000};
	int64_t now = (int64_t)time(NULL);
	struct store_job *jobs;
	struct store_job probe;
	struct store_stats st;
	unsigned seen = 0;
	size_t got = 0;
	store_t *s = NULL;
	size_t i;

	s = open_store(t->dir, 64 * MIB, false, &w);
	jobs = make_jobs(0, 10, now);
	run_async(s, &w, &seen, jobs, 10);
	assert_all_new(jobs, 10);
	free(jobs);

	/* Open a snapshot: job 0's early retry is decided from it. */
	make_numbered_job(&probe, 0, now + 5);
	assert_true(store_try_decide(s, &probe));
	assert_int_equal(probe.verdict.reason, ENGINE_EARLY);
	/* Hand over a batch that needs a bigger map (store_flush() closes
	 * the snapshot), then open a new snapshot at once and hold it: the
	 * store thread's growth has to wait for it. */
	jobs = make_jobs(100, 10, now);
	fault_arm(&put_fault, 3, MDB_MAP_FULL, false);
	for (i = 0; i < 10; i++)
		store_submit(s, &jobs[i]);
	store_flush(s);
	/* The snapshot is open again. */
	assert_true(store_try_decide(s, &probe));
	nanosleep(&hold, NULL);
	store_flush(s);					/* and closed */
	while (got < 10) {
		if (!wait_wakeup(&w, &seen))
			fail_msg("only %zu of 10 jobs came back (growth "
				 "blocked?)", got);
		store_collect(s, count_done, &got);
	}
	assert_int_equal(fault_injected(&put_fault), 1);
	assert_all_new(jobs, 10);
	store_get_stats(s, &st);
	assert_int_equal(st.map_size, 2 * DB_INITIAL_MAP);
	assert_int_equal(st.errors, 0);
	/* The snapshot sees the grown map and the new triplets. */
	make_numbered_job(&probe, 100, now + 5);
	assert_true(store_try_decide(s, &probe));
	assert_int_equal(probe.verdict.reason, ENGINE_EARLY);
	store_flush(s);
	free(jobs);
	store_close(s);
}

/* The read path never decides from a record it cannot decode. */
static void
test_async_unknown_version_not_peeked_then_deleted(void **state)
{
	struct tmp *t = *state;
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			   0};
	int64_t now = (int64_t)time(NULL);
	struct record old = {now - 10, now - 10, 0};
	uint8_t future[RECORD_SIZE];
	struct store_job job;
	unsigned seen = 0;
	store_t *s = NULL;
	char *log;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	db_close(db);
	make_numbered_job(&job, 7, now);
	/* A pending triplet 10 s old, as a future version would write it:
	 * read as version 1, it would be an early retry. */
	record_encode(future, &old);
	future[0] = RECORD_VERSION + 1;
	raw_put(t->dir, "triplets", job.key.key, job.key.key_len, future,
		sizeof(future));

	s = open_store(t->dir, 64 * MIB, false, &w);
	assert_false(store_try_decide(s, &job));
	store_flush(s);
	capture_start(t);
	run_async(s, &w, &seen, &job, 1);
	log = capture_end(t);
	assert_all_new(&job, 1);
	if (strstr(log, "deleting corrupt triplet record") == NULL)
		fail_msg("not logged: \"%s\"", log);
	free(log);
	/* Rewritten: now the read path decides the retry. */
	make_numbered_job(&job, 7, now + 5);
	assert_true(store_try_decide(s, &job));
	assert_int_equal(job.verdict.reason, ENGINE_EARLY);
	store_flush(s);
	store_close(s);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_map_full_once_grows_and_replays),
		TEST(test_map_full_replay_keeps_in_batch_order),
		TEST(test_map_full_on_commit_grows_and_replays),
		TEST(test_map_full_at_cap_fails_whole_batch),
		TEST(test_map_full_every_put_grows_to_cap_then_fails),
		TEST(test_map_growth_failure_fails_whole_batch),
		TEST(test_commit_eio_fails_batch_then_next_batch_works),
		TEST(test_put_eio_on_third_job_fails_batch_atomically),
		TEST(test_put_failure_on_client_record_fails_batch),
		TEST(test_unknown_record_version_deleted_logged_and_new),
		TEST(test_unknown_version_in_failed_batch_is_kept_then_deleted),
		TEST(test_write_txn_grows_on_map_full_and_fails_at_cap),
		TEST(test_async_store_serves_after_commit_failures),
		TEST(test_async_store_map_full_at_cap_keeps_serving),
		TEST(test_async_map_growth_waits_for_open_snapshot),
		TEST(test_async_unknown_version_not_peeked_then_deleted),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	printf("# faults injected: %u\n", total_injected);
	return failed;
}
