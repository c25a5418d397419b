/*
 * store_helpers - temporary environments, jobs and waiters for the store
 * tests.  See store_helpers.h.
 */
#include "store_helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

const struct triplet_opts test_topts = {false, 24, 64};

const struct engine_params test_params = {
	.delay = 300,
	.retry_window = 2 * DAY,
	.max_age = 35 * DAY,
	.awl_passes = 0,
};

/* ---- temporary directories and stderr capture ---------------------------- */

int
make_tmp(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/greyhold-test-store-XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/db", t->root);
	snprintf(t->logfile, sizeof(t->logfile), "%s/stderr", t->root);
	t->saved_stderr = -1;
	*state = t;
	return 0;
}

static int
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	if (d == NULL)
		return unlink(path);
	while ((e = readdir(d)) != NULL) {
		char sub[512];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (remove_tree(sub) < 0)
			rc = -1;
	}
	closedir(d);
	return rmdir(path) < 0 ? -1 : rc;
}

static void
capture_stop(struct tmp *t)
{
	if (t->saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(t->saved_stderr, STDERR_FILENO);
	close(t->saved_stderr);
	t->saved_stderr = -1;
}

/* A failed test may leave fd 2 captured: give it back first. */
int
remove_tmp(void **state)
{
	struct tmp *t = *state;
	int rc;

	capture_stop(t);
	rc = remove_tree(t->root);
	free(t);
	return rc;
}

void
capture_start(struct tmp *t)
{
	int fd;

	fflush(stderr);
	fd = open(t->logfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	t->saved_stderr = dup(STDERR_FILENO);
	assert_true(t->saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

char *
capture_end(struct tmp *t)
{
	FILE *fp;
	char *text;
	long len;

	capture_stop(t);
	fp = fopen(t->logfile, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	if (len > 0 && fread(text, 1, (size_t)len, fp) != (size_t)len)
		fail_msg("cannot read the captured log");
	fclose(fp);
	fprintf(stderr, "%s", text);
	return text;
}

/* ---- the db and its jobs ------------------------------------------------- */

db_t *
open_db(const char *dir, uint64_t max_size, bool relaxed)
{
	struct db_options o = {.dir = dir, .max_size = max_size,
			       .relaxed = relaxed};
	char err[ERRSZ] = "";
	db_t *db = NULL;
	int rc = db_open(&db, &o, err, sizeof(err));

	if (rc != 0)
		fail_msg("db_open(%s) failed (%d): %s", dir, rc, err);
	assert_non_null(db);
	return db;
}

void
make_job(struct store_job *job, const char *client, const char *sender,
	 const char *rcpt, int64_t now)
{
	memset(job, 0, sizeof(*job));
	triplet_build(&job->key, client, strlen(client), sender, strlen(sender),
		      rcpt, strlen(rcpt), &test_topts);
	job->now = now;
	job->err = 1;	/* the store must set it */
}

int
decide(db_t *db, struct store_job *jobs, size_t n,
       const struct engine_params *p, bool *committed)
{
	struct store_job **ptrs = calloc(n, sizeof(*ptrs));
	uint64_t usec;
	size_t i;
	int rc;

	assert_non_null(ptrs);
	for (i = 0; i < n; i++)
		ptrs[i] = &jobs[i];
	rc = db_decide_batch(db, ptrs, n, p, committed, &usec);
	free(ptrs);
	return rc;
}

/* ---- the asynchronous store ---------------------------------------------- */

void
waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->wakeups = 0;
}

void
waiter_destroy(struct waiter *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

void
wake(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->wakeups++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

bool
wait_wakeup(struct waiter *w, unsigned *seen)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&w->lock);
	while (w->wakeups == *seen && ok)
		ok = pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0 ||
		     w->wakeups != *seen;
	*seen = w->wakeups;
	pthread_mutex_unlock(&w->lock);
	return ok;
}

store_t *
open_store(const char *dir, uint64_t max_size, bool relaxed, struct waiter *w)
{
	struct store_options o = {
		.dbdir = dir,
		.max_size = max_size,
		.relaxed = relaxed,
		.params = test_params,
		.wakeup = wake,
		.wakeup_arg = w,
	};
	char err[ERRSZ] = "";
	store_t *s = NULL;
	int rc = store_open(&s, &o, err, sizeof(err));

	if (rc != 0)
		fail_msg("store_open(%s) failed (%d): %s", dir, rc, err);
	assert_non_null(s);
	return s;
}
