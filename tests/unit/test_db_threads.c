/*
 * test_db_threads - the map-size rule under two threads and a second
 * process (db_int.h).
 *
 * In the daemon one handle serves two threads: the store thread (batches,
 * live-whitelist reads) and the loop thread (read-only peeks).  When
 * another process (greyholdctl load) grows the map, the new size must be
 * adopted only by the store thread between its own transactions; LMDB
 * forbids a map change while any transaction of the process is open, and
 * adopting it from the loop thread while the store thread sat in a read
 * transaction crashed the daemon.
 *
 * Here a forked child grows the map in many small steps, filling each
 * new size, while one thread peeks as the loop does and another runs
 * batches and reads the live whitelist as the store thread does.
 *
 * Below our cap the store thread adopts the child's size with room above
 * it, as our own growth would, so every batch must succeed: adopting
 * only the exact size, it can lose the race to the child's next commit at
 * every step, and a batch that loses it 16 times in a row fails.  Past our cap (the child set a larger one) only
 * the exact size may be adopted, so every child commit is a MAP_RESIZED
 * event for us; there a batch may give up (the child outgrew us every
 * try) or find the map full at our cap, and nothing else.  Each round
 * passes when nothing crashed and the store thread ended up with at least
 * the child's map size.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "db_batch.h"
#include "db_peek.h"
#include "db_wl.h"
#include "triplet.h"

#define NOW ((int64_t)1700000000)
#define STEPS 40		/* map growths by the child per round */
#define STEP (512ULL << 10)	/* bytes per growth */
#define FILL_MARGIN (192ULL << 10)
#define ROUNDS 4

static const struct engine_params params = {300, 172800, 3024000, 5};

struct shared {
	db_t *db;
	volatile bool stop;
	bool past_cap;		/* the child grows beyond our cap */
	unsigned long peeks, batches, wl_reads;
	int batch_err;		/* the first error not allowed */
};

static void
make_job(struct store_job *job, unsigned i)
{
	static const struct triplet_opts topts = {false, 24, 64};
	char sender[64];
	int n = snprintf(sender, sizeof(sender), "s%u@example.org", i % 5000);

	memset(job, 0, sizeof(*job));
	triplet_build(&job->key, "192.0.2.7", 9, sender, (size_t)n,
		      "bob@example.net", 15, &topts);
	job->now = NOW + i % 1000;
}

/* The loop thread: peek, end the snapshot, again. */
static void *
loop_thread(void *arg)
{
	struct shared *sh = arg;
	struct store_job job;
	unsigned i = 0;

	while (!sh->stop) {
		make_job(&job, i++);
		(void)db_peek(sh->db, &job, &params);
		db_snapshot_end(sh->db);
		sh->peeks++;
	}
	return NULL;
}

static int
count_entry(const struct db_wl_entry *e, void *arg)
{
	(void)e;
	(*(unsigned long *)arg)++;
	return 0;
}

/* The store thread: batches and live-whitelist reads, as in store.c. */
static void *
store_thread(void *arg)
{
	struct shared *sh = arg;
	struct store_job jobs[8], *ptrs[8];
	unsigned i = 0;
	uint64_t gen;
	unsigned long n;

	while (!sh->stop) {
		bool committed;
		uint64_t usec;
		int rc;

		for (size_t j = 0; j < 8; j++) {
			make_job(&jobs[j], i++);
			ptrs[j] = &jobs[j];
		}
		rc = db_decide_batch(sh->db, ptrs, 8, &params, &committed, &usec);
		if (sh->past_cap && (rc == -EAGAIN || rc == -ENOSPC))
			rc = 0;		/* declined, as the comment on top says */
		if (rc != 0 && sh->batch_err == 0)
			sh->batch_err = rc;
		sh->batches++;
		for (int k = 0; k < 4; k++) {
			n = 0;
			(void)db_wl_generation(sh->db, &gen);
			(void)db_wl_foreach(sh->db, count_entry, &n);
			sh->wl_reads++;
		}
	}
	return NULL;
}

