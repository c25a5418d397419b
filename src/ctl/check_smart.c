/*
 * check_smart - what the daemon does with a request that reached
 * greylisting (server_request.c, server_smart.c), replayed by check on
 * copies of the records, with the daemon's own functions:
 *
 *   1. smart_assess() without evidence: the identities a verified name
 *      aligned with its sender gives; decide_request() over every
 *      identity's records.  A pass that writes nothing is the daemon's
 *      read-only fast path: answered without DNS.
 *   2. Otherwise the DNS evidence (check_dns.c: the daemon's evidence.c
 *      and resolver), unless --no-dns; smart_assess() with it.  A
 *      trusted sender (trusted-spf, dnswl) passes; a client a blocklist
 *      lists gets dnsbl_delay (job_params()); decide_request() over the
 *      identities decides.
 *
 * The rules exist once, in smart.c and decide.c; this file only gathers
 * their inputs and keeps what they said.  The sentences explaining trust
 * and the name identity read the same outcome; they decide nothing.
 *
 * The request's strings must be NUL-terminated (check builds them from
 * its arguments).
 */
#include "check_smart.h"

#include <stdio.h>
#include <string.h>

#include "job.h"

/* The identities of job into cs, their keys hashed like the daemon's. */
static void
take_identities(const struct ctl *ctl, const struct store_job *job,
		struct check_smart *cs)
{
	const struct engine_params p = job_params(job, &ctl->params);

	cs->n = job_ids(job);
	for (size_t i = 0; i < cs->n; i++) {
		struct check_ident *ci = &cs->id[i];
		const struct triplet_key *k = job_id_key(job, i);

		memset(ci, 0, sizeof(*ci));
		ci->key.plain = *k;
		store_form(ctl, &ci->key);
		ci->awl = job_id_awl(job, i, &p);
		if (i == 0 || identity_shown(ci->label, sizeof(ci->label),
					     k->client, k->client_len) == NULL)
			snprintf(ci->label, sizeof(ci->label), "network");
	}
}

/*
 * Read every identity's records and decide, as the store would: true in
 * *writes when the decision would write (the fast path declines it).
 */
static int
decide_identities(struct ctl *ctl, const struct store_job *job,
		  struct check_smart *cs, bool *writes)
{
	const struct engine_params p = job_params(job, &ctl->params);
	struct decide_in in;
	struct decide_out out;

	take_identities(ctl, job, cs);
	in.n = cs->n;
	for (size_t i = 0; i < cs->n; i++) {
		struct check_ident *ci = &cs->id[i];
		const struct triplet_key *k = &ci->key.stored;

		if (ci->awl &&
		    lookup(ctl, DB_CLIENTS, k->client, k->client_len,
			   &ci->client, &ci->have_client) != 0)
			return EXIT_ERROR;
		if (lookup(ctl, DB_TRIPLETS, k->key, k->key_len, &ci->triplet,
			   &ci->have_triplet) != 0)
			return EXIT_ERROR;
		in.id[i].awl = ci->awl;
		in.id[i].client = ci->have_client ? &ci->client : NULL;
		in.id[i].triplet = ci->have_triplet ? &ci->triplet : NULL;
	}
	*writes = decide_request(&in, job->now, &p, &out);
	cs->decided = true;
	cs->verdict = out.verdict;
	cs->matched = out.matched;
	cs->delay = p.delay;
	return 0;
}

static const char *
text_of(struct policy_str s)
{
	return s.ptr != NULL ? s.ptr : "";
}

static void
gather(struct ctl *ctl, const struct policy_request *r, const char *receiver,
       struct check_smart *cs)
{
	struct check_dns_input in = {
		.client_address = text_of(r->client_address),
		.sender = text_of(r->sender),
		.helo = text_of(r->helo_name),
		.receiver = receiver,
		.now = ctl->now,
	};

	if (cs->no_dns) {
		memset(&cs->dns, 0, sizeof(cs->dns));
		snprintf(cs->dns.why_not, sizeof(cs->dns.why_not), "--no-dns");
		return;
	}
	if (check_dns_gather(ctl->cfg, &in, &cs->dns) < 0)
		snprintf(cs->dns.why_not, sizeof(cs->dns.why_not),
			 "the event loop could not run");
}

