/*
 * test_store - the LMDB store (db.c) and the asynchronous store (store.c)
 * on real, temporary LMDB environments.
 *
 * Each test gets its own mkdtemp() directory, removed in its teardown; the
 * environment lives in a "db" subdirectory that db_open() must create.
 * Where a test needs a state the library will not produce (another schema
 * version, a corrupt value) it writes it with the LMDB API directly, with
 * the library's handle closed: LMDB wants one environment per process.
 * Time is the job's own clock (job->now), so nothing here sleeps except
 * the store-thread tests.
 */
#include "store.h"

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
#include "store_helpers.h"
#include "triplet.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Decide one job alone; it must succeed.  Returns whether it committed. */
static bool
decide_one(db_t *db, struct store_job *job, const struct engine_params *p)
{
	bool committed = true;

	assert_int_equal(decide(db, job, 1, p, &committed), 0);
	assert_int_equal(job->err, 0);
	return committed;
}

static void
assert_verdict(const struct store_job *job, enum engine_action action,
	       enum engine_reason reason)
{
	if (job->err != 0)
		fail_msg("job failed: %d", job->err);
	if (job->verdict.action != action || job->verdict.reason != reason)
		fail_msg("verdict %s/%s, want %s/%s",
			 job->verdict.action == ENGINE_PASS ? "pass" : "defer",
			 engine_reason_name(job->verdict.reason),
			 action == ENGINE_PASS ? "pass" : "defer",
			 engine_reason_name(reason));
}

static void
assert_triplet(db_t *db, const struct store_job *job, int64_t first,
	       int64_t last, uint32_t passes)
{
	struct record r;

	assert_int_equal(db_get_triplet(db, job->key.key, job->key.key_len, &r),
			 0);
	assert_int_equal(r.first_seen, first);
	assert_int_equal(r.last_seen, last);
	assert_int_equal(r.passes, passes);
}

static void
assert_no_triplet(db_t *db, const struct store_job *job)
{
	struct record r;

	assert_int_equal(db_get_triplet(db, job->key.key, job->key.key_len, &r),
			 -ENOENT);
}

/* Raw LMDB access, with the library's handle closed. */
static MDB_env *
raw_open(const char *dir)
{
	MDB_env *env;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	return env;
}

static void
raw_put(const char *dir, const char *dbname, const void *key, size_t klen,
	const void *val, size_t vlen)
{
	MDB_env *env = raw_open(dir);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)(uintptr_t)key};
	MDB_val v = {vlen, (void *)(uintptr_t)val};

	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Copy out a raw value; returns its length or -1 when absent. */
static long
raw_get(const char *dir, const char *dbname, const void *key, size_t klen,
	void *out, size_t outsz)
{
	MDB_env *env = raw_open(dir);
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)(uintptr_t)key};
	MDB_val v;
	long len = -1;
	int rc;

	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0) {
		len = (long)v.mv_size;
		memcpy(out, v.mv_data, v.mv_size < outsz ? v.mv_size : outsz);
	} else {
		assert_int_equal(rc, MDB_NOTFOUND);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return len;
}

/* ---- opening -------------------------------------------------------------------- */

static void
test_open_creates_dir_databases_and_schema(void **state)
{
	struct tmp *t = *state;
	static const char *const names[] = {"meta", "triplets", "clients"};
	uint8_t schema[16];
	struct stat st;
	char path[160];
	db_t *db;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	size_t i;

	assert_int_equal(stat(t->dir, &st), -1);
	db = open_db(t->dir, 64 * MIB, false);
	assert_int_equal(stat(t->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/data.mdb", t->dir);
	assert_int_equal(stat(path, &st), 0);
	/* The map starts at DB_INITIAL_MAP when the cap is above it. */
	assert_int_equal(db_map_size(db), DB_INITIAL_MAP);
	db_close(db);

	env = raw_open(t->dir);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0)
			fail_msg("database \"%s\" was not created", names[i]);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);

	assert_int_equal(raw_get(t->dir, "meta", "schema", 6, schema,
				 sizeof(schema)), 4);
	assert_int_equal(schema[0], DB_SCHEMA_VERSION & 0xff);
	assert_int_equal(schema[1], 0);
	assert_int_equal(schema[2], 0);
	assert_int_equal(schema[3], 0);
}

