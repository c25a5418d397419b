/*
 * redis_jobs - decisions in Redis: each job is one EVALSHA of the decision
 * script (greylist.lua, embedded as redis_script.c), its reply parsed by
 * redis_codec into the job's verdict.
 *
 * A NOSCRIPT reply (script cache flushed, failover to a replica) sends
 * that job again with EVAL, which also puts the script back in the cache.
 * While the first connection is being set up (its host name looked up,
 * its set-up commands answered) a job waits for it, held at most
 * REDIS_TIMEOUT_MS; after that, while Redis is unreachable, every job
 * fails at once (err < 0; the server answers failure_action), one log line
 * a second at most.  With sentinel:// jobs are also held while the primary
 * has been gone less than REDIS_SWITCH_HOLD_MS, and sent once the next
 * one is set up: a job that was never sent (or that a demoted primary
 * refused with READONLY) is replayed there; one whose fate is unknown (in
 * flight when the connection died) fails; either way each job is answered
 * once, a held one within about REDIS_TIMEOUT_MS of its submission.
 *
 * Ownership: a submitted job is the backend's until ev.job_done, which is
 * never called from inside submit.  Loop thread only.
 */
#ifndef GREYHOLD_REDIS_JOBS_H
#define GREYHOLD_REDIS_JOBS_H

#include <hiredis/hiredis.h>

#include "backend_redis.h"
#include "redis_conn.h"

/* Decide job: send it, hold it, or fail it (on the loop's next turn). */
void redis_jobs_submit(struct backend_redis *b, struct store_job *job);

/* The connection is there: send the held jobs, pipelined behind set-up. */
void redis_jobs_send_held(struct backend_redis *b, struct rconn *rc);
/* The first attempt failed: fail the held jobs with err. */
void redis_jobs_fail_held(struct backend_redis *b, int err);
/* Fail held jobs that waited REDIS_TIMEOUT_MS. */
void redis_jobs_check_held(struct backend_redis *b);

void redis_jobs_on_reply(struct backend_redis *b, struct rconn *rc,
			 struct rreq *q, const redisReply *reply);
/* The connection died with q's job unanswered. */
void redis_jobs_lost(struct backend_redis *b, struct rreq *q, int err);

/* Hand back (on the loop's next turn) what submit failed. */
void redis_jobs_on_fail_timer(uv_timer_t *t);

#endif
