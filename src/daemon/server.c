/*
 * server - listeners, connections and the request path.
 *
 * One libuv loop thread does all I/O.  Per connection: a fixed read
 * buffer, an incremental parser, a FIFO of requests in arrival order
 * (answers leave in that order even though store answers arrive later
 * than immediate ones), and two output buffers (one being written, one
 * filling).  Backpressure: at MAX_INFLIGHT unanswered requests, or when
 * the client does not read its answers, the connection stops reading
 * until it drains, so no input makes memory grow.
 *
 * Ownership: a conn owns its two handles, its slots and its buffers; only
 * conn_release() frees it, after both handles are closed and the store
 * has handed back every job of the conn.
 */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "answer.h"
#include "backend.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notify.h"
#include "policy.h"
#include "privacy.h"
#include "triplet.h"
#include "whitelist.h"

#define READ_BUF 4096
#define MAX_INFLIGHT 16
/* Room for several answers; one that does not fit waits for the next. */
#define OUT_MAX (4 * ANSWER_REPLY_MAX)
/* Seconds SIGTERM waits for in-flight answers before giving up. */
#define DRAIN_TIMEOUT_MS 10000

struct conn;

struct slot {
	struct store_job job;		/* job.owner points back here */
	struct conn *conn;
	struct slot *next;		/* FIFO or free list */
	bool done;
	char fields[ANSWER_FIELDS_MAX];
	char rcpt_domain[TRIPLET_MAX_ADDR + 1];
	char instance[64];		/* Postfix's message instance */
	char reply[ANSWER_REPLY_MAX];
	size_t reply_len;
	uint64_t started;		/* uv_hrtime() when the request was complete */
};

union stream {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct conn {
	union stream h;
	uv_timer_t idle;
	uv_write_t wreq;
	struct server *srv;
	struct conn *prev, *next;

	struct slot *head, *tail;	/* unanswered requests, in order */
	struct slot *free_slots;
	unsigned inflight;		/* slots in the FIFO */
	unsigned in_store;		/* jobs the store has not handed back */
	int open_handles;
	bool closing;
	bool reading;
	bool eof;			/* client shut its side: close when done */

	size_t rlen, roff;		/* unparsed input in rbuf[roff..rlen) */
	char out[2][OUT_MAX];
	size_t out_len[2];
	int out_fill;			/* buffer collecting answers */
	bool writing;

	char peer[80];
	char prepended[64];		/* instance that got an X-Greylist */
	struct policy_parser parser;
	char rbuf[READ_BUF];
};

struct listener {
	union stream h;
	struct server *srv;
	char name[128];
	char path[108];		/* unix socket path, to unlink at exit */
	bool is_unix;
};

struct server {
	uv_loop_t loop;
	struct config *cfg;
	whitelist_t *wl;		/* from the files; swapped with cfg */
	whitelist_t *live_wl;		/* from the database, via the store */
	struct server_reload reload;
	struct backend *be;
	char hostname[256];

	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t drain_timer;
	uv_timer_t tick;		/* watchdog and STATUS= for systemd */
	uv_check_t turn_end;		/* per loop turn: store hand-off, log */
	uint64_t watchdog_usec;
	uint64_t last_watchdog;
	unsigned ticks;
	struct metrics_http *metrics_http;
	struct metrics m;

	struct listener *listeners;
	size_t nlisteners;
	struct conn *conns;
	unsigned nconns;
	bool stopping;

