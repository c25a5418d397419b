/*
 * backend_redis - the store in Redis (or Valkey), shared by several MX hosts.
 *
 * Every decision is one server-side Lua script (ENGINE_SCRIPT below) that
 * reads the client's auto-whitelist record and the triplet record, applies
 * the rules of engine.c exactly as db.c's decide_one() does, writes back
 * only what the engine would write (with a TTL), and returns the verdict.
 * The script runs atomically, so two MX hosts deciding the same triplet at
 * once see each other, like two jobs in one LMDB batch.  `now` comes from
 * the job, so both backends decide on the daemon's clock.
 *
 * I/O: one hiredis async connection on the daemon's libuv loop; jobs are
 * pipelined on it (replies come back in order).  The script is loaded with
 * SCRIPT LOAD on every connection and called with EVALSHA; a NOSCRIPT reply
 * (script cache flushed, failover to a replica) sends that job again with
 * EVAL, which also puts the script back into the cache.
 *
 * Failure: while Redis is unreachable every job fails at once (err < 0; the
 * server answers failure_action), one log line a second at most, and the
 * connection is retried with exponential backoff (100 ms doubling to 5 s).
 * Jobs in flight when a connection dies are failed, never dropped: hiredis
 * calls every pending callback with a NULL reply before it lets go of a
 * context.  A command unanswered for REDIS_TIMEOUT_MS condemns the
 * connection (replies are in order, so the oldest one is all we watch).
 *
 * Live whitelist: the hash PREFIX"whitelist" ("c:ENTRY"/"r:ENTRY" ->
 * "added,expires,comment") and the counter PREFIX"wl_generation", written by
 * greyholdctl (redis_admin.c).  Polled once a second; rebuilt and handed to
 * the server when the generation moved or an entry expired.
 *
 * Keys: PREFIX"t:{CLIENT}\0SENDER\0RCPT" (triplet) and PREFIX"c:{CLIENT}"
 * (auto-whitelist), values "1 FIRST LAST PASSES" (version 1, decimal).  The
 * {CLIENT} hash tag puts both keys of one script call in one Cluster slot.
 * With privacy on, the parts are the keyed hashes privacy.c makes.
 *
 * Event hooks: ours, not <hiredis/adapters/libuv.h>.  hiredis 0.14's
 * adapter ignores a poll error (libuv reports POLLERR, e.g. a refused
 * connect or a reset, as status < 0 with no events and stops the handle),
 * so a refused connect never completes and the context hangs forever.  Ours
 * lets hiredis look at the socket on such an error, as hiredis >= 1.0 does.
 *
 * Ownership: a submitted job is ours until ev.job_done.  Each connection
 * (struct rconn) owns its poll handle and its list of commands in flight
 * (struct rreq); hiredis owns the context and frees it after telling us
 * through the cleanup hook; the rconn is freed in its poll handle's close
 * callback.  The backend owns four timers and is freed when they are all
 * closed (and no name lookup is pending).  All of it runs on the loop thread.
 */
#include "backend.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_endpoint.h"

#define REDIS_TIMEOUT_MS 2000	/* a command unanswered this long: hung */
#define REDIS_CHECK_MS 250	/* how often the timeout is checked */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A connection that worked this long starts the backoff over. */
#define STABLE_MS 10000
#define WL_POLL_MS 1000
#define PREFIX_MAX REDIS_PREFIX_MAX
/* "t:{" CLIENT (maybe in hex) "}" plus the rest of the triplet key. */
#define KEY_MAX (PREFIX_MAX + 4 + TRIPLET_MAX_KEY + TRIPLET_MAX_CLIENT)
/*
 * Records live this long past the point where the engine stops using
 * them, so a late retry is logged "seen too long ago" as with LMDB (whose
 * sweep is lazy too) rather than "new".
 */
#define RECORD_GRACE ENGINE_REFRESH

/*
 * The engine (engine.c) as one atomic step.  Mirrors db.c decide_one():
 * the client record first (an auto-whitelisted client passes and is
 * counted), then the triplet, then a pass counts for the client.
 *   KEYS[1] client key, KEYS[2] triplet key
 *   ARGV now, delay, retry_window, max_age, awl_passes, use_awl (0/1),
 *        refresh (ENGINE_REFRESH), grace (extra TTL)
 * Returns {action (0 pass, 1 defer), reason, seconds_left, delay, wrote,
 * corrupt}.  A value that does not decode (or has the wrong type) is
 * deleted and reads as absent, like a corrupt LMDB record.
 */