static void
test_open_map_starts_at_cap_below_initial(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 2 * MIB, false);

	assert_int_equal(db_map_size(db), 2 * MIB);
	db_close(db);
}

static void
test_reopen_keeps_data(void **state)
{
	struct tmp *t = *state;
	struct store_job job;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	make_job(&job, "192.0.2.7", "alice@example.org", "bob@example.net", T0);
	assert_true(decide_one(db, &job, &test_params));
	assert_verdict(&job, ENGINE_DEFER, ENGINE_NEW);
	db_close(db);

	db = open_db(t->dir, 64 * MIB, false);
	assert_triplet(db, &job, T0, T0, 0);
	job.now = T0 + 400;
	assert_true(decide_one(db, &job, &test_params));
	assert_verdict(&job, ENGINE_PASS, ENGINE_PASSED);
	assert_int_equal(job.verdict.delay, 400);
	db_close(db);

	db = open_db(t->dir, 64 * MIB, false);
	assert_triplet(db, &job, T0, T0 + 400, 1);
	db_close(db);
}

static void
test_other_schema_version_is_eproto(void **state)
{
	struct tmp *t = *state;
	static const uint8_t v2[4] = {DB_SCHEMA_VERSION + 1, 0, 0, 0};
	struct db_options o = {.dir = t->dir, .max_size = 64 * MIB};
	char err[ERRSZ] = "";
	db_t *db = open_db(t->dir, 64 * MIB, false);

	db_close(db);
	raw_put(t->dir, "meta", "schema", 6, v2, sizeof(v2));

	db = (db_t *)&o;	/* must be reset to NULL */
	assert_int_equal(db_open(&db, &o, err, sizeof(err)), -EPROTO);
	assert_null(db);
	if (strstr(err, "schema") == NULL)
		fail_msg("error \"%s\" does not mention the schema", err);
}

/* ---- batches ------------------------------------------------------------------- */

static void
test_batch_same_triplet_twice_second_sees_first(void **state)
{
	struct tmp *t = *state;
	struct store_job jobs[2];
	bool committed = false;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	/* New, then an early retry in the same transaction. */
	make_job(&jobs[0], "192.0.2.7", "a@example.org", "b@example.net", T0);
	make_job(&jobs[1], "192.0.2.7", "a@example.org", "b@example.net",
		 T0 + 10);
	assert_int_equal(decide(db, jobs, 2, &test_params, &committed), 0);
	assert_true(committed);
	assert_verdict(&jobs[0], ENGINE_DEFER, ENGINE_NEW);
	assert_int_equal(jobs[0].verdict.seconds_left, 300);
	assert_verdict(&jobs[1], ENGINE_DEFER, ENGINE_EARLY);
	assert_int_equal(jobs[1].verdict.seconds_left, 290);
	/* The retry did not restart the clock. */
	assert_triplet(db, &jobs[0], T0, T0, 0);

	/* New, then a retry after the delay: the second passes on the first. */
	make_job(&jobs[0], "192.0.2.7", "c@example.org", "d@example.net", T0);
	make_job(&jobs[1], "192.0.2.7", "c@example.org", "d@example.net",
		 T0 + 300);
	assert_int_equal(decide(db, jobs, 2, &test_params, &committed), 0);
	assert_true(committed);
	assert_verdict(&jobs[0], ENGINE_DEFER, ENGINE_NEW);
	assert_verdict(&jobs[1], ENGINE_PASS, ENGINE_PASSED);
	assert_int_equal(jobs[1].verdict.delay, 300);
	assert_triplet(db, &jobs[0], T0, T0 + 300, 1);
	db_close(db);
}

