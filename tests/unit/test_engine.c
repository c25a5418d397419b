/*
 * test_engine - the greylisting state machine against a fake clock.
 *
 * Time is a plain integer: every row of the table in engine.h is driven
 * to its boundary from both sides (the last second that gives one answer
 * and the first that gives the other).
 */
#include "engine.h"

#include <stdbool.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define T0 ((int64_t)1700000000)
#define DELAY 300
#define WINDOW (2 * 86400)
#define MAX_AGE (35 * 86400)
#define AWL 5

static const struct engine_params params = {DELAY, WINDOW, MAX_AGE, AWL};

static struct record
rec(int64_t first, int64_t last, uint32_t passes)
{
	struct record r;

	r.first_seen = first;
	r.last_seen = last;
	r.passes = passes;
	return r;
}

static void
assert_record(const struct record *r, int64_t first, int64_t last,
	      uint32_t passes)
{
	assert_int_equal(r->first_seen, first);
	assert_int_equal(r->last_seen, last);
	assert_int_equal(r->passes, passes);
}

/* Run the engine with out and v poisoned, so every field must be set. */
static bool
decide(const struct record *r, int64_t now, const struct engine_params *p,
       struct record *out, struct engine_verdict *v)
{
	memset(out, 0xa5, sizeof(*out));
	memset(v, 0xa5, sizeof(*v));
	return engine_triplet(r, now, p, out, v);
}

static void
assert_verdict(const struct engine_verdict *v, enum engine_action action,
	       enum engine_reason reason, int64_t seconds_left, int64_t delay)
{
	assert_int_equal(v->action, action);
	assert_int_equal(v->reason, reason);
	assert_int_equal(v->seconds_left, seconds_left);
	assert_int_equal(v->delay, delay);
}

/* ---- triplets: first sight and pending ------------------------------------ */

static void
test_new_triplet_deferred_and_stored(void **state)
{
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(NULL, T0, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_NEW, DELAY, 0);
	assert_record(&out, T0, T0, 0);
}

static void
test_retry_one_second_early_deferred_without_write(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_false(decide(&r, T0 + DELAY - 1, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_EARLY, 1, 0);
}

static void
test_early_retry_seconds_left_exact(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;
	int64_t t;

	(void)state;
	for (t = 0; t < DELAY; t++) {
		assert_false(decide(&r, T0 + t, &params, &out, &v));
		assert_verdict(&v, ENGINE_DEFER, ENGINE_EARLY, DELAY - t, 0);
	}
}

static void
test_retry_exactly_at_delay_passes(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + DELAY, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_PASSED, 0, DELAY);
	assert_record(&out, T0, T0 + DELAY, 1);
}

static void
test_retry_reports_real_delay(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + 3 * 3600 + 7, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_PASSED, 0, 3 * 3600 + 7);
	assert_record(&out, T0, T0 + 3 * 3600 + 7, 1);
}

static void
test_retry_at_window_passes(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + WINDOW, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_PASSED, 0, WINDOW);
	assert_record(&out, T0, T0 + WINDOW, 1);
}

static void
test_retry_after_window_restarts(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + WINDOW + 1, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_RESTART, DELAY, 0);
	assert_record(&out, T0 + WINDOW + 1, T0 + WINDOW + 1, 0);
}

static void
test_pending_last_seen_does_not_move_window(void **state)
{
	/* Early retries write nothing, so the window counts from first. */
	const struct record r = rec(T0, T0 + WINDOW, 0);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + WINDOW + 1, &params, &out, &v));
	assert_int_equal(v.reason, ENGINE_RESTART);
}