	struct triplet_opts topts;
	struct privacy privacy;
	bool privacy_on;
	struct engine_params params;
	struct log_ratelimit conn_limit_log;
	struct log_ratelimit proto_log;
};

static void conn_close(struct conn *c);
static void answer_slot(struct server *srv, struct slot *s);
static void log_protocol_error(struct conn *c, const char *why);
static void conn_process_input(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void maybe_finish_stop(struct server *srv);

/* ---- helpers --------------------------------------------------------- */

static void
derive_settings(struct server *srv)
{
	const struct config *cfg = srv->cfg;

	if (cfg->hostname[0] != '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "%s", cfg->hostname);
	else if (gethostname(srv->hostname, sizeof(srv->hostname)) < 0)
		snprintf(srv->hostname, sizeof(srv->hostname), "localhost");
	srv->hostname[sizeof(srv->hostname) - 1] = '\0';

	srv->topts.by_host = cfg->lookup_by_host;
	srv->topts.ipv4_prefix = cfg->ipv4_cidr;
	srv->topts.ipv6_prefix = cfg->ipv6_cidr;
	srv->params.delay = cfg->delay;
	srv->params.retry_window = cfg->retry_window;
	srv->params.max_age = cfg->max_age;
	srv->params.awl_passes = cfg->auto_whitelist_clients;
}

static void
close_handle(uv_handle_t *h, uv_close_cb cb)
{
	if (!uv_is_closing(h))
		uv_close(h, cb);
}

/* ---- connections: lifetime -------------------------------------------- */

static void
conn_release(struct conn *c)
{
	struct server *srv = c->srv;
	struct slot *s, *next;

	if (c->open_handles > 0 || c->in_store > 0)
		return;
	for (s = c->head; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	for (s = c->free_slots; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nconns--;
	srv->m.connections_open = srv->nconns;
	free(c);
	maybe_finish_stop(srv);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->open_handles--;
	conn_release(c);
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	close_handle(&c->h.handle, on_conn_handle_closed);
	uv_timer_stop(&c->idle);
	close_handle((uv_handle_t *)&c->idle, on_conn_handle_closed);
}

/* ---- connections: output ---------------------------------------------- */

static void conn_flush(struct conn *c);

static void
on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->writing = false;
	c->out_len[!c->out_fill] = 0;
	if (status < 0) {
		log_msg(LOG_LEVEL_DEBUG, "%s: write failed: %s", c->peer,
			uv_strerror(status));
		conn_close(c);
		return;
	}
	conn_flush(c);
}

/*
 * Move answered requests from the FIFO head into the filling buffer, then
 * start a write if none is under way.  Stops at the first unanswered
 * request, so answers keep the order of the requests.
 */
/* Move answered requests from the FIFO head into the filling buffer. */
static bool
conn_take_answers(struct conn *c)
{
	bool freed = false;

	while (c->head != NULL && c->head->done) {
		struct slot *s = c->head;
		size_t *len = &c->out_len[c->out_fill];

		if (*len + s->reply_len > OUT_MAX)
			break;	/* the client is not reading: wait */
		memcpy(c->out[c->out_fill] + *len, s->reply, s->reply_len);
		*len += s->reply_len;
		c->head = s->next;
		if (c->head == NULL)
			c->tail = NULL;
		s->next = c->free_slots;
		c->free_slots = s;
		c->inflight--;
		freed = true;
	}
	return freed;
}

/*
 * Write the filling buffer.  Returns 1 when it all went out at once (the
 * buffer is free again), 0 when a write request now owns it, or -1 after
 * closing the connection on an error.
 */
static int
conn_write_out(struct conn *c)
{
	int i = c->out_fill;
	uv_buf_t buf = uv_buf_init(c->out[i], (unsigned)c->out_len[i]);
	size_t sent;
	int rc;

	/* Most answers fit the socket buffer: skip the write request. */
	rc = uv_try_write(&c->h.stream, &buf, 1);
	if (rc == (int)buf.len) {
		c->out_len[i] = 0;
		return 1;
	}
	if (rc < 0 && rc != UV_EAGAIN) {
		conn_close(c);
		return -1;
	}
	sent = rc > 0 ? (size_t)rc : 0;
	buf.base += sent;
	buf.len -= sent;
	c->writing = true;
	c->out_fill = !i;
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->h.stream, &buf, 1, on_write) < 0) {
		c->writing = false;
		conn_close(c);
		return -1;
	}
	return 0;
}

/*
 * Send every answer that is due, in request order, then resume reading if
 * answers made room.  Stops at the first unanswered request.
 */
static void
conn_flush(struct conn *c)
{
	bool freed = false;

	if (c->closing)
		return;
	for (;;) {
		if (conn_take_answers(c))
			freed = true;
		if (c->writing || c->out_len[c->out_fill] == 0)
			break;
		/* Written at once: more answers may wait for the free buffer. */
		int rc = conn_write_out(c);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
	}
	/* Stopping: reading has stopped, so a half-read request never ends. */
	if (c->head == NULL && !c->writing && (c->eof || c->srv->stopping)) {
		conn_close(c);
		return;
	}
	if (freed && !c->reading && !c->eof && !c->srv->stopping)
		conn_process_input(c);
}

/* ---- connections: requests -------------------------------------------- */

static struct slot *
slot_get(struct conn *c)
{
	struct slot *s = c->free_slots;

	if (s != NULL)
		c->free_slots = s->next;
	else if ((s = malloc(sizeof(*s))) == NULL)
		return NULL;
	s->conn = c;
	s->next = NULL;
	s->done = false;
	s->job.owner = s;
	if (c->tail != NULL)
		c->tail->next = s;
	else
		c->head = s;
	c->tail = s;
	c->inflight++;
	return s;
}

static void
count_answer(struct server *srv, struct slot *s, enum metrics_result result)
{
	srv->m.results[result]++;
	metrics_observe_latency(&srv->m, (uv_hrtime() - s->started) / 1000);
}

static void
slot_answer_now(struct slot *s, enum metrics_result result,
		const char *log_line)
{
	s->reply_len = answer_dunno(s->reply, sizeof(s->reply));
	s->done = true;
	count_answer(s->conn->srv, s, result);
	if (log_line != NULL)
		log_text(LOG_LEVEL_INFO, log_line);
}

/*
 * The whitelist reason for a request, or NULL if it is not whitelisted;
 * *result says which list matched.
 */
static const char *
whitelisted(const struct server *srv, const struct policy_request *r,
	    enum metrics_result *result)
{
	const whitelist_t *lists[2] = {srv->wl, srv->live_wl};
	static const char *const client_reason[2] = {
		"client whitelist", "client whitelist (live)"};
	static const char *const rcpt_reason[2] = {
		"recipient whitelist", "recipient whitelist (live)"};
	static const enum metrics_result client_result[2] = {
		RESULT_PASS_WL_CLIENT, RESULT_PASS_LIVE_CLIENT};
	static const enum metrics_result rcpt_result[2] = {
		RESULT_PASS_WL_RECIPIENT, RESULT_PASS_LIVE_RECIPIENT};

	for (int i = 0; i < 2; i++) {
		if (lists[i] != NULL &&
		    whitelist_match_client(lists[i], r->client_address.ptr,
					   r->client_address.len,
					   r->client_name.ptr, r->client_name.len)) {
			*result = client_result[i];
			return client_reason[i];
		}
	}
	for (int i = 0; i < 2; i++) {
		if (lists[i] != NULL &&
		    whitelist_match_recipient(lists[i], r->recipient.ptr,
					      r->recipient.len)) {
			*result = rcpt_result[i];
			return rcpt_reason[i];
		}
	}
	return NULL;
}

/* Returns false if the connection must be closed. */
static bool
handle_request(struct conn *c, const struct policy_request *r)
{
	struct server *srv = c->srv;
	struct slot *s;
	const char *reason;
	enum metrics_result result;
	char line[ANSWER_LOG_MAX];

	if (!policy_str_eq(r->request, "smtpd_access_policy")) {
		char shown[80], why[120];

		snprintf(why, sizeof(why), "unknown request=%s",
			 log_escape(shown, sizeof(shown), r->request.ptr,
				    r->request.len, 40));
		log_protocol_error(c, why);
		return false;
	}
	s = slot_get(c);
	if (s == NULL) {
		log_msg(LOG_LEVEL_ERR, "%s: out of memory, closing connection",
			c->peer);
		return false;
	}
	s->started = uv_hrtime();
	switch (answer_classify(r, srv->cfg)) {
	case ANSWER_NOT_RCPT:
		slot_answer_now(s, RESULT_DUNNO_NOT_RCPT, NULL);
		return true;
	case ANSWER_AUTHENTICATED:
		answer_log_fields(s->fields, sizeof(s->fields), r);
		snprintf(line, sizeof(line), "action=pass, reason=authenticated, %s",
			 s->fields);
		slot_answer_now(s, RESULT_DUNNO_AUTHENTICATED, line);
		return true;
	case ANSWER_GREYLIST:
		break;
	}
	answer_log_fields(s->fields, sizeof(s->fields), r);
	reason = whitelisted(srv, r, &result);
	if (reason != NULL) {
		snprintf(line, sizeof(line), "action=pass, reason=%s, %s", reason,
			 s->fields);
		slot_answer_now(s, result, line);
		return true;
	}
	answer_rcpt_domain(s->rcpt_domain, sizeof(s->rcpt_domain), r);
	snprintf(s->instance, sizeof(s->instance), "%.*s",
		 r->instance.ptr != NULL ? (int)r->instance.len : 0,
		 r->instance.ptr != NULL ? r->instance.ptr : "");
	triplet_build(&s->job.key, r->client_address.ptr, r->client_address.len,
		      r->sender.ptr, r->sender.len, r->recipient.ptr,
		      r->recipient.len, &srv->topts);
	if (srv->privacy_on)
		privacy_apply(&srv->privacy, &s->job.key);
	s->job.n_more = 0;
	s->job.delay = 0;
	s->job.matched = 0;
	s->job.now = (int64_t)time(NULL);
	if (srv->be->ops->try_decide != NULL &&
	    srv->be->ops->try_decide(srv->be, &s->job)) {
		answer_slot(srv, s);
		return true;
	}
	c->in_store++;
	srv->be->ops->submit(srv->be, &s->job);
	return true;
}

static void
log_protocol_error(struct conn *c, const char *why)
{
	time_t now = time(NULL);

	c->srv->m.protocol_errors++;
	if (!log_ratelimit_allow(&c->srv->proto_log, now, 1))
		return;
	log_msg(LOG_LEVEL_WARN, "%s: malformed policy request (%s), closing "
		"connection", c->peer, why);
}

/*
 * Parse what is left in the read buffer, one request at a time, until it
 * is used up (then read more) or MAX_INFLIGHT requests wait for answers
 * (then stop reading until some are answered).
 */
static void
conn_process_input(struct conn *c)
{
	while (c->roff < c->rlen && c->inflight < MAX_INFLIGHT && !c->closing) {
		const struct policy_request *r;
		size_t used;
		int rc;

		rc = policy_feed(&c->parser, c->rbuf + c->roff, c->rlen - c->roff,
				 &used, &r);
		c->roff += used;
		if (rc < 0) {
			log_protocol_error(c, c->parser.error);
			conn_close(c);
			return;
		}
		if (rc == POLICY_REQUEST && !handle_request(c, r)) {
			conn_close(c);
			return;
		}
	}
	if (c->closing)
		return;
	conn_flush(c);
	if (c->closing)
		return;
	if (c->roff < c->rlen) {
		if (c->reading) {
			uv_read_stop(&c->h.stream);
			c->reading = false;
		}
	} else if (!c->reading && !c->eof && !c->srv->stopping) {
		c->roff = c->rlen = 0;
		c->reading = uv_read_start(&c->h.stream, on_alloc, on_read) == 0;
	}
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	/* Reading is on only while every earlier byte has been parsed. */
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(stream);
		c->reading = false;
		if (nread != UV_EOF) {
			conn_close(c);
			return;
		}
		/* Half-closed: answer what was asked, then close. */
		c->eof = true;
		if (policy_in_request(&c->parser))
			log_protocol_error(c, "connection closed inside a request");
		conn_flush(c);
		return;
	}
	uv_timer_again(&c->idle);
	c->rlen = (size_t)nread;
	c->roff = 0;
	conn_process_input(c);
}

static void
on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;

