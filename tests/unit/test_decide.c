/*
 * test_decide - one decision, every path.
 *
 * Each row of tests/decide_scenarios.txt runs through the pure decide_request(),
 * through the store thread's batch (db_decide_batch() on a real LMDB file,
 * records read back afterwards) and through the loop thread's read-only
 * peek (db_peek()), and all must give the row's verdict and writes.  The
 * Redis script runs the same rows in tests/integration/test_redis.py.
 * Further cases check the multi-identity rules of decide.h.
 */
#include "decide.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "db_admin.h"
#include "db_batch.h"
#include "db_peek.h"
#include "triplet.h"

#define NOW ((int64_t)1700000000)
#define MAX_ROWS 64

static const struct engine_params base_params = {300, 172800, 3024000, 5};

struct opt_record {
	bool set;
	struct record r;
};

struct scenario {
	char name[64];
	unsigned awl;
	struct opt_record client, triplet;
	enum engine_action action;
	enum engine_reason reason;
	int64_t left, delay;
	struct opt_record client_after, triplet_after;	/* set: written */
};

static struct scenario rows[MAX_ROWS];
static size_t nrows;

/* "-" or "=" (unset), else "first,last,passes" relative to NOW. */
static bool
parse_record(const char *s, struct opt_record *out)
{
	long long first, last;
	unsigned passes;

	out->set = false;
	if (strcmp(s, "-") == 0 || strcmp(s, "=") == 0)
		return true;
	if (sscanf(s, "%lld,%lld,%u", &first, &last, &passes) != 3)
		return false;
	out->set = true;
	out->r.first_seen = NOW + first;
	out->r.last_seen = NOW + last;
	out->r.passes = passes;
	return true;
}

static bool
parse_reason(const char *s, enum engine_reason *out)
{
	static const struct {
		const char *name;
		enum engine_reason reason;
	} names[] = {
		{"new", ENGINE_NEW}, {"restart", ENGINE_RESTART},
		{"early", ENGINE_EARLY}, {"passed", ENGINE_PASSED},
		{"known", ENGINE_KNOWN}, {"awl", ENGINE_AWL},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].reason;
			return true;
		}
	return false;
}

static int
load_rows(void **state)
{
	char line[512], name[64], client[48], trip[48], action[16], reason[16];
	char ca[48], ta[48];
	long long left, delay;
	unsigned awl;
	FILE *fp = fopen(TEST_SRCDIR "/decide_scenarios.txt", "r");

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct scenario *s = &rows[nrows];

		if (line[0] == '#' || line[0] == '\n')
			continue;
		assert_true(nrows < MAX_ROWS);
		assert_int_equal(sscanf(line, "%63s %u %47s %47s %15s %15s %lld "
					"%lld %47s %47s", name, &awl, client, trip,
					action, reason, &left, &delay, ca, ta), 10);
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->awl = awl;
		assert_true(parse_record(client, &s->client));
		assert_true(parse_record(trip, &s->triplet));
		assert_true(strcmp(action, "pass") == 0 ||
			    strcmp(action, "defer") == 0);
		s->action = strcmp(action, "pass") == 0 ? ENGINE_PASS : ENGINE_DEFER;
		assert_true(parse_reason(reason, &s->reason));
		s->left = left;
		s->delay = delay;
		assert_true(parse_record(ca, &s->client_after));
		assert_true(parse_record(ta, &s->triplet_after));
		nrows++;
	}
	fclose(fp);
	/* A table that lost its rows would make every test pass vacuously. */
	assert_true(nrows >= 20);
	return 0;
}

static struct engine_params
row_params(const struct scenario *s)
{
	struct engine_params p = base_params;

	p.awl_passes = s->awl;
	return p;
}

static void
check_verdict(const struct scenario *s, const struct engine_verdict *v,
	      const char *path)
{
	if (v->action != s->action || v->reason != s->reason ||
	    v->seconds_left != s->left || v->delay != s->delay)
		fail_msg("%s, %s: got action %d reason %s left %lld delay %lld",
			 path, s->name, v->action, engine_reason_name(v->reason),
			 (long long)v->seconds_left, (long long)v->delay);
}