static const char ENGINE_SCRIPT[] =
	"local now = tonumber(ARGV[1])\n"
	"local delay = tonumber(ARGV[2])\n"
	"local window = tonumber(ARGV[3])\n"
	"local max_age = tonumber(ARGV[4])\n"
	"local awl = tonumber(ARGV[5])\n"
	"local use_awl = ARGV[6] == '1'\n"
	"local refresh = tonumber(ARGV[7])\n"
	"local grace = tonumber(ARGV[8])\n"
	"local UINT32_MAX = 4294967295\n"
	"local wrote, corrupt = 0, 0\n"
	"\n"
	"local function load(key)\n"
	"  local v = redis.pcall('GET', key)\n"
	"  if v == false then return nil end\n"
	"  if type(v) == 'string' then\n"
	"    local f, l, p = string.match(v, '^1 (%d+) (%d+) (%d+)$')\n"
	"    if f then return {tonumber(f), tonumber(l), tonumber(p)} end\n"
	"  end\n"
	"  redis.call('DEL', key)\n"
	"  corrupt = corrupt + 1\n"
	"  return nil\n"
	"end\n"
	"\n"
	"local function save(key, r, ttl)\n"
	"  local v = string.format('1 %d %d %d', r[1], r[2], r[3])\n"
	"  redis.call('SET', key, v, 'EX', ttl)\n"
	"  wrote = 1\n"
	"end\n"
	"\n"
	"-- A refresh is due after `refresh` s, or if the clock went back.\n"
	"local function refresh_due(last)\n"
	"  return now < last or now - last >= refresh\n"
	"end\n"
	"\n"
	"local function count_client(c)\n"
	"  if not c then\n"
	"    save(KEYS[1], {now, now, 1}, max_age + grace)\n"
	"  elseif refresh_due(c[2]) then\n"
	"    c[2] = now\n"
	"    if c[3] < UINT32_MAX then c[3] = c[3] + 1 end\n"
	"    save(KEYS[1], c, max_age + grace)\n"
	"  end\n"
	"end\n"
	"\n"
	"local c = nil\n"
	"if use_awl then\n"
	"  c = load(KEYS[1])\n"
	"  if c and c[3] >= awl and now - c[2] <= max_age then\n"
	"    count_client(c)\n"
	"    return {0, 'awl', 0, 0, wrote, corrupt}\n"
	"  end\n"
	"end\n"
	"\n"
	"local r = load(KEYS[2])\n"
	"local action, reason, left, dly = 1, 'new', delay, 0\n"
	"if not r then\n"
	"  save(KEYS[2], {now, now, 0}, window + grace)\n"
	"elseif r[3] > 0 then\n"
	"  if now - r[2] > max_age then\n"
	"    reason = 'restart'\n"
	"    save(KEYS[2], {now, now, 0}, window + grace)\n"
	"  else\n"
	"    action, reason, left = 0, 'known', 0\n"
	"    if refresh_due(r[2]) then\n"
	"      r[2] = now\n"
	"      if r[3] < UINT32_MAX then r[3] = r[3] + 1 end\n"
	"      save(KEYS[2], r, max_age + grace)\n"
	"    end\n"
	"  end\n"
	"else\n"
	"  local elapsed = now - r[1]\n"
	"  if elapsed < 0 or elapsed > window then\n"
	"    reason = 'restart'\n"
	"    save(KEYS[2], {now, now, 0}, window + grace)\n"
	"  elseif elapsed < delay then\n"
	"    reason = 'early'\n"
	"    left = delay - elapsed\n"
	"  else\n"
	"    action, reason, left, dly = 0, 'passed', 0, elapsed\n"
	"    r[2] = now\n"
	"    r[3] = 1\n"
	"    save(KEYS[2], r, max_age + grace)\n"
	"  end\n"
	"end\n"
	"if action == 0 and use_awl then count_client(c) end\n"
	"return {action, reason, left, dly, wrote, corrupt}\n";

struct backend_redis;
struct rconn;

enum rreq_kind {
	RQ_JOB,		/* a decision */
	RQ_SETUP,	/* AUTH or SELECT */
	RQ_LOAD,	/* SCRIPT LOAD: the last setup command */
	RQ_WL_GEN,	/* GET wl_generation */
	RQ_WL_ALL,	/* HGETALL whitelist */
};

/* One command in flight on a connection. */
struct rreq {
	struct rreq *prev, *next;	/* the connection's, in send order */
	struct rconn *conn;
	enum rreq_kind kind;
	struct store_job *job;		/* RQ_JOB */
	bool by_sha;			/* RQ_JOB sent as EVALSHA */
	uint64_t sent;			/* uv_now() when sent */
};

/* One connection attempt and, if it succeeds, the connection. */
struct rconn {
	uv_poll_t poll;
	int events;			/* what hiredis asked to watch */
	int armed;			/* what the poll handle watches */
	redisAsyncContext *ac;		/* NULL once hiredis has let go of it */
	struct backend_redis *b;	/* NULL once the backend has let go */
	struct rreq *head, *tail;
	int err;			/* why it failed, once it has */
};