	/* Waiting for our answers is not idleness: the timer repeats. */
	if (c->inflight > 0)
		return;
	c->srv->m.idle_closed++;
	log_msg(LOG_LEVEL_DEBUG, "%s: idle for %" PRId64 "s, closing", c->peer,
		c->srv->cfg->idle_timeout);
	conn_close(c);
}

/* ---- store answers ----------------------------------------------------- */

/* Count and log a decided job: one line per decision. */
static void
log_decision(struct server *srv, struct slot *s)
{
	char line[ANSWER_LOG_MAX];

	count_answer(srv, s, metrics_result_for(&s->job.verdict, s->job.err));
	answer_log_line(line, sizeof(line), srv->cfg, &s->job.verdict,
			s->job.err, s->fields);
	log_text(LOG_LEVEL_INFO, line);
}

/* Turn a decided job into the slot's reply. */
static void
answer_slot(struct server *srv, struct slot *s)
{
	struct store_job *job = &s->job;
	struct conn *c = s->conn;

	log_decision(srv, s);
	if (job->err == 0 && job->verdict.reason == ENGINE_PASSED &&
	    srv->cfg->x_greylist_header && (s->instance[0] == '\0' ||
	    strcmp(s->instance, c->prepended) != 0)) {
		/* One header per message, however many recipients passed. */
		s->reply_len = answer_prepend_text(s->reply, sizeof(s->reply),
						   srv->cfg->x_greylist_header_text,
						   job->verdict.delay,
						   srv->hostname, job->now);
		snprintf(c->prepended, sizeof(c->prepended), "%s", s->instance);
	} else {
		s->reply_len = answer_reply(s->reply, sizeof(s->reply), srv->cfg,
					    &job->verdict, job->err,
					    s->rcpt_domain);
	}
	s->done = true;
}

