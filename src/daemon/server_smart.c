/*
 * server_smart - smart greylisting on the request path (loop thread).
 *
 * A request whose network's records already pass it is answered at
 * once, as without smart greylisting.  Otherwise it gets the identities
 * it has without DNS (a verified name aligned with its sender: smart.h),
 * and the backend's read-only fast path may pass it.  Anything else waits
 * for its evidence (evidence.h: SPF, DNS lists), within dns_budget; then
 * smart_assess() trusts it outright or gives it all its identities, and
 * the backend decides.  Requests that need no DNS are not slowed: a
 * passing retry never waits for a lookup.
 *
 * Ownership: while a slot waits for its evidence it counts as held by
 * the store (conn->in_store), so its connection outlives it; when the
 * connection closes meanwhile, the answer is dropped.
 */
#include "server_smart.h"

#include <stdio.h>
#include <string.h>

#include "evidence.h"
#include "server_conn.h"
#include "server_request.h"

bool
smart_dns_wanted(const struct config *cfg)
{
	struct smart_rules rules = {cfg->name_identity, cfg->spf_identity,
				    cfg->trust_spf_aligned};

	return smart_rules_need_spf(&rules) || cfg->dnswl.n > 0 ||
	       cfg->dnsbl.n > 0;
}

int
smart_open(struct server *srv, char *err, size_t errsz)
{
	const struct config *cfg = srv->cfg;
	struct dns_options o;
	int rc;

	if (!smart_dns_wanted(cfg))
		return 0;
	rc = ident_open(&srv->ident, cfg->psl_file[0] != '\0' ? cfg->psl_file
							     : NULL,
			err, errsz);
	if (rc < 0)
		return rc;
	log_msg(LOG_LEVEL_INFO, "smart greylisting: name identity %s, SPF "
		"identity %s, trusted SPF-aligned senders %s, %zu allowlist(s), "
		"%zu blocklist(s); public suffixes from %s",
		cfg->name_identity ? "on" : "off",
		cfg->spf_identity ? "on" : "off",
		cfg->trust_spf_aligned ? "on" : "off", cfg->dnswl.n,
		cfg->dnsbl.n, ident_source(srv->ident));
	dns_options_from_config(&o, cfg);
	rc = dns_open(&srv->dns, &srv->loop, &o, &srv->m_dns, err, errsz);
	if (rc < 0) {
		/* Without a resolver the rules that need none still work. */
		log_msg(LOG_LEVEL_ERR, "%s; deciding without DNS", err);
		srv->dns = NULL;
	}
	return 0;
}

void
smart_stop(struct server *srv)
{
	if (srv->dns != NULL)
		dns_close(srv->dns);
	srv->dns = NULL;
}

void
smart_free(struct server *srv)
{
	ident_close(srv->ident);
	srv->ident = NULL;
}

static struct policy_str
field(const char *s)
{
	struct policy_str v = {s, strlen(s)};

	return v;
}

/* The request as smart_assess() reads it, from the slot's copies. */
static void
slot_view(const struct slot *s, struct policy_request *r)
{
	memset(r, 0, sizeof(*r));
	r->client_address = field(s->req.client_address);
	r->client_name = field(s->req.client_name);
	r->helo_name = field(s->req.helo);
	r->sender = field(s->req.sender);
	r->recipient = field(s->req.recipient);
}

/*
 * Identities for the slot's job; their keys hashed like the network's.
 * earlier: this request's outcome without evidence, or NULL the first time.
 */
static void
assess(struct server *srv, struct slot *s, const struct smart_evidence *ev,
       const struct smart_outcome *earlier, struct smart_outcome *out)
{
	struct policy_request r;

	slot_view(s, &r);
	smart_assess_again(srv->ident, &srv->rules, &r, ev, earlier, &s->job,
			   out);
	for (size_t i = 0; i < s->job.n_more; i++) {
		const struct triplet_key *k = &s->job.more[i].key;

		snprintf(s->ident[i], sizeof(s->ident[i]), "%s:%s",
			 k->client[0] == 'n' ? "name" : "spf", k->client + 2);
		if (srv->privacy_on)
			privacy_apply(&srv->privacy, &s->job.more[i].key);
	}
}