struct job_queue {
	struct store_job *head, *tail;
};

struct backend_redis {
	struct backend base;
	uv_loop_t *loop;
	struct engine_params params;

	/* Where: host and port, or a unix socket path. */
	char *host;
	unsigned port;
	char *path;
	unsigned db;
	char *user;
	char *password;
	char *prefix;
	size_t prefix_len;
	char *where;			/* cfg->store, for the log */

	struct rconn *conn;		/* current connection, or NULL */
	bool healthy;			/* jobs go to Redis; else they fail */
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

static void conn_start(struct backend_redis *b);
static void conn_abort(struct backend_redis *b, struct rconn *rc, int err,
		       const char *why);
static void wl_poll(struct backend_redis *b);
static void maybe_free(struct backend_redis *b);

/* ---- small helpers ------------------------------------------------------ */

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void
queue_push(struct job_queue *q, struct store_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

/* An errno for a Redis error reply ("LOADING ...", "NOAUTH ..."). */
static int
reply_errno(const char *msg)
{
	static const struct {
		const char *prefix;
		int err;
	} map[] = {
		{"LOADING", EAGAIN}, {"BUSY", EBUSY}, {"NOAUTH", EACCES},
		{"WRONGPASS", EACCES}, {"NOPERM", EACCES}, {"READONLY", EROFS},
		{"OOM", ENOMEM}, {"MASTERDOWN", EAGAIN}, {"TRYAGAIN", EAGAIN},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strncmp(msg, map[i].prefix, strlen(map[i].prefix)) == 0)
			return -map[i].err;
	}
	return -EPROTO;
}

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

static void
on_fail_timer(uv_timer_t *t)
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
	queue_push(&b->failed, job);
	uv_timer_start(&b->fail_timer, on_fail_timer, 0, 0);
}

/* ---- commands in flight ------------------------------------------------- */

