/*
 * fuzz_record - stored records and the decisions taken on them.
 *
 * Input: bytes 0..23 are a stored value, the rest (if any) chooses the
 * engine parameters and the clocks.  The whole input is decoded as a
 * value read from the database would be; the first RECORD_SIZE bytes are
 * decoded too and, when they decode, fed to the engine (otherwise the
 * engine sees an absent record).  Record fields are whatever the decoder
 * lets through, since a database can hold anything; the clock is kept
 * plausible, as time(NULL) is: between 0 and NOW_MAX.
 *
 * Invariants (abort() when broken):
 *   - only RECORD_SIZE bytes starting with RECORD_VERSION, with times up
 *     to RECORD_MAX_TIME, decode; a decoded record encodes to the same
 *     bytes (reserved ones zeroed) and decodes back to itself;
 *   - a deferral promises 1..delay seconds; a pass promises none;
 *   - each verdict is the one engine.h's table gives the state: "new" only
 *     without a record, "early-retry" writes nothing, a first pass comes
 *     delay..retry_window seconds after first sight, a known triplet is
 *     rewritten only when a refresh is due;
 *   - a promise is kept: asking again after seconds_left with what was
 *     stored passes (unless the clock went back before first sight);
 *     asking again at once after a pass passes;
 *   - the expiry sweep deletes exactly the records the engine would
 *     start over, and a listed client is never expired.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "record.h"

#define DAY 86400
#define NOW_MAX (INT64_C(1) << 34)	/* the year 2514 */
#define FUZZ_NOW INT64_C(1700000000)

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* ---- reading the tail ------------------------------------------------- */

struct tail {
	const uint8_t *p;
	size_t left;
};

static uint64_t
take(struct tail *t, size_t n, uint64_t dflt)
{
	uint64_t v = 0;

	if (t->left < n)
		return dflt;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)t->p[i] << (8 * i);
	t->p += n;
	t->left -= n;
	return v;
}

static int64_t
clamp_now(int64_t base, int64_t delta)
{
	int64_t v;

	if (__builtin_add_overflow(base, delta, &v))
		return delta < 0 ? 0 : NOW_MAX;
	return v < 0 ? 0 : v > NOW_MAX ? NOW_MAX : v;
}

/* Bounds as config.c's table and validate() enforce them. */
static void
take_params(struct tail *t, struct engine_params *p)
{
	uint64_t delay = take(t, 4, 299) % (7 * DAY) + 1;
	uint64_t window = take(t, 4, 2 * DAY - delay - 1) % (60 * DAY - delay);
	uint64_t age;

	window += delay + 1;
	age = take(t, 4, 35 * DAY - window) % (3650 * DAY - window + 1);
	p->delay = (int64_t)delay;
	p->retry_window = (int64_t)window;
	p->max_age = (int64_t)(window + age);
	p->awl_passes = (unsigned)(take(t, 1, 5) % 11);
}

/* ---- decoding -------------------------------------------------------------- */

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool
same_record(const struct record *a, const struct record *b)
{
	return a->first_seen == b->first_seen && a->last_seen == b->last_seen &&
	       a->passes == b->passes;
}

static void
check_round_trip(const uint8_t *data, size_t size)
{
	struct record r = {0, 0, 0}, again = {0, 0, 0};
	uint8_t enc[RECORD_SIZE];
	int rc = record_decode(&r, data, size);

	if (rc != 0) {
		check(rc == -EBADMSG);
		check(size != RECORD_SIZE || data[0] != RECORD_VERSION ||
		      get_u64(data + 4) > RECORD_MAX_TIME ||
		      get_u64(data + 12) > RECORD_MAX_TIME);
		return;
	}
	check(size == RECORD_SIZE && data[0] == RECORD_VERSION);
	check(r.first_seen >= 0 && r.first_seen <= (int64_t)RECORD_MAX_TIME);
	check(r.last_seen >= 0 && r.last_seen <= (int64_t)RECORD_MAX_TIME);
	record_encode(enc, &r);
	check(enc[0] == RECORD_VERSION && enc[1] == 0 && enc[2] == 0 &&
	      enc[3] == 0);
	check(memcmp(enc + 4, data + 4, RECORD_SIZE - 4) == 0);
	check(record_decode(&again, enc, sizeof(enc)) == 0);
	check(same_record(&r, &again));
}

/* ---- decisions --------------------------------------------------------------- */