static void
test_batch_different_triplets(void **state)
{
	struct tmp *t = *state;
	struct store_job jobs[4];
	bool committed = false;
	size_t i;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	make_job(&jobs[0], "192.0.2.7", "a@example.org", "x@example.net", T0);
	make_job(&jobs[1], "192.0.2.7", "a@example.org", "y@example.net", T0 + 1);
	make_job(&jobs[2], "198.51.100.3", "a@example.org", "x@example.net",
		 T0 + 2);
	make_job(&jobs[3], "2001:db8::1", "<>", "x@example.net", T0 + 3);
	assert_int_equal(decide(db, jobs, 4, &test_params, &committed), 0);
	assert_true(committed);
	for (i = 0; i < 4; i++) {
		assert_verdict(&jobs[i], ENGINE_DEFER, ENGINE_NEW);
		assert_triplet(db, &jobs[i], T0 + (int64_t)i, T0 + (int64_t)i, 0);
	}
	db_close(db);
}

static void
test_awl_after_passes_spaced_by_refresh(void **state)
{
	struct tmp *t = *state;
	struct engine_params p = test_params;
	struct store_job a, b, c, other;
	struct record cr;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	p.awl_passes = 2;
	/* Triplet a passes: the client's first counted pass. */
	make_job(&a, "192.0.2.7", "a@example.org", "a@example.net", T0);
	decide_one(db, &a, &p);
	assert_verdict(&a, ENGINE_DEFER, ENGINE_NEW);
	a.now = T0 + 300;
	decide_one(db, &a, &p);
	assert_verdict(&a, ENGINE_PASS, ENGINE_PASSED);
	assert_int_equal(db_get_client(db, "192.0.2.0/24", &cr), 0);
	assert_int_equal(cr.passes, 1);
	assert_int_equal(cr.last_seen, T0 + 300);

	/* One counted pass is not enough: a new triplet is greylisted. */
	make_job(&c, "192.0.2.7", "c@example.org", "c@example.net", T0 + 400);
	decide_one(db, &c, &p);
	assert_verdict(&c, ENGINE_DEFER, ENGINE_NEW);

	/* Triplet b passes within the hour: not counted again. */
	make_job(&b, "192.0.2.7", "b@example.org", "b@example.net", T0 + 400);
	decide_one(db, &b, &p);
	b.now = T0 + 700;
	decide_one(db, &b, &p);
	assert_verdict(&b, ENGINE_PASS, ENGINE_PASSED);
	assert_int_equal(db_get_client(db, "192.0.2.0/24", &cr), 0);
	assert_int_equal(cr.passes, 1);

	/* b again ENGINE_REFRESH after the first counted pass: counted. */
	b.now = T0 + 300 + ENGINE_REFRESH;
	assert_true(decide_one(db, &b, &p));
	assert_verdict(&b, ENGINE_PASS, ENGINE_KNOWN);
	assert_int_equal(db_get_client(db, "192.0.2.0/24", &cr), 0);
	assert_int_equal(cr.passes, 2);
	assert_int_equal(cr.last_seen, T0 + 300 + ENGINE_REFRESH);

	/* Now a triplet never seen passes on the client alone, unstored. */
	make_job(&c, "192.0.2.99", "new@example.org", "new@example.net",
		 T0 + 301 + ENGINE_REFRESH);
	assert_false(decide_one(db, &c, &p));
	assert_verdict(&c, ENGINE_PASS, ENGINE_AWL);
	assert_no_triplet(db, &c);

	/* Another client is not whitelisted by this one's passes. */
	make_job(&other, "198.51.100.7", "new@example.org", "new@example.net",
		 T0 + 301 + ENGINE_REFRESH);
	decide_one(db, &other, &p);
	assert_verdict(&other, ENGINE_DEFER, ENGINE_NEW);
	db_close(db);
}