static struct rreq *
rreq_append(struct rconn *rc, enum rreq_kind kind, uint64_t now)
{
	struct rreq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->conn = rc;
	q->kind = kind;
	q->sent = now;
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

/*
 * Send one command on rc; its reply (or NULL if the connection dies) goes
 * to on_reply with the rreq.  The arguments are copied by hiredis.
 */
static int
send_cmd(struct backend_redis *b, struct rconn *rc, enum rreq_kind kind,
	 struct store_job *job, bool by_sha, int argc, const char **argv,
	 const size_t *lens)
{
	struct rreq *q;

	if (rc->ac == NULL)
		return -ECONNRESET;
	q = rreq_append(rc, kind, uv_now(b->loop));
	if (q == NULL)
		return -ENOMEM;
	q->job = job;
	q->by_sha = by_sha;
	if (redisAsyncCommandArgv(rc->ac, on_reply, q, argc, argv, lens) !=
	    REDIS_OK) {
		/* The context is going away (or out of memory): no callback. */
		rreq_unlink(q);
		free(q);
		return -ECONNRESET;
	}
	return 0;
}

/* ---- event hooks: hiredis on a uv_poll handle --------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

/*
 * Tell libuv only about changes: hiredis asks for writes on every command,
 * and each uv_poll_start() re-registers the descriptor with epoll.
 */
static void
rc_poll_update(struct rconn *rc)
{
	if (rc->events == rc->armed || uv_is_closing((uv_handle_t *)&rc->poll))
		return;
	if (rc->events != 0)
		uv_poll_start(&rc->poll, rc->events, on_poll);
	else
		uv_poll_stop(&rc->poll);
	rc->armed = rc->events;
}

static void
ev_add_read(void *privdata)
{
	struct rconn *rc = privdata;

	rc->events |= UV_READABLE;
	rc_poll_update(rc);
}

static void
ev_del_read(void *privdata)
{
	struct rconn *rc = privdata;

	rc->events &= ~UV_READABLE;
	rc_poll_update(rc);
}

static void
ev_add_write(void *privdata)
{
	struct rconn *rc = privdata;

	rc->events |= UV_WRITABLE;
	rc_poll_update(rc);
}

static void
ev_del_write(void *privdata)
{
	struct rconn *rc = privdata;

	rc->events &= ~UV_WRITABLE;
	rc_poll_update(rc);
}

static void
on_rconn_closed(uv_handle_t *h)
{
	free(h->data);
}

/* hiredis is about to free the context (and close its socket). */
static void
ev_cleanup(void *privdata)
{
	struct rconn *rc = privdata;

	rc->ac = NULL;
	rc->events = 0;
	uv_close((uv_handle_t *)&rc->poll, on_rconn_closed);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct rconn *rc = h->data;

	if (status < 0) {
		rc->armed = 0;
		/*
		 * A socket error; libuv has stopped the handle.  Let hiredis
		 * find out what it is: while connecting it reads SO_ERROR,
		 * afterwards the read fails.  Either way it gives up the
		 * context and fails what is pending.
		 */
		if (rc->ac != NULL && !(rc->ac->c.flags & REDIS_CONNECTED))
			redisAsyncHandleWrite(rc->ac);
		else if (rc->ac != NULL)
			redisAsyncHandleRead(rc->ac);
		/* Still there: an error hiredis cannot see.  Do not spin. */
		if (rc->ac != NULL)
			conn_abort(rc->b, rc, -EIO, uv_strerror(status));
		return;
	}
	if ((events & UV_READABLE) && rc->ac != NULL)
		redisAsyncHandleRead(rc->ac);
	if ((events & UV_WRITABLE) && rc->ac != NULL)
		redisAsyncHandleWrite(rc->ac);
}

/* ---- connection life ---------------------------------------------------- */

static void
on_retry_timer(uv_timer_t *t)
{
	conn_start(t->data);
}

static void
schedule_retry(struct backend_redis *b)
{
	uint64_t wait = b->backoff_ms;

	b->backoff_ms = min_u64(b->backoff_ms * 2, BACKOFF_MAX_MS);
	uv_timer_start(&b->retry_timer, on_retry_timer, wait, 0);
}

/*
 * No connection: jobs fail at once from now on, and the next attempt is
 * scheduled.  Logged at most once a second.
 */
static void
conn_failed(struct backend_redis *b, int err, const char *why)
{
	char shown[200];

	b->healthy = false;
	b->down_err = err;
	if (b->closing)
		return;
	if (why != NULL && (why[0] == '\0' || strcmp(why, strerror(-err)) == 0))
		why = NULL;	/* says nothing more */
	if (log_ratelimit_allow(&b->conn_log, time(NULL), 1)) {
		log_msg(LOG_LEVEL_ERR, "redis: no connection to %s (%s%s%s); "
			"retrying in %" PRIu64 " ms, answering with the failure "
			"action meanwhile (%lu similar suppressed)", b->where,
			strerror(-err), why != NULL ? ": " : "",
			why != NULL ? log_escape(shown, sizeof(shown), why,
						 strlen(why), 150) : "",
			b->backoff_ms, b->conn_log.suppressed);
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
		b->backoff_ms = BACKOFF_MIN_MS;
	b->healthy_since = 0;
	conn_failed(b, err, why);
}

/* An attempt that never got a connection. */
static void
attempt_failed(struct backend_redis *b, int err, const char *why)
{
	b->addr_turn++;
	conn_failed(b, err, why);
}

/*
 * Give up rc: fail what is in flight (hiredis calls every pending callback
 * with NULL) and reconnect.  Inside a reply callback hiredis defers the
 * free until the callback returns.
 */
static void
conn_abort(struct backend_redis *b, struct rconn *rc, int err, const char *why)
{
	if (rc->err == 0)
		rc->err = err;
	conn_lost(b, rc, err, why);
	if (rc->ac != NULL)
		redisAsyncFree(rc->ac);
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
	err = rc == NULL ? UV_ENOMEM
			 : uv_poll_init(b->loop, &rc->poll, ac->c.fd);
	if (err < 0) {
		free(rc);
		redisAsyncFree(ac);
		attempt_failed(b, err, uv_strerror(err));
		return;
	}
	rc->poll.data = rc;
	rc->ac = ac;
	rc->b = b;
	ac->data = rc;
	ac->ev.data = rc;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	b->conn = rc;
	send_setup(b, rc);
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
		maybe_free(b);
		return;
	}
	if (status == 0)
		pick_address(b, res, ip, sizeof(ip));
	uv_freeaddrinfo(res);
	if (status < 0) {
		conn_failed(b, -EHOSTUNREACH, uv_strerror(status));
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

/* One connection attempt; a host name is looked up without blocking. */
static void
conn_start(struct backend_redis *b)
{
	struct addrinfo hints;
	int rc;

	if (b->closing || b->conn != NULL || b->resolving)
		return;
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
		conn_failed(b, -EHOSTUNREACH, uv_strerror(rc));
		return;
	}
	b->resolving = true;
}

/* AUTH, SELECT and SCRIPT LOAD, queued before any job on the connection. */
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
		err = send_cmd(b, rc, RQ_SETUP, NULL, false, n + 1, argv, lens);
	}
	if (err == 0 && b->db != 0) {
		snprintf(db, sizeof(db), "%u", b->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = db;
		lens[1] = strlen(db);
		err = send_cmd(b, rc, RQ_SETUP, NULL, false, 2, argv, lens);
	}
	if (err == 0) {
		argv[0] = "SCRIPT";
		lens[0] = 6;
		argv[1] = "LOAD";
		lens[1] = 4;
		argv[2] = ENGINE_SCRIPT;
		lens[2] = sizeof(ENGINE_SCRIPT) - 1;
		err = send_cmd(b, rc, RQ_LOAD, NULL, false, 3, argv, lens);
	}
	if (err < 0)
		conn_abort(b, rc, err, "cannot queue the set-up commands");
}

static void
on_setup_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q,
	       const redisReply *reply)
{
	if (reply->type == REDIS_REPLY_ERROR) {
		conn_abort(b, rc, reply_errno(reply->str), reply->str);
		return;
	}
	if (q->kind != RQ_LOAD)
		return;
	if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
		conn_abort(b, rc, -EPROTO, "unexpected reply to SCRIPT LOAD");
		return;
	}
	memcpy(b->sha, reply->str, 40);
	b->sha[40] = '\0';
	if (b->conn != rc)
		return;
	/* The connection works: jobs go to Redis again. */
	b->healthy = true;
	b->down_err = 0;
	b->healthy_since = uv_now(b->loop);
	log_msg(LOG_LEVEL_INFO, "redis: connected to %s", b->where);
	wl_poll(b);
}

