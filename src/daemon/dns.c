/*
 * dns - lookups through a c-ares channel on the loop (dns_channel.c),
 * with a bounded answer cache (dns_cache.c) in front.
 *
 * A lookup (struct req) is the caller's side; a query (struct query) is
 * c-ares's.  They are apart because c-ares (1.18) cannot cancel one
 * query: when a lookup's own deadline passes first, it is answered
 * TEMPFAIL and its query is orphaned, still counted as outstanding
 * until c-ares lets go of it, and its late answer still fills the cache.
 * Every lookup has the same timeout, so the waiting list in start order
 * is also in deadline order and one timer serves them all.  A lookup
 * for a (type, name) already in flight joins that query rather than
 * sending another: the recipients of one message ask the same things
 * at the same moment.
 *
 * Nothing calls back a caller from inside dns_lookup() or from inside
 * c-ares: finished lookups go on the ready list, which a uv_check drains
 * after the loop's I/O (a uv_idle keeps the loop from blocking while the
 * list is not empty).  So callbacks may start lookups or close the
 * resolver without c-ares or this file being on the stack.
 *
 * Owner: the loop thread.  Handles are embedded here and in the
 * channel; dns_close() is the one close path, and the last close
 * callback (ours or the channel's) frees the resolver.
 */
#include "dns.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "dns_channel.h"
#include "dns_parse.h"

enum reason {
	REASON_ANSWER,		/* a server's answer, whatever it says */
	REASON_CACHE,
	REASON_TIMEOUT,
	REASON_OVERFLOW,
	REASON_LOCAL,		/* out of memory, closing */
};

struct query;

struct req {
	struct req *prev;
	struct req *next;
	struct query *q;	/* while waiting for c-ares */
	struct req *qnext;	/* the query's other lookups */
	dns_callback cb;
	void *arg;
	uint64_t started_ns;
	uint64_t deadline_ms;	/* on uv_now()'s clock */
	struct dns_result *res;	/* owned; NULL: status alone */
	enum dns_status status;
	enum reason reason;
};

struct query {
	struct dns_resolver *r;
	struct query *prev;	/* in flight, for lookups to join */
	struct query *next;
	struct req *reqs;	/* waiting for it; none once orphaned */
	enum dns_type type;
	char name[DNS_NAME_MAX + 1];
};

struct req_list {
	struct req *head;
	struct req *tail;
	size_t n;
};

struct dns_resolver {
	uv_loop_t *loop;
	struct dns_channel channel;
	struct dns_cache *cache;
	struct dns_cache_options cache_opts;
	struct dns_options o;
	struct metrics_dns own_metrics;
	struct metrics_dns *m;
	uv_timer_t deadline_timer;
	uv_check_t drain;
	uv_idle_t keep_awake;
	struct req_list waiting;
	struct req_list ready;
	struct query *queries;	/* in flight */
	unsigned outstanding;	/* c-ares queries, orphans included */
	unsigned handles;	/* ours, initialised and not yet closed */
	bool closing;
	bool channel_closed;
};

/* ---- lists ----------------------------------------------------------------- */

static void
list_append(struct req_list *l, struct req *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
	l->n++;
}

static void
list_remove(struct req_list *l, struct req *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
	l->n--;
}

/* ---- delivery ---------------------------------------------------------------- */

static void
noop_idle(uv_idle_t *h)
{
	(void)h;
}

static void drain_ready(uv_check_t *h);

static void
make_ready(struct dns_resolver *r, struct req *q)
{
	list_append(&r->ready, q);
	if (r->ready.n == 1 && !r->closing) {
		uv_check_start(&r->drain, drain_ready);
		uv_idle_start(&r->keep_awake, noop_idle);
	}
}

static void
count(struct dns_resolver *r, const struct req *q)
{
	struct metrics_dns *m = r->m;

	m->lookups++;
	metrics_dns_observe_latency(m, (uv_hrtime() - q->started_ns) / 1000);
	switch (q->reason) {
	case REASON_CACHE:
		m->cache_hits++;
		break;
	case REASON_TIMEOUT:
		m->timeouts++;
		break;
	case REASON_OVERFLOW:
		m->overflows++;
		break;
	case REASON_ANSWER:
		if (q->status == DNS_TEMPFAIL || q->status == DNS_PERMFAIL)
			m->failures++;
		break;
	case REASON_LOCAL:
		break;
	}
}

static void
deliver(struct dns_resolver *r, struct req *q)
{
	struct dns_result bare = {q->status, 0, 0, NULL};

	count(r, q);
	q->cb(q->arg, q->res != NULL ? q->res : &bare);
	free(q->res);
	free(q);
}

/*
 * Deliver what was ready when the check began; lookups their callbacks
 * start wait for the next turn, so a caller that keeps asking cannot
 * hold the loop here.
 */
static void
drain_ready(uv_check_t *h)
{
	struct dns_resolver *r = h->data;
	size_t n = r->ready.n;
	struct req *q;

	while (n-- > 0 && !r->closing && (q = r->ready.head) != NULL) {
		list_remove(&r->ready, q);
		deliver(r, q);
	}
	if (r->ready.n == 0 && !r->closing) {
		uv_check_stop(&r->drain);
		uv_idle_stop(&r->keep_awake);
	}
}