static void
answer_trusted(struct server *srv, struct slot *s,
	       const struct smart_outcome *out,
	       const struct evidence_report *rep)
{
	char words[IDENT_MAX_NAME + DNSLIST_ZONE_MAX + 64];

	if (out->trust == SMART_TRUSTED_SPF) {
		snprintf(words, sizeof(words), "identity=name:%s", out->name.org);
		request_answer_now(s, RESULT_PASS_TRUSTED_SPF,
				   "action=pass, reason=trusted-spf", words);
	} else {
		snprintf(words, sizeof(words), "action=pass, reason=dnswl (%s)",
			 rep->dnswl_zone != NULL ? rep->dnswl_zone : "?");
		request_answer_now(s, RESULT_PASS_DNSWL, words, NULL);
	}
}

static void
on_evidence(void *arg, const struct evidence_report *rep)
{
	struct slot *s = arg;
	struct conn *c = s->conn;
	struct server *srv = c->srv;
	struct smart_outcome out;

	c->in_store--;
	if (c->closing) {
		conn_release(c);
		return;
	}
	assess(srv, s, &rep->ev, &s->first, &out);
	if (rep->ev.dnsbl) {
		s->job.delay = srv->cfg->dnsbl_delay;
		snprintf(s->dnsbl, sizeof(s->dnsbl), "%s", rep->dnsbl_zone);
	}
	if (out.trust != SMART_GREYLIST)
		answer_trusted(srv, s, &out, rep);
	else
		request_decide(srv, s, true);
	if (s->done && s == c->head)
		conn_flush(c);
}

/* Start the evidence; false when it could not be (decide without it). */
static bool
wait_for_evidence(struct server *srv, struct slot *s)
{
	const struct config *cfg = srv->cfg;
	struct evidence_opts o = {
		.loop = &srv->loop,
		.spf = smart_rules_need_spf(&srv->rules),
		.receiver = srv->hostname,
		.dnswl = &cfg->dnswl,
		.dnsbl = &cfg->dnsbl,
		.budget_ms = (uint32_t)(cfg->dns_budget * 1000),
	};
	struct evidence_input in = {
		.client_address = s->req.client_address,
		.sender = s->req.sender,
		.helo = s->req.helo,
		.now = s->job.now,
	};
	struct evidence *e;

	if (srv->dns == NULL ||
	    evidence_start(srv->dns, &o, &in, on_evidence, s, &e) < 0)
		return false;
	s->conn->in_store++;
	return true;
}

void
smart_request(struct server *srv, struct slot *s, const struct policy_request *r)
{
	static const struct smart_evidence none;

	/*
	 * A retry that its network's records already pass (a known triplet,
	 * an auto-whitelisted client) needs no identity and no DNS: answer it
	 * as plain greylisting would, at plain greylisting's cost.  The
	 * verdict is the one all identities would give (any identity passing
	 * passes), but such a retry refreshes only the network's records:
	 * its other identities' records are left as they are, where the
	 * Redis backend (no read-only path) updates them too.
	 */
	s->job.n_more = 0;
	switch (request_try_pass(srv, s)) {
	case TRY_ANSWERED:
		return;
	case TRY_PASS_WRITES:
		/*
		 * A known triplet or a listed client whose refresh or count
		 * is due: the store writes, and no evidence could change the
		 * pass.  A first pass still waits: a blocklist may lengthen
		 * its delay.
		 */
		if (s->job.verdict.reason != ENGINE_PASSED) {
			request_decide(srv, s, false);
			return;
		}
		break;
	case TRY_NO:
		break;
	}
	/*
	 * No valid sender is longer than the slot's copy holds; cut, it would
	 * end where the sender chose ("...@trusted.example" of
	 * "...@trusted.example.evil.example"), and SPF and the identities
	 * would judge that other domain.  Plain greylisting for it.
	 */
	if (r->sender.len > SPF_SENDER_MAX) {
		request_decide(srv, s, true);
		return;
	}
	policy_str_copy(s->req.client_address, sizeof(s->req.client_address),
			r->client_address);
	policy_str_copy(s->req.client_name, sizeof(s->req.client_name),
			r->client_name);
	/* A HELO longer than any name, cut, would look like another name. */
	if (r->helo_name.len <= DNS_NAME_MAX)
		policy_str_copy(s->req.helo, sizeof(s->req.helo),
				r->helo_name);
	else
		s->req.helo[0] = '\0';
	policy_str_copy(s->req.sender, sizeof(s->req.sender), r->sender);
	policy_str_copy(s->req.recipient, sizeof(s->req.recipient),
			r->recipient);

	/* What needs no DNS: a name aligned with its sender. */
	assess(srv, s, &none, NULL, &s->first);
	if (s->job.n_more > 0 && request_try_pass(srv, s) == TRY_ANSWERED)
		return;
	if (wait_for_evidence(srv, s))
		return;
	request_decide(srv, s, true);
}
