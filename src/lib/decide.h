/*
 * decide - the one greylisting decision for a request.
 *
 * Pure: (records read, now, params) in; (verdict, records to write) out.
 * Every path that answers a request calls it: the store thread inside its
 * write transaction (db_batch.c), the loop thread's read-only fast path
 * (db_peek.c, which answers only when decide_request() writes nothing), and
 * greyholdctl check.  The Redis backend's Lua script mirrors it; one table
 * of scenarios (tests/decide_scenarios.txt) runs through all of them.
 *
 * A request has one or more identities: its client network today, and, for
 * smart greylisting, a verified name or an SPF-validated domain.  Each
 * identity has its own auto-whitelist record ("client") and its own triplet
 * record.  The rules, in order:
 *
 *   1. An identity allowed to auto-whitelist (awl) whose client record is
 *      listed (engine_client_listed()) passes the request, reason AWL; that
 *      identity's pass is counted (engine_client_count()).
 *   2. Otherwise each identity's triplet goes through engine_triplet().  If
 *      any identity passes, the request passes with the first passing
 *      identity's verdict; identities that would have deferred are recorded
 *      as passed too (the triplet did pass), and every awl identity counts
 *      the pass.
 *   3. Otherwise the request is deferred: "early-retry" with the fewest
 *      seconds left if any identity is early, else "new" (or "restart" when
 *      every identity restarted); each identity's triplet is written as the
 *      engine says.
 *
 * With one identity this is exactly the engine's table (engine.h).
 */
#ifndef GREYHOLD_DECIDE_H
#define GREYHOLD_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "record.h"

#define DECIDE_MAX_IDS 3

struct decide_id_in {
	bool awl;			/* may auto-whitelist this identity */
	const struct record *client;	/* NULL: none stored */
	const struct record *triplet;	/* NULL: none stored */
};

struct decide_in {
	size_t n;			/* identities, 1..DECIDE_MAX_IDS */
	struct decide_id_in id[DECIDE_MAX_IDS];
};

struct decide_id_out {
	bool put_client;
	bool put_triplet;
	struct record client;
	struct record triplet;
};

struct decide_out {
	struct engine_verdict verdict;
	size_t matched;			/* identity that decided a pass */
	struct decide_id_out id[DECIDE_MAX_IDS];
};

/*
 * Decide.  Fills *out and returns true when any record must be written;
 * false means the verdict stands on the records as read, so a read-only
 * path may answer it.
 */
bool decide_request(const struct decide_in *in, int64_t now,
	    const struct engine_params *p, struct decide_out *out);

#endif
