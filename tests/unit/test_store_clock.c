/*
 * test_store_clock - a wall-clock step never holds the store thread.
 *
 * The store thread waits with timeouts: briefly after a big batch for the
 * rest of its clients (gather), and a second at a time when idle.  Those
 * waits measure intervals, so a step of the wall clock must not stretch
 * them.  clock_gettime() is wrapped at link time so CLOCK_REALTIME reads
 * an hour ahead of the kernel's, which is what a deadline taken just
 * before the clock steps back by an hour looks like to the wait; waits
 * on the wall clock would then last an hour, waits on the monotonic clock
 * are unaffected.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define STEP_SECONDS 3600
#define JOBS 64

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = __real_clock_gettime(id, ts);

	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += STEP_SECONDS;
	return rc;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t woken = PTHREAD_COND_INITIALIZER;
static unsigned wakeups;

static void
on_wakeup(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	wakeups++;
	pthread_cond_broadcast(&woken);
	pthread_mutex_unlock(&lock);
}

static void
count_done(struct store_job *job, void *arg)
{
	(void)job;
	(*(size_t *)arg)++;
}

/* Collect until want jobs came back or 5 real seconds passed. */
static size_t
collect(store_t *s, size_t want)
{
	size_t got = 0;
	time_t give_up = time(NULL) + 5;

	while (got < want && time(NULL) < give_up) {
		pthread_mutex_lock(&lock);
		if (wakeups == 0) {
			pthread_mutex_unlock(&lock);
			usleep(2000);
			continue;
		}
		wakeups = 0;
		pthread_mutex_unlock(&lock);
		store_collect(s, count_done, &got);
	}
	return got;
}

static void
make_job(struct store_job *job, unsigned i)
{
	static const struct triplet_opts topts = {false, 24, 64};
	char sender[48];
	int n = snprintf(sender, sizeof(sender), "s%u@example.org", i);

	memset(job, 0, sizeof(*job));
	triplet_build(&job->key, "192.0.2.7", 9, sender, (size_t)n,
		      "bob@example.net", 15, &topts);
	job->now = (int64_t)time(NULL);
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

/*
 * After a batch big enough to wait for its clients, one lone job comes:
 * the gather wait must end after its half millisecond, not an hour.
 */
static void
test_gather_wait_ignores_wall_clock(void **state)
{
	char dir[] = "/tmp/test_store_clock.XXXXXX";
	struct store_options o;
	struct store_job jobs[JOBS + 1];
	char err[256];
	store_t *s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&o, 0, sizeof(o));
	o.dbdir = dir;
	o.max_size = 64ULL << 20;
	o.params.delay = 300;
	o.params.retry_window = 172800;
	o.params.max_age = 3024000;
	o.params.awl_passes = 5;
	o.wakeup = on_wakeup;
	assert_int_equal(store_open(&s, &o, err, sizeof(err)), 0);

	/* One big batch: the next one starts with a gather wait. */
	for (unsigned i = 0; i < JOBS; i++) {
		make_job(&jobs[i], i);
		store_submit(s, &jobs[i]);
	}
	store_flush(s);
	assert_int_equal(collect(s, JOBS), JOBS);

	make_job(&jobs[JOBS], JOBS);
	store_submit(s, &jobs[JOBS]);
	store_flush(s);
	assert_int_equal(collect(s, 1), 1);
	assert_int_equal(jobs[JOBS].err, 0);
	assert_int_equal(jobs[JOBS].verdict.action, ENGINE_DEFER);

	store_close(s);
	remove_env(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gather_wait_ignores_wall_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