static void
check_record(const char *path, const char *row, const char *what,
	     const struct record *got, const struct record *want)
{
	if (got->first_seen != want->first_seen ||
	    got->last_seen != want->last_seen || got->passes != want->passes)
		fail_msg("%s, %s: %s is %lld,%lld,%u, want %lld,%lld,%u", path, row,
			 what, (long long)(got->first_seen - NOW),
			 (long long)(got->last_seen - NOW), got->passes,
			 (long long)(want->first_seen - NOW),
			 (long long)(want->last_seen - NOW), want->passes);
}

static void
test_pure(void **state)
{
	(void)state;
	for (size_t i = 0; i < nrows; i++) {
		const struct scenario *s = &rows[i];
		struct engine_params p = row_params(s);
		struct decide_in in = {1, {{s->awl > 0,
					    s->client.set ? &s->client.r : NULL,
					    s->triplet.set ? &s->triplet.r : NULL}}};
		struct decide_out out;
		bool writes = decide_request(&in, NOW, &p, &out);

		check_verdict(s, &out.verdict, "pure");
		assert_int_equal(out.id[0].put_client, s->client_after.set);
		assert_int_equal(out.id[0].put_triplet, s->triplet_after.set);
		assert_int_equal(writes, s->client_after.set || s->triplet_after.set);
		if (s->client_after.set)
			check_record("pure", s->name, "client", &out.id[0].client,
				     &s->client_after.r);
		if (s->triplet_after.set)
			check_record("pure", s->name, "triplet", &out.id[0].triplet,
				     &s->triplet_after.r);
	}
}

/* A fresh LMDB environment holding the row's records. */
static db_t *
open_loaded(const struct scenario *s, const struct store_job *job, char *dir)
{
	struct db_options o = {dir, 64ULL << 20, false, false};
	char err[256];
	db_t *db;
	size_t added = 0, changed = 0;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_open(&db, &o, err, sizeof(err)), 0);
	if (s->triplet.set)
		assert_int_equal(db_put_triplet(db, job->key.key, job->key.key_len,
						&s->triplet.r), 0);
	if (s->client.set) {
		struct db_item it = {DB_CLIENTS, job->key.client,
				     job->key.client_len, s->client.r};

		assert_int_equal(db_merge(db, &it, 1, &added, &changed), 0);
	}
	return db;
}

static void
remove_env(const char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static void
make_job(struct store_job *job)
{
	static const struct triplet_opts topts = {false, 24, 64};

	memset(job, 0, sizeof(*job));
	triplet_build(&job->key, "192.0.2.7", 9, "alice@example.org", 17,
		      "bob@example.net", 15, &topts);
	job->now = NOW;
	assert_true(job->key.client_is_net);
}

/* What is stored now must be the row's "after" (or what it had). */
static void
check_stored(db_t *db, const struct scenario *s, const struct store_job *job)
{
	const struct opt_record *want_c = s->client_after.set ? &s->client_after
							     : &s->client;
	const struct opt_record *want_t = s->triplet_after.set ? &s->triplet_after
							      : &s->triplet;
	struct record got;
	int rc;

	rc = db_record_get(db, DB_CLIENTS, job->key.client, job->key.client_len,
			   &got);
	assert_int_equal(rc, want_c->set ? 0 : -ENOENT);
	if (rc == 0)
		check_record("store", s->name, "client", &got, &want_c->r);
	rc = db_record_get(db, DB_TRIPLETS, job->key.key, job->key.key_len, &got);
	assert_int_equal(rc, want_t->set ? 0 : -ENOENT);
	if (rc == 0)
		check_record("store", s->name, "triplet", &got, &want_t->r);
}

static void
test_store_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < nrows; i++) {
		const struct scenario *s = &rows[i];
		struct engine_params p = row_params(s);
		char dir[] = "/tmp/test_decide.XXXXXX";
		struct store_job job, *jobs[1] = {&job};
		bool committed;
		uint64_t usec;
		db_t *db;

		make_job(&job);
		db = open_loaded(s, &job, dir);
		assert_int_equal(db_decide_batch(db, jobs, 1, &p, &committed, &usec),
				 0);
		assert_int_equal(job.err, 0);
		check_verdict(s, &job.verdict, "store");
		assert_int_equal(committed,
				 s->client_after.set || s->triplet_after.set);
		check_stored(db, s, &job);
		db_close(db);
		remove_env(dir);
	}
}