static void
maybe_free(struct dns_resolver *r)
{
	if (r->handles == 0 && r->channel_closed) {
		dns_cache_free(r->cache);
		free(r);
	}
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct dns_resolver *r = h->data;

	r->handles--;
	maybe_free(r);
}

static void
on_channel_closed(void *arg)
{
	struct dns_resolver *r = arg;

	r->channel_closed = true;
	maybe_free(r);
}

/* ---- lookups -------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *h);

static void
query_join(struct query *qy, struct req *q)
{
	q->q = qy;
	q->qnext = qy->reqs;
	qy->reqs = q;
}

static void
query_leave(struct req *q)
{
	struct req **pp = &q->q->reqs;

	while (*pp != q)
		pp = &(*pp)->qnext;
	*pp = q->qnext;
	q->q = NULL;
	q->qnext = NULL;
}

static struct query *
query_in_flight(struct dns_resolver *r, enum dns_type type, const char *name)
{
	struct query *qy;

	for (qy = r->queries; qy != NULL; qy = qy->next) {
		if (qy->type == type && strcmp(qy->name, name) == 0)
			return qy;
	}
	return NULL;
}

static void
query_unlink(struct dns_resolver *r, struct query *qy)
{
	if (qy->prev != NULL)
		qy->prev->next = qy->next;
	else
		r->queries = qy->next;
	if (qy->next != NULL)
		qy->next->prev = qy->prev;
}

static void
arm_deadline(struct dns_resolver *r)
{
	uint64_t now = uv_now(r->loop);
	struct req *head = r->waiting.head;

	if (head == NULL || r->closing) {
		uv_timer_stop(&r->deadline_timer);
		return;
	}
	uv_timer_start(&r->deadline_timer, on_deadline,
		       head->deadline_ms > now ? head->deadline_ms - now : 0, 0);
}

static void
on_deadline(uv_timer_t *h)
{
	struct dns_resolver *r = h->data;
	uint64_t now = uv_now(r->loop);
	struct req *q;

	while ((q = r->waiting.head) != NULL && q->deadline_ms <= now) {
		list_remove(&r->waiting, q);
		query_leave(q);	/* c-ares keeps the query, maybe orphaned */
		q->status = DNS_TEMPFAIL;
		q->reason = REASON_TIMEOUT;
		make_ready(r, q);
	}
	arm_deadline(r);
}

static void
update_gauges(struct dns_resolver *r)
{
	struct dns_cache_stats st;

	dns_cache_stats(r->cache, &st);
	r->m->cache_entries = st.entries;
	r->m->outstanding = r->outstanding;
}

/* c-ares is done with a query: cache what it learnt, answer the lookup. */
static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *qy = arg;
	struct dns_resolver *r = qy->r;
	struct req *q;
	struct dns_parsed p;
	int rc;

	(void)timeouts;
	r->outstanding--;
	query_unlink(r, qy);
	rc = dns_parse_answer(qy->type, status, abuf, alen, &p);
	if (rc == 0 && p.cacheable && !r->closing) {
		/* The caller sees the TTL the cache keeps it for. */
		p.res->ttl = dns_cache_ttl_for(&r->cache_opts, p.res, p.soa_ttl);
		dns_cache_put(r->cache, qy->type, qy->name, p.res, p.soa_ttl,
			      uv_now(r->loop));
	}
	update_gauges(r);
	/* Each lookup gets its own copy: each is freed after its callback. */
	while ((q = qy->reqs) != NULL) {
		query_leave(q);
		list_remove(&r->waiting, q);
		q->status = p.res != NULL ? p.res->status : DNS_TEMPFAIL;
		q->reason = p.res == NULL ? REASON_LOCAL :
			    p.timeout ? REASON_TIMEOUT : REASON_ANSWER;
		if (qy->reqs == NULL) {
			q->res = p.res;
			p.res = NULL;
		} else if (p.res != NULL &&
			   dns_cache_clone(p.res, &q->res) < 0) {
			q->status = DNS_TEMPFAIL;
			q->reason = REASON_LOCAL;
		}
		make_ready(r, q);
	}
	free(p.res);
	free(qy);
}

/* Names c-ares would read escapes in, or no name could hold. */
static bool
plausible_name(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	for (; *p != '\0'; p++) {
		if (*p <= ' ' || *p == '\\' || *p >= 0x7f)
			return false;
	}
	return true;
}

