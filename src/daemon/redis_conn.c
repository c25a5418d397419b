/*
 * redis_conn - the Redis backend's connection and the commands in flight.
 * The contract is in redis_conn.h.
 */
#include "redis_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "redis_codec.h"
#include "redis_jobs.h"
#include "redis_script.h"
#include "redis_sentinel.h"
#include "redis_wl.h"

/* A connection that worked this long starts the backoff over. */
#define STABLE_MS 10000

static void conn_lost(struct backend_redis *b, struct rconn *rc, int err,
		      const char *why);

/* An errno for what broke a hiredis context. */
static int
context_errno(const redisAsyncContext *ac, int saved_errno)
{
	switch (ac->c.err) {
	case REDIS_ERR_IO:
		return saved_errno > 0 ? -saved_errno : -EIO;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_PROTOCOL:
		return -EPROTO;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -ECONNRESET;
	}
}

/* ---- commands in flight ------------------------------------------------- */

static struct rreq *
rreq_append(struct rconn *rc, enum rreq_kind kind, uint64_t sent)
{
	struct rreq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->conn = rc;
	q->kind = kind;
	q->sent = sent;
	q->prev = rc->tail;
	if (rc->tail != NULL)
		rc->tail->next = q;
	else
		rc->head = q;
	rc->tail = q;
	return q;
}

static void
rreq_unlink(struct rreq *q)
{
	struct rconn *rc = q->conn;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		rc->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		rc->tail = q->prev;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

int
redis_conn_send(struct rconn *rc, enum rreq_kind kind, struct store_job *job,
		bool by_sha, uint64_t sent, int argc, const char **argv,
		const size_t *lens)
{
	struct rreq *q;

	if (rc->ev.ac == NULL)
		return -ECONNRESET;
	q = rreq_append(rc, kind, sent);
	if (q == NULL)
		return -ENOMEM;
	q->job = job;
	q->by_sha = by_sha;
	if (redisAsyncCommandArgv(rc->ev.ac, on_reply, q, argc, argv, lens) !=
	    REDIS_OK) {
		/* The context is going away (or out of memory): no callback. */
		rreq_unlink(q);
		free(q);
		return -ECONNRESET;
	}
	return 0;
}

static void on_setup_reply(struct backend_redis *b, struct rconn *rc,
			   struct rreq *q, const redisReply *reply);

/* The connection died with q unanswered. */
static void
on_lost_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q)
{
	if (q->kind == RQ_JOB)
		redis_jobs_lost(b, q, rc->err);
	else if (q->kind == RQ_WL_GEN || q->kind == RQ_WL_ALL)
		b->wl_busy = false;
}

static void
on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rreq *q = privdata;
	struct rconn *rc = q->conn;
	struct backend_redis *b = rc->b;
	const redisReply *reply = r;

	rreq_unlink(q);
	if (reply == NULL) {
		/* hiredis is letting go of the context: tell every command. */
		if (rc->err == 0)
			rc->err = context_errno(ac, errno);
		conn_lost(b, rc, rc->err, ac->errstr);
		if (b != NULL)
			on_lost_reply(b, rc, q);
	} else if (b != NULL) {
		switch (q->kind) {
		case RQ_JOB:
			redis_jobs_on_reply(b, rc, q, reply);
			break;
		case RQ_SETUP:
		case RQ_ROLE:
		case RQ_LOAD:
			on_setup_reply(b, rc, q, reply);
			break;
		case RQ_WL_GEN:
		case RQ_WL_ALL:
			redis_wl_on_reply(b, q->kind, reply);
			break;
		}
	}
	free(q);
}

/* The oldest command unanswered too long: Redis is hung or unreachable. */
void
redis_conn_check(struct backend_redis *b)
{
	struct rconn *rc = b->conn;

	redis_jobs_check_held(b);
	redis_sentinel_check(b);
	if (rc == NULL || rc->head == NULL ||
	    uv_now(b->loop) - rc->head->sent < REDIS_TIMEOUT_MS)
		return;
	redis_conn_abort(b, rc, -ETIMEDOUT, "no reply within the request timeout");
}

