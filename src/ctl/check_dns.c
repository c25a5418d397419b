/*
 * check_dns - greyholdctl check's DNS evidence, gathered by the daemon's
 * own code: evidence.c (SPF and its probe, the DNS lists, within
 * dns_budget) on dns.c's resolver, both linked from libgreyhold_dns.a,
 * on a libuv loop private to this call.  The only greyholdctl file that
 * sees libuv.
 *
 * The loop turns until the evidence callback has run (the evidence's
 * budget timer bounds that by dns_budget), then the resolver is closed
 * outside any callback (its outstanding lookups answer at once and the
 * evidence frees itself) and the loop runs until every handle is closed.
 *
 * Ownership: everything the report points to is copied into the
 * caller's check_evidence before the callback returns.
 */
#include "check_dns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "dns.h"
#include "evidence.h"

struct gather {
	struct check_evidence *out;
	bool done;
};

static void
copy_lists(struct check_evidence *out, const struct evidence_report *rep)
{
	out->n_lists = rep->n_lists;
	for (size_t i = 0; i < rep->n_lists; i++) {
		const struct evidence_list *l = &rep->lists[i];
		struct check_list *c = &out->lists[i];

		snprintf(c->zone, sizeof(c->zone), "%s", l->zone);
		c->allow = l->allow;
		c->answered = l->answered;
		c->status = l->status;
		c->listed = l->listed;
	}
}

static void
on_evidence(void *arg, const struct evidence_report *rep)
{
	struct gather *g = arg;
	struct check_evidence *out = g->out;
	const struct smart_evidence *ev = &rep->ev;

	g->done = true;
	out->ev = *ev;
	out->ev.spf_domain = NULL;
	out->ev.spf_authorised_by = NULL;
	if (ev->spf_domain != NULL) {
		snprintf(out->spf_domain, sizeof(out->spf_domain), "%s",
			 ev->spf_domain);
		out->ev.spf_domain = out->spf_domain;
	}
	if (ev->spf_authorised_by != NULL) {
		snprintf(out->authorised_by, sizeof(out->authorised_by), "%s",
			 ev->spf_authorised_by);
		out->ev.spf_authorised_by = out->authorised_by;
	}
	snprintf(out->spf_why, sizeof(out->spf_why), "%s", rep->spf_why);
	out->probed = rep->probed;
	out->probe = rep->probe;
	snprintf(out->dnswl_zone, sizeof(out->dnswl_zone), "%s",
		 rep->dnswl_zone != NULL ? rep->dnswl_zone : "");
	snprintf(out->dnsbl_zone, sizeof(out->dnsbl_zone), "%s",
		 rep->dnsbl_zone != NULL ? rep->dnsbl_zone : "");
	out->budget_spent = rep->budget_spent;
	copy_lists(out, rep);
}

/* Ask, and turn the loop until the answer is in. */
static int
ask(uv_loop_t *loop, struct dns_resolver *dns, const struct config *cfg,
    const struct check_dns_input *in, struct check_evidence *out)
{
	struct evidence_opts o = {
		.loop = loop,
		.spf = out->spf_wanted,
		.receiver = in->receiver,
		.dnswl = &cfg->dnswl,
		.dnsbl = &cfg->dnsbl,
		.budget_ms = (uint32_t)(cfg->dns_budget * 1000),
	};
	struct evidence_input ein = {
		.client_address = in->client_address,
		.sender = in->sender,
		.helo = in->helo,
		.now = in->now,
	};
	struct gather g = {out, false};
	struct evidence *e;
	int rc;

	rc = evidence_start(dns, &o, &ein, on_evidence, &g, &e);
	if (rc < 0) {
		snprintf(out->why_not, sizeof(out->why_not), "the evidence "
			 "could not be started: %s", strerror(-rc));
		return 0;
	}
	out->asked = true;
	/* The budget timer keeps the loop alive until the answer. */
	while (!g.done && uv_run(loop, UV_RUN_ONCE) != 0)
		;
	if (!g.done) {
		snprintf(out->why_not, sizeof(out->why_not), "no answer");
		out->asked = false;
	}
	return 0;
}

int
check_dns_gather(const struct config *cfg, const struct check_dns_input *in,
		 struct check_evidence *out)
{
	struct smart_rules rules = {cfg->name_identity, cfg->spf_identity,
				    cfg->trust_spf_aligned};
	struct dns_options o;
	struct dns_resolver *dns;
	uv_loop_t loop;
	int rc;

	memset(out, 0, sizeof(*out));
	/* The rules that read SPF, as the daemon asks for it. */
	out->spf_wanted = smart_rules_need_spf(&rules);
	if (!out->spf_wanted && cfg->dnswl.n == 0 && cfg->dnsbl.n == 0) {
		snprintf(out->why_not, sizeof(out->why_not), "no rule reads "
			 "SPF and no DNS list is configured");
		return 0;
	}
	rc = uv_loop_init(&loop);
	if (rc < 0)
		return rc;
	dns_options_from_config(&o, cfg);
	rc = dns_open(&dns, &loop, &o, NULL, out->why_not,
		      sizeof(out->why_not));
	if (rc == 0) {
		rc = ask(&loop, dns, cfg, in, out);
		dns_close(dns);
	} else {
		rc = 0;		/* the daemon decides without DNS too */
	}
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) < 0)
		return -EBUSY;
	return rc;
}

const char *
check_list_answer(const struct check_list *l)
{
	if (!l->answered)
		return "no answer within dns_budget";
	if (l->listed)
		return l->allow ? "vouches" : "listed";
	switch (l->status) {
	case DNS_OK:
		return "not listed (an answer that does not count)";
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return "not listed";
	case DNS_TEMPFAIL:
		return "failed (timeout, SERVFAIL or refused)";
	case DNS_PERMFAIL:
		return "failed (refused or malformed answer)";
	}
	return "?";
}
