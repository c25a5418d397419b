/*
 * backend_redis - the Redis backend's shared state, for its own modules:
 *
 *   backend_redis.c  opening, the backend operations, closing
 *   redis_conn.c     the connection: name lookup, connect, set-up (AUTH,
 *                    SELECT, SCRIPT LOAD), backoff, commands in flight and
 *                    their timeout
 *   redis_events.c   hiredis's event hooks on a uv_poll handle
 *   redis_jobs.c     decisions: submit, hold, EVALSHA, verdicts back
 *   redis_wl.c       the live whitelist, polled once a second
 *   redis_sentinel.c sentinel://: asking the sentinels for the primary,
 *                    following +switch-master
 *   redis_script.c   greylist.lua as a C string (generated at build time)
 * Keys and values: redis_codec.h (the library).
 *
 * Everything runs on the loop thread.  The backend owns four timers and
 * is freed when they are all closed and no name lookup is pending.
 */
#ifndef GREYHOLD_BACKEND_REDIS_H
#define GREYHOLD_BACKEND_REDIS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backend.h"
#include "log.h"

#define REDIS_TIMEOUT_MS 2000	/* a command unanswered this long: hung */
#define REDIS_CHECK_MS 250	/* how often the timeout is checked */
#define REDIS_BACKOFF_MIN_MS 100	/* first wait before reconnecting */
#define REDIS_BACKOFF_MAX_MS 5000
/*
 * sentinel://: while the primary has been gone less than this, jobs are
 * held for the next one (each at most REDIS_TIMEOUT_MS) rather than failed
 * at once; a failover takes Sentinel's down-after-milliseconds plus an
 * election, a few seconds when tuned.
 */
#define REDIS_SWITCH_HOLD_MS 10000

struct rconn;
struct rreq;
struct rsent;
struct redis_endpoint_host;

struct backend_redis {
	struct backend base;
	uv_loop_t *loop;
	struct engine_params params;

	/*
	 * Where: host and port, or a unix socket path.  With sentinel:// the
	 * host and port are the primary the sentinels last named (host NULL
	 * before the first answer).
	 */
	char *host;
	unsigned port;
	char *path;
	unsigned db;
	char *user;
	char *password;
	char *prefix;
	char *where;			/* cfg->store, for the log */

	/* sentinel:// (nsentinels > 0): where the primary is learnt. */
	unsigned nsentinels;
	struct redis_endpoint_host *sentinels;
	char *master;
	char *sentinel_user;
	char *sentinel_password;
	bool primary_known;		/* host and port are worth a try */
	unsigned sentinel_turn;		/* which sentinel is asked next */
	unsigned asked;			/* sentinels asked in this round */
	bool no_such_master;		/* a sentinel did not know the name */
	bool sentinel_round_failed;	/* redis_conn_failed: log why alone */
	char ask_why[600];		/* the last sentinel's failure */
	struct rsent *ask;		/* a question under way */
	struct rsent *watch;		/* subscribed to +switch-master */
	uint64_t watch_tried;		/* uv_now() of its last attempt */
	uint64_t failovers;		/* times the primary moved */
	uint64_t down_since;		/* uv_now() the primary went; 0: here */
	uint64_t down_ms;		/* time without one, before down_since */

	struct rconn *conn;		/* current connection, or NULL */
	/*
	 * Until the first connection attempt is over, jobs wait for it
	 * (held); afterwards they go to Redis while it works and fail at
	 * once while it does not.
	 */
	bool starting;
	bool healthy;			/* set up: jobs go to Redis */
	int down_err;			/* what jobs fail with meanwhile */
	char sha[41];			/* the script's SHA1, once known */
	uint64_t backoff_ms;
	uint64_t healthy_since;		/* uv_now() at set-up; 0: down */
	uv_getaddrinfo_t gai;
	bool resolving;
	unsigned addr_turn;		/* which host address is next */

	uv_timer_t retry_timer;		/* next connection attempt */
	uv_timer_t check_timer;		/* command timeouts */
	uv_timer_t wl_timer;		/* live whitelist poll */
	uv_timer_t fail_timer;		/* hands back jobs failed in submit */
	struct job_queue failed;
	struct rreq *held;		/* jobs waiting for the first connection */
	struct rreq *held_tail;

	bool wl_busy;			/* a poll is in flight */
	bool wl_loaded;			/* wl_gen is what we last built */
	char wl_gen[32];
	char wl_pending_gen[32];
	int64_t wl_next_expiry;		/* 0: no entry expires */

	struct store_stats stats;
	struct log_ratelimit fail_log;
	struct log_ratelimit conn_log;
	int open_handles;
	bool closing;
};

/* Free b once every timer is closed and no name lookup is pending. */
void backend_redis_maybe_free(struct backend_redis *b);

#endif