static void
test_peek_path(void **state)
{
	size_t answered = 0;

	(void)state;
	for (size_t i = 0; i < nrows; i++) {
		const struct scenario *s = &rows[i];
		struct engine_params p = row_params(s);
		bool read_only = !s->client_after.set && !s->triplet_after.set;
		char dir[] = "/tmp/test_decide.XXXXXX";
		struct store_job job;
		db_t *db;
		bool ok;

		make_job(&job);
		db = open_loaded(s, &job, dir);
		job.err = -1;
		ok = db_peek(db, &job, &p);
		db_snapshot_end(db);
		if (ok != read_only)
			fail_msg("peek, %s: %s", s->name, ok ? "answered a row that "
				 "writes" : "declined a read-only row");
		if (ok) {
			assert_int_equal(job.err, 0);
			check_verdict(s, &job.verdict, "peek");
			answered++;
		}
		db_close(db);
		remove_env(dir);
	}
	/* The fast path must carry the common cases, not decline them all. */
	assert_true(answered >= 5);
}

/* ---- several identities (decide.h rules 1-3) --------------------------- */

static struct record
rec(int64_t first, int64_t last, uint32_t passes)
{
	struct record r = {NOW + first, NOW + last, passes};

	return r;
}

/* A pool retrying from a new network passes on its name's triplet. */
static void
test_ids_pass_on_any_identity(void **state)
{
	struct record name_t = rec(-600, -600, 0);
	struct decide_in in = {2, {{true, NULL, NULL}, {false, NULL, &name_t}}};
	struct decide_out out;

	(void)state;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.action, ENGINE_PASS);
	assert_int_equal(out.verdict.reason, ENGINE_PASSED);
	assert_int_equal(out.verdict.delay, 600);
	assert_int_equal(out.matched, 1);
	/* The new network is recorded as passed: the triplet did pass. */
	assert_true(out.id[0].put_triplet);
	assert_int_equal(out.id[0].triplet.passes, 1);
	assert_int_equal(out.id[0].triplet.last_seen, NOW);
	assert_true(out.id[1].put_triplet);
	assert_int_equal(out.id[1].triplet.first_seen, NOW - 600);
	assert_int_equal(out.id[1].triplet.passes, 1);
	/* Only identities allowed to auto-whitelist count the pass. */
	assert_true(out.id[0].put_client);
	assert_false(out.id[1].put_client);
}

/* A first attempt is recorded under every identity it has. */
static void
test_ids_first_attempt_recorded_under_each(void **state)
{
	struct decide_in in = {3, {{true, NULL, NULL}, {true, NULL, NULL},
				   {false, NULL, NULL}}};
	struct decide_out out;

	(void)state;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.action, ENGINE_DEFER);
	assert_int_equal(out.verdict.reason, ENGINE_NEW);
	assert_int_equal(out.verdict.seconds_left, 300);
	for (size_t i = 0; i < 3; i++) {
		assert_true(out.id[i].put_triplet);
		assert_int_equal(out.id[i].triplet.first_seen, NOW);
		assert_int_equal(out.id[i].triplet.passes, 0);
		assert_false(out.id[i].put_client);
	}
}

/* Deferred everywhere: the soonest early identity says when to retry. */
static void
test_ids_defer_reports_soonest(void **state)
{
	struct record a = rec(-100, -100, 0), b = rec(-250, -250, 0);
	struct decide_in in = {3, {{true, NULL, &a}, {true, NULL, NULL},
				   {true, NULL, &b}}};
	struct decide_out out;

	(void)state;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.action, ENGINE_DEFER);
	assert_int_equal(out.verdict.reason, ENGINE_EARLY);
	assert_int_equal(out.verdict.seconds_left, 50);
	assert_false(out.id[0].put_triplet);
	assert_true(out.id[1].put_triplet);	/* new under this identity */
	assert_false(out.id[2].put_triplet);
}

/* An auto-whitelisted identity passes whatever the others hold. */
static void
test_ids_awl_on_second_identity(void **state)
{
	struct record listed = rec(-100000, -100, 9);
	struct decide_in in = {2, {{true, NULL, NULL}, {true, &listed, NULL}}};
	struct decide_out out;

	(void)state;
	assert_false(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.action, ENGINE_PASS);
	assert_int_equal(out.verdict.reason, ENGINE_AWL);
	assert_int_equal(out.matched, 1);
	/* ...but not an identity that may not auto-whitelist. */
	in.id[1].awl = false;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.action, ENGINE_DEFER);
}