static void
test_retry_within_refresh_commits_nothing(void **state)
{
	struct tmp *t = *state;
	struct engine_params p = test_params;
	struct store_job a, b;
	struct record cr;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	p.awl_passes = 5;
	make_job(&a, "192.0.2.7", "a@example.org", "a@example.net", T0);
	assert_true(decide_one(db, &a, &p));
	a.now = T0 + 300;
	assert_true(decide_one(db, &a, &p));
	assert_verdict(&a, ENGINE_PASS, ENGINE_PASSED);

	a.now = T0 + 310;
	assert_false(decide_one(db, &a, &p));
	assert_verdict(&a, ENGINE_PASS, ENGINE_KNOWN);
	a.now = T0 + 300 + ENGINE_REFRESH - 1;
	assert_false(decide_one(db, &a, &p));
	assert_verdict(&a, ENGINE_PASS, ENGINE_KNOWN);
	assert_triplet(db, &a, T0, T0 + 300, 1);
	assert_int_equal(db_get_client(db, "192.0.2.0/24", &cr), 0);
	assert_int_equal(cr.passes, 1);

	/* Once ENGINE_REFRESH has gone by, the retry is written. */
	a.now = T0 + 300 + ENGINE_REFRESH;
	assert_true(decide_one(db, &a, &p));
	assert_verdict(&a, ENGINE_PASS, ENGINE_KNOWN);
	assert_triplet(db, &a, T0, T0 + 300 + ENGINE_REFRESH, 2);
	assert_int_equal(db_get_client(db, "192.0.2.0/24", &cr), 0);
	assert_int_equal(cr.passes, 2);

	/* An early retry of a pending triplet writes nothing either. */
	make_job(&b, "192.0.2.7", "b@example.org", "b@example.net", T0);
	assert_true(decide_one(db, &b, &p));
	b.now = T0 + 10;
	assert_false(decide_one(db, &b, &p));
	assert_verdict(&b, ENGINE_DEFER, ENGINE_EARLY);
	db_close(db);
}

/* ---- map growth and the cap ------------------------------------------------------- */

#define FILL_BATCH 256

/* A long recipient keeps keys big so that the map fills quickly. */
static void
make_fill_job(struct store_job *job, unsigned id)
{
	char rcpt[256];

	snprintf(rcpt, sizeof(rcpt),
		 "r%08u-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@example.net", id);
	make_job(job, "192.0.2.7", "sender@example.org", rcpt, T0);
}

/*
 * Insert batches of new triplets until a batch fails.  It must fail with
 * -ENOSPC at the cap, with err on every job and none of its triplets
 * written, while everything before stays readable.  Returns whether the
 * map grew on the way.
 */
static bool
fill_to_cap(db_t *db, uint64_t cap)
{
	struct store_job *jobs = calloc(FILL_BATCH, sizeof(*jobs));
	uint64_t initial = db_map_size(db);
	bool grew = false;
	bool committed;
	unsigned stored = 0;
	unsigned batch;
	unsigned i;
	int rc = 0;

	assert_non_null(jobs);
	for (batch = 0; batch < 4000; batch++) {
		for (i = 0; i < FILL_BATCH; i++)
			make_fill_job(&jobs[i], stored + i);
		rc = decide(db, jobs, FILL_BATCH, &test_params, &committed);
		if (rc != 0)
			break;
		assert_true(committed);
		for (i = 0; i < FILL_BATCH; i++)
			assert_verdict(&jobs[i], ENGINE_DEFER, ENGINE_NEW);
		stored += FILL_BATCH;
		if (db_map_size(db) > initial)
			grew = true;
		assert_true(db_map_size(db) <= cap);
	}
	if (rc != -ENOSPC)
		fail_msg("after %u triplets (map %llu bytes, cap %llu) a batch "
			 "returned %d, want -ENOSPC", stored,
			 (unsigned long long)db_map_size(db),
			 (unsigned long long)cap, rc);
	assert_int_equal(db_map_size(db), cap);
	for (i = 0; i < FILL_BATCH; i++) {
		if (jobs[i].err != -ENOSPC)
			fail_msg("job %u of the failed batch has err %d", i,
				 jobs[i].err);
		assert_no_triplet(db, &jobs[i]);
	}
	/* Everything committed before is still there. */
	for (i = 0; i < stored; i++) {
		make_fill_job(&jobs[0], i);
		assert_triplet(db, &jobs[0], T0, T0, 0);
	}
	/* A batch that writes nothing still gets its answers at the cap. */
	make_fill_job(&jobs[0], 0);
	jobs[0].now = T0 + 1;
	assert_false(decide_one(db, &jobs[0], &test_params));
	assert_verdict(&jobs[0], ENGINE_DEFER, ENGINE_EARLY);
	free(jobs);
	return grew;
}

