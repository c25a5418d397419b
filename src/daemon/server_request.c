/*
 * server_request - the request path on the loop thread.
 *
 * parse -> early answers (not RCPT, authenticated, static or live
 * whitelist: DUNNO at once) -> key (triplet, keyed hash with privacy) ->
 * the backend's fast path or the store -> reply, log line, counters.
 * Answers are put in the request's slot; server_conn.c sends them in
 * request order.
 *
 * Ownership: a slot belongs to its conn; while the store holds its job
 * (conn->in_store), the conn is not freed even if closed.
 */
#include "server_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server_conn.h"
#include "server_int.h"
#include "server_smart.h"

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

void
request_answer_now(struct slot *s, enum metrics_result result,
		   const char *head, const char *extra)
{
	s->reply_len = answer_dunno(s->reply, sizeof(s->reply));
	s->done = true;
	count_answer(s->conn->srv, s, result);
	if (head != NULL)
		declog_head(&s->lf, head, extra);
}

/*
 * Count and log a decided job: one line per decision, queued as a record
 * for the log writer (declog.h), which formats it off the loop.
 */
static void
log_decision(struct server *srv, struct slot *s)
{
	const struct store_job *job = &s->job;
	enum metrics_result result = metrics_result_for(&job->verdict, job->err);
	char extra[IDENT_MAX_NAME + DNSLIST_ZONE_MAX + 16];
	const char *shown = NULL;

	/* A pass decided by a name or SPF identity says which one. */
	if (job->err == 0 && job->verdict.action == ENGINE_PASS &&
	    job->matched > 0 && job->matched <= job->n_more) {
		if (result != RESULT_PASS_AWL)
			result = RESULT_PASS_POOL;
		snprintf(extra, sizeof(extra), "identity=%s",
			 s->ident[job->matched - 1]);
		shown = extra;
	} else if (job->err == 0 && job->verdict.action == ENGINE_DEFER &&
		   s->dnsbl[0] != '\0') {
		snprintf(extra, sizeof(extra), "dnsbl=%s", s->dnsbl);
		shown = extra;
	}
	count_answer(srv, s, result);
	declog_verdict(&s->lf, &job->verdict, job->err, srv->cfg->failure_action,
		       shown);
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

/*
 * The head of the log line for a whitelisted request, or NULL if it is
 * not whitelisted; *result says which list matched.
 */
static const char *
whitelisted(const struct server *srv, const struct policy_request *r,
	    const struct addr *client, enum metrics_result *result)
{
	const whitelist_t *lists[2] = {srv->wl, srv->live_wl};
	static const char *const client_reason[2] = {
		"action=pass, reason=client whitelist",
		"action=pass, reason=client whitelist (live)"};
	static const char *const rcpt_reason[2] = {
		"action=pass, reason=recipient whitelist",
		"action=pass, reason=recipient whitelist (live)"};
	static const enum metrics_result client_result[2] = {
		RESULT_PASS_WL_CLIENT, RESULT_PASS_LIVE_CLIENT};
	static const enum metrics_result rcpt_result[2] = {
		RESULT_PASS_WL_RECIPIENT, RESULT_PASS_LIVE_RECIPIENT};

	for (int i = 0; i < 2; i++) {
		if (lists[i] != NULL &&
		    whitelist_match_client_addr(lists[i], client,
						r->client_name.ptr,
						r->client_name.len)) {
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
	const char *head;
	enum metrics_result result;
	struct addr client;

	if (!policy_str_eq(r->request, "smtpd_access_policy")) {
		char shown[80], why[120];

		snprintf(why, sizeof(why), "unknown request=%s",
			 log_escape(shown, sizeof(shown), r->request.ptr,
				    r->request.len, 40));
		request_protocol_error(c, why);
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
		request_answer_now(s, RESULT_DUNNO_NOT_RCPT, NULL, NULL);
		return true;
	case ANSWER_AUTHENTICATED:
		declog_fields_set(&s->lf, r);
		request_answer_now(s, RESULT_DUNNO_AUTHENTICATED,
				   "action=pass, reason=authenticated", NULL);
		return true;
	case ANSWER_GREYLIST:
		break;
	}
	declog_fields_set(&s->lf, r);
	/* Parsed once for the whitelists and the key; ADDR_NONE if not. */
	(void)addr_parse(&client, r->client_address.ptr, r->client_address.len);
	head = whitelisted(srv, r, &client, &result);
	if (head != NULL) {
		request_answer_now(s, result, head, NULL);
		return true;
	}
	answer_rcpt_domain(s->rcpt_domain, sizeof(s->rcpt_domain), r);
	policy_str_copy(s->instance, sizeof(s->instance), r->instance);
	triplet_build_addr(&s->job.key, &client, r->client_address.ptr,
			   r->client_address.len, r->sender.ptr, r->sender.len,
			   r->recipient.ptr, r->recipient.len, &srv->topts);
	if (srv->privacy_on)
		privacy_apply(&srv->privacy, &s->job.key);
	s->job.n_more = 0;
	s->job.delay = 0;
	s->job.matched = 0;
	s->dnsbl[0] = '\0';
	s->job.now = (int64_t)time(NULL);
	if (srv->ident != NULL)
		smart_request(srv, s, r);
	else
		request_decide(srv, s, true);
	return true;
}

enum request_try
request_try_pass(struct server *srv, struct slot *s)
{
	bool answered;

	if (srv->be->ops->try_decide == NULL)
		return TRY_NO;
	/* No stale verdict may pass for the hint a declining peek leaves. */
	s->job.verdict.action = ENGINE_DEFER;
	answered = srv->be->ops->try_decide(srv->be, &s->job);
	if (s->job.verdict.action != ENGINE_PASS)
		return TRY_NO;
	if (!answered)
		return TRY_PASS_WRITES;
	answer_slot(srv, s);
	return TRY_ANSWERED;
}

void
request_decide(struct server *srv, struct slot *s, bool fast)
{
	if (fast && srv->be->ops->try_decide != NULL &&
	    srv->be->ops->try_decide(srv->be, &s->job)) {
		answer_slot(srv, s);
		return;
	}
	s->conn->in_store++;
	srv->be->ops->submit(srv->be, &s->job);
}

void
request_protocol_error(struct conn *c, const char *why)
{
	time_t now = time(NULL);

	c->srv->m.protocol_errors++;
	if (!log_ratelimit_allow(&c->srv->proto_log, now, 1))
		return;
	log_msg(LOG_LEVEL_WARN, "%s: malformed policy request (%s), closing "
		"connection", c->peer, why);
}

void
request_process_input(struct conn *c)
{
	while (c->roff < c->rlen && c->inflight < SERVER_MAX_INFLIGHT &&
	       !c->closing) {
		const struct policy_request *r;
		size_t used;
		int rc;

		rc = policy_feed(&c->parser, c->rbuf + c->roff, c->rlen - c->roff,
				 &used, &r);
		c->roff += used;
		if (rc < 0) {
			request_protocol_error(c, c->parser.error);
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
	/* Unparsed input left: too many unanswered, wait for the client. */
	conn_set_reading(c, c->roff >= c->rlen);
}

void
request_job_done(struct store_job *job, void *arg)
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

void
request_live_whitelist(whitelist_t *wl, void *arg)
{
	struct server *srv = arg;

	whitelist_free(srv->live_wl);
	srv->live_wl = wl;
	srv->m.live_whitelist_entries = whitelist_size(wl);
	log_msg(LOG_LEVEL_INFO, "live whitelist loaded: %zu entries",
		whitelist_size(wl));
}
