/*
 * sweep - the expiry sweep's pace: a per-second budget of records to
 * examine, from the tables' size, their growth and what the last second's
 * slices found; see sweep.h for why each term is there.
 *
 * Pure and without state of its own: the caller owns the struct
 * sweep_pace and passes the time in, so the tests drive it with any clock.
 */
#include "sweep.h"

static uint64_t
max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* a / b rounded up, b > 0. */
static uint64_t
div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static bool
found_backlog(const struct sweep_sample *s)
{
	/* removed * SWEEP_BACKLOG_SHARE >= examined, without the product. */
	return s->examined > 0 && s->removed >= s->examined / SWEEP_BACKLOG_SHARE +
	       (s->examined % SWEEP_BACKLOG_SHARE != 0);
}

uint64_t
sweep_budget(const struct sweep_sample *s)
{
	uint64_t b = SWEEP_FLOOR;
	uint64_t per_second;

	if (found_backlog(s))
		return SWEEP_MAX;
	b = max_u64(b, div_up(s->entries, SWEEP_TARGET_PASS));
	if (s->elapsed > 0) {
		per_second = div_up(s->inserted, s->elapsed);
		/* Compare before multiplying: the product may not fit. */
		if (per_second >= SWEEP_MAX / SWEEP_INSERT_FACTOR)
			return SWEEP_MAX;
		b = max_u64(b, per_second * SWEEP_INSERT_FACTOR);
	}
	return b < SWEEP_MAX ? b : SWEEP_MAX;
}

uint64_t
sweep_inserted(uint64_t before, uint64_t after, uint64_t removed)
{
	/* after = before + inserted - removed, unless someone else deleted. */
	if (after >= before)
		return after - before + removed;
	if (before - after >= removed)
		return 0;
	return removed - (before - after);
}

bool
sweep_pace_new_second(const struct sweep_pace *sp, int64_t now)
{
	return now != sp->second;
}

void
sweep_pace_second(struct sweep_pace *sp, int64_t now, uint64_t entries)
{
	struct sweep_sample s = {
		.entries = entries,
		.examined = sp->examined,
		.removed = sp->removed,
	};

	if (sp->counted_at > 0 && now > sp->counted_at) {
		s.inserted = sweep_inserted(sp->counted, entries,
					    sp->removed_since);
		s.elapsed = (uint64_t)(now - sp->counted_at);
	}
	sp->counted = entries;
	sp->counted_at = now;
	sp->removed_since = 0;
	sp->second = now;
	sp->last = s;
	sp->budget = sweep_budget(&s);
	sp->left = sp->budget;
	sp->examined = 0;
	sp->removed = 0;
	sp->usec = 0;
}

uint64_t
sweep_pace_slice(const struct sweep_pace *sp)
{
	if (sp->usec >= SWEEP_USEC_MAX)
		return 0;
	return sp->left < SWEEP_SLICE_MAX ? sp->left : SWEEP_SLICE_MAX;
}

void
sweep_pace_done(struct sweep_pace *sp, uint64_t asked, uint64_t removed,
		uint64_t usec, bool wrapped)
{
	sp->left -= asked < sp->left ? asked : sp->left;
	sp->usec += usec;
	sp->removed_since += removed;
	if (wrapped) {
		/* The pass is over: what it found says nothing of the next. */
		sp->left = 0;
		sp->examined = 0;
		sp->removed = 0;
		return;
	}
	sp->examined += asked;
	sp->removed += removed;
}

void
sweep_pace_hold(struct sweep_pace *sp)
{
	sp->left = 0;
}
