/*
 * metrics - greyhold's counters and their Prometheus text exposition.
 *
 * Plain counters owned by the loop thread (no atomics: one writer, and
 * the exposition is formatted on the same thread).  Store figures come
 * from store_get_stats() at formatting time.
 */
#ifndef GREYHOLD_METRICS_H
#define GREYHOLD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum metrics_result {
	RESULT_GREYLIST_NEW,
	RESULT_GREYLIST_RESTART,
	RESULT_GREYLIST_EARLY,
	RESULT_PASS_FIRST,		/* first pass after the delay */
	RESULT_PASS_KNOWN,		/* triplet passed before */
	RESULT_PASS_AWL,
	RESULT_PASS_POOL,		/* a retry recognised by a name or SPF
					   identity, not the network */
	RESULT_PASS_TRUSTED_SPF,	/* the sender's own, SPF-proven server */
	RESULT_PASS_DNSWL,		/* vouched for by a DNS allowlist */
	RESULT_PASS_WL_CLIENT,
	RESULT_PASS_WL_RECIPIENT,
	RESULT_PASS_LIVE_CLIENT,
	RESULT_PASS_LIVE_RECIPIENT,
	RESULT_DUNNO_NOT_RCPT,
	RESULT_DUNNO_AUTHENTICATED,
	RESULT_STORE_FAILURE,
	RESULT_MAX
};

/* Latency buckets (upper bounds in microseconds), plus +Inf. */
#define METRICS_LATENCY_BUCKETS 14

struct metrics {
	uint64_t results[RESULT_MAX];
	uint64_t connections_accepted;
	uint64_t connections_refused;	/* over max_connections */
	uint64_t connections_open;
	uint64_t protocol_errors;
	uint64_t idle_closed;
	uint64_t stalled_closed;	/* client took no answer for idle_timeout */
	uint64_t log_dropped;		/* lines the log writer dropped (log.h) */
	uint64_t reloads;
	uint64_t reload_failures;
	uint64_t latency_count;
	uint64_t latency_sum_usec;
	uint64_t latency[METRICS_LATENCY_BUCKETS + 1];
	uint64_t live_whitelist_entries;
	uint64_t static_whitelist_entries;
};

/*
 * The resolver's counters (src/daemon/dns.c updates them on the loop).
 * Kept apart from struct metrics so a resolver can run without a daemon
 * (tests/dns/dnsq) and the exposition adds them only when wired in.
 */
struct metrics_dns {
	uint64_t lookups;	/* dns_lookup() calls answered */
	uint64_t cache_hits;
	uint64_t queries_sent;
	uint64_t timeouts;	/* no answer within dns_timeout */
	uint64_t failures;	/* other TEMPFAIL or PERMFAIL from a server */
	uint64_t overflows;	/* refused at once: dns_max_outstanding */
	uint64_t outstanding;	/* queries in flight now (gauge) */
	uint64_t cache_entries;	/* gauge */
	uint64_t latency_count;	/* every answered lookup, hit or miss */
	uint64_t latency_sum_usec;
	uint64_t latency[METRICS_LATENCY_BUCKETS + 1];
};

/* Map an engine verdict (or store failure) to a result. */
enum metrics_result metrics_result_for(const struct engine_verdict *v,
				       int err);
void metrics_observe_latency(struct metrics *m, uint64_t usec);
uint64_t metrics_total_requests(const struct metrics *m);

void metrics_dns_observe_latency(struct metrics_dns *m, uint64_t usec);

/*
 * Prometheus text format (version 0.0.4).  Returns the length written,
 * or the length needed if outsz was too small.
 */
size_t metrics_format(char *out, size_t outsz, const struct metrics *m,
		      const struct store_stats *ss);
/* The greyhold_dns_* metrics, same conventions: append to the above. */
size_t metrics_format_dns(char *out, size_t outsz, const struct metrics_dns *m);

#endif