/* ---- connection life ---------------------------------------------------- */

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void
on_retry_timer(uv_timer_t *t)
{
	redis_conn_start(t->data);
}

static void
schedule_retry(struct backend_redis *b)
{
	uint64_t wait = b->backoff_ms;

	b->backoff_ms = min_u64(b->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
	uv_timer_start(&b->retry_timer, on_retry_timer, wait, 0);
}

/*
 * No connection: jobs fail at once from now on (the held ones too; with
 * sentinel:// they are held a while longer, see redis_jobs.h), and the
 * next attempt is scheduled.  Logged at most once a second.
 */
void
redis_conn_failed(struct backend_redis *b, int err, const char *why)
{
	const char *errtext = strerror(-err);
	char shown[200], reason[400];

	b->healthy = false;
	b->down_err = err;
	if (b->down_since == 0)
		b->down_since = uv_now(b->loop);
	b->primary_known = false;	/* sentinel://: ask again */
	if (b->starting) {
		b->starting = false;
		/* sentinel://: held jobs wait for the switch (check_held). */
		if (b->nsentinels == 0)
			redis_jobs_fail_held(b, err);
	}
	if (b->closing)
		return;
	if (why != NULL && (why[0] == '\0' || strcmp(why, strerror(-err)) == 0))
		why = NULL;	/* says nothing more */
	/* The sentinels' answer says it all; an errno would only mislead. */
	if (b->sentinel_round_failed && why != NULL) {
		errtext = log_escape(reason, sizeof(reason), why, strlen(why),
				     350);
		why = NULL;
	}
	b->sentinel_round_failed = false;
	if (log_ratelimit_allow(&b->conn_log, time(NULL), 1)) {
		log_msg(LOG_LEVEL_ERR, "redis: no connection to %s (%s%s%s); "
			"retrying in %" PRIu64 " ms, answering with the failure "
			"action meanwhile%s (%lu similar suppressed)", b->where,
			errtext, why != NULL ? ": " : "",
			why != NULL ? log_escape(shown, sizeof(shown), why,
						 strlen(why), 150) : "",
			b->backoff_ms, b->nsentinels > 0 ?
			" (after a short wait for a new primary)" : "",
			b->conn_log.suppressed);
		b->conn_log.suppressed = 0;
	}
	schedule_retry(b);
}

/*
 * rc is lost (once per rc: later calls do nothing).  Only a connection
 * that worked for a while resets the backoff: one that Redis accepts and
 * then refuses (a replica answering READONLY, maxclients) must not make
 * us reconnect ten times a second.
 */
static void
conn_lost(struct backend_redis *b, struct rconn *rc, int err, const char *why)
{
	if (b == NULL || b->conn != rc)
		return;
	b->conn = NULL;
	b->wl_busy = false;
	if (b->healthy_since == 0)
		b->addr_turn++;		/* never worked: try the next address */
	else if (uv_now(b->loop) - b->healthy_since >= STABLE_MS)
		b->backoff_ms = REDIS_BACKOFF_MIN_MS;
	b->healthy_since = 0;
	redis_conn_failed(b, err, why);
}

/* An attempt that never got a connection. */
static void
attempt_failed(struct backend_redis *b, int err, const char *why)
{
	b->addr_turn++;
	redis_conn_failed(b, err, why);
}

void
redis_conn_abort(struct backend_redis *b, struct rconn *rc, int err,
		 const char *why)
{
	if (rc->err == 0)
		rc->err = err;
	conn_lost(b, rc, err, why);
	if (rc->ev.ac != NULL)
		redisAsyncFree(rc->ev.ac);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	int saved_errno = errno;
	struct rconn *rc = ac->data;

	if (status == REDIS_OK)
		return;	/* set-up is queued; healthy on its replies */
	/* hiredis frees the context after this and fails what is queued. */
	if (rc->err == 0)
		rc->err = context_errno(ac, saved_errno);
	conn_lost(rc->b, rc, rc->err, ac->errstr);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	int saved_errno = errno;
	struct rconn *rc = ac->data;

	if (rc->err == 0)
		rc->err = status == REDIS_OK ? -ECONNRESET
					     : context_errno(ac, saved_errno);
	conn_lost(rc->b, rc, rc->err, ac->errstr);
}

static void
on_events_error(struct redis_events *ev, int status)
{
	struct rconn *rc = ev->data;

	redis_conn_abort(rc->b, rc, -EIO, uv_strerror(status));
}

static void
on_events_closed(struct redis_events *ev)
{
	free(ev->data);
}

static void send_setup(struct backend_redis *b, struct rconn *rc);

/* Connect to ip (NULL: the unix socket) and queue the set-up commands. */
static void
connect_to(struct backend_redis *b, const char *ip)
{
	redisAsyncContext *ac;
	struct rconn *rc;
	int saved_errno, err;

	errno = 0;
	ac = b->path != NULL ? redisAsyncConnectUnix(b->path)
			     : redisAsyncConnect(ip, (int)b->port);
	saved_errno = errno;
	if (ac == NULL) {
		attempt_failed(b, -ENOMEM, NULL);
		return;
	}
	if (ac->err != 0) {
		err = context_errno(ac, saved_errno);
		attempt_failed(b, err, ac->errstr);
		redisAsyncFree(ac);
		return;
	}
	rc = calloc(1, sizeof(*rc));
	if (rc != NULL) {
		rc->ev.data = rc;
		rc->ev.on_error = on_events_error;
		rc->ev.on_closed = on_events_closed;
	}
	err = rc == NULL ? UV_ENOMEM : redis_events_attach(&rc->ev, b->loop, ac);
	if (err < 0) {
		free(rc);
		redisAsyncFree(ac);
		attempt_failed(b, err, uv_strerror(err));
		return;
	}
	rc->b = b;
	ac->data = rc;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	b->conn = rc;
	send_setup(b, rc);
	/* sentinel://: after the ROLE check, when set-up is over. */
	if (b->conn == rc && b->nsentinels == 0)
		redis_jobs_send_held(b, rc);
}

/*
 * The address to try from a lookup: each failed attempt moves on to the
 * next one, so a name with an address Redis does not listen on (say ::1
 * and 127.0.0.1 for "localhost") still gets through.
 */
static void
pick_address(const struct backend_redis *b, const struct addrinfo *res,
	     char *ip, size_t ipsz)
{
	const struct addrinfo *a;
	struct sockaddr_storage ss;
	unsigned n = 0;

	for (a = res; a != NULL; a = a->ai_next)
		n++;
	for (a = res, n = b->addr_turn % n; n > 0; n--)
		a = a->ai_next;
	/* Copied: ai_addr need not be aligned for sockaddr_in6. */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, a->ai_addr, a->ai_addrlen < sizeof(ss) ? a->ai_addrlen
							    : sizeof(ss));
	if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, ip, ipsz);
	else
		uv_ip4_name((struct sockaddr_in *)&ss, ip, ipsz);
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct backend_redis *b = req->data;
	char ip[64] = "";

	b->resolving = false;
	if (b->closing) {
		uv_freeaddrinfo(res);
		backend_redis_maybe_free(b);
		return;
	}
	if (status == 0)
		pick_address(b, res, ip, sizeof(ip));
	uv_freeaddrinfo(res);
	if (status < 0) {
		redis_conn_failed(b, -EHOSTUNREACH, uv_strerror(status));
		return;
	}
	connect_to(b, ip);
}