/* ---- decisions ---------------------------------------------------------- */

static size_t
append(char *out, size_t o, const void *data, size_t len)
{
	memcpy(out + o, data, len);
	return o + len;
}

/*
 * "{CLIENT}" at out + o: the Cluster hash tag.  A client key holding a
 * brace (a privacy hash is binary) goes in hex, so the tag always ends
 * where we mean it to and is never empty.
 */
static size_t
append_tag(char *out, size_t o, const struct triplet_key *k)
{
	static const char hex[] = "0123456789abcdef";

	out[o++] = '{';
	if (memchr(k->client, '{', k->client_len) == NULL &&
	    memchr(k->client, '}', k->client_len) == NULL) {
		o = append(out, o, k->client, k->client_len);
	} else {
		for (size_t i = 0; i < k->client_len; i++) {
			out[o++] = hex[(unsigned char)k->client[i] >> 4];
			out[o++] = hex[(unsigned char)k->client[i] & 15];
		}
	}
	out[o++] = '}';
	return o;
}

/*
 * PREFIX"c:{CLIENT}" and PREFIX"t:{CLIENT}\0SENDER\0RCPT" (the triplet key
 * after its CLIENT part): the shared tag keeps a script's two keys in one
 * Cluster slot.  Binary-safe: triplet keys hold NUL bytes, privacy keys
 * are hashes.
 */
static void
build_keys(const struct backend_redis *b, const struct triplet_key *k,
	   char *ckey, size_t *clen, char *tkey, size_t *tlen)
{
	size_t o;

	o = append(ckey, 0, b->prefix, b->prefix_len);
	o = append(ckey, o, "c:", 2);
	*clen = append_tag(ckey, o, k);

	o = append(tkey, 0, b->prefix, b->prefix_len);
	o = append(tkey, o, "t:", 2);
	o = append_tag(tkey, o, k);
	*tlen = append(tkey, o, k->key + k->client_len,
		       k->key_len - k->client_len);
}

static int
send_job(struct backend_redis *b, struct rconn *rc, struct store_job *job,
	 bool by_sha)
{
	const struct engine_params *p = &b->params;
	char ckey[KEY_MAX], tkey[KEY_MAX];
	char num[7][24];
	const char *argv[13];
	size_t lens[13];
	bool use_awl = p->awl_passes > 0 && job->key.client_is_net;
	int i;

	argv[0] = by_sha ? "EVALSHA" : "EVAL";
	argv[1] = by_sha ? b->sha : ENGINE_SCRIPT;
	lens[1] = by_sha ? 40 : sizeof(ENGINE_SCRIPT) - 1;
	argv[2] = "2";
	build_keys(b, &job->key, ckey, &lens[3], tkey, &lens[4]);
	argv[3] = ckey;
	argv[4] = tkey;
	snprintf(num[0], sizeof(num[0]), "%" PRId64, job->now);
	snprintf(num[1], sizeof(num[1]), "%" PRId64, p->delay);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, p->retry_window);
	snprintf(num[3], sizeof(num[3]), "%" PRId64, p->max_age);
	snprintf(num[4], sizeof(num[4]), "%u", p->awl_passes);
	snprintf(num[5], sizeof(num[5]), "%d", ENGINE_REFRESH);
	snprintf(num[6], sizeof(num[6]), "%d", RECORD_GRACE);
	argv[5] = num[0];
	argv[6] = num[1];
	argv[7] = num[2];
	argv[8] = num[3];
	argv[9] = num[4];
	argv[10] = use_awl ? "1" : "0";
	argv[11] = num[5];
	argv[12] = num[6];
	for (i = 0; i < 13; i++) {
		if (i != 1 && i != 3 && i != 4)
			lens[i] = strlen(argv[i]);
	}
	return send_cmd(b, rc, RQ_JOB, job, by_sha, 13, argv, lens);
}

