/*
 * test_sweep - the expiry sweep's pace: the per-second budget from the
 * tables' size, their growth and the backlog the last second found, and
 * how a second's budget is cut into slices, against a fake clock.
 */
#include "sweep.h"

#include <stdbool.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define T0 ((int64_t)1700000000)

static uint64_t
budget(uint64_t entries, uint64_t inserted, uint64_t elapsed)
{
	struct sweep_sample s = {entries, inserted, elapsed, 0, 0};

	return sweep_budget(&s);
}

/* Table sizes x insert rates: the largest term wins. */
static void
test_budget_sizes_and_insert_rates(void **state)
{
	static const struct {
		uint64_t entries, per_second, want;
	} rows[] = {
		/* No growth: the floor until a pass would exceed 600 s. */
		{10000, 0, SWEEP_FLOOR},
		{1000000, 0, SWEEP_FLOOR},		/* 1667 < 2000 */
		{10000000, 0, 16667},			/* 10M / 600 s, up */
		/* 2000 added a second: examined twice as fast. */
		{10000, 2000, 4000},
		{1000000, 2000, 4000},
		{10000000, 2000, 16667},
		/* 20000 added a second. */
		{10000, 20000, 40000},
		{1000000, 20000, 40000},
		{10000000, 20000, 40000},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t got = budget(rows[i].entries, rows[i].per_second, 1);

		if (got != rows[i].want)
			fail_msg("entries %llu, %llu added/s: budget %llu, want %llu",
				 (unsigned long long)rows[i].entries,
				 (unsigned long long)rows[i].per_second,
				 (unsigned long long)got,
				 (unsigned long long)rows[i].want);
	}
	/* The old fixed pace took 83 minutes at 10M; now 10 at most. */
	assert_true(10000000 / budget(10000000, 0, 1) <= SWEEP_TARGET_PASS);
}

static void
test_budget_caps(void **state)
{
	(void)state;
	/* 100M records would want 166667 a second. */
	assert_int_equal(budget(100000000, 0, 1), SWEEP_MAX);
	/* 30000 added a second would want 60000. */
	assert_int_equal(budget(1000, 30000, 1), SWEEP_MAX);
	assert_int_equal(budget(1000, SWEEP_MAX / SWEEP_INSERT_FACTOR - 1, 1),
			 SWEEP_MAX - SWEEP_INSERT_FACTOR);
	/* Absurd counts saturate instead of wrapping. */
	assert_int_equal(budget(UINT64_MAX, UINT64_MAX, 1), SWEEP_MAX);
	assert_int_equal(budget(0, UINT64_MAX / 2 + 1, 1), SWEEP_MAX);
	/* An empty table still gets the floor. */
	assert_int_equal(budget(0, 0, 0), SWEEP_FLOOR);
}

static void
test_budget_insert_rate_over_elapsed(void **state)
{
	(void)state;
	/* No earlier count: no rate, whatever "inserted" says. */
	assert_int_equal(budget(1000, 1000000, 0), SWEEP_FLOOR);
	/* 1.2M over the 600 s pause between passes: 2000/s. */
	assert_int_equal(budget(1000, 1200000, 600), 4000);
	/* The same 1.2M within 60 s: 20000/s. */
	assert_int_equal(budget(1000, 1200000, 60), 40000);
	/* Rounded up: 1999 over 2 s is 1000/s, 2001 over 2 s 1001/s. */
	assert_int_equal(budget(1000, 1999, 2), SWEEP_FLOOR);
	assert_int_equal(budget(1000, 2001, 2), 2002);
}

static void
test_budget_backlog_goes_full_pace(void **state)
{
	struct sweep_sample s = {1000, 0, 1, 2000, 200};

	(void)state;
	/* One in ten examined was expired: a backlog. */
	assert_int_equal(sweep_budget(&s), SWEEP_MAX);
	s.removed = 199;
	assert_int_equal(sweep_budget(&s), SWEEP_FLOOR);
	s.examined = 2001;
	s.removed = 200;
	assert_int_equal(sweep_budget(&s), SWEEP_FLOOR);
	s.removed = 201;
	assert_int_equal(sweep_budget(&s), SWEEP_MAX);
	/* Nothing examined says nothing. */
	s.examined = 0;
	s.removed = 0;
	assert_int_equal(sweep_budget(&s), SWEEP_FLOOR);
	/* A steady table's few expired records do not trigger it. */
	s.entries = 10000000;
	s.examined = 16667;
	s.removed = 120;
	assert_int_equal(sweep_budget(&s), 16667);
}

static void
test_inserted_from_counts(void **state)
{
	(void)state;
	assert_int_equal(sweep_inserted(1000, 3000, 0), 2000);
	/* The sweep removed 500 meanwhile: 2500 were added. */
	assert_int_equal(sweep_inserted(1000, 3000, 500), 2500);
	assert_int_equal(sweep_inserted(3000, 2800, 500), 300);
	assert_int_equal(sweep_inserted(3000, 2500, 500), 0);
	/* greyholdctl deleted more than the sweep did. */
	assert_int_equal(sweep_inserted(3000, 1000, 500), 0);
	assert_int_equal(sweep_inserted(0, 0, 0), 0);
}

/* Run the rest of the second's slices; returns how many there were. */
static unsigned
run_second(struct sweep_pace *sp, uint64_t removed_per_slice,
	   uint64_t usec_per_slice)
{
	uint64_t n;
	unsigned slices = 0;

	while ((n = sweep_pace_slice(sp)) > 0) {
		assert_true(n <= SWEEP_SLICE_MAX);
		sweep_pace_done(sp, n, removed_per_slice < n ? removed_per_slice : n,
				usec_per_slice, false);
		if (++slices > 1000)
			fail_msg("the second's slices do not end");
	}
	return slices;
}

