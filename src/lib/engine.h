/*
 * engine - the greylisting decision: (record, now, params) -> verdict.
 *
 * Pure: no clock, no storage.  The store calls it inside its write
 * transaction, so two requests for one triplet in a batch see each other.
 *
 * Triplet states:
 *   absent                          -> store {now, now, 0}, defer "new"
 *   pending, now - first > window   -> start over, defer "new" (restart)
 *   pending, now - first < delay    -> defer "early-retry", nothing written
 *   pending, otherwise              -> pass, passes = 1, last = now
 *   passed,  now - last > max_age   -> start over, defer (restart)
 *   passed,  otherwise              -> pass; last/passes refreshed only when
 *                                      ENGINE_REFRESH seconds have gone by,
 *                                      so steady retries cost no write
 * Clients (auto-whitelist): each pass counts at most once per
 * ENGINE_REFRESH; a client with awl_passes counted passes whose last one
 * is within max_age passes without greylisting.
 */
#ifndef GREYHOLD_ENGINE_H
#define GREYHOLD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "record.h"

#define ENGINE_REFRESH 3600

struct engine_params {
	int64_t delay;		/* seconds before a retry may pass */
	int64_t retry_window;	/* seconds after first sight a retry may pass */
	int64_t max_age;	/* seconds a passed triplet/client is kept */
	unsigned awl_passes;	/* auto-whitelist after N passes; 0 = off */
};

enum engine_action { ENGINE_PASS, ENGINE_DEFER };

enum engine_reason {
	ENGINE_NEW,		/* first sight */
	ENGINE_RESTART,		/* seen, but too long ago: greylisted again */
	ENGINE_EARLY,		/* retried before the delay was over */
	ENGINE_PASSED,		/* first pass after the delay */
	ENGINE_KNOWN,		/* triplet passed before */
	ENGINE_AWL,		/* client auto-whitelisted */
};

struct engine_verdict {
	enum engine_action action;
	enum engine_reason reason;
	int64_t seconds_left;	/* DEFER: seconds until a retry may pass */
	int64_t delay;		/* ENGINE_PASSED: seconds since first sight */
};

/*
 * Decide for a triplet record (NULL when absent).  Fills *v and *out, and
 * returns true when *out must be stored.
 */
bool engine_triplet(const struct record *rec, int64_t now,
		    const struct engine_params *p, struct record *out,
		    struct engine_verdict *v);

/* Whether a client record (may be NULL) makes the client whitelisted. */
bool engine_client_listed(const struct record *crec, int64_t now,
			  const struct engine_params *p);

/*
 * Count a pass for a client (crec may be NULL).  Returns true when *out
 * must be stored.
 */
bool engine_client_count(const struct record *crec, int64_t now,
			 struct record *out);

/* Whether records may be deleted by the expiry sweep. */
bool engine_triplet_expired(const struct record *r, int64_t now,
			    const struct engine_params *p);
bool engine_client_expired(const struct record *r, int64_t now,
			   const struct engine_params *p);

/* Short name of a reason as logged ("new", "early-retry", ...). */
const char *engine_reason_name(enum engine_reason reason);

#endif
