/*
 * dns - asynchronous DNS lookups on the daemon's libuv loop (c-ares).
 *
 * dns_lookup() answers from the cache (src/lib/dns_cache.c), joins a
 * query in flight for the same (type, name), or sends one, and later
 * calls back exactly once with a dns_result that is
 * valid only during the call.  The callback never runs inside
 * dns_lookup(): answers, cache hits and immediate failures are all
 * delivered from the loop, so callers never re-enter themselves.  A
 * callback may start further lookups, and may call dns_close().
 *
 * Failures come as results, never as errors: no answer within the
 * timeout, SERVFAIL, a refused connection, or more than max_outstanding
 * queries already in flight (refused at once, never queued) are
 * DNS_TEMPFAIL; REFUSED, FORMERR and malformed answers DNS_PERMFAIL.
 *
 * Ownership: the resolver belongs to the loop thread that opened it.
 * dns_close() cancels every outstanding lookup (each callback gets
 * DNS_TEMPFAIL, once, before dns_close() returns), refuses new ones
 * (-ESHUTDOWN), closes its handles and frees itself in their close
 * callbacks; run the loop until then.
 */
#ifndef GREYHOLD_DNS_H
#define GREYHOLD_DNS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "dns_result.h"
#include "metrics.h"

struct dns_options {
	/* Nameservers as config_parse_nameserver() reads them; none: the
	   system's /etc/resolv.conf. */
	char *const *servers;
	size_t nservers;
	uint32_t timeout_ms;		/* per lookup */
	uint32_t budget_ms;		/* per request, for dns_budget_ms() */
	size_t cache_entries;		/* 0: no cache */
	unsigned max_outstanding;	/* queries in flight at most */
};

/* Average bytes per cache entry allowed: the cache's byte bound is
   cache_entries times this, so huge TXT answers cannot crowd memory. */
#define DNS_CACHE_BYTES_PER_ENTRY 1024

typedef void (*dns_callback)(void *arg, const struct dns_result *res);

struct dns_resolver;

/* The options the config asks for (pointers into cfg: keep it alive). */
void dns_options_from_config(struct dns_options *o, const struct config *cfg);

/*
 * Open a resolver on loop.  m (may be NULL) receives the counters and
 * must outlive the resolver.  On error returns a negative errno and
 * writes why into err.
 */
int dns_open(struct dns_resolver **out, uv_loop_t *loop,
	     const struct dns_options *o, struct metrics_dns *m, char *err,
	     size_t errsz);

/*
 * Look up (type, name).  Returns 0: cb(arg, result) will be called once,
 * later, from the loop.  -EINVAL for a name that is empty, longer than
 * DNS_NAME_MAX or holds spaces, control bytes or backslashes,
 * -ESHUTDOWN once dns_close() has begun, -ENOMEM: cb is never called.
 */
int dns_lookup(struct dns_resolver *r, enum dns_type type, const char *name,
	       dns_callback cb, void *arg);

/* Idempotent; see the top of this file. */
void dns_close(struct dns_resolver *r);

/* The time all lookups for one request may take (dns_budget), in ms. */
uint32_t dns_budget_ms(const struct dns_resolver *r);

/* The counters (the caller's m, or the resolver's own). */
const struct metrics_dns *dns_metrics(const struct dns_resolver *r);

#endif