int
dns_lookup(struct dns_resolver *r, enum dns_type type, const char *name,
	   dns_callback cb, void *arg)
{
	struct dns_result hit;
	struct query *joined;
	struct query *qy;
	struct req *q;

	if (r->closing)
		return -ESHUTDOWN;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	qy = malloc(sizeof(*qy));
	if (qy == NULL || !plausible_name(name) ||
	    dns_cache_normalize(name, qy->name) < 0) {
		int rc = qy == NULL ? -ENOMEM : -EINVAL;

		free(qy);
		free(q);
		return rc;
	}
	q->cb = cb;
	q->arg = arg;
	q->started_ns = uv_hrtime();
	q->status = DNS_TEMPFAIL;
	q->reason = REASON_LOCAL;
	if (dns_cache_get(r->cache, type, qy->name, uv_now(r->loop), &hit) == 0) {
		free(qy);
		if (dns_cache_clone(&hit, &q->res) == 0)
			q->reason = REASON_CACHE;
		update_gauges(r);
		make_ready(r, q);
		return 0;
	}
	q->deadline_ms = uv_now(r->loop) + r->o.timeout_ms;
	joined = query_in_flight(r, type, qy->name);
	if (joined != NULL) {
		free(qy);
		query_join(joined, q);
		list_append(&r->waiting, q);
		if (r->waiting.head == q)
			arm_deadline(r);
		return 0;
	}
	if (r->outstanding >= r->o.max_outstanding) {
		free(qy);
		q->reason = REASON_OVERFLOW;
		make_ready(r, q);
		return 0;
	}
	qy->r = r;
	qy->reqs = NULL;
	qy->type = type;
	qy->prev = NULL;
	qy->next = r->queries;
	if (r->queries != NULL)
		r->queries->prev = qy;
	r->queries = qy;
	query_join(qy, q);
	list_append(&r->waiting, q);
	r->outstanding++;
	r->m->queries_sent++;
	/* c-ares may call on_answer before returning (no server, no
	   socket); on_answer only queues, so that is safe here. */
	dns_channel_query(&r->channel, qy->name, (int)type, on_answer, qy);
	update_gauges(r);
	if (r->waiting.head == q)
		arm_deadline(r);
	return 0;
}

/* ---- open and close ------------------------------------------------------------ */

void
dns_options_from_config(struct dns_options *o, const struct config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->servers = cfg->resolver.items;
	o->nservers = cfg->resolver.n;
	o->timeout_ms = (uint32_t)cfg->dns_timeout * 1000;
	o->budget_ms = (uint32_t)cfg->dns_budget * 1000;
	o->cache_entries = cfg->dns_cache_size;
	o->max_outstanding = cfg->dns_max_outstanding;
}

static void
init_handles(struct dns_resolver *r)
{
	uv_timer_init(r->loop, &r->deadline_timer);
	r->deadline_timer.data = r;
	uv_check_init(r->loop, &r->drain);
	r->drain.data = r;
	uv_idle_init(r->loop, &r->keep_awake);
	r->keep_awake.data = r;
	r->handles = 3;
}

int
dns_open(struct dns_resolver **out, uv_loop_t *loop,
	 const struct dns_options *o, struct metrics_dns *m, char *err,
	 size_t errsz)
{
	struct dns_cache_options co;
	struct dns_resolver *r;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	r->loop = loop;
	r->o = *o;
	r->o.servers = NULL;	/* read once here, not kept */
	if (r->o.max_outstanding == 0)
		r->o.max_outstanding = 1;
	r->m = m != NULL ? m : &r->own_metrics;
	dns_cache_default_options(&co);
	co.max_entries = o->cache_entries;
	co.max_bytes = o->cache_entries * DNS_CACHE_BYTES_PER_ENTRY;
	if (uv_random(NULL, NULL, &co.seed, sizeof(co.seed), 0, NULL) < 0)
		co.seed = uv_hrtime();
	r->cache_opts = co;
	rc = dns_cache_new(&r->cache, &co);
	if (rc < 0) {
		snprintf(err, errsz, "out of memory");
		free(r);
		return rc;
	}
	rc = dns_channel_open(&r->channel, loop, o->servers, o->nservers,
			      o->timeout_ms, err, errsz);
	if (rc < 0) {
		dns_cache_free(r->cache);
		free(r);
		return rc;
	}
	init_handles(r);
	*out = r;
	return 0;
}

void
dns_close(struct dns_resolver *r)
{
	struct req *q;

	if (r == NULL || r->closing)
		return;
	r->closing = true;
	/* c-ares answers every pending query (ARES_EDESTRUCTION), which
	   moves its lookup to the ready list, and closes its sockets. */
	dns_channel_close(&r->channel, on_channel_closed, r);
	while ((q = r->waiting.head) != NULL) {
		list_remove(&r->waiting, q);
		if (q->q != NULL)
			query_leave(q);
		q->status = DNS_TEMPFAIL;
		q->reason = REASON_LOCAL;
		make_ready(r, q);
	}
	while ((q = r->ready.head) != NULL) {
		list_remove(&r->ready, q);
		deliver(r, q);
	}
	uv_close((uv_handle_t *)&r->deadline_timer, on_handle_closed);
	uv_close((uv_handle_t *)&r->drain, on_handle_closed);
	uv_close((uv_handle_t *)&r->keep_awake, on_handle_closed);
}

uint32_t
dns_budget_ms(const struct dns_resolver *r)
{
	return r->o.budget_ms;
}

const struct metrics_dns *
dns_metrics(const struct dns_resolver *r)
{
	return r->m;
}