static void
test_map_full_at_small_cap(void **state)
{
	struct tmp *t = *state;
	db_t *db = open_db(t->dir, 2 * MIB, true);

	/* The cap is below DB_INITIAL_MAP: the map starts there, never grows. */
	assert_int_equal(db_map_size(db), 2 * MIB);
	assert_false(fill_to_cap(db, 2 * MIB));
	db_close(db);
}

static void
test_map_grows_then_stops_at_cap(void **state)
{
	struct tmp *t = *state;
	uint64_t cap = DB_INITIAL_MAP + 8 * MIB;
	db_t *db = open_db(t->dir, cap, true);

	assert_int_equal(db_map_size(db), DB_INITIAL_MAP);
	assert_true(fill_to_cap(db, cap));
	db_close(db);

	/* Reopened, the environment keeps its data. */
	db = open_db(t->dir, cap, true);
	{
		struct store_job job;

		make_fill_job(&job, 0);
		assert_triplet(db, &job, T0, T0, 0);
	}
	db_close(db);
}

/* ---- corrupt records ------------------------------------------------------------------ */

static void
test_corrupt_triplet_record_treated_as_new(void **state)
{
	struct tmp *t = *state;
	static const uint8_t junk[3] = {1, 2, 3};
	struct store_job job;
	struct record r;
	uint8_t raw[64];
	db_t *db = open_db(t->dir, 64 * MIB, false);

	db_close(db);
	make_job(&job, "192.0.2.7", "a@example.org", "b@example.net", T0);
	raw_put(t->dir, "triplets", job.key.key, job.key.key_len, junk,
		sizeof(junk));

	db = open_db(t->dir, 64 * MIB, false);
	assert_int_equal(db_get_triplet(db, job.key.key, job.key.key_len, &r),
			 -EBADMSG);
	assert_true(decide_one(db, &job, &test_params));
	assert_verdict(&job, ENGINE_DEFER, ENGINE_NEW);
	assert_triplet(db, &job, T0, T0, 0);
	db_close(db);
	assert_int_equal(raw_get(t->dir, "triplets", job.key.key,
				 job.key.key_len, raw, sizeof(raw)), RECORD_SIZE);
}

static void
test_corrupt_client_record_replaced_on_pass(void **state)
{
	struct tmp *t = *state;
	static const uint8_t junk[3] = {9, 9, 9};
	struct engine_params p = test_params;
	struct store_job job;
	struct record cr;
	db_t *db;

	p.awl_passes = 5;
	db = open_db(t->dir, 64 * MIB, false);
	make_job(&job, "192.0.2.7", "a@example.org", "b@example.net", T0);
	decide_one(db, &job, &p);
	db_close(db);
	raw_put(t->dir, "clients", job.key.client, job.key.client_len, junk,
		sizeof(junk));

	db = open_db(t->dir, 64 * MIB, false);
	job.now = T0 + 300;
	assert_true(decide_one(db, &job, &p));
	assert_verdict(&job, ENGINE_PASS, ENGINE_PASSED);
	assert_int_equal(db_get_client(db, job.key.client, &cr), 0);
	assert_int_equal(cr.passes, 1);
	assert_int_equal(cr.first_seen, T0 + 300);
	db_close(db);
}

/*
 * db.c's read_record() promises that a corrupt value "is deleted and
 * logged, and reads as absent".  The deletion must not depend on the rest
 * of the batch writing something: else every request from that client
 * logs the same warning again and the value is never removed.
 */
static void
test_corrupt_client_record_deleted_when_nothing_else_changes(void **state)
{
	struct tmp *t = *state;
	static const uint8_t junk[3] = {9, 9, 9};
	struct engine_params p = test_params;
	struct store_job job;
	struct record cr;
	uint8_t raw[64];
	db_t *db;
	int rc;

	p.awl_passes = 5;	/* so that the client record is read */
	db = open_db(t->dir, 64 * MIB, false);
	make_job(&job, "192.0.2.7", "a@example.org", "b@example.net", T0);
	decide_one(db, &job, &p);
	db_close(db);
	raw_put(t->dir, "clients", job.key.client, job.key.client_len, junk,
		sizeof(junk));

	db = open_db(t->dir, 64 * MIB, false);
	job.now = T0 + 10;	/* early retry: no triplet write */
	decide_one(db, &job, &p);
	assert_verdict(&job, ENGINE_DEFER, ENGINE_EARLY);
	rc = db_get_client(db, job.key.client, &cr);
	db_close(db);
	if (rc != -ENOENT)
		fail_msg("the corrupt client record is still there after a batch "
			 "that read it (db_get_client: %d, want -ENOENT)", rc);
	assert_int_equal(raw_get(t->dir, "clients", job.key.client,
				 job.key.client_len, raw, sizeof(raw)), -1);
}