static void
on_job_done(struct store_job *job, void *arg)
{
	struct slot *s = job->owner;
	struct conn *c = s->conn;

	c->in_store--;
	if (c->closing) {
		log_decision(arg, s);
		conn_release(c);
		return;
	}
	answer_slot(arg, s);
	if (s == c->head)
		conn_flush(c);
}

static void
on_live_whitelist(whitelist_t *wl, void *arg)
{
	struct server *srv = arg;

	whitelist_free(srv->live_wl);
	srv->live_wl = wl;
	srv->m.live_whitelist_entries = whitelist_size(wl);
	log_msg(LOG_LEVEL_INFO, "live whitelist loaded: %zu entries",
		whitelist_size(wl));
}


/* ---- accepting ---------------------------------------------------------- */

static void
describe_peer(struct conn *c, const struct listener *l)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (l->is_unix ||
	    uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(c->peer, sizeof(c->peer), "%s", l->is_unix ? "unix" : "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(a->sin_port));
	}
}

static void
on_connection(uv_stream_t *server_stream, int status)
{
	struct listener *l = server_stream->data;
	struct server *srv = l->srv;
	struct conn *c;
	int rc;

	if (status < 0) {
		log_msg(LOG_LEVEL_WARN, "%s: accept failed: %s", l->name,
			uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(LOG_LEVEL_ERR, "%s: out of memory for a connection", l->name);
		return;
	}
	c->srv = srv;
	policy_init(&c->parser);
	if (l->is_unix)
		rc = uv_pipe_init(&srv->loop, &c->h.pipe, 0);
	else
		rc = uv_tcp_init(&srv->loop, &c->h.tcp);
	if (rc < 0) {
		free(c);
		return;
	}
	uv_timer_init(&srv->loop, &c->idle);
	c->h.handle.data = c;
	c->idle.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	srv->m.connections_open = srv->nconns;

	if (uv_accept(server_stream, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	if (srv->nconns > srv->cfg->max_connections || srv->stopping) {
		srv->m.connections_refused++;
		if (log_ratelimit_allow(&srv->conn_limit_log, time(NULL), 1))
			log_msg(LOG_LEVEL_WARN, "%s: connection limit (%u) reached, "
				"closing new connections (max_connections)",
				l->name, srv->cfg->max_connections);
		conn_close(c);
		return;
	}
	srv->m.connections_accepted++;
	describe_peer(c, l);
	if (!l->is_unix)
		uv_tcp_nodelay(&c->h.tcp, 1);
	uv_timer_start(&c->idle, on_idle, (uint64_t)srv->cfg->idle_timeout * 1000,
		       (uint64_t)srv->cfg->idle_timeout * 1000);
	c->reading = uv_read_start(&c->h.stream, on_alloc, on_read) == 0;
	if (!c->reading)
		conn_close(c);
}

/* ---- listeners ---------------------------------------------------------- */

static int
bind_inet(struct server *srv, struct listener *l, const char *spec)
{
	char host[64];
	unsigned port;
	struct sockaddr_storage ss;
	unsigned flags = 0;
	int rc;

	if (config_parse_inet(spec, host, sizeof(host), &port) < 0)
		return UV_EINVAL;
	if (strchr(host, ':') != NULL) {
		rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
		flags = UV_TCP_IPV6ONLY;
	} else {
		rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
	}
	if (rc < 0)
		return rc;
	rc = uv_tcp_init(&srv->loop, &l->h.tcp);
	if (rc < 0)
		return rc;
	l->h.handle.data = l;
	return uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, flags);
}

static int
bind_unix(struct server *srv, struct listener *l, const char *path)
{
	const struct config *cfg = srv->cfg;
	struct stat st;
	mode_t old_umask;
	int rc;

	/* A socket file left by a previous run would make bind fail. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	rc = uv_pipe_init(&srv->loop, &l->h.pipe, 0);
	if (rc < 0)
		return rc;
	l->h.handle.data = l;
	old_umask = umask(0177);
	rc = uv_pipe_bind(&l->h.pipe, path);
	umask(old_umask);
	if (rc < 0)
		return rc;
	if (cfg->unix_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->unix_group);

		if (gr == NULL) {
			log_msg(LOG_LEVEL_ERR, "unix_group '%s' does not exist",
				cfg->unix_group);
			return UV_EINVAL;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0)
			return -errno;
	}
	if (chmod(path, cfg->unix_mode) < 0)
		return -errno;
	return 0;
}

/* Take the listening sockets systemd passed (socket activation). */
static int
adopt_listeners(struct server *srv, int nfds)
{
	int i;

	srv->listeners = calloc((size_t)nfds, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return UV_ENOMEM;
	for (i = 0; i < nfds; i++) {
		struct listener *l = &srv->listeners[i];
		int fd = NOTIFY_LISTEN_FDS_START + i;
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int rc;

		l->srv = srv;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			return -errno;
		l->is_unix = ss.ss_family == AF_UNIX;
		snprintf(l->name, sizeof(l->name), "systemd socket fd %d (%s)", fd,
			 l->is_unix ? "unix" : "inet");
		if (l->is_unix) {
			rc = uv_pipe_init(&srv->loop, &l->h.pipe, 0);
			if (rc == 0)
				rc = uv_pipe_open(&l->h.pipe, fd);
		} else {
			rc = uv_tcp_init(&srv->loop, &l->h.tcp);
			if (rc == 0)
				rc = uv_tcp_open(&l->h.tcp, fd);
		}
		srv->nlisteners = (size_t)i + 1;
		l->h.handle.data = l;
		if (rc == 0)
			rc = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
		if (rc < 0) {
			log_msg(LOG_LEVEL_ERR, "cannot use %s: %s", l->name,
				uv_strerror(rc));
			return rc;
		}
		log_msg(LOG_LEVEL_INFO, "listening on %s", l->name);
	}
	return 0;
}

static int
bind_listeners(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	size_t n = cfg->inet.n + cfg->unix_sockets.n;
	int nfds = notify_listen_fds();
	size_t i;

	if (nfds > 0) {
		log_msg(LOG_LEVEL_INFO, "socket activation: using %d socket(s) from "
			"systemd instead of inet/unix settings", nfds);
		return adopt_listeners(srv, nfds);
	}

	srv->listeners = calloc(n, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return UV_ENOMEM;
	for (i = 0; i < n; i++) {
		struct listener *l = &srv->listeners[i];
		bool is_unix = i >= cfg->inet.n;
		const char *spec = is_unix ? cfg->unix_sockets.items[i - cfg->inet.n]
					   : cfg->inet.items[i];
		int rc;

		l->srv = srv;
		l->is_unix = is_unix;
		if (is_unix)
			snprintf(l->path, sizeof(l->path), "%s", spec);
		snprintf(l->name, sizeof(l->name), "%s:%s",
			 is_unix ? "unix" : "inet", spec);
		rc = is_unix ? bind_unix(srv, l, spec) : bind_inet(srv, l, spec);
		srv->nlisteners = i + 1;
		if (rc == 0)
			rc = uv_listen(&l->h.stream, SOMAXCONN, on_connection);
		if (rc < 0) {
			log_msg(LOG_LEVEL_ERR, "cannot listen on %s: %s", l->name,
				uv_strerror(rc));
			return rc;
		}
		log_msg(LOG_LEVEL_INFO, "listening on %s", l->name);
	}
	return 0;
}

static void
close_listeners(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		close_handle(&srv->listeners[i].h.handle, NULL);
}

/* ---- signals and stopping ---------------------------------------------- */

static bool
lists_differ(const struct config_list *a, const struct config_list *b)
{
	if (a->n != b->n)
		return true;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->items[i], b->items[i]) != 0)
			return true;
	}
	return false;
}

/* Append name to the comma-separated list in names when changed. */
static void
note_change(char *names, size_t size, bool changed, const char *name)
{
	size_t n = strlen(names);

	if (changed)
		snprintf(names + n, size - n, "%s%s", n > 0 ? ", " : "", name);
}

/* Say which changed settings a reload cannot apply. */
static void
warn_restart_only(const struct config *old, const struct config *next)
{
	char names[300] = "";
	size_t sz = sizeof(names);

	note_change(names, sz, lists_differ(&old->inet, &next->inet), "inet");
	note_change(names, sz, lists_differ(&old->unix_sockets,
					    &next->unix_sockets), "unix");
	note_change(names, sz, old->unix_mode != next->unix_mode, "unix_mode");
	note_change(names, sz, strcmp(old->unix_group, next->unix_group) != 0,
		    "unix_group");
	note_change(names, sz, strcmp(old->dbdir, next->dbdir) != 0, "dbdir");
	note_change(names, sz, strcmp(old->user, next->user) != 0, "user");
	note_change(names, sz, strcmp(old->pidfile, next->pidfile) != 0,
		    "pidfile");
	note_change(names, sz, old->durability != next->durability,
		    "durability");
	note_change(names, sz, old->db_max_size != next->db_max_size,
		    "db_max_size");
	note_change(names, sz, strcmp(old->metrics_listen,
				      next->metrics_listen) != 0,
		    "metrics_listen");
	note_change(names, sz, strcmp(old->store, next->store) != 0, "store");
	note_change(names, sz, strcmp(old->redis_user, next->redis_user) != 0 ||
		    strcmp(old->redis_password, next->redis_password) != 0,
		    "redis_user/redis_password");
	note_change(names, sz, strcmp(old->redis_prefix, next->redis_prefix) != 0,
		    "redis_prefix");
	note_change(names, sz, old->privacy != next->privacy ||
		    strcmp(old->privacy_key_file, next->privacy_key_file) != 0,
		    "privacy");
	if (names[0] != '\0')
		log_msg(LOG_LEVEL_WARN, "reload: changes to %s take effect at the "
			"next restart", names);
}

static void
on_sighup(uv_signal_t *sig, int signum)
{
	struct server *srv = sig->data;
	const struct server_reload *r = &srv->reload;
	struct config *next;
	char err[512];

	notify_send("RELOADING=1");

	whitelist_t *wl;

	if (config_load(&next, r->config_path, r->missing_ok, r->overrides,
			r->noverrides, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERR, "reload failed, keeping the running "
			"configuration: %s", err);
		srv->m.reload_failures++;
		notify_send("READY=1\nSTATUS=reload failed, see the log");
		return;
	}
	if (whitelist_load_config(&wl, next, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERR, "reload failed, keeping the running "
			"configuration and whitelists: %s", err);
		config_free(next);
		srv->m.reload_failures++;
		notify_send("READY=1\nSTATUS=reload failed, see the log");
		return;
	}
	whitelist_free(srv->wl);
	srv->wl = wl;
	warn_restart_only(srv->cfg, next);
	config_free(srv->cfg);
	srv->cfg = next;
	derive_settings(srv);
	srv->be->ops->set_params(srv->be, &srv->params);
	log_set_verbose(srv->cfg->verbose);
	srv->m.reloads++;
	srv->m.static_whitelist_entries = whitelist_size(wl);
	log_msg(LOG_LEVEL_INFO, "configuration reloaded from %s, %zu whitelist "
		"entries (listeners change only at restart)", r->config_path != NULL ?
		r->config_path : "the command line", whitelist_size(wl));
	notify_send("READY=1\nSTATUS=configuration reloaded");
}

static void
on_drain_timeout(uv_timer_t *t)
{
	struct server *srv = t->data;
	struct conn *c;

	log_msg(LOG_LEVEL_WARN, "stop: %u connection(s) still busy after %ds, "
		"closing them", srv->nconns, DRAIN_TIMEOUT_MS / 1000);
	for (c = srv->conns; c != NULL; c = c->next)
		conn_close(c);
}

/*
 * The last step of stopping, from a timer so that it runs outside any
 * store callback: commit and stop the store (which may wake the loop
 * until it has stopped), then close the server's own handles so that
 * uv_run() returns.
 */
static void
on_finish_stop(uv_timer_t *t)
{
	struct server *srv = t->data;

	srv->be->ops->close(srv->be);
	srv->be = NULL;
	metrics_http_stop(srv->metrics_http);
	srv->metrics_http = NULL;
	close_handle((uv_handle_t *)&srv->tick, NULL);
	close_handle((uv_handle_t *)&srv->turn_end, NULL);
	close_handle((uv_handle_t *)&srv->drain_timer, NULL);
	close_handle((uv_handle_t *)&srv->sig_hup, NULL);
	close_handle((uv_handle_t *)&srv->sig_term, NULL);
	close_handle((uv_handle_t *)&srv->sig_int, NULL);
}

/* Once no connection is left, finish stopping. */
static void
maybe_finish_stop(struct server *srv)
{
	if (!srv->stopping || srv->nconns > 0)
		return;
	uv_timer_start(&srv->drain_timer, on_finish_stop, 0, 0);
}

static void
on_stop_signal(uv_signal_t *sig, int signum)
{
	struct server *srv = sig->data;
	struct conn *c, *next;

	if (srv->stopping)
		return;
	srv->stopping = true;
	notify_send("STOPPING=1");
	log_msg(LOG_LEVEL_INFO, "received %s, answering requests in flight and "
		"stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	close_listeners(srv);
	uv_timer_start(&srv->drain_timer, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
	/* Idle connections close now; busy ones once answered. */
	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		if (c->reading) {
			uv_read_stop(&c->h.stream);
			c->reading = false;
		}
		conn_flush(c);
	}
	maybe_finish_stop(srv);
}

/* ---- metrics and systemd status --------------------------------------- */

static char *
render_metrics(void *arg, size_t *len)
{
	struct server *srv = arg;
	struct store_stats ss = {0};
	size_t need;
	char *body;

	if (srv->be != NULL)
		srv->be->ops->get_stats(srv->be, &ss);
	need = metrics_format(NULL, 0, &srv->m, &ss) + 1;
	body = malloc(need);
	if (body == NULL)
		return NULL;
	*len = metrics_format(body, need, &srv->m, &ss);
	return body;
}

static void
send_status(struct server *srv)
{
	const struct metrics *m = &srv->m;
	char status[300];
	uint64_t greylisted = m->results[RESULT_GREYLIST_NEW] +
			      m->results[RESULT_GREYLIST_RESTART] +
			      m->results[RESULT_GREYLIST_EARLY];

	snprintf(status, sizeof(status), "STATUS=%" PRIu64 " requests, %" PRIu64
		 " greylisted, %" PRIu64 " store failures, %u connections",
		 metrics_total_requests(m), greylisted,
		 m->results[RESULT_STORE_FAILURE], srv->nconns);
	notify_send(status);
}

/*
 * End of every loop turn: hand the turn's jobs to the backend at once
 * (one wake-up for the store thread, bigger batches), write the turn's
 * log lines with one write.
 */
static void
on_turn_end(uv_check_t *c)
{
	struct server *srv = c->data;

	if (srv->be != NULL && srv->be->ops->flush != NULL)
		srv->be->ops->flush(srv->be);
	log_flush();
}

/* Once a second: the watchdog ping when due, STATUS= every 10 s. */
static void
on_tick(uv_timer_t *t)
{
	struct server *srv = t->data;
	uint64_t now = uv_hrtime() / 1000;

	if (srv->watchdog_usec > 0 &&
	    now - srv->last_watchdog >= srv->watchdog_usec / 2) {
		notify_send("WATCHDOG=1");
		srv->last_watchdog = now;
	}
	if (++srv->ticks % 10 == 0)
		send_status(srv);
}

/* ---- public ------------------------------------------------------------- */

int
server_create(struct server **out, struct config *cfg, whitelist_t *wl,
	      const struct server_reload *reload)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int rc;

	*out = NULL;
	if (srv == NULL) {
		config_free(cfg);
		whitelist_free(wl);
		return -ENOMEM;
	}
	srv->cfg = cfg;
	srv->wl = wl;
	srv->reload = *reload;
	derive_settings(srv);
	rc = uv_loop_init(&srv->loop);
	if (rc < 0) {
		config_free(cfg);
		whitelist_free(wl);
		free(srv);
		return rc;
	}
	rc = bind_listeners(srv);
	if (rc < 0) {
		server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
server_after_fork(struct server *srv)
{
	return uv_loop_fork(&srv->loop);
}

int
server_run(struct server *srv)
{
	struct backend_events ev = {
		.job_done = on_job_done,
		.live_whitelist = on_live_whitelist,
		.arg = srv,
	};
	char err[512];
	int rc;

	if (srv->cfg->privacy) {
		char path[1100];

		privacy_key_path(srv->cfg, path, sizeof(path));
		rc = privacy_load_key(&srv->privacy, path, true, err, sizeof(err));
		if (rc < 0) {
			log_msg(LOG_LEVEL_ERR, "%s", err);
			return rc;
		}
		srv->privacy_on = true;
		log_msg(LOG_LEVEL_INFO, "privacy: storing keyed hashes (key %s)",
			path);
	}
	rc = backend_open(&srv->be, &srv->loop, srv->cfg, &srv->params, &ev, err,
			  sizeof(err));
	if (rc < 0) {
		/* Without a store there is nothing to serve: stop, loudly. */
		log_msg(LOG_LEVEL_ERR, "%s", err);
		return rc;
	}
	srv->m.static_whitelist_entries = whitelist_size(srv->wl);
	uv_timer_init(&srv->loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	if (srv->cfg->metrics_listen[0] != '\0') {
		rc = metrics_http_start(&srv->metrics_http, &srv->loop,
					srv->cfg->metrics_listen, render_metrics,
					srv);
		if (rc < 0)
			log_msg(LOG_LEVEL_ERR, "cannot serve metrics on %s: %s; "
				"continuing without them", srv->cfg->metrics_listen,
				uv_strerror(rc));
	}
	uv_check_init(&srv->loop, &srv->turn_end);
	srv->turn_end.data = srv;
	uv_check_start(&srv->turn_end, on_turn_end);
	log_set_buffered(true);
	srv->watchdog_usec = notify_watchdog_usec();
	uv_timer_init(&srv->loop, &srv->tick);
	srv->tick.data = srv;
	uv_timer_start(&srv->tick, on_tick, 1000, 1000);
	if (srv->watchdog_usec > 0 && srv->watchdog_usec / 2 < 1000000)
		log_msg(LOG_LEVEL_WARN, "WatchdogSec below 2s: pings come once a "
			"second and may be late");
	uv_signal_init(&srv->loop, &srv->sig_hup);
	uv_signal_init(&srv->loop, &srv->sig_term);
	uv_signal_init(&srv->loop, &srv->sig_int);
	srv->sig_hup.data = srv->sig_term.data = srv->sig_int.data = srv;
	uv_signal_start(&srv->sig_hup, on_sighup, SIGHUP);
	uv_signal_start(&srv->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&srv->sig_int, on_stop_signal, SIGINT);

	log_msg(LOG_LEVEL_INFO, "greyhold %s ready: delay %" PRId64 "s, retry "
		"window %" PRId64 "s, max age %" PRId64 "s, %s store",
		PACKAGE_VERSION, srv->cfg->delay, srv->cfg->retry_window,
		srv->cfg->max_age, srv->be->ops->name);
	notify_send("READY=1\nSTATUS=ready");
	uv_run(&srv->loop, UV_RUN_DEFAULT);

	log_msg(LOG_LEVEL_INFO, "stopped");
	log_set_buffered(false);
	return 0;
}

void
server_free(struct server *srv)
{
	size_t i;

	if (srv == NULL)
		return;
	close_listeners(srv);
	uv_run(&srv->loop, UV_RUN_NOWAIT);
	for (i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].is_unix)
			unlink(srv->listeners[i].path);
	}
	uv_loop_close(&srv->loop);
	free(srv->listeners);
	whitelist_free(srv->wl);
	whitelist_free(srv->live_wl);
	config_free(srv->cfg);
	free(srv);
}
