/*
 * evidence - SPF and DNS lists for one request, on the loop.  The contract
 * is in evidence.h.
 *
 * SPF runs one question at a time (spf_step()): the real evaluation, and
 * after a pass the probe for a documentation address.  The list lookups
 * run beside it.  Each outstanding lookup holds the request alive; the
 * budget timer ends the wait, not the lookups, so the request is freed
 * when the last of them has answered and the timer is closed.
 */
#include "evidence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "dnslist.h"
#include "spf.h"

/* Lists consulted per request at most (dnswl and dnsbl together). */
#define EVIDENCE_MAX_LISTS CONFIG_MAX_DNS_LISTS

enum spf_phase { PHASE_NONE, PHASE_REAL, PHASE_PROBE, PHASE_DONE };

struct list_query {
	struct evidence *e;
	/* Zone (as logged: "dnswl (ZONE)", without ":MIN") and least last
	   octet, copied: a reload frees the config. */
	struct dnslist_spec spec;
	bool allow;
};

struct evidence {
	uv_timer_t budget;
	bool timer_closed;
	unsigned outstanding;		/* lookups not yet answered */
	bool reported, cancelled;
	evidence_cb cb;
	void *arg;
	struct dns_resolver *dns;

	enum spf_phase phase;
	spf_t *spf;
	struct spf_query q, probe;
	enum spf_result real;
	bool broad;			/* the real pass's term was too broad */
	char sender[SPF_SENDER_MAX + 1];
	char helo[DNS_NAME_MAX + 1];
	char receiver[DNS_NAME_MAX + 1];
	char spf_domain[DNS_NAME_MAX + 1];
	char authorised[DNS_NAME_MAX + 1];

	struct list_query lists[EVIDENCE_MAX_LISTS];
	unsigned lists_pending;
	unsigned lists_asked;
	struct evidence_list list_answers[EVIDENCE_MAX_LISTS];

	struct evidence_report rep;
};

static void maybe_free(struct evidence *e);

static void
on_timer_closed(uv_handle_t *h)
{
	struct evidence *e = h->data;

	e->timer_closed = true;
	maybe_free(e);
}

static void
maybe_free(struct evidence *e)
{
	if (!(e->reported || e->cancelled) || e->outstanding > 0)
		return;
	if (!e->timer_closed) {
		if (!uv_is_closing((uv_handle_t *)&e->budget))
			uv_close((uv_handle_t *)&e->budget, on_timer_closed);
		return;
	}
	spf_free(e->spf);
	free(e);
}

/* Hand what is known to the caller, once. */
static void
report(struct evidence *e, bool budget_spent)
{
	if (e->reported || e->cancelled)
		return;
	e->reported = true;
	uv_timer_stop(&e->budget);
	e->rep.budget_spent = budget_spent;
	e->rep.ev.spf = e->phase == PHASE_DONE ? e->real : SPF_NONE;
	e->rep.n_lists = e->lists_asked;
	memcpy(e->rep.lists, e->list_answers, sizeof(e->rep.lists));
	if (e->rep.ev.spf_proven) {
		e->rep.ev.spf_domain = e->spf_domain;
		e->rep.ev.spf_authorised_by =
			e->authorised[0] != '\0' ? e->authorised : NULL;
	}
	e->cb(e->arg, &e->rep);
}

static void
maybe_report(struct evidence *e)
{
	if ((e->phase == PHASE_NONE || e->phase == PHASE_DONE) &&
	    e->lists_pending == 0)
		report(e, false);
}

static void
on_budget(uv_timer_t *t)
{
	report(t->data, true);
	maybe_free(t->data);
}

/* Nothing was asked (no rule needs DNS, or nothing could be asked). */
static void
on_nothing_asked(uv_timer_t *t)
{
	report(t->data, false);
	maybe_free(t->data);
}

/* ---- SPF ------------------------------------------------------------------ */

static void on_spf_answer(void *arg, const struct dns_result *res);

/* The probe's record of which domain authorised the real pass is kept. */
static void
spf_finished(struct evidence *e)
{
	enum spf_result r = spf_result(e->spf);
	const char *by;

	if (e->phase == PHASE_REAL) {
		e->real = r;
		snprintf(e->rep.spf_why, sizeof(e->rep.spf_why), "%s",
			 spf_why(e->spf));
		by = spf_authorised_by(e->spf);
		e->broad = spf_too_broad(e->spf);
		snprintf(e->authorised, sizeof(e->authorised), "%s",
			 by != NULL ? by : "");
		spf_free(e->spf);
		e->spf = NULL;
		if (r == SPF_PASS && spf_query_probe(&e->probe, &e->q) &&
		    spf_new(&e->spf, &e->probe) == 0) {
			e->phase = PHASE_PROBE;
			return;
		}
		e->phase = PHASE_DONE;
		return;
	}
	e->rep.ev.spf_proven = spf_proven(e->real, r) && !e->broad;
	spf_free(e->spf);
	e->spf = NULL;
	e->rep.probed = true;
	e->rep.probe = r;
	e->phase = PHASE_DONE;
}

/*
 * Advance the current evaluation with answer (NULL: first step, or a
 * lookup that could not be started) until it waits for DNS or is done.
 */
static void
spf_advance(struct evidence *e, const struct dns_result *answer)
{
	enum dns_type qtype;
	char qname[DNS_NAME_MAX + 1];

	while (e->phase == PHASE_REAL || e->phase == PHASE_PROBE) {
		if (spf_step(e->spf, answer, &qtype, qname) == SPF_STEP_DONE) {
			spf_finished(e);
			answer = NULL;
			continue;
		}
		if (e->reported || e->cancelled) {
			/* Nobody waits for the rest: stop asking. */
			spf_free(e->spf);
			e->spf = NULL;
			e->phase = PHASE_DONE;
			return;
		}
		if (dns_lookup(e->dns, qtype, qname, on_spf_answer, e) == 0) {
			e->outstanding++;
			return;
		}
		answer = NULL;	/* not asked: a failed lookup (temperror) */
	}
}

