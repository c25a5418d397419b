/*
 * redis_jobs - decisions in Redis.  The contract is in redis_jobs.h; the
 * script in greylist.lua; keys and the reply's shape in redis_codec.h.
 */
#include "redis_jobs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decide.h"
#include "redis_codec.h"
#include "redis_script.h"

/*
 * Records live this long past the point where the engine stops using
 * them, so a late retry is logged "seen too long ago" as with LMDB (whose
 * sweep is lazy too) rather than "new".
 */
#define RECORD_GRACE ENGINE_REFRESH
/* EVALSHA SHA NKEYS, a key pair per identity, six parameters, an awl
   flag per identity. */
#define JOB_ARGC (3 + 3 * DECIDE_MAX_IDS + 6)

/* ---- handing jobs back -------------------------------------------------- */

static void
log_job_failure(struct backend_redis *b, int err, const char *detail)
{
	char shown[200] = "";

	if (!log_ratelimit_allow(&b->fail_log, time(NULL), 1))
		return;
	if (detail != NULL)
		log_escape(shown, sizeof(shown), detail, strlen(detail), 150);
	log_msg(LOG_LEVEL_ERR, "redis: request failed (%s%s%s), answering with "
		"the failure action (%lu similar suppressed)", strerror(-err),
		detail != NULL ? ": " : "", shown, b->fail_log.suppressed);
	b->fail_log.suppressed = 0;
}

static void
job_finish(struct backend_redis *b, struct store_job *job, int err,
	   const char *detail)
{
	job->err = err;
	b->stats.jobs++;
	if (err < 0) {
		b->stats.errors++;
		log_job_failure(b, err, detail);
	}
	b->base.ev.job_done(job, b->base.ev.arg);
}

void
redis_jobs_on_fail_timer(uv_timer_t *t)
{
	struct backend_redis *b = t->data;
	struct store_job *job = b->failed.head;

	/* Take the whole queue first: job_done may submit (and fail) more. */
	b->failed.head = b->failed.tail = NULL;
	while (job != NULL) {
		struct store_job *next = job->next;

		job_finish(b, job, job->err, NULL);
		job = next;
	}
}

/*
 * Fail a job from submit: it is handed back on the loop's next turn, never
 * from inside submit, so the server is not re-entered while it submits.
 */
static void
job_fail_later(struct backend_redis *b, struct store_job *job, int err)
{
	job->err = err;
	job_queue_push(&b->failed, job);
	uv_timer_start(&b->fail_timer, redis_jobs_on_fail_timer, 0, 0);
}

/* ---- sending ------------------------------------------------------------ */

static int
send_job(struct backend_redis *b, struct rconn *rc, struct store_job *job,
	 bool by_sha, uint64_t since)
{
	struct engine_params p = job_params(job, &b->params);
	size_t n = job_ids(job);
	char keys[2 * DECIDE_MAX_IDS][REDIS_CODEC_KEY_MAX];
	char num[7][24];
	const char *argv[JOB_ARGC];
	size_t lens[JOB_ARGC];
	size_t argc = 0, i;
	int err;

	argv[argc] = by_sha ? "EVALSHA" : "EVAL";
	lens[argc] = strlen(argv[argc]);
	argc++;
	argv[argc] = by_sha ? b->sha : redis_script_greylist;
	lens[argc++] = by_sha ? 40 : redis_script_greylist_len;
	snprintf(num[6], sizeof(num[6]), "%zu", 2 * n);
	argv[argc] = num[6];
	lens[argc++] = strlen(num[6]);
	for (i = 0; i < n; i++) {
		err = redis_codec_keys(b->prefix, job_id_key(job, i), keys[2 * i],
				       &lens[argc], keys[2 * i + 1],
				       &lens[argc + 1]);
		if (err < 0)
			return err;
		argv[argc] = keys[2 * i];
		argv[argc + 1] = keys[2 * i + 1];
		argc += 2;
	}
	snprintf(num[0], sizeof(num[0]), "%" PRId64, p.delay);
	snprintf(num[1], sizeof(num[1]), "%" PRId64, p.retry_window);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, p.max_age);
	snprintf(num[3], sizeof(num[3]), "%u", p.awl_passes);
	snprintf(num[4], sizeof(num[4]), "%d", ENGINE_REFRESH);
	snprintf(num[5], sizeof(num[5]), "%d", RECORD_GRACE);
	for (i = 0; i < 6; i++) {
		argv[argc] = num[i];
		lens[argc++] = strlen(num[i]);
	}
	for (i = 0; i < n; i++) {
		argv[argc] = job_id_awl(job, i, &p) ? "1" : "0";
		lens[argc++] = 1;
	}
	return redis_conn_send(rc, RQ_JOB, job, by_sha, since, (int)argc, argv,
			       lens);
}

/*
 * Jobs wait for a connection in a list of rreqs without one; since: when
 * the job's wait began (a job taken back after READONLY keeps its own).
 */
static int
hold(struct backend_redis *b, struct store_job *job, uint64_t since)
{
	struct rreq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return -ENOMEM;
	q->kind = RQ_JOB;
	q->job = job;
	q->sent = since;
	if (b->held_tail != NULL)
		b->held_tail->next = q;
	else
		b->held = q;
	b->held_tail = q;
	return 0;
}