int
check_smart_run(struct ctl *ctl, const struct policy_request *r,
		const char *receiver, struct check_smart *cs)
{
	static const struct smart_evidence none;
	struct store_job job;
	bool writes;
	int rc;

	if (open_ident(ctl) < 0)
		return EXIT_ERROR;
	cs->rules.name_identity = ctl->cfg->name_identity;
	cs->rules.spf_identity = ctl->cfg->spf_identity;
	cs->rules.trust_spf_aligned = ctl->cfg->trust_spf_aligned;
	memset(&job, 0, sizeof(job));
	job.now = ctl->now;
	triplet_build(&job.key, r->client_address.ptr, r->client_address.len,
		      r->sender.ptr, r->sender.len, r->recipient.ptr,
		      r->recipient.len, &ctl->topts);

	smart_assess(ctl->ident, &cs->rules, r, &none, &job, &cs->out);
	rc = decide_identities(ctl, &job, cs, &writes);
	if (rc != 0)
		return rc;
	if (!writes && cs->verdict.action == ENGINE_PASS) {
		cs->fast = true;
		return 0;
	}

	gather(ctl, r, receiver, cs);
	smart_assess(ctl->ident, &cs->rules, r, &cs->dns.ev, &job, &cs->out);
	if (cs->dns.ev.dnsbl)
		job.delay = ctl->cfg->dnsbl_delay;
	if (cs->out.trust != SMART_GREYLIST) {
		/* Passed without a decision: the records stay as read in
		   step 1, shown for what they are. */
		cs->decided = false;
		return 0;
	}
	return decide_identities(ctl, &job, cs, &writes);
}

/* ---- sentences ------------------------------------------------------------ */

void
check_smart_trust_why(const struct check_smart *cs, char *out, size_t outsz)
{
	const struct smart_outcome *o = &cs->out;
	const struct smart_evidence *ev = &cs->dns.ev;

	if (o->trust == SMART_TRUSTED_SPF) {
		snprintf(out, outsz, "SPF proves the sender and the verified "
			 "name's organisational domain %s is the sender's",
			 o->name.org);
	} else if (o->trust == SMART_DNSWL) {
		snprintf(out, outsz, "the DNS allowlist %s vouches for the "
			 "client", cs->dns.dnswl_zone);
	} else if (cs->fast) {
		snprintf(out, outsz, "not asked: a retry that passes without "
			 "writing is answered before any DNS lookup");
	} else if (ev->dnsbl) {
		snprintf(out, outsz, "the DNS blocklist %s lists the client: "
			 "never trusted, delay %llds", cs->dns.dnsbl_zone,
			 (long long)cs->delay);
	} else if (!cs->dns.asked) {
		snprintf(out, outsz, "no DNS evidence (%s)", cs->dns.why_not);
	} else if (!cs->rules.trust_spf_aligned) {
		snprintf(out, outsz, "trust_spf_aligned = no, and no DNS "
			 "allowlist vouches for the client");
	} else if (!ev->spf_proven) {
		snprintf(out, outsz, "SPF does not prove the sender, and no DNS "
			 "allowlist vouches for the client");
	} else if (o->name.why != IDENT_NAME_OK) {
		snprintf(out, outsz, "SPF proves the sender, but the client has "
			 "no name identity (%s)", ident_name_why_str(o->name.why));
	} else {
		snprintf(out, outsz, "SPF proves the sender, but the name's "
			 "domain %s is not the sender's (%s)", o->name.org,
			 o->sender_org[0] != '\0' ? o->sender_org : "none");
	}
}

static const char *
name_why_text(enum ident_name_why why)
{
	switch (why) {
	case IDENT_NAME_OK:
		return "ok";
	case IDENT_NAME_UNKNOWN:
		return "Postfix did not verify the client's name";
	case IDENT_NAME_INVALID:
		return "not a domain name";
	case IDENT_NAME_SUFFIX:
		return "a public suffix, nobody's domain";
	case IDENT_NAME_DYNAMIC:
		return "looks like a name an ISP or hoster gives an address";
	}
	return "?";
}

void
check_smart_name_why(const struct check_smart *cs,
		     const struct policy_request *r, char *out, size_t outsz)
{
	const struct smart_outcome *o = &cs->out;
	const char *name = text_of(r->client_name);

	if (o->trust != SMART_GREYLIST && o->name.why != IDENT_NAME_OK) {
		snprintf(out, outsz, "none (%s: %s)",
			 ident_name_why_str(o->name.why),
			 name_why_text(o->name.why));
	} else if (o->name.why != IDENT_NAME_OK) {
		snprintf(out, outsz, "none for %s (%s: %s)", name,
			 ident_name_why_str(o->name.why),
			 name_why_text(o->name.why));
	} else if (o->trust != SMART_GREYLIST) {
		snprintf(out, outsz, "%s (from %s)", o->name.org, name);
	} else if (!cs->rules.name_identity) {
		snprintf(out, outsz, "%s (from %s); not used: name_identity = "
			 "no", o->name.org, name);
	} else if (!o->name_aligned) {
		snprintf(out, outsz, "%s (from %s); not used: the sender "
			 "(%s) is not aligned with it", o->name.org, name,
			 o->sender_org[0] != '\0' ? o->sender_org : "no domain");
	} else {
		snprintf(out, outsz, "%s (from %s); aligned: %s; "
			 "auto-whitelist %s", o->name.org, name,
			 strcmp(o->name.org, o->sender_org) == 0
			 ? "the sender's organisational domain is the name's"
			 : "SPF passed through a record in the name's domain",
			 o->name_awl ? "yes (SPF proven)" : "no (needs SPF proof)");
	}
}
