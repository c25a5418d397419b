/*
 * engine - greylisting state transitions.  See engine.h for the table.
 */
#include "engine.h"

static void
start_over(int64_t now, const struct engine_params *p, struct record *out,
	   struct engine_verdict *v, enum engine_reason reason)
{
	out->first_seen = now;
	out->last_seen = now;
	out->passes = 0;
	v->action = ENGINE_DEFER;
	v->reason = reason;
	v->seconds_left = p->delay;
	v->delay = 0;
}

/* A refresh is due after ENGINE_REFRESH seconds, or if the clock went back. */
static bool
refresh_due(int64_t last, int64_t now)
{
	return now < last || now - last >= ENGINE_REFRESH;
}

bool
engine_triplet(const struct record *rec, int64_t now,
	       const struct engine_params *p, struct record *out,
	       struct engine_verdict *v)
{
	int64_t elapsed;

	v->delay = 0;
	v->seconds_left = 0;
	if (rec == NULL) {
		start_over(now, p, out, v, ENGINE_NEW);
		return true;
	}
	*out = *rec;

	if (rec->passes > 0) {
		if (now - rec->last_seen > p->max_age) {
			start_over(now, p, out, v, ENGINE_RESTART);
			return true;
		}
		v->action = ENGINE_PASS;
		v->reason = ENGINE_KNOWN;
		if (!refresh_due(rec->last_seen, now))
			return false;
		out->last_seen = now;
		if (out->passes < UINT32_MAX)
			out->passes++;
		return true;
	}

	elapsed = now - rec->first_seen;
	/*
	 * First seen "in the future": the clock went back.  Start the delay
	 * from now, so the seconds we promise are the seconds it takes.
	 */
	if (elapsed < 0 || elapsed > p->retry_window) {
		start_over(now, p, out, v, ENGINE_RESTART);
		return true;
	}
	if (elapsed < p->delay) {
		v->action = ENGINE_DEFER;
		v->reason = ENGINE_EARLY;
		v->seconds_left = p->delay - elapsed;
		return false;
	}
	v->action = ENGINE_PASS;
	v->reason = ENGINE_PASSED;
	v->delay = elapsed;
	out->last_seen = now;
	out->passes = 1;
	return true;
}

bool
engine_client_listed(const struct record *crec, int64_t now,
		     const struct engine_params *p)
{
	return p->awl_passes > 0 && crec != NULL &&
	       crec->passes >= p->awl_passes &&
	       now - crec->last_seen <= p->max_age;
}

bool
engine_client_count(const struct record *crec, int64_t now, struct record *out)
{
	if (crec == NULL) {
		out->first_seen = now;
		out->last_seen = now;
		out->passes = 1;
		return true;
	}
	*out = *crec;
	if (!refresh_due(crec->last_seen, now))
		return false;
	out->last_seen = now;
	if (out->passes < UINT32_MAX)
		out->passes++;
	return true;
}

bool
engine_triplet_expired(const struct record *r, int64_t now,
		       const struct engine_params *p)
{
	/* A pending record from "the future" restarts anyway (clock back). */
	if (r->passes == 0)
		return now < r->first_seen || now - r->first_seen > p->retry_window;
	return now - r->last_seen > p->max_age;
}

bool
engine_client_expired(const struct record *r, int64_t now,
		      const struct engine_params *p)
{
	return now - r->last_seen > p->max_age;
}

const char *
engine_reason_name(enum engine_reason reason)
{
	switch (reason) {
	case ENGINE_NEW:
		return "new";
	case ENGINE_RESTART:
		return "new (seen too long ago)";
	case ENGINE_EARLY:
		return "early-retry";
	case ENGINE_PASSED:
	case ENGINE_KNOWN:
		return "triplet found";
	case ENGINE_AWL:
		return "client AWL";
	}
	return "unknown";
}
