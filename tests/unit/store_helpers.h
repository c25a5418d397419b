/*
 * store_helpers - what test_store and test_store_faults share.
 *
 * A temporary directory per test (cmocka setup/teardown), with the LMDB
 * environment in its "db" subdirectory, which db_open() must create, and
 * an optional capture of fd 2 (the library's log) into a file there; a
 * db and a store opener that fail the test on error; triplet jobs and
 * batch deciding on the db; and a waiter for the store thread's wakeups.
 *
 * Everything here calls the library only: in test_store_faults, whose
 * LMDB writes are wrapped at link time, these helpers see the injected
 * faults like the library does, and they never write to LMDB themselves.
 */
#ifndef GREYHOLD_TEST_STORE_HELPERS_H
#define GREYHOLD_TEST_STORE_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db_batch.h"
#include "engine.h"
#include "store.h"
#include "triplet.h"

#define DAY 86400
#define MIB (1ULL << 20)
#define T0 1000000000	/* a fixed "now" for the db tests */
#define ERRSZ 512

struct tmp {
	char root[64];
	char dir[96];		/* root/db: created by db_open() */
	char logfile[96];	/* root/stderr: captured log output */
	int saved_stderr;	/* -1 when not capturing */
};

/* The triplet options and engine parameters most tests use. */
extern const struct triplet_opts test_topts;
extern const struct engine_params test_params;

/* cmocka setup and teardown: *state is a struct tmp. */
int make_tmp(void **state);
int remove_tmp(void **state);

/* Send fd 2 to t->logfile until capture_end() (or the teardown). */
void capture_start(struct tmp *t);
/* Stop capturing; the captured text (caller frees), echoed for context. */
char *capture_end(struct tmp *t);

db_t *open_db(const char *dir, uint64_t max_size, bool relaxed);

/* A job for the triplet (client, sender, rcpt) at now, err not yet set. */
void make_job(struct store_job *job, const char *client, const char *sender,
	      const char *rcpt, int64_t now);

/* Decide jobs[0..n) in one batch. */
int decide(db_t *db, struct store_job *jobs, size_t n,
	   const struct engine_params *p, bool *committed);

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned wakeups;
};

void waiter_init(struct waiter *w);
void waiter_destroy(struct waiter *w);
/* The store's wakeup callback; arg is a struct waiter. */
void wake(void *arg);
/* Wait for a wakeup after the seen-th one; false after 10 s without. */
bool wait_wakeup(struct waiter *w, unsigned *seen);

/* A store on dir with test_params, waking w. */
store_t *open_store(const char *dir, uint64_t max_size, bool relaxed,
		    struct waiter *w);

#endif