/* ---- expiry ------------------------------------------------------------------------------ */

enum age { PENDING_OLD, PENDING_EDGE, PENDING_FRESH, PASSED_OLD, PASSED_EDGE,
	   NAGES };

static void
test_expire_slices_remove_old_keep_fresh(void **state)
{
	struct tmp *t = *state;
	static const uint8_t junk[3] = {1, 2, 3};
	const struct engine_params p = {300, 3600, DAY, 5};
	const int64_t now = T0;
	struct store_job jobs[25];
	struct store_job old_pass, fresh_pass, corrupt;
	struct record recs[25];
	struct record r;
	size_t removed, total = 0, slices = 0, i;
	bool wrapped = false;
	db_t *db;

	/* A corrupt value: the sweep removes what nothing can use. */
	db = open_db(t->dir, 64 * MIB, false);
	db_close(db);
	make_job(&corrupt, "192.0.2.1", "junk@example.org", "junk@example.net",
		 now);
	raw_put(t->dir, "triplets", corrupt.key.key, corrupt.key.key_len, junk,
		sizeof(junk));
	db = open_db(t->dir, 64 * MIB, false);

	for (i = 0; i < 25; i++) {
		char rcpt[64];

		snprintf(rcpt, sizeof(rcpt), "rcpt%02zu@example.net", i);
		make_job(&jobs[i], "192.0.2.1", "sender@example.org", rcpt, now);
		switch ((enum age)(i % NAGES)) {
		case PENDING_OLD:
			recs[i] = (struct record){now - 3601, now - 3601, 0};
			break;
		case PENDING_EDGE:
			recs[i] = (struct record){now - 3600, now - 3600, 0};
			break;
		case PENDING_FRESH:
			recs[i] = (struct record){now - 10, now - 10, 0};
			break;
		case PASSED_OLD:
			recs[i] = (struct record){now - 200000, now - DAY - 1, 1};
			break;
		case PASSED_EDGE:
		case NAGES:
			recs[i] = (struct record){now - 200000, now - DAY, 3};
			break;
		}
		assert_int_equal(db_put_triplet(db, jobs[i].key.key,
						jobs[i].key.key_len, &recs[i]), 0);
	}
	/* Clients (and their triplets) through real passes. */
	make_job(&old_pass, "198.51.100.9", "x@example.org", "y@example.net",
		 now - 90000);
	decide_one(db, &old_pass, &p);
	old_pass.now += 300;
	decide_one(db, &old_pass, &p);
	make_job(&fresh_pass, "203.0.113.5", "x@example.org", "y@example.net",
		 now - 1000);
	decide_one(db, &fresh_pass, &p);
	fresh_pass.now += 400;
	decide_one(db, &fresh_pass, &p);
	assert_verdict(&fresh_pass, ENGINE_PASS, ENGINE_PASSED);

	/* 28 triplets and 2 clients, 4 records a slice. */
	while (!wrapped) {
		if (slices > 100)
			fail_msg("the sweep did not wrap after %zu slices", slices);
		assert_int_equal(db_expire_slice(db, now, &p, 4, &removed,
						 &wrapped), 0);
		assert_true(removed <= 4);
		total += removed;
		slices++;
	}
	assert_true(slices >= 8);
	/* 5 pending, 5 passed, the old pass's triplet, the corrupt one, and
	 * the old client. */
	assert_int_equal(total, 5 + 5 + 1 + 1 + 1);

	for (i = 0; i < 25; i++) {
		enum age age = (enum age)(i % NAGES);

		if (age == PENDING_OLD || age == PASSED_OLD)
			assert_no_triplet(db, &jobs[i]);
		else
			assert_triplet(db, &jobs[i], recs[i].first_seen,
				       recs[i].last_seen, recs[i].passes);
	}
	assert_no_triplet(db, &old_pass);
	assert_no_triplet(db, &corrupt);
	assert_triplet(db, &fresh_pass, now - 1000, now - 600, 1);
	assert_int_equal(db_get_client(db, old_pass.key.client, &r), -ENOENT);
	assert_int_equal(db_get_client(db, fresh_pass.key.client, &r), 0);
	assert_int_equal(r.last_seen, now - 600);

	/* The next pass starts over and finds nothing more to remove. */
	wrapped = false;
	total = 0;
	for (slices = 0; !wrapped && slices < 100; slices++) {
		assert_int_equal(db_expire_slice(db, now, &p, 4, &removed,
						 &wrapped), 0);
		total += removed;
	}
	assert_true(wrapped);
	assert_int_equal(total, 0);
	db_close(db);
}