static bool
reply_is_int(const redisReply *r)
{
	return r->type == REDIS_REPLY_INTEGER;
}

/* The script's reply into a verdict; *wrote, *corrupt from it too. */
static int
parse_verdict(const redisReply *reply, struct engine_verdict *v, bool *wrote,
	      bool *corrupt)
{
	static const struct {
		const char *name;
		enum engine_reason reason;
	} reasons[] = {
		{"new", ENGINE_NEW}, {"restart", ENGINE_RESTART},
		{"early", ENGINE_EARLY}, {"passed", ENGINE_PASSED},
		{"known", ENGINE_KNOWN}, {"awl", ENGINE_AWL},
	};
	redisReply **e = reply->element;
	size_t i;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 ||
	    !reply_is_int(e[0]) || e[1]->type != REDIS_REPLY_STRING ||
	    !reply_is_int(e[2]) || !reply_is_int(e[3]) || !reply_is_int(e[4]) ||
	    !reply_is_int(e[5]))
		return -EPROTO;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (strcmp(e[1]->str, reasons[i].name) == 0)
			break;
	}
	if (i == sizeof(reasons) / sizeof(reasons[0]))
		return -EPROTO;
	v->action = e[0]->integer == 0 ? ENGINE_PASS : ENGINE_DEFER;
	v->reason = reasons[i].reason;
	v->seconds_left = e[2]->integer;
	v->delay = e[3]->integer;
	*wrote = e[4]->integer != 0;
	*corrupt = e[5]->integer != 0;
	return 0;
}

static void
on_job_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q,
	     const redisReply *reply)
{
	struct store_job *job = q->job;
	bool wrote, corrupt;
	int err;

	if (reply->type == REDIS_REPLY_ERROR) {
		/* Script cache flushed, or another server: EVAL reloads it. */
		if (q->by_sha && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
			err = send_job(b, rc, job, false);
			if (err < 0)
				job_finish(b, job, err, "resending after NOSCRIPT");
			return;
		}
		err = reply_errno(reply->str);
		/*
		 * A primary turned replica (failover): find the new primary.
		 * Dropped first, so what job_done submits fails at once.
		 */
		if (err == -EROFS)
			conn_abort(b, rc, err, reply->str);
		job_finish(b, job, err, reply->str);
		return;
	}
	if (parse_verdict(reply, &job->verdict, &wrote, &corrupt) < 0) {
		job_finish(b, job, -EPROTO, "unexpected reply from the script");
		return;
	}
	b->stats.batches++;
	if (wrote)
		b->stats.commits++;
	if (corrupt) {
		char shown[128];

		log_msg(LOG_LEVEL_WARN, "redis: deleted a record that did not "
			"decode (client %s)", log_escape(shown, sizeof(shown),
			job->key.client, job->key.client_len, 80));
	}
	job_finish(b, job, 0, NULL);
}

/* ---- live whitelist ----------------------------------------------------- */

static int
wl_send(struct backend_redis *b, enum rreq_kind kind, const char *cmd,
	const char *name)
{
	char key[PREFIX_MAX + 32];
	const char *argv[2] = {cmd, key};
	size_t lens[2];

	lens[0] = strlen(cmd);
	lens[1] = (size_t)snprintf(key, sizeof(key), "%s%s", b->prefix, name);
	return send_cmd(b, b->conn, kind, NULL, false, 2, argv, lens);
}

/* Once a second, and at once after connecting: has the list changed? */
static void
wl_poll(struct backend_redis *b)
{
	if (b->closing || !b->healthy || b->conn == NULL || b->wl_busy)
		return;
	if (wl_send(b, RQ_WL_GEN, "GET", "wl_generation") == 0)
		b->wl_busy = true;
}

static void
on_wl_timer(uv_timer_t *t)
{
	wl_poll(t->data);
}

