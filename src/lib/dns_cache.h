/*
 * dns_cache - a bounded cache of DNS answers keyed by (type, name).
 *
 * Pure: no clock, no I/O.  Callers pass `now` in milliseconds on any
 * monotonic scale; the cache only compares and subtracts them.
 *
 * Names are compared case-insensitively (stored in lower case, one
 * trailing dot ignored).  Each entry holds a deep copy of a dns_result,
 * its records and their bytes in one allocation, so the caller's buffers
 * may die after dns_cache_put() returns.
 *
 * Bounds: at most max_entries entries and max_bytes bytes (entry headers,
 * names, records and data all counted); the least recently used entries
 * are evicted first.  An answer bigger than max_bytes on its own is not
 * cached (-EFBIG).  Expired entries are dropped when met.
 *
 * TTLs (RFC 1035, RFC 2308):
 *   OK             the answer's ttl, clamped to [min_ttl, max_ttl]
 *   NXDOMAIN/NODATA  the SOA-derived ttl when the resolver had one (pass
 *                  soa_ttl >= 0: min(SOA TTL, SOA MINIMUM)), else neg_ttl;
 *                  clamped to [min_ttl, neg_max_ttl]
 *   TEMPFAIL/PERMFAIL  fail_ttl, at most DNS_CACHE_FAIL_TTL_MAX seconds:
 *                  long enough that the recipients of one message do not
 *                  each wait out the same dead server, short enough that
 *                  one lost packet is soon forgotten.  0 = not cached.
 *
 * Owner: one thread (the daemon's loop); nothing here locks.
 */
#ifndef GREYHOLD_DNS_CACHE_H
#define GREYHOLD_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dns_result.h"

#define DNS_CACHE_FAIL_TTL_MAX 5

struct dns_cache_options {
	size_t max_entries;	/* 0 = cache nothing */
	size_t max_bytes;
	uint32_t min_ttl;	/* floor for OK and negative answers */
	uint32_t max_ttl;	/* ceiling for OK answers */
	uint32_t neg_ttl;	/* negative answers without an SOA */
	uint32_t neg_max_ttl;	/* ceiling for negative answers */
	uint32_t fail_ttl;	/* TEMPFAIL and PERMFAIL, seconds */
	uint64_t seed;		/* hash seed: names come from strangers */
};

struct dns_cache_stats {
	size_t entries;
	size_t bytes;
	uint64_t evictions;	/* pushed out by the bounds, not by age */
};

struct dns_cache;

/* Defaults for options not otherwise chosen (the daemon's values). */
void dns_cache_default_options(struct dns_cache_options *o);

int dns_cache_new(struct dns_cache **out, const struct dns_cache_options *o);
void dns_cache_free(struct dns_cache *c);

/*
 * The seconds an answer stays cached under o (see the table above);
 * soa_ttl < 0 means the negative answer carried no SOA.
 */
uint32_t dns_cache_ttl_for(const struct dns_cache_options *o,
			   const struct dns_result *res, int64_t soa_ttl);

/*
 * Store a deep copy of res for (type, name), replacing any entry for
 * them.  Returns 0, -EINVAL for a name that is empty or too long,
 * -EFBIG for an answer over max_bytes, -ENOMEM; a TTL of 0 stores
 * nothing and returns 0.
 */
int dns_cache_put(struct dns_cache *c, enum dns_type type, const char *name,
		  const struct dns_result *res, int64_t soa_ttl, uint64_t now);

/*
 * Look up (type, name) at now.  On a hit returns 0 and fills out with
 * the seconds left in out->ttl; out's records point into the cache and
 * stay valid until the next call on this cache.  -ENOENT on a miss.
 */
int dns_cache_get(struct dns_cache *c, enum dns_type type, const char *name,
		  uint64_t now, struct dns_result *out);

void dns_cache_stats(const struct dns_cache *c, struct dns_cache_stats *out);

/*
 * Deep-copy res into one allocation that the caller frees with free():
 * the copy outlives res's buffers.
 */
int dns_cache_clone(const struct dns_result *res, struct dns_result **out);

/*
 * Normalise name into buf (DNS_NAME_MAX + 1 bytes): lower case, one
 * trailing dot removed.  -EINVAL if empty or too long.
 */
int dns_cache_normalize(const char *name, char *buf);

#endif