static void
test_expire_large_budget_one_pass(void **state)
{
	struct tmp *t = *state;
	const struct engine_params p = {300, 3600, DAY, 0};
	struct store_job job;
	struct record old = {T0 - 7200, T0 - 7200, 0};
	size_t removed = 0;
	bool wrapped = false;
	int slices;
	db_t *db = open_db(t->dir, 64 * MIB, false);

	make_job(&job, "192.0.2.1", "a@example.org", "b@example.net", T0);
	assert_int_equal(db_put_triplet(db, job.key.key, job.key.key_len, &old),
			 0);
	/* One slice per database at most: triplets, then clients. */
	for (slices = 0; !wrapped && slices < 2; slices++) {
		size_t n;

		assert_int_equal(db_expire_slice(db, T0, &p, 1000, &n, &wrapped),
				 0);
		removed += n;
	}
	assert_true(wrapped);
	assert_int_equal(removed, 1);
	assert_no_triplet(db, &job);
	db_close(db);
}

/* ---- the asynchronous store ---------------------------------------------------------------- */

struct collected {
	size_t n;
	size_t order[128];
};

static void
on_done(struct store_job *job, void *arg)
{
	struct collected *c = arg;
	const size_t *index = job->owner;

	if (c->n < sizeof(c->order) / sizeof(c->order[0]))
		c->order[c->n] = *index;
	c->n++;
}

#define NJOBS 100
#define NTRIPLETS 50

static void
make_async_jobs(struct store_job *jobs, size_t *index, int64_t now)
{
	size_t i;

	for (i = 0; i < NJOBS; i++) {
		char rcpt[64];

		snprintf(rcpt, sizeof(rcpt), "user%zu@example.net", i % NTRIPLETS);
		make_job(&jobs[i], "192.0.2.7", "sender@example.org", rcpt, now);
		index[i] = i;
		jobs[i].owner = &index[i];
	}
}

static void
test_async_store_answers_in_order(void **state)
{
	struct tmp *t = *state;
	struct store_job *jobs = calloc(NJOBS, sizeof(*jobs));
	size_t index[NJOBS];
	struct collected got = {0, {0}};
	struct store_stats st;
	struct waiter w;
	unsigned seen = 0;
	int64_t now = (int64_t)time(NULL);
	store_t *s;
	db_t *db;
	size_t i;

	assert_non_null(jobs);
	waiter_init(&w);
	make_async_jobs(jobs, index, now);
	s = open_store(t->dir, 64 * MIB, false, &w);
	for (i = 0; i < NJOBS; i++)
		store_submit(s, &jobs[i]);
	store_flush(s);
	while (got.n < NJOBS) {
		if (!wait_wakeup(&w, &seen))
			fail_msg("only %zu of %d jobs came back", got.n, NJOBS);
		store_collect(s, on_done, &got);
	}
	assert_int_equal(got.n, NJOBS);
	for (i = 0; i < NJOBS; i++) {
		if (got.order[i] != i)
			fail_msg("job %zu came back as the %zu-th", got.order[i], i);
		/* The first job for each triplet defers it as new, the
		 * second (same time) finds it. */
		if (i < NTRIPLETS)
			assert_verdict(&jobs[i], ENGINE_DEFER, ENGINE_NEW);
		else
			assert_verdict(&jobs[i], ENGINE_DEFER, ENGINE_EARLY);
		assert_int_equal(jobs[i].verdict.seconds_left, 300);
	}
	store_get_stats(s, &st);
	assert_int_equal(st.jobs, NJOBS);
	assert_int_equal(st.errors, 0);
	assert_true(st.batches >= 1 && st.batches <= NJOBS);
	assert_true(st.commits >= 1 && st.commits <= st.batches);
	assert_true(st.max_batch >= 1 && st.max_batch <= NJOBS);
	assert_int_equal(st.map_size, DB_INITIAL_MAP);
	store_close(s);

	/* Answered deferrals are on disk. */
	db = open_db(t->dir, 64 * MIB, false);
	for (i = 0; i < NTRIPLETS; i++)
		assert_triplet(db, &jobs[i], now, now, 0);
	db_close(db);
	waiter_destroy(&w);
	free(jobs);
}