static void
on_spf_answer(void *arg, const struct dns_result *res)
{
	struct evidence *e = arg;

	e->outstanding--;
	spf_advance(e, res);
	maybe_report(e);
	maybe_free(e);
}

/* The domain SPF checks: the sender's, or the HELO name for <>. */
static void
spf_start(struct evidence *e, const struct evidence_input *in,
	  const struct addr *client)
{
	const char *at = strrchr(e->sender, '@');

	snprintf(e->spf_domain, sizeof(e->spf_domain), "%s",
		 at != NULL ? at + 1 : e->helo);
	memset(&e->q, 0, sizeof(e->q));
	e->q.client = *client;
	e->q.sender = e->sender;
	e->q.helo = e->helo[0] != '\0' ? e->helo : NULL;
	e->q.receiver = e->receiver[0] != '\0' ? e->receiver : NULL;
	e->q.now = in->now;
	if (spf_query_invalid(&e->q) != NULL || spf_new(&e->spf, &e->q) < 0)
		return;
	e->phase = PHASE_REAL;
	spf_advance(e, NULL);
}

/* ---- DNS lists ------------------------------------------------------------ */

static void
on_list_answer(void *arg, const struct dns_result *res)
{
	struct list_query *lq = arg;
	struct evidence *e = lq->e;
	struct evidence_list *answer;
	bool listed = false;

	e->outstanding--;
	e->lists_pending--;
	if (res->status == DNS_OK)
		for (size_t i = 0; i < res->n && !listed; i++)
			listed = res->rr[i].len == 4 &&
				 dnslist_answer_counts(res->rr[i].data,
						       lq->allow,
						       lq->spec.min_last);
	if (listed && lq->allow && e->rep.dnswl_zone == NULL) {
		e->rep.ev.dnswl = true;
		e->rep.dnswl_zone = lq->spec.zone;
	} else if (listed && !lq->allow && e->rep.dnsbl_zone == NULL) {
		e->rep.ev.dnsbl = true;
		e->rep.dnsbl_zone = lq->spec.zone;
	}
	answer = &e->list_answers[lq - e->lists];
	answer->answered = true;
	answer->status = res->status;
	answer->listed = listed;
	maybe_report(e);
	maybe_free(e);
}

static void
list_start(struct evidence *e, const struct addr *a, const char *spec,
	   bool allow)
{
	struct list_query *lq;
	char name[DNSLIST_QNAME_SIZE];

	if (e->lists_pending >= EVIDENCE_MAX_LISTS)
		return;
	lq = &e->lists[e->lists_pending];
	/* config.c checked the setting with the same rules: a spec that
	   fails here (or a name too long for this client) is skipped. */
	if (dnslist_parse(&lq->spec, spec, allow) < 0 ||
	    dnslist_query_name(name, sizeof(name), a, lq->spec.zone) < 0)
		return;
	lq->e = e;
	lq->allow = allow;
	if (dns_lookup(e->dns, DNS_T_A, name, on_list_answer, lq) == 0) {
		e->outstanding++;
		e->lists_pending++;
		/* Its answer comes later, from the loop (dns.h). */
		e->list_answers[e->lists_asked++] = (struct evidence_list){
			.zone = lq->spec.zone, .allow = allow};
	}
}

static void
lists_start(struct evidence *e, const struct evidence_opts *o,
	    const struct addr *client)
{
	for (size_t i = 0; o->dnswl != NULL && i < o->dnswl->n; i++)
		list_start(e, client, o->dnswl->items[i], true);
	for (size_t i = 0; o->dnsbl != NULL && i < o->dnsbl->n; i++)
		list_start(e, client, o->dnsbl->items[i], false);
}

/* ---- requests --------------------------------------------------------------- */

int
evidence_start(struct dns_resolver *dns, const struct evidence_opts *o,
	       const struct evidence_input *in, evidence_cb cb, void *arg,
	       struct evidence **out)
{
	struct evidence *e = calloc(1, sizeof(*e));
	struct addr client;
	int rc;

	*out = NULL;
	if (e == NULL)
		return -ENOMEM;
	e->dns = dns;
	e->cb = cb;
	e->arg = arg;
	e->budget.data = e;
	rc = uv_timer_init(o->loop, &e->budget);
	if (rc < 0) {
		free(e);
		return rc;
	}
	snprintf(e->sender, sizeof(e->sender), "%s", in->sender);
	snprintf(e->helo, sizeof(e->helo), "%s", in->helo);
	snprintf(e->receiver, sizeof(e->receiver), "%s",
		 o->receiver != NULL ? o->receiver : "");
	uv_timer_start(&e->budget, on_budget, o->budget_ms, 0);
	/* Without a client address there is nothing to ask about. */
	if (addr_parse(&client, in->client_address,
		       strlen(in->client_address)) == 0) {
		if (o->spf)
			spf_start(e, in, &client);
		lists_start(e, o, &client);
	}
	/* Never call back from here: an answer with nothing to ask waits a
	   turn of the loop, like every other. */
	if ((e->phase == PHASE_NONE || e->phase == PHASE_DONE) &&
	    e->lists_pending == 0)
		uv_timer_start(&e->budget, on_nothing_asked, 0, 0);
	*out = e;
	return 0;
}

void
evidence_cancel(struct evidence *e)
{
	if (e == NULL)
		return;
	e->cancelled = true;
	uv_timer_stop(&e->budget);
	maybe_free(e);
}