static void
test_full_greylisting_sequence(void **state)
{
	struct engine_verdict v;
	struct record stored, out;

	(void)state;
	assert_true(decide(NULL, T0, &params, &out, &v));
	stored = out;
	assert_false(decide(&stored, T0 + 60, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_EARLY, DELAY - 60, 0);
	assert_false(decide(&stored, T0 + 240, &params, &out, &v));
	assert_int_equal(v.seconds_left, DELAY - 240);
	assert_true(decide(&stored, T0 + 312, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_PASSED, 0, 312);
	stored = out;
	assert_false(decide(&stored, T0 + 400, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_KNOWN, 0, 0);
}

/* ---- triplets: passed -------------------------------------------------------- */

static void
test_passed_within_refresh_passes_without_write(void **state)
{
	const int64_t last = T0 + DELAY;
	const struct record r = rec(T0, last, 1);
	static const int64_t offsets[] = {0, 1, 60, ENGINE_REFRESH - 1};
	struct engine_verdict v;
	struct record out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		assert_false(decide(&r, last + offsets[i], &params, &out, &v));
		assert_verdict(&v, ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	}
}

static void
test_passed_refresh_due_writes(void **state)
{
	const int64_t last = T0 + DELAY;
	const struct record r = rec(T0, last, 1);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, last + ENGINE_REFRESH, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	assert_record(&out, T0, last + ENGINE_REFRESH, 2);

	assert_true(decide(&r, last + 10 * 86400, &params, &out, &v));
	assert_record(&out, T0, last + 10 * 86400, 2);
}

static void
test_passed_at_max_age_still_passes(void **state)
{
	const int64_t last = T0 + DELAY;
	const struct record r = rec(T0, last, 3);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, last + MAX_AGE, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	assert_record(&out, T0, last + MAX_AGE, 4);
}

static void
test_passed_unseen_past_max_age_restarts(void **state)
{
	const int64_t last = T0 + DELAY;
	const struct record r = rec(T0, last, 3);
	const int64_t now = last + MAX_AGE + 1;
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, now, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_RESTART, DELAY, 0);
	assert_record(&out, now, now, 0);
}

static void
test_passes_saturate(void **state)
{
	const struct record r = rec(T0, T0, UINT32_MAX);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(&r, T0 + ENGINE_REFRESH, &params, &out, &v));
	assert_int_equal(out.passes, UINT32_MAX);
	assert_int_equal(v.action, ENGINE_PASS);
}

/* ---- clock going backwards ------------------------------------------------------ */

/*
 * A pending triplet first seen "in the future": the delay restarts from
 * now (written), so the promised seconds are the seconds it takes, and
 * the retry after them passes.
 */
static void
test_clock_back_pending_restarts_and_keeps_its_promise(void **state)
{
	const struct record r = rec(T0, T0, 0);
	struct engine_verdict v;
	struct record out, again;

	(void)state;
	assert_true(decide(&r, T0 - 3600, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_RESTART, DELAY, 0);
	assert_record(&out, T0 - 3600, T0 - 3600, 0);
	assert_true(decide(&out, T0 - 3600 + DELAY, &params, &again, &v));
	assert_int_equal(v.action, ENGINE_PASS);
	assert_true(decide(&r, T0 - 1, &params, &out, &v));
	assert_verdict(&v, ENGINE_DEFER, ENGINE_RESTART, DELAY, 0);
}

static void
test_clock_back_passed_still_passes_and_resyncs(void **state)
{
	const int64_t last = T0 + 86400;
	const struct record r = rec(T0, last, 2);
	struct engine_verdict v;
	struct record out;

	(void)state;
	/* last_seen in the future: rewrite it so refreshes resume. */
	assert_true(decide(&r, last - 10, &params, &out, &v));
	assert_verdict(&v, ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	assert_record(&out, T0, last - 10, 3);
	/* Far back, beyond max_age: still a known triplet. */
	assert_true(decide(&r, last - 2 * MAX_AGE, &params, &out, &v));
	assert_int_equal(v.action, ENGINE_PASS);
	assert_int_equal(out.last_seen, last - 2 * MAX_AGE);
}

/* ---- other parameters ------------------------------------------------------------ */

static void
test_params_are_used_not_constants(void **state)
{
	const struct engine_params p = {60, 600, 3600 * 5, 0};
	const struct record pend = rec(T0, T0, 0);
	const struct record passed = rec(T0, T0, 1);
	struct engine_verdict v;
	struct record out;

	(void)state;
	assert_true(decide(NULL, T0, &p, &out, &v));
	assert_int_equal(v.seconds_left, 60);
	assert_false(decide(&pend, T0 + 59, &p, &out, &v));
	assert_int_equal(v.seconds_left, 1);
	assert_true(decide(&pend, T0 + 60, &p, &out, &v));
	assert_int_equal(v.reason, ENGINE_PASSED);
	assert_true(decide(&pend, T0 + 600, &p, &out, &v));
	assert_int_equal(v.reason, ENGINE_PASSED);
	assert_true(decide(&pend, T0 + 601, &p, &out, &v));
	assert_int_equal(v.reason, ENGINE_RESTART);
	assert_true(decide(&passed, T0 + 3600 * 5, &p, &out, &v));
	assert_int_equal(v.reason, ENGINE_KNOWN);
	assert_true(decide(&passed, T0 + 3600 * 5 + 1, &p, &out, &v));
	assert_int_equal(v.reason, ENGINE_RESTART);
}

/* ---- clients (auto-whitelist) ------------------------------------------------------ */

static void
test_client_first_pass_counted(void **state)
{
	struct record out;

	(void)state;
	memset(&out, 0xa5, sizeof(out));
	assert_true(engine_client_count(NULL, T0, &out));
	assert_record(&out, T0, T0, 1);
}

static void
test_client_counted_once_per_refresh(void **state)
{
	const struct record c = rec(T0, T0, 1);
	struct record out;

	(void)state;
	assert_false(engine_client_count(&c, T0, &out));
	assert_record(&out, T0, T0, 1);
	assert_false(engine_client_count(&c, T0 + ENGINE_REFRESH - 1, &out));
	assert_record(&out, T0, T0, 1);
	assert_true(engine_client_count(&c, T0 + ENGINE_REFRESH, &out));
	assert_record(&out, T0, T0 + ENGINE_REFRESH, 2);
}

static void
test_client_count_saturates(void **state)
{
	const struct record c = rec(T0, T0, UINT32_MAX);
	struct record out;

	(void)state;
	assert_true(engine_client_count(&c, T0 + ENGINE_REFRESH, &out));
	assert_int_equal(out.passes, UINT32_MAX);
}

static void
test_client_listed_after_awl_passes(void **state)
{
	struct record stored, out;
	int64_t now = T0;
	unsigned counted = 0;
	int i;

	(void)state;
	assert_false(engine_client_listed(NULL, now, &params));
	assert_true(engine_client_count(NULL, now, &out));
	stored = out;
	counted = 1;
	/* A pass every 10 minutes for 5 hours counts once an hour. */
	for (i = 1; i <= 30; i++) {
		now = T0 + i * 600;
		if (engine_client_count(&stored, now, &out)) {
			stored = out;
			counted++;
		}
		assert_int_equal(engine_client_listed(&stored, now, &params),
				 counted >= AWL);
	}
	assert_int_equal(counted, 1 + 30 * 600 / ENGINE_REFRESH);
	assert_int_equal(stored.passes, counted);
}

static void
test_client_listed_boundaries(void **state)
{
	const int64_t last = T0 + 86400;
	const struct record four = rec(T0, last, AWL - 1);
	const struct record five = rec(T0, last, AWL);
	const struct record many = rec(T0, last, 1000);

	(void)state;
	assert_false(engine_client_listed(&four, last, &params));
	assert_true(engine_client_listed(&five, last, &params));
	assert_true(engine_client_listed(&many, last, &params));
	assert_true(engine_client_listed(&five, last + MAX_AGE, &params));
	assert_false(engine_client_listed(&five, last + MAX_AGE + 1, &params));
	assert_false(engine_client_listed(&many, last + MAX_AGE + 1, &params));
}

static void
test_client_never_listed_when_awl_off(void **state)
{
	const struct engine_params off = {DELAY, WINDOW, MAX_AGE, 0};
	const struct record many = rec(T0, T0, 1000);
	const struct record none = rec(T0, T0, 0);

	(void)state;
	assert_false(engine_client_listed(&many, T0, &off));
	assert_false(engine_client_listed(&none, T0, &off));
	assert_false(engine_client_listed(NULL, T0, &off));
}

static void
test_client_awl_one_pass(void **state)
{
	const struct engine_params one = {DELAY, WINDOW, MAX_AGE, 1};
	const struct record zero = rec(T0, T0, 0);
	const struct record single = rec(T0, T0, 1);

	(void)state;
	assert_false(engine_client_listed(&zero, T0, &one));
	assert_true(engine_client_listed(&single, T0, &one));
}

/* ---- expiry ----------------------------------------------------------------------- */

static void
test_triplet_expiry(void **state)
{
	const struct record pend = rec(T0, T0 + 100, 0);
	const struct record passed = rec(T0, T0 + 86400, 4);

	(void)state;
	/* Pending: counted from first sight over the retry window. */
	assert_false(engine_triplet_expired(&pend, T0, &params));
	assert_false(engine_triplet_expired(&pend, T0 + WINDOW, &params));
	assert_true(engine_triplet_expired(&pend, T0 + WINDOW + 1, &params));
	/* Passed: counted from the last pass over max_age. */
	assert_false(engine_triplet_expired(&passed, T0 + WINDOW + 1, &params));
	assert_false(engine_triplet_expired(&passed, T0 + 86400 + MAX_AGE,
					    &params));
	assert_true(engine_triplet_expired(&passed, T0 + 86400 + MAX_AGE + 1,
					   &params));
}

static void
test_expiry_agrees_with_decision(void **state)
{
	/* Whatever the sweep deletes, the engine would have restarted. */
	const struct record pend = rec(T0, T0, 0);
	const struct record passed = rec(T0, T0 + DELAY, 1);
	static const int64_t offsets[] = {0, DELAY, WINDOW, WINDOW + 1,
					  MAX_AGE, MAX_AGE + DELAY,
					  MAX_AGE + DELAY + 1};
	struct engine_verdict v;
	struct record out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		int64_t now = T0 + offsets[i];

		decide(&pend, now, &params, &out, &v);
		assert_int_equal(engine_triplet_expired(&pend, now, &params),
				 v.reason == ENGINE_RESTART);
		decide(&passed, now, &params, &out, &v);
		assert_int_equal(engine_triplet_expired(&passed, now, &params),
				 v.reason == ENGINE_RESTART);
	}
}

static void
test_client_expiry(void **state)
{
	const struct record c = rec(T0, T0 + 86400, 7);

	(void)state;
	assert_false(engine_client_expired(&c, T0 + 86400, &params));
	assert_false(engine_client_expired(&c, T0 + 86400 + MAX_AGE, &params));
	assert_true(engine_client_expired(&c, T0 + 86400 + MAX_AGE + 1,
					  &params));
}

/* ---- names ------------------------------------------------------------------------- */

static void
test_reason_names(void **state)
{
	(void)state;
	assert_string_equal(engine_reason_name(ENGINE_NEW), "new");
	assert_string_equal(engine_reason_name(ENGINE_EARLY), "early-retry");
	assert_string_equal(engine_reason_name(ENGINE_PASSED), "triplet found");
	assert_string_equal(engine_reason_name(ENGINE_KNOWN), "triplet found");
	assert_string_equal(engine_reason_name(ENGINE_AWL), "client AWL");
	assert_non_null(engine_reason_name(ENGINE_RESTART));
	assert_memory_equal(engine_reason_name(ENGINE_RESTART), "new", 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_triplet_deferred_and_stored),
		cmocka_unit_test(test_retry_one_second_early_deferred_without_write),
		cmocka_unit_test(test_early_retry_seconds_left_exact),
		cmocka_unit_test(test_retry_exactly_at_delay_passes),
		cmocka_unit_test(test_retry_reports_real_delay),
		cmocka_unit_test(test_retry_at_window_passes),
		cmocka_unit_test(test_retry_after_window_restarts),
		cmocka_unit_test(test_pending_last_seen_does_not_move_window),
		cmocka_unit_test(test_full_greylisting_sequence),
		cmocka_unit_test(test_passed_within_refresh_passes_without_write),
		cmocka_unit_test(test_passed_refresh_due_writes),
		cmocka_unit_test(test_passed_at_max_age_still_passes),
		cmocka_unit_test(test_passed_unseen_past_max_age_restarts),
		cmocka_unit_test(test_passes_saturate),
		cmocka_unit_test(test_clock_back_pending_restarts_and_keeps_its_promise),
		cmocka_unit_test(test_clock_back_passed_still_passes_and_resyncs),
		cmocka_unit_test(test_params_are_used_not_constants),
		cmocka_unit_test(test_client_first_pass_counted),
		cmocka_unit_test(test_client_counted_once_per_refresh),
		cmocka_unit_test(test_client_count_saturates),
		cmocka_unit_test(test_client_listed_after_awl_passes),
		cmocka_unit_test(test_client_listed_boundaries),
		cmocka_unit_test(test_client_never_listed_when_awl_off),
		cmocka_unit_test(test_client_awl_one_pass),
		cmocka_unit_test(test_triplet_expiry),
		cmocka_unit_test(test_expiry_agrees_with_decision),
		cmocka_unit_test(test_client_expiry),
		cmocka_unit_test(test_reason_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
