/*
 * replay_preview - a stand-in for the smart greylisting rules, so the
 * replay can show what they are worth before the daemon has them.  NOT
 * the daemon's decision: the lead's multi-identity decision replaces
 * this in the replay when it lands.
 *
 * What it does, on top of replay_greyhold's path (static whitelists,
 * then the LMDB store with simulated time):
 *   identities: besides the network triplet, the triplet under the name
 *     identity ("name:" + organisational domain of a verified,
 *     non-dynamic client_name, ident_name()) and under the SPF identity
 *     ("spf:" + organisational domain of the sender when SPF passes),
 *     both with the sender reduced to its organisational domain
 *     (ident_sender_org()).  All the request's jobs are decided in one
 *     store batch; the request passes when any of them passes, and each
 *     records its triplet, so a first attempt is recorded under each
 *     identity.  The auto-whitelist counts per identity as the store
 *     counts per network, or, with no_identity_awl, only per network
 *     (the real design must decide what may count).  A job counts a pass
 *     only for its own client key: a pass under the name identity does
 *     not count for the network's auto-whitelist;
 *   trusted (optional): SPF passes and the name identity's domain is the
 *     sender's organisational domain: passes without greylisting.
 * Identity client strings longer than the store's client field are cut:
 * harmless for the model's short domains.
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "store.h"
#include "triplet.h"

struct preview {
	struct replay_decider inner;	/* replay_greyhold: lists, store */
	ident_t *id;
	bool trusted;
	bool identity_awl;	/* the auto-whitelist counts per identity */
};

/* Job for an identity: client text, org-reduced sender, recipient. */
static void
identity_job(struct store_job *job, const char *prefix, const char *org,
	     const char *sender, size_t sender_len, const char *rcpt,
	     size_t rcpt_len, int64_t now, bool awl)
{
	struct triplet_key *k = &job->key;
	size_t n;

	memset(job, 0, sizeof(*job));
	n = (size_t)snprintf(k->client, sizeof(k->client), "%s%s", prefix, org);
	k->client_len = n < sizeof(k->client) ? n : sizeof(k->client) - 1;
	k->client_is_net = awl;
	memcpy(k->key, k->client, k->client_len);
	n = k->client_len;
	k->key[n++] = '\0';
	memcpy(k->key + n, sender, sender_len);
	n += sender_len;
	k->key[n++] = '\0';
	memcpy(k->key + n, rcpt, rcpt_len);
	k->key_len = n + rcpt_len;
	job->now = now;
}

static int
pv_decide(void *ctx, const struct replay_request *rq, bool *pass)
{
	struct preview *p = ctx;
	struct store_job jobs[3], *jp[3];
	struct ident_name name;
	char norm[TRIPLET_MAX_ADDR], reduced[TRIPLET_MAX_ADDR];
	char rcpt[TRIPLET_MAX_ADDR], sorg[IDENT_MAX_NAME + 1];
	const char *at;
	size_t nlen, rlen, rclen, sorg_len = 0, n = 0, i;
	bool have_name, have_spf = false;
	int rc;

	*pass = false;
	if (replay_greyhold_listed(p->inner.ctx, rq)) {
		*pass = true;
		return 0;
	}
	have_name = ident_name(p->id, rq->client_name, strlen(rq->client_name),
			       rq->client_address, strlen(rq->client_address),
			       &name) == 0;
	at = strrchr(rq->sender, '@');
	if (at != NULL && ident_org_domain(p->id, at + 1, strlen(at + 1), sorg,
					   sizeof(sorg), &sorg_len) == 0)
		have_spf = rq->spf == REPLAY_SPF_PASS;
	if (p->trusted && have_spf && have_name &&
	    strcmp(name.org, sorg) == 0) {
		*pass = true;
		return 0;
	}

	memset(&jobs[0], 0, sizeof(jobs[0]));
	triplet_build(&jobs[0].key, rq->client_address,
		      strlen(rq->client_address), rq->sender, strlen(rq->sender),
		      rq->recipient, strlen(rq->recipient),
		      replay_greyhold_topts(p->inner.ctx));
	jobs[0].now = rq->time;
	n = 1;
	nlen = triplet_normalise_sender(norm, rq->sender, strlen(rq->sender));
	rlen = ident_sender_org(p->id, reduced, norm, nlen);
	rclen = triplet_normalise_recipient(rcpt, rq->recipient,
					    strlen(rq->recipient));
	if (have_name)
		identity_job(&jobs[n++], "name:", name.org, reduced, rlen, rcpt,
			     rclen, rq->time, p->identity_awl);
	if (have_spf)
		identity_job(&jobs[n++], "spf:", sorg, reduced, rlen, rcpt,
			     rclen, rq->time, p->identity_awl);
	for (i = 0; i < n; i++)
		jp[i] = &jobs[i];
	rc = replay_greyhold_batch(p->inner.ctx, jp, n);
	if (rc != 0)
		return rc;
	for (i = 0; i < n; i++)
		*pass = *pass || jobs[i].verdict.action == ENGINE_PASS;
	return 0;
}

static void
pv_close(void *ctx)
{
	struct preview *p = ctx;

	if (p == NULL)
		return;
	if (p->inner.close != NULL)
		p->inner.close(p->inner.ctx);
	ident_close(p->id);
	free(p);
}

static int
preview_open(struct replay_decider *d, const char *label,
	     const struct replay_greyhold_opts *o, bool trusted, char *err,
	     size_t errsz)
{
	struct preview *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL)
		return -ENOMEM;
	p->trusted = trusted;
	p->identity_awl = !o->no_identity_awl;
	rc = ident_open(&p->id, NULL, err, errsz);
	if (rc == 0)
		rc = replay_greyhold_open(&p->inner, label, o, err, errsz);
	if (rc != 0) {
		pv_close(p);
		return rc;
	}
	d->label = label;
	d->ctx = p;
	d->decide = pv_decide;
	d->close = pv_close;
	return 0;
}

int
replay_preview_identities_open(struct replay_decider *d, const char *label,
			       const struct replay_greyhold_opts *o, char *err,
			       size_t errsz)
{
	return preview_open(d, label, o, false, err, errsz);
}

int
replay_preview_trusted_open(struct replay_decider *d, const char *label,
			    const struct replay_greyhold_opts *o, char *err,
			    size_t errsz)
{
	return preview_open(d, label, o, true, err, errsz);
}