static void
on_wl_gen_reply(struct backend_redis *b, const redisReply *reply)
{
	char gen[sizeof(b->wl_gen)] = "";
	int64_t now = (int64_t)time(NULL);

	if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof(gen))
		memcpy(gen, reply->str, reply->len + 1);
	else if (reply->type != REDIS_REPLY_NIL) {
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: unexpected "
			"reply to GET %swl_generation", b->prefix);
		b->wl_busy = false;
		return;
	}
	if (b->wl_loaded && strcmp(gen, b->wl_gen) == 0 &&
	    (b->wl_next_expiry == 0 || now < b->wl_next_expiry)) {
		b->wl_busy = false;
		return;
	}
	memcpy(b->wl_pending_gen, gen, sizeof(gen));
	if (wl_send(b, RQ_WL_ALL, "HGETALL", "whitelist") < 0)
		b->wl_busy = false;
}

/* A field "c:ENTRY"/"r:ENTRY" and a value that starts "ADDED,EXPIRES". */
static bool
wl_pair_ok(const redisReply *field, const redisReply *value, long long *expires)
{
	const char *f = field->str;
	long long added;

	return field->type == REDIS_REPLY_STRING &&
	       value->type == REDIS_REPLY_STRING &&
	       field->len >= 3 && field->len - 2 < WHITELIST_MAX_ENTRY &&
	       f[1] == ':' && (f[0] == 'c' || f[0] == 'r') &&
	       memchr(f, '\0', field->len) == NULL &&
	       sscanf(value->str, "%lld,%lld", &added, expires) == 2;
}

/*
 * One whitelist entry.  Expired entries are left out; the earliest expiry
 * to come is kept so the list is rebuilt when it passes.
 */
static void
wl_add_pair(whitelist_t *wl, const redisReply *field, const redisReply *value,
	    int64_t now, int64_t *next_expiry)
{
	char entry[WHITELIST_MAX_ENTRY];
	char err[300], shown[80];
	enum whitelist_kind kind;
	long long expires;

	if (!wl_pair_ok(field, value, &expires)) {
		if (field->type == REDIS_REPLY_STRING)
			log_escape(shown, sizeof(shown), field->str, field->len,
				   60);
		else
			snprintf(shown, sizeof(shown), "(not a string)");
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: skipping a "
			"malformed entry %s", shown);
		return;
	}
	if (expires != 0 && expires <= now)
		return;
	if (expires != 0 && (*next_expiry == 0 || expires < *next_expiry))
		*next_expiry = expires;
	kind = field->str[0] == 'c' ? WHITELIST_CLIENTS : WHITELIST_RECIPIENTS;
	memcpy(entry, field->str + 2, field->len - 2);
	entry[field->len - 2] = '\0';
	if (whitelist_add(wl, kind, entry, err, sizeof(err)) < 0)
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: skipping %s "
			"entry: %s", kind == WHITELIST_CLIENTS ? "client" :
			"recipient", err);
}

static void
on_wl_all_reply(struct backend_redis *b, const redisReply *reply)
{
	int64_t now = (int64_t)time(NULL), next_expiry = 0;
	whitelist_t *wl;
	size_t i;

	b->wl_busy = false;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: unexpected "
			"reply to HGETALL %swhitelist", b->prefix);
		return;
	}
	if (whitelist_create(&wl) < 0)
		return;
	for (i = 0; i < reply->elements; i += 2)
		wl_add_pair(wl, reply->element[i], reply->element[i + 1], now,
			    &next_expiry);
	whitelist_finish(wl);
	memcpy(b->wl_gen, b->wl_pending_gen, sizeof(b->wl_gen));
	b->wl_loaded = true;
	b->wl_next_expiry = next_expiry;
	b->base.ev.live_whitelist(wl, b->base.ev.arg);
}

/* ---- replies ------------------------------------------------------------ */

/* The connection died with q unanswered. */
static void
on_lost_reply(struct backend_redis *b, struct rconn *rc, struct rreq *q)
{
	if (q->kind == RQ_JOB)
		job_finish(b, q->job, rc->err, NULL);
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
			on_job_reply(b, rc, q, reply);
			break;
		case RQ_SETUP:
		case RQ_LOAD:
			on_setup_reply(b, rc, q, reply);
			break;
		case RQ_WL_GEN:
			on_wl_gen_reply(b, reply);
			break;
		case RQ_WL_ALL:
			on_wl_all_reply(b, reply);
			break;
		}
	}
	free(q);
}

/* The oldest command unanswered too long: Redis is hung or unreachable. */
static void
on_check_timer(uv_timer_t *t)
{
	struct backend_redis *b = t->data;
	struct rconn *rc = b->conn;

	if (rc == NULL || rc->head == NULL ||
	    uv_now(b->loop) - rc->head->sent < REDIS_TIMEOUT_MS)
		return;
	conn_abort(b, rc, -ETIMEDOUT, "no reply within the request timeout");
}

/* ---- backend operations ------------------------------------------------- */

