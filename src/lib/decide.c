/*
 * decide - the one greylisting decision.  The rules are in decide.h; the
 * per-record transitions are the engine's (engine.c).
 */
#include "decide.h"

#include <string.h>

/* Rule 1: the first awl identity whose client is listed passes. */
static bool
decide_awl(const struct decide_in *in, int64_t now,
	   const struct engine_params *p, struct decide_out *out)
{
	for (size_t i = 0; i < in->n; i++) {
		const struct decide_id_in *id = &in->id[i];
		struct decide_id_out *o = &out->id[i];

		if (!id->awl || !engine_client_listed(id->client, now, p))
			continue;
		out->verdict.action = ENGINE_PASS;
		out->verdict.reason = ENGINE_AWL;
		out->matched = i;
		o->put_client = engine_client_count(id->client, now, &o->client);
		return true;
	}
	return false;
}

/* A triplet that passed under another identity counts as passed here. */
static void
mark_passed(struct decide_id_out *o, int64_t now)
{
	o->triplet.last_seen = now;
	o->triplet.passes = 1;
	o->put_triplet = true;
}

static void
count_passes(const struct decide_in *in, int64_t now, struct decide_out *out)
{
	for (size_t i = 0; i < in->n; i++)
		if (in->id[i].awl)
			out->id[i].put_client =
				engine_client_count(in->id[i].client, now,
						    &out->id[i].client);
}

/* Rule 3: every identity deferred; say the soonest a retry may pass. */
static void
merge_deferrals(const struct decide_in *in, const struct engine_verdict *v,
		struct decide_out *out)
{
	bool early = false, all_restart = true;

	out->verdict = v[0];
	for (size_t i = 0; i < in->n; i++) {
		if (v[i].reason == ENGINE_EARLY) {
			if (!early || v[i].seconds_left < out->verdict.seconds_left)
				out->verdict = v[i];
			early = true;
		}
		if (v[i].reason != ENGINE_RESTART)
			all_restart = false;
	}
	if (!early)
		out->verdict.reason = all_restart ? ENGINE_RESTART : ENGINE_NEW;
}

bool
decide_request(const struct decide_in *in, int64_t now, const struct engine_params *p,
       struct decide_out *out)
{
	struct engine_verdict v[DECIDE_MAX_IDS];
	bool passed = false;
	bool writes = false;

	memset(out, 0, sizeof(*out));
	if (in->n == 0 || in->n > DECIDE_MAX_IDS) {
		/* No identity: nothing to key on; treat as new, write nothing. */
		out->verdict.action = ENGINE_DEFER;
		out->verdict.reason = ENGINE_NEW;
		out->verdict.seconds_left = p->delay;
		return false;
	}
	if (decide_awl(in, now, p, out))
		return out->id[out->matched].put_client;

	for (size_t i = 0; i < in->n; i++) {
		out->id[i].put_triplet = engine_triplet(in->id[i].triplet, now, p,
							&out->id[i].triplet,
							&v[i]);
		if (v[i].action == ENGINE_PASS && !passed) {
			passed = true;
			out->matched = i;
		}
	}

	if (passed) {
		out->verdict = v[out->matched];
		for (size_t i = 0; i < in->n; i++)
			if (v[i].action != ENGINE_PASS)
				mark_passed(&out->id[i], now);
		count_passes(in, now, out);
	} else {
		merge_deferrals(in, v, out);
	}

	for (size_t i = 0; i < in->n; i++)
		writes = writes || out->id[i].put_triplet || out->id[i].put_client;
	return writes;
}