static bool
is_numeric_host(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return uv_inet_pton(AF_INET, host, buf) == 0 ||
	       uv_inet_pton(AF_INET6, host, buf) == 0;
}

void
redis_conn_start(struct backend_redis *b)
{
	struct addrinfo hints;
	int rc;

	if (b->closing || b->conn != NULL || b->resolving || b->ask != NULL)
		return;
	if (b->nsentinels > 0 && !b->primary_known) {
		redis_sentinel_ask(b);
		return;
	}
	if (b->path != NULL || is_numeric_host(b->host)) {
		connect_to(b, b->host);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	b->gai.data = b;
	rc = uv_getaddrinfo(b->loop, &b->gai, on_resolved, b->host, NULL,
			    &hints);
	if (rc < 0) {
		redis_conn_failed(b, -EHOSTUNREACH, uv_strerror(rc));
		return;
	}
	b->resolving = true;
}

/* ---- set-up: AUTH, SELECT, SCRIPT LOAD ---------------------------------- */

static int
send_setup_cmd(struct backend_redis *b, struct rconn *rc, enum rreq_kind kind,
	       int argc, const char **argv, const size_t *lens)
{
	return redis_conn_send(rc, kind, NULL, false, uv_now(b->loop), argc, argv,
			       lens);
}

/* Queued before any job on the connection. */
static void
send_setup(struct backend_redis *b, struct rconn *rc)
{
	const char *argv[3];
	size_t lens[3];
	char db[16];
	int n = 0, err = 0;

	if (b->password[0] != '\0') {
		argv[n] = "AUTH";
		lens[n++] = 4;
		if (b->user[0] != '\0') {
			argv[n] = b->user;
			lens[n++] = strlen(b->user);
		}
		argv[n] = b->password;
		lens[n] = strlen(b->password);
		err = send_setup_cmd(b, rc, RQ_SETUP, n + 1, argv, lens);
	}
	if (err == 0 && b->db != 0) {
		snprintf(db, sizeof(db), "%u", b->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = db;
		lens[1] = strlen(db);
		err = send_setup_cmd(b, rc, RQ_SETUP, 2, argv, lens);
	}
	if (err == 0 && b->nsentinels > 0) {
		argv[0] = "ROLE";
		lens[0] = 4;
		err = send_setup_cmd(b, rc, RQ_ROLE, 1, argv, lens);
	}
	if (err == 0) {
		argv[0] = "SCRIPT";
		lens[0] = 6;
		argv[1] = "LOAD";
		lens[1] = 4;
		argv[2] = redis_script_greylist;
		lens[2] = redis_script_greylist_len;
		err = send_setup_cmd(b, rc, RQ_LOAD, 3, argv, lens);
	}
	if (err < 0)
		redis_conn_abort(b, rc, err, "cannot queue the set-up commands");
}

static void
on_setup_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q,
	       const redisReply *reply)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		redis_conn_abort(b, rc, redis_codec_error_errno(reply->str),
				 reply->str);
		return;
	}
	if (q->kind == RQ_ROLE) {
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
		    reply->element[0]->type != REDIS_REPLY_STRING ||
		    strcmp(reply->element[0]->str, "master") != 0)
			redis_conn_abort(b, rc, -EROFS, "ROLE: not the primary "
					 "(the sentinels will be asked again)");
		return;
	}
	if (q->kind != RQ_LOAD)
		return;
	if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
		redis_conn_abort(b, rc, -EPROTO, "unexpected reply to SCRIPT LOAD");
		return;
	}
	memcpy(b->sha, reply->str, 40);
	b->sha[40] = '\0';
	if (b->conn != rc)
		return;
	/* The connection works: jobs go to Redis again. */
	b->starting = false;
	b->healthy = true;
	b->down_err = 0;
	b->healthy_since = uv_now(b->loop);
	if (b->down_since != 0)
		b->down_ms += b->healthy_since - b->down_since;
	b->down_since = 0;
	if (b->nsentinels > 0)
		log_msg(LOG_LEVEL_INFO, "redis: connected to the primary %s:%u "
			"of '%s'", b->host, b->port, b->master);
	else
		log_msg(LOG_LEVEL_INFO, "redis: connected to %s", b->where);
	redis_jobs_send_held(b, rc);
	redis_wl_poll(b);
}

void
redis_conn_close(struct backend_redis *b)
{
	struct rconn *rc = b->conn;

	b->conn = NULL;
	if (rc != NULL) {
		/* Pending callbacks (whitelist polls; no jobs) run now. */
		if (rc->ev.ac != NULL)
			redisAsyncFree(rc->ev.ac);
		rc->b = NULL;
	}
	if (b->resolving)
		uv_cancel((uv_req_t *)&b->gai);
	redis_sentinel_close(b);
}