static void
redis_submit(struct backend *base, struct store_job *job)
{
	struct backend_redis *b = (struct backend_redis *)base;
	int err = b->down_err != 0 ? b->down_err : -ENOTCONN;

	if (b->healthy && b->conn != NULL)
		err = send_job(b, b->conn, job, b->sha[0] != '\0');
	if (err < 0)
		job_fail_later(b, job, err);
}

static void
redis_set_params(struct backend *base, const struct engine_params *p)
{
	((struct backend_redis *)base)->params = *p;
}

static void
redis_get_stats(struct backend *base, struct store_stats *out)
{
	*out = ((struct backend_redis *)base)->stats;
}

static void
backend_free(struct backend_redis *b)
{
	free(b->host);
	free(b->path);
	free(b->user);
	free(b->password);
	free(b->prefix);
	free(b->where);
	free(b);
}

/* Freed once every timer is closed and no name lookup is pending. */
static void
maybe_free(struct backend_redis *b)
{
	if (b->open_handles == 0 && !b->resolving)
		backend_free(b);
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct backend_redis *b = h->data;

	b->open_handles--;
	maybe_free(b);
}

static void
redis_close(struct backend *base)
{
	struct backend_redis *b = (struct backend_redis *)base;
	struct rconn *rc = b->conn;
	uv_timer_t *timers[] = {&b->retry_timer, &b->check_timer, &b->wl_timer,
				&b->fail_timer};

	b->closing = true;
	b->conn = NULL;
	if (rc != NULL) {
		/* Pending callbacks (whitelist polls; no jobs) run now. */
		if (rc->ac != NULL)
			redisAsyncFree(rc->ac);
		rc->b = NULL;
	}
	if (b->resolving)
		uv_cancel((uv_req_t *)&b->gai);
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		uv_close((uv_handle_t *)timers[i], on_timer_closed);
}

static const struct backend_ops redis_ops = {
	.name = "redis",
	.submit = redis_submit,
	.set_params = redis_set_params,
	.get_stats = redis_get_stats,
	.close = redis_close,
};

/* ---- opening ------------------------------------------------------------ */


static char *
dup_or_null(const char *s)
{
	return s[0] != '\0' ? strdup(s) : NULL;
}

static int
init_where(struct backend_redis *b, const struct config *cfg,
	   const struct redis_endpoint *ep, char *err, size_t errsz)
{
	if (strlen(cfg->redis_prefix) > PREFIX_MAX) {
		snprintf(err, errsz, "redis_prefix is longer than %d bytes",
			 PREFIX_MAX);
		return -EINVAL;
	}
	b->host = dup_or_null(ep->host);
	b->path = dup_or_null(ep->path);
	b->port = ep->port;
	b->db = ep->db;
	b->user = strdup(cfg->redis_user);
	b->password = strdup(cfg->redis_password);
	b->prefix = strdup(cfg->redis_prefix);
	b->where = strdup(cfg->store);
	if ((b->host == NULL && b->path == NULL) || b->user == NULL ||
	    b->password == NULL || b->prefix == NULL || b->where == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	b->prefix_len = strlen(b->prefix);
	return 0;
}

static void
timer_init(struct backend_redis *b, uv_timer_t *t)
{
	uv_timer_init(b->loop, t);
	t->data = b;
	b->open_handles++;
}

int
backend_redis_open(struct backend **out, uv_loop_t *loop,
		   const struct config *cfg, const struct engine_params *p,
		   const struct backend_events *ev, char *err, size_t errsz)
{
	struct backend_redis *b;
	struct redis_endpoint ep;
	int rc;

	*out = NULL;
	rc = redis_endpoint_parse(cfg->store, &ep, err, errsz);
	if (rc < 0)
		return rc;
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	rc = init_where(b, cfg, &ep, err, errsz);
	if (rc < 0) {
		backend_free(b);
		return rc;
	}
	b->base.ops = &redis_ops;
	b->base.ev = *ev;
	b->loop = loop;
	b->params = *p;
	/* Optimistic until the first attempt fails: early jobs wait for it. */
	b->healthy = true;
	b->backoff_ms = BACKOFF_MIN_MS;
	timer_init(b, &b->retry_timer);
	timer_init(b, &b->check_timer);
	timer_init(b, &b->wl_timer);
	timer_init(b, &b->fail_timer);
	uv_timer_start(&b->check_timer, on_check_timer, REDIS_CHECK_MS,
		       REDIS_CHECK_MS);
	uv_timer_start(&b->wl_timer, on_wl_timer, WL_POLL_MS, WL_POLL_MS);
	log_msg(LOG_LEVEL_INFO, "redis: store %s, key prefix \"%s\"", b->where,
		b->prefix);
	conn_start(b);
	*out = &b->base;
	return 0;
}