static uint64_t
close_usec(store_t *s)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	store_close(s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u +
	       (uint64_t)((b.tv_nsec - a.tv_nsec) / 1000);
}

static void
test_store_close_idle_is_prompt(void **state)
{
	struct tmp *t = *state;
	struct waiter w;
	struct timespec pause = {1, 200000000};
	uint64_t usec;
	store_t *s;

	waiter_init(&w);
	/* Right after open, and after the thread has idled through a
	 * housekeeping round: never a wait for the 1 s tick. */
	s = open_store(t->dir, 64 * MIB, false, &w);
	usec = close_usec(s);
	if (usec > 500000)
		fail_msg("store_close right after open took %llu us",
			 (unsigned long long)usec);
	s = open_store(t->dir, 64 * MIB, false, &w);
	nanosleep(&pause, NULL);
	usec = close_usec(s);
	if (usec > 500000)
		fail_msg("store_close of an idle store took %llu us",
			 (unsigned long long)usec);
	waiter_destroy(&w);
}

static void
test_store_close_decides_what_is_queued(void **state)
{
	struct tmp *t = *state;
	struct store_job *jobs = calloc(NJOBS, sizeof(*jobs));
	size_t index[NJOBS];
	struct waiter w;
	int64_t now = (int64_t)time(NULL);
	store_t *s;
	db_t *db;
	size_t i;

	assert_non_null(jobs);
	waiter_init(&w);
	make_async_jobs(jobs, index, now);
	s = open_store(t->dir, 64 * MIB, true, &w);
	for (i = 0; i < NJOBS; i++)
		store_submit(s, &jobs[i]);
	store_close(s);		/* no collect: decided, committed, dropped */

	db = open_db(t->dir, 64 * MIB, false);
	for (i = 0; i < NTRIPLETS; i++)
		assert_triplet(db, &jobs[i], now, now, 0);
	db_close(db);
	waiter_destroy(&w);
	free(jobs);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, make_tmp, remove_tmp)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_open_creates_dir_databases_and_schema),
		TEST(test_open_map_starts_at_cap_below_initial),
		TEST(test_reopen_keeps_data),
		TEST(test_other_schema_version_is_eproto),
		TEST(test_batch_same_triplet_twice_second_sees_first),
		TEST(test_batch_different_triplets),
		TEST(test_awl_after_passes_spaced_by_refresh),
		TEST(test_retry_within_refresh_commits_nothing),
		TEST(test_map_full_at_small_cap),
		TEST(test_map_grows_then_stops_at_cap),
		TEST(test_corrupt_triplet_record_treated_as_new),
		TEST(test_corrupt_client_record_replaced_on_pass),
		TEST(test_corrupt_client_record_deleted_when_nothing_else_changes),
		TEST(test_expire_slices_remove_old_keep_fresh),
		TEST(test_expire_large_budget_one_pass),
		TEST(test_async_store_answers_in_order),
		TEST(test_store_close_idle_is_prompt),
		TEST(test_store_close_decides_what_is_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
