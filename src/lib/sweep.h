/*
 * sweep - the pace of the expiry sweep: how many records the store thread
 * examines each second, and in which slices.
 *
 * Pure: numbers in, numbers out, the clock passed in.  The store thread
 * (store.c) owns one struct sweep_pace, counts the tables at the start of
 * each second of sweeping (db_expire_entries()), and runs the second's
 * budget as slices of at most SWEEP_SLICE_MAX records (db_expire_slice()),
 * each one short write transaction between batches.
 *
 * Why the budget moves (per second, the largest of):
 *  - SWEEP_FLOOR, the old fixed pace, cheap on any table;
 *  - entries / SWEEP_TARGET_PASS: a pass over the tables takes at most
 *    SWEEP_TARGET_PASS seconds whatever their size, so an expired record
 *    waits at most that plus the pause between passes (store.c);
 *  - SWEEP_INSERT_FACTOR x the records added per second: the pass runs
 *    ahead of the growth it must also examine, so it ends even while the
 *    table grows fast (at a fixed 2000/s an insert rate above 2000/s
 *    outgrew it and the table grew without bound);
 *  - SWEEP_MAX while the last second's slices found a backlog (at least
 *    one record in SWEEP_BACKLOG_SHARE examined was expired): on a table
 *    in steady state a pass finds well under that share (records live
 *    retry_window or max_age, days, against a pass of minutes), so a high
 *    share means stale records piled up (the daemon was down, max_age was
 *    lowered, an old dump was loaded) and removing them is worth the pace.
 * capped at SWEEP_MAX, and each second's sweeping at SWEEP_USEC_MAX of
 * work, so the store thread always spends most of its time on requests.
 */
#ifndef GREYHOLD_SWEEP_H
#define GREYHOLD_SWEEP_H

#include <stdbool.h>
#include <stdint.h>

/* Records examined per second at least. */
#define SWEEP_FLOOR 2000
/* Longest pass, in seconds, the size term aims at. */
#define SWEEP_TARGET_PASS 600
/* Records examined per record added. */
#define SWEEP_INSERT_FACTOR 2
/* One in this many examined records expired: a backlog. */
#define SWEEP_BACKLOG_SHARE 10
/*
 * Records examined per second at most: a pass over a table at the default
 * db_max_size (4 GiB, some 20M triplets) still takes under SWEEP_TARGET_PASS.
 */
#define SWEEP_MAX 50000
/*
 * Records examined per slice (one write transaction) at most.  What a
 * slice costs is mostly its synced commit of the pages its deletions
 * dirtied: measured on this project's test machine, 1000 records with a
 * fifth expired (scattered over as many pages) take about 2 ms, 2000 take
 * 5-8 ms, and 1000 with none expired 0.3 ms (nothing to commit).
 */
#define SWEEP_SLICE_MAX 1000
/* Microseconds of slices per second at most. */
#define SWEEP_USEC_MAX 200000

/* What the budget of one second is computed from. */
struct sweep_sample {
	uint64_t entries;	/* records in the swept tables now */
	uint64_t inserted;	/* records added in the last `elapsed` seconds */
	uint64_t elapsed;	/* 0: no earlier count, no insert rate */
	uint64_t examined;	/* by the slices of the last second swept */
	uint64_t removed;	/* of those, expired and deleted */
};

/* Records to examine in the next second: SWEEP_FLOOR..SWEEP_MAX. */
uint64_t sweep_budget(const struct sweep_sample *s);

/*
 * Records added between two counts of the tables (before, after), given
 * the sweep removed `removed` in between.  0 if the tables shrank more
 * than that (greyholdctl deleted records).
 */
uint64_t sweep_inserted(uint64_t before, uint64_t after, uint64_t removed);

/* The sweep's pace, owned by the store thread; zero it to start. */
struct sweep_pace {
	int64_t second;		/* the second `left` belongs to */
	uint64_t budget;	/* records that second may examine */
	uint64_t left;		/* of which not yet examined */
	uint64_t examined;	/* examined and removed in that second */
	uint64_t removed;
	uint64_t usec;		/* time its slices took */
	struct sweep_sample last;	/* what that second's budget came from */
	uint64_t counted;	/* the tables at the last count */
	int64_t counted_at;	/* when; 0: never */
	uint64_t removed_since;	/* removed since that count */
};

/*
 * Whether `now` is a new second of sweeping for the pace (then count the
 * tables and call sweep_pace_second()).
 */
bool sweep_pace_new_second(const struct sweep_pace *sp, int64_t now);

/* Start second `now` with the tables holding `entries` records. */
void sweep_pace_second(struct sweep_pace *sp, int64_t now, uint64_t entries);

/* Records the next slice may examine; 0: nothing more this second. */
uint64_t sweep_pace_slice(const struct sweep_pace *sp);

/*
 * A slice asked for `asked` records, removed `removed` and took usec;
 * wrapped: it ended the pass (the next pass starts afresh, with no
 * backlog carried over).
 */
void sweep_pace_done(struct sweep_pace *sp, uint64_t asked, uint64_t removed,
		     uint64_t usec, bool wrapped);

/* Stop sweeping for the rest of this second (a slice failed). */
void sweep_pace_hold(struct sweep_pace *sp);

#endif
