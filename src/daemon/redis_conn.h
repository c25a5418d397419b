/*
 * redis_conn - the Redis backend's connection: name lookup, connect,
 * set-up, reconnect with backoff, and the commands in flight.
 * With sentinel:// the address comes from redis_sentinel, a ROLE check
 * joins the set-up (a replica is not used: the sentinels are asked
 * again), and held jobs wait for the set-up to finish.
 *
 * One hiredis async connection at a time (struct rconn); commands are
 * pipelined on it and their replies come back in order.  Set-up is AUTH
 * (when a password is set), SELECT (db != 0) and SCRIPT LOAD, queued
 * before anything else; the connection is healthy once SCRIPT LOAD
 * answers.  A host name is looked up without blocking (uv_getaddrinfo);
 * each failed attempt moves on to the lookup's next address.
 *
 * Failure: a connection that cannot be made or is lost is logged at most
 * once a second and retried with exponential backoff (100 ms doubling to
 * 5 s; a connection that worked STABLE_MS starts it over).  Commands in
 * flight when a connection dies are failed, never dropped: hiredis calls
 * every pending callback with a NULL reply before it lets go of a context.
 * A command unanswered for REDIS_TIMEOUT_MS condemns the connection
 * (replies are in order, so the oldest one is all we watch).
 *
 * Ownership: a connection owns its commands (struct rreq, freed after
 * their reply) and its event hooks; hiredis owns the context; the rconn is
 * freed when its poll handle has closed.  Loop thread only.
 */
#ifndef GREYHOLD_REDIS_CONN_H
#define GREYHOLD_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_redis.h"
#include "redis_events.h"

enum rreq_kind {
	RQ_JOB,		/* a decision */
	RQ_SETUP,	/* AUTH or SELECT */
	RQ_ROLE,	/* ROLE: sentinel:// checks it is the primary */
	RQ_LOAD,	/* SCRIPT LOAD: the last set-up command */
	RQ_WL_GEN,	/* GET wl_generation */
	RQ_WL_ALL,	/* HGETALL whitelist */
};

/* One command in flight on a connection (or a job held for one). */
struct rreq {
	struct rreq *prev, *next;	/* the connection's, in send order */
	struct rconn *conn;		/* NULL while held */
	enum rreq_kind kind;
	struct store_job *job;		/* RQ_JOB */
	bool by_sha;			/* RQ_JOB sent as EVALSHA */
	uint64_t sent;			/* uv_now() when sent (or held) */
};

/* One connection attempt and, if it succeeds, the connection. */
struct rconn {
	struct redis_events ev;		/* ev.ac: the hiredis context */
	struct backend_redis *b;	/* NULL once the backend has let go */
	struct rreq *head, *tail;
	int err;			/* why it failed, once it has */
};

/*
 * Start a connection attempt unless one is under way (with sentinel://,
 * first ask the sentinels where the primary is, unless known).
 */
void redis_conn_start(struct backend_redis *b);

/*
 * An attempt failed (err, why for the log): jobs fail at once (or, with
 * sentinel://, are held while the switch is young), and the next attempt
 * is scheduled after the backoff.
 */
void redis_conn_failed(struct backend_redis *b, int err, const char *why);

/*
 * Send one command on rc; its reply (or its loss) goes to the module of
 * its kind.  sent: when the command's wait began (for the timeout).  The
 * arguments are copied.  0, or a negative errno and nothing sent.
 */
int redis_conn_send(struct rconn *rc, enum rreq_kind kind,
		    struct store_job *job, bool by_sha, uint64_t sent,
		    int argc, const char **argv, const size_t *lens);

/*
 * Give up rc: fail what is in flight and reconnect.  Inside a reply
 * callback hiredis defers the free until the callback returns.
 */
void redis_conn_abort(struct backend_redis *b, struct rconn *rc, int err,
		      const char *why);

/* The request timeout, checked every REDIS_CHECK_MS. */
void redis_conn_check(struct backend_redis *b);

/* At close: let go of the connection and any lookup. */
void redis_conn_close(struct backend_redis *b);

#endif