/* Bytes of the map the environment has in use. */
static uint64_t
used_bytes(MDB_env *env)
{
	MDB_envinfo info;
	MDB_stat st;

	mdb_env_info(env, &info);
	mdb_env_stat(env, &st);
	return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/*
 * The other process: grow the map step by step, and fill each new size
 * almost to its end, so every step uses pages past the size we adopted
 * before (that is when LMDB tells us MDB_MAP_RESIZED).
 */
static void
child_grow(const char *dir, uint64_t start)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	char key[32], val[1000];
	MDB_val k = {0, key}, v = {sizeof(val), val};
	unsigned serial = 0;

	memset(val, 'x', sizeof(val));
	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
	    mdb_env_set_mapsize(env, start) != 0 ||
	    mdb_env_open(env, dir, MDB_NOTLS | MDB_NOSYNC, 0600) != 0)
		_exit(2);
	for (int s = 1; s <= STEPS; s++) {
		uint64_t size = start + (uint64_t)s * STEP;

		if (mdb_env_set_mapsize(env, size) != 0)
			_exit(3);
		while (used_bytes(env) + FILL_MARGIN < size) {
			if (mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
			    mdb_dbi_open(txn, "triplets", 0, &dbi) != 0)
				_exit(4);
			for (int r = 0; r < 64; r++) {
				k.mv_size = (size_t)snprintf(key, sizeof(key),
							     "grow/%08u", serial++);
				if (mdb_put(txn, dbi, &k, &v, 0) != 0)
					_exit(5);
			}
			if (mdb_txn_commit(txn) != 0)
				_exit(6);
		}
	}
	mdb_env_close(env);
	_exit(0);
}

static void
one_round(uint64_t cap)
{
	char dir[] = "/tmp/test_db_threads.XXXXXX";
	struct db_options o = {dir, cap, false, false};
	struct shared sh;
	pthread_t loop, store;
	char err[256], path[512], go = 'g';
	uint64_t start;
	int status, gate[2];
	pid_t pid;

	memset(&sh, 0, sizeof(sh));
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_open(&sh.db, &o, err, sizeof(err)), 0);
	start = db_map_size(sh.db);
	sh.past_cap = start + STEPS * STEP > cap;

	/*
	 * Fork while this process has one thread: a child forked beside
	 * running threads may inherit a lock one of them held (the
	 * sanitizers' allocator, taken inside LMDB's malloc) and hang in its
	 * first malloc, holding LMDB's write lock.  It waits for the threads
	 * to start before it grows the map.
	 */
	assert_int_equal(pipe(gate), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(gate[1]);
		if (read(gate[0], &go, 1) != 1)
			_exit(7);
		child_grow(dir, start);
	}
	close(gate[0]);
	assert_int_equal(pthread_create(&loop, NULL, loop_thread, &sh), 0);
	assert_int_equal(pthread_create(&store, NULL, store_thread, &sh), 0);
	assert_int_equal(write(gate[1], &go, 1), 1);
	close(gate[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	sh.stop = true;
	pthread_join(loop, NULL);
	pthread_join(store, NULL);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(sh.batch_err, 0);
	assert_true(sh.peeks > 0 && sh.batches > 0 && sh.wl_reads > 0);

	/* The store thread's next transaction adopts the child's size. */
	{
		uint64_t gen;

		assert_int_equal(db_wl_generation(sh.db, &gen), 0);
		assert_true(db_map_size(sh.db) >= start + (STEPS - 1) * STEP);
	}
	db_close(sh.db);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static void
test_map_grown_by_another_process(void **state)
{
	(void)state;
	for (int r = 0; r < ROUNDS; r++)
		one_round(1ULL << 30);
}

/* Our cap is the initial map: the child outgrows it at every step. */
static void
test_map_grown_past_our_cap(void **state)
{
	(void)state;
	for (int r = 0; r < ROUNDS; r++)
		one_round(DB_INITIAL_MAP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_grown_by_another_process),
		cmocka_unit_test(test_map_grown_past_our_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