static void
test_pace_slices_a_second(void **state)
{
	struct sweep_pace sp;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	assert_true(sweep_pace_new_second(&sp, T0));
	sweep_pace_second(&sp, T0, 10000000);
	assert_false(sweep_pace_new_second(&sp, T0));
	assert_int_equal(sp.budget, 16667);
	/* Full slices and a last one of what is left. */
	assert_int_equal(run_second(&sp, 0, 1000),
			 (16667 + SWEEP_SLICE_MAX - 1) / SWEEP_SLICE_MAX);
	assert_int_equal(sp.examined, 16667);
	assert_int_equal(sweep_pace_slice(&sp), 0);
	/* The next second starts afresh. */
	assert_true(sweep_pace_new_second(&sp, T0 + 1));
	sweep_pace_second(&sp, T0 + 1, 10000000);
	assert_int_equal(sweep_pace_slice(&sp), SWEEP_SLICE_MAX);
}

static void
test_pace_backlog_then_steady(void **state)
{
	struct sweep_pace sp;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	/* A daemon starting on 200k records, all expired. */
	sweep_pace_second(&sp, T0, 200000);
	assert_int_equal(sp.budget, SWEEP_FLOOR);
	assert_int_equal(run_second(&sp, SWEEP_SLICE_MAX, 2000),
			 SWEEP_FLOOR / SWEEP_SLICE_MAX);
	sweep_pace_second(&sp, T0 + 1, 198000);
	assert_int_equal(sp.budget, SWEEP_MAX);
	assert_int_equal(run_second(&sp, SWEEP_SLICE_MAX, 2000),
			 SWEEP_MAX / SWEEP_SLICE_MAX);
	/* Then slices that find nothing: back to the size's pace. */
	sweep_pace_second(&sp, T0 + 2, 148000);
	assert_int_equal(sp.budget, SWEEP_MAX);
	run_second(&sp, 0, 2000);
	sweep_pace_second(&sp, T0 + 3, 148000);
	assert_int_equal(sp.budget, SWEEP_FLOOR);
}

static void
test_pace_follows_growth_between_counts(void **state)
{
	struct sweep_pace sp;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	sweep_pace_second(&sp, T0, 100000);
	assert_int_equal(sp.budget, SWEEP_FLOOR);	/* no rate yet */
	run_second(&sp, 50, 1000);			/* 1 in 20 */
	/* 20000 more records a second later, and 100 removed meanwhile. */
	sweep_pace_second(&sp, T0 + 1, 119900);
	assert_int_equal(sp.last.inserted, 20000);
	assert_int_equal(sp.last.elapsed, 1);
	assert_int_equal(sp.budget, 40000);
	run_second(&sp, 0, 1000);
	/* A pause between passes: the rate over all of it. */
	sweep_pace_second(&sp, T0 + 601, 119900 + 1200000);
	assert_int_equal(sp.last.elapsed, 600);
	assert_int_equal(sp.budget, 4000);
}

static void
test_pace_time_guard(void **state)
{
	struct sweep_pace sp;
	uint64_t slow = SWEEP_USEC_MAX / 4;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	sp.examined = 2000;
	sp.removed = 2000;
	sweep_pace_second(&sp, T0, 1000000);
	assert_int_equal(sp.budget, SWEEP_MAX);
	/* Slow slices (a slow disk): the second's sweeping stops at the cap. */
	assert_int_equal(run_second(&sp, SWEEP_SLICE_MAX, slow), 4);
	assert_true(sp.left > 0);
	assert_int_equal(sweep_pace_slice(&sp), 0);
}

static void
test_pace_wrap_and_hold(void **state)
{
	struct sweep_pace sp;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	sweep_pace_second(&sp, T0, 50000);
	sweep_pace_done(&sp, SWEEP_SLICE_MAX, 600, 1000, false);
	/* The pass ended: nothing more this second, no backlog carried. */
	sweep_pace_done(&sp, SWEEP_SLICE_MAX, 600, 1000, true);
	assert_int_equal(sweep_pace_slice(&sp), 0);
	sweep_pace_second(&sp, T0 + 600, 50000);
	assert_int_equal(sp.budget, SWEEP_FLOOR);
	/* The removals still count against the growth estimate. */
	assert_int_equal(sp.last.inserted, 1200);
	/* A failed slice holds the sweep for the rest of the second. */
	assert_int_equal(sweep_pace_slice(&sp), SWEEP_SLICE_MAX);
	sweep_pace_hold(&sp);
	assert_int_equal(sweep_pace_slice(&sp), 0);
	sweep_pace_second(&sp, T0 + 601, 50000);
	assert_int_equal(sweep_pace_slice(&sp), SWEEP_SLICE_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_sizes_and_insert_rates),
		cmocka_unit_test(test_budget_caps),
		cmocka_unit_test(test_budget_insert_rate_over_elapsed),
		cmocka_unit_test(test_budget_backlog_goes_full_pace),
		cmocka_unit_test(test_inserted_from_counts),
		cmocka_unit_test(test_pace_slices_a_second),
		cmocka_unit_test(test_pace_backlog_then_steady),
		cmocka_unit_test(test_pace_follows_growth_between_counts),
		cmocka_unit_test(test_pace_time_guard),
		cmocka_unit_test(test_pace_wrap_and_hold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