/*
 * Hold jobs rather than fail them: before the first attempt is over, and
 * with sentinel:// while the primary is freshly gone (a failover).
 */
static bool
holding(const struct backend_redis *b)
{
	if (b->starting)
		return true;
	return b->nsentinels > 0 && b->down_since != 0 &&
	       uv_now(b->loop) - b->down_since < REDIS_SWITCH_HOLD_MS;
}

void
redis_jobs_submit(struct backend_redis *b, struct store_job *job)
{
	int err = b->down_err != 0 ? b->down_err : -ENOTCONN;

	/* sentinel://: not before ROLE has said it is the primary. */
	if (b->conn != NULL &&
	    (b->healthy || (b->starting && b->nsentinels == 0)))
		err = send_job(b, b->conn, job, b->sha[0] != '\0',
			       uv_now(b->loop));
	else if (holding(b))
		err = hold(b, job, uv_now(b->loop));
	if (err < 0)
		job_fail_later(b, job, err);
}

/* Take the held list: what is handed back may submit more. */
static struct rreq *
take_held(struct backend_redis *b)
{
	struct rreq *q = b->held;

	b->held = b->held_tail = NULL;
	return q;
}

void
redis_jobs_send_held(struct backend_redis *b, struct rconn *rc)
{
	struct rreq *q = take_held(b);

	while (q != NULL) {
		struct rreq *next = q->next;
		int err = send_job(b, rc, q->job, false, q->sent);

		if (err < 0)
			job_fail_later(b, q->job, err);
		free(q);
		q = next;
	}
}

void
redis_jobs_fail_held(struct backend_redis *b, int err)
{
	struct rreq *q = take_held(b);

	while (q != NULL) {
		struct rreq *next = q->next;

		job_fail_later(b, q->job, err);
		free(q);
		q = next;
	}
}

void
redis_jobs_check_held(struct backend_redis *b)
{
	uint64_t now = uv_now(b->loop);

	/* Held in order: the oldest are at the head. */
	while (b->held != NULL && now - b->held->sent >= REDIS_TIMEOUT_MS) {
		struct rreq *q = b->held;

		b->held = q->next;
		if (b->held == NULL)
			b->held_tail = NULL;
		job_fail_later(b, q->job, -ETIMEDOUT);
		free(q);
	}
}

/* ---- replies ------------------------------------------------------------ */

/* The script's reply as plain elements for the codec. */
static int
parse_verdict(const redisReply *reply, struct redis_codec_verdict *out)
{
	struct redis_codec_elem e[REDIS_CODEC_VERDICT_ELEMS];

	if (reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != REDIS_CODEC_VERDICT_ELEMS)
		return -EPROTO;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *r = reply->element[i];

		memset(&e[i], 0, sizeof(e[i]));
		e[i].type = r->type == REDIS_REPLY_INTEGER ? REDIS_CODEC_INT :
			    r->type == REDIS_REPLY_STRING ? REDIS_CODEC_STR :
			    REDIS_CODEC_OTHER;
		e[i].integer = r->integer;
		e[i].str = r->str;
		e[i].len = r->len;
	}
	return redis_codec_verdict_parse(e, reply->elements, out);
}

void
redis_jobs_on_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q,
		    const redisReply *reply)
{
	struct store_job *job = q->job;
	struct redis_codec_verdict v;
	char shown[128];
	int err;

	if (reply->type == REDIS_REPLY_ERROR) {
		/* Script cache flushed, or another server: EVAL reloads it. */
		if (q->by_sha && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
			err = send_job(b, rc, job, false, uv_now(b->loop));
			if (err < 0)
				job_finish(b, job, err, "resending after NOSCRIPT");
			return;
		}
		err = redis_codec_error_errno(reply->str);
		/*
		 * A primary turned replica (failover): find the new primary.
		 * Dropped first, so what job_done submits fails at once.
		 */
		if (err == -EROFS)
			redis_conn_abort(b, rc, err, reply->str);
		/*
		 * A replica refused it, so it was not done: with sentinel://
		 * it waits for the new primary, within its own timeout.
		 */
		if (err == -EROFS && b->nsentinels > 0 && holding(b) &&
		    hold(b, job, q->sent) == 0)
			return;
		job_finish(b, job, err, reply->str);
		return;
	}
	if (parse_verdict(reply, &v) < 0) {
		job_finish(b, job, -EPROTO, "unexpected reply from the script");
		return;
	}
	job->verdict = v.verdict;
	job->matched = v.matched;
	b->stats.batches++;
	if (v.wrote)
		b->stats.commits++;
	if (v.corrupt > 0)
		log_msg(LOG_LEVEL_WARN, "redis: deleted a record that did not "
			"decode (client %s)", log_escape(shown, sizeof(shown),
			job->key.client, job->key.client_len, 80));
	job_finish(b, job, 0, NULL);
}

void
redis_jobs_lost(struct backend_redis *b, struct rreq *q, int err)
{
	job_finish(b, q->job, err, NULL);
}