static void
check_verdict(const struct record *rec, int64_t now,
	      const struct engine_params *p, const struct record *out,
	      const struct engine_verdict *v, bool store)
{
	struct record fresh = {now, now, 0};

	check(engine_reason_name(v->reason) != NULL &&
	      strcmp(engine_reason_name(v->reason), "unknown") != 0);
	if (v->action == ENGINE_DEFER) {
		check(v->seconds_left >= 1 && v->seconds_left <= p->delay);
		check(v->delay == 0);
	} else {
		check(v->action == ENGINE_PASS && v->seconds_left == 0);
	}
	switch (v->reason) {
	case ENGINE_NEW:
		check(rec == NULL && store && same_record(out, &fresh));
		break;
	case ENGINE_RESTART:
		check(rec != NULL && store && same_record(out, &fresh));
		check(v->action == ENGINE_DEFER && v->seconds_left == p->delay);
		break;
	case ENGINE_EARLY:
		check(rec != NULL && rec->passes == 0 && !store);
		check(same_record(out, rec) && v->action == ENGINE_DEFER);
		break;
	case ENGINE_PASSED:
		check(rec != NULL && rec->passes == 0 && store);
		check(v->action == ENGINE_PASS);
		check(v->delay >= p->delay && v->delay <= p->retry_window);
		check(out->first_seen == rec->first_seen &&
		      out->last_seen == now && out->passes == 1);
		break;
	case ENGINE_KNOWN:
		check(rec != NULL && rec->passes > 0 && v->action == ENGINE_PASS);
		if (store)
			check(out->first_seen == rec->first_seen &&
			      out->last_seen == now &&
			      out->passes == (rec->passes == UINT32_MAX ?
					      UINT32_MAX : rec->passes + 1));
		else
			check(same_record(out, rec));
		break;
	case ENGINE_AWL:
		check(false);	/* the store decides that, not engine_triplet */
		break;
	}
}

/* Ask again, with what was stored, when the verdict said to. */
static void
check_promise(const struct record *rec, int64_t now,
	      const struct engine_params *p, const struct record *out,
	      const struct engine_verdict *v, bool store)
{
	const struct record *kept = store ? out : rec;
	struct record out2;
	struct engine_verdict v2;

	if (v->action == ENGINE_DEFER) {
		engine_triplet(kept, now + v->seconds_left, p, &out2, &v2);
		check(v2.action == ENGINE_PASS);
	} else {
		engine_triplet(kept, now, p, &out2, &v2);
		check(v2.action == ENGINE_PASS && v2.reason == ENGINE_KNOWN);
	}
}

static void
decide_triplet(const struct record *rec, int64_t now,
	       const struct engine_params *p)
{
	struct record out;
	struct engine_verdict v;
	bool store;

	memset(&v, 0xa5, sizeof(v));
	store = engine_triplet(rec, now, p, &out, &v);
	check_verdict(rec, now, p, &out, &v, store);
	check_promise(rec, now, p, &out, &v, store);
	if (rec != NULL)
		check(engine_triplet_expired(rec, now, p) ==
		      (v.reason == ENGINE_RESTART));
}

static void
decide_client(const struct record *rec, int64_t now,
	      const struct engine_params *p)
{
	struct record out;
	bool listed = engine_client_listed(rec, now, p);
	bool store;

	if (listed) {
		check(rec != NULL && p->awl_passes > 0 &&
		      rec->passes >= p->awl_passes);
		check(!engine_client_expired(rec, now, p));
	}
	store = engine_client_count(rec, now, &out);
	if (rec == NULL) {
		check(store && out.first_seen == now && out.last_seen == now &&
		      out.passes == 1);
		return;
	}
	if (store) {
		check(out.first_seen == rec->first_seen && out.last_seen == now);
		check(out.passes == (rec->passes == UINT32_MAX ? UINT32_MAX :
				     rec->passes + 1));
	} else {
		check(same_record(&out, rec));
		check(now >= rec->last_seen);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record rec;
	const struct record *recp = NULL;
	struct engine_params p;
	struct tail t;
	int64_t nows[5];

	check_round_trip(data, size);
	if (size >= RECORD_SIZE &&
	    record_decode(&rec, data, RECORD_SIZE) == 0)
		recp = &rec;
	t.p = data + (size >= RECORD_SIZE ? RECORD_SIZE : size);
	t.left = size >= RECORD_SIZE ? size - RECORD_SIZE : 0;
	take_params(&t, &p);

	nows[0] = clamp_now(0, (int64_t)(take(&t, 5, FUZZ_NOW) % NOW_MAX));
	nows[1] = clamp_now(recp != NULL ? rec.first_seen : FUZZ_NOW,
			    (int32_t)take(&t, 4, (uint64_t)p.delay));
	nows[2] = clamp_now(recp != NULL ? rec.last_seen : FUZZ_NOW,
			    (int32_t)take(&t, 4, (uint64_t)p.max_age));
	nows[3] = clamp_now(nows[1], p.delay - 1);
	nows[4] = clamp_now(nows[1], p.retry_window + 1);
	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		decide_triplet(recp, nows[i], &p);
		decide_triplet(NULL, nows[i], &p);
		decide_client(recp, nows[i], &p);
	}
	return 0;
}
