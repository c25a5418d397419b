/*
 * replay_identities - the replay's decider for greyhold's smart
 * greylisting: the request's identities and trusted senders from
 * smart_assess() (src/lib/smart.h), the decision from the store's batch
 * (decide_request()), exactly as the daemon runs them; only the evidence
 * (SPF, DNS lists) comes from the model instead of DNS.  Which rules are
 * on is a parameter, so each can be measured.
 */
#include "replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "job.h"
#include "smart.h"
#include "triplet.h"

struct idecider {
	struct replay_decider inner;
	ident_t *id;
	struct smart_rules rules;
};

static enum spf_result
spf_of(enum replay_spf s)
{
	switch (s) {
	case REPLAY_SPF_PASS:
		return SPF_PASS;
	case REPLAY_SPF_FAIL:
		return SPF_FAIL;
	case REPLAY_SPF_SOFTFAIL:
		return SPF_SOFTFAIL;
	case REPLAY_SPF_NEUTRAL:
		return SPF_NEUTRAL;
	case REPLAY_SPF_NONE:
		break;
	}
	return SPF_NONE;
}

static struct policy_str
str(const char *s)
{
	struct policy_str out = {s, strlen(s)};

	return out;
}

static int
id_decide(void *ctx, const struct replay_request *rq, bool *pass)
{
	struct idecider *p = ctx;
	struct store_job job, *jp = &job;
	struct policy_request r;
	struct smart_evidence ev;
	struct smart_outcome out;
	const char *at = strrchr(rq->sender, '@');
	int rc;

	*pass = false;
	if (replay_greyhold_listed(p->inner.ctx, rq)) {
		*pass = true;
		return 0;
	}
	memset(&r, 0, sizeof(r));
	r.client_address = str(rq->client_address);
	r.client_name = str(rq->client_name);
	r.helo_name = str(rq->helo);
	r.sender = str(rq->sender);
	r.recipient = str(rq->recipient);
	memset(&ev, 0, sizeof(ev));
	ev.spf = spf_of(rq->spf);
	/* The model's senders never publish records that pass for anyone. */
	ev.spf_proven = ev.spf == SPF_PASS;
	ev.spf_domain = at != NULL ? at + 1 : rq->helo;
	ev.spf_authorised_by = rq->spf_authorised_by[0] != '\0'
			       ? rq->spf_authorised_by : NULL;

	memset(&job, 0, sizeof(job));
	triplet_build(&job.key, rq->client_address, strlen(rq->client_address),
		      rq->sender, strlen(rq->sender), rq->recipient,
		      strlen(rq->recipient), replay_greyhold_topts(p->inner.ctx));
	job.now = rq->time;
	smart_assess(p->id, &p->rules, &r, &ev, &job, &out);
	if (out.trust != SMART_GREYLIST) {
		*pass = true;
		return 0;
	}
	rc = replay_greyhold_batch(p->inner.ctx, &jp, 1);
	if (rc != 0)
		return rc;
	*pass = job.verdict.action == ENGINE_PASS;
	return 0;
}

static void
id_close(void *ctx)
{
	struct idecider *p = ctx;

	if (p == NULL)
		return;
	if (p->inner.close != NULL)
		p->inner.close(p->inner.ctx);
	ident_close(p->id);
	free(p);
}

static int
id_open(struct replay_decider *d, const char *label,
	const struct replay_greyhold_opts *o, const struct smart_rules *rules,
	char *err, size_t errsz)
{
	struct idecider *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL)
		return -ENOMEM;
	p->rules = *rules;
	rc = ident_open(&p->id, NULL, err, errsz);
	if (rc == 0)
		rc = replay_greyhold_open(&p->inner, label, o, err, errsz);
	if (rc != 0) {
		id_close(p);
		return rc;
	}
	d->label = label;
	d->ctx = p;
	d->decide = id_decide;
	d->close = id_close;
	return 0;
}

int
replay_identities_open(struct replay_decider *d, const char *label,
		       const struct replay_greyhold_opts *o, char *err,
		       size_t errsz)
{
	static const struct smart_rules names_only = {true, false, false};

	return id_open(d, label, o, &names_only, err, errsz);
}

int
replay_identities_trusted_open(struct replay_decider *d, const char *label,
			       const struct replay_greyhold_opts *o, char *err,
			       size_t errsz)
{
	static const struct smart_rules defaults = {true, false, true};

	return id_open(d, label, o, &defaults, err, errsz);
}

int
replay_identities_spf_open(struct replay_decider *d, const char *label,
			   const struct replay_greyhold_opts *o, char *err,
			   size_t errsz)
{
	static const struct smart_rules all = {true, true, true};

	return id_open(d, label, o, &all, err, errsz);
}