/* Every identity restarted: the reason says so. */
static void
test_ids_all_restart(void **state)
{
	struct record old = rec(-200000, -200000, 0);
	struct decide_in in = {2, {{true, NULL, &old}, {true, NULL, &old}}};
	struct decide_out out;

	(void)state;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.reason, ENGINE_RESTART);
	in.id[1].triplet = NULL;
	assert_true(decide_request(&in, NOW, &base_params, &out));
	assert_int_equal(out.verdict.reason, ENGINE_NEW);
}

/* A job from client network net with a name identity "n:example.com". */
static void
make_pool_job(struct store_job *job, const char *net, int64_t now)
{
	static const struct triplet_opts topts = {false, 24, 64};

	memset(job, 0, sizeof(*job));
	triplet_build(&job->key, net, strlen(net), "bounce-77@mail9.example.com",
		      27, "bob@example.net", 15, &topts);
	job->n_more = 1;
	job->more[0].awl = true;
	assert_true(triplet_build_ident(&job->more[0].key, 'n', "example.com", 11,
					"bounce-77@example.com", 21,
					"bob@example.net", 15));
	job->now = now;
}

/*
 * Through the store and the peek: a pool's first attempt from one network
 * is recorded under its name too, and its retry from another network after
 * the delay passes on the name; the peek then answers that network's
 * next retry itself.
 */
static void
test_store_pool_retry_from_other_network(void **state)
{
	char dir[] = "/tmp/test_decide.XXXXXX";
	struct db_options o = {dir, 64ULL << 20, false, false};
	struct store_job job, *jobs[1] = {&job};
	struct record r;
	char err[256];
	bool committed;
	uint64_t usec;
	db_t *db;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_open(&db, &o, err, sizeof(err)), 0);

	make_pool_job(&job, "198.51.100.20", NOW);
	assert_int_equal(db_decide_batch(db, jobs, 1, &base_params, &committed,
					 &usec), 0);
	assert_int_equal(job.verdict.reason, ENGINE_NEW);
	assert_int_equal(db_record_get(db, DB_TRIPLETS, job.more[0].key.key,
				       job.more[0].key.key_len, &r), 0);
	assert_int_equal(r.first_seen, NOW);

	make_pool_job(&job, "203.0.113.9", NOW + 400);
	assert_false(db_peek(db, &job, &base_params));	/* it writes */
	db_snapshot_end(db);
	assert_int_equal(db_decide_batch(db, jobs, 1, &base_params, &committed,
					 &usec), 0);
	assert_int_equal(job.verdict.action, ENGINE_PASS);
	assert_int_equal(job.verdict.reason, ENGINE_PASSED);
	assert_int_equal(job.verdict.delay, 400);
	assert_int_equal(job.matched, 1);
	assert_int_equal(db_record_get(db, DB_TRIPLETS, job.key.key,
				       job.key.key_len, &r), 0);
	assert_int_equal(r.passes, 1);

	make_pool_job(&job, "203.0.113.9", NOW + 500);
	assert_true(db_peek(db, &job, &base_params));
	db_snapshot_end(db);
	assert_int_equal(job.verdict.reason, ENGINE_KNOWN);
	assert_int_equal(job.matched, 0);

	/* A job's own longer delay (a listed client) holds it back. */
	make_pool_job(&job, "192.0.2.50", NOW + 500);
	job.key.key[0] = 'x';	/* a triplet never seen under the network */
	job.more[0].key.key[job.more[0].key.key_len - 1] = 'x';
	job.delay = 3600;
	assert_int_equal(db_decide_batch(db, jobs, 1, &base_params, &committed,
					 &usec), 0);
	assert_int_equal(job.verdict.reason, ENGINE_NEW);
	assert_int_equal(job.verdict.seconds_left, 3600);

	db_close(db);
	remove_env(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pure),
		cmocka_unit_test(test_store_path),
		cmocka_unit_test(test_peek_path),
		cmocka_unit_test(test_ids_pass_on_any_identity),
		cmocka_unit_test(test_ids_first_attempt_recorded_under_each),
		cmocka_unit_test(test_ids_defer_reports_soonest),
		cmocka_unit_test(test_ids_awl_on_second_identity),
		cmocka_unit_test(test_ids_all_restart),
		cmocka_unit_test(test_store_pool_retry_from_other_network),
	};

	return cmocka_run_group_tests(tests, load_rows, NULL);
}
