/*
 * metrics - counting and Prometheus exposition.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static const uint64_t latency_bounds[METRICS_LATENCY_BUCKETS] = {
	50, 100, 250, 500, 1000, 2000, 5000, 10000, 25000, 50000,
	100000, 250000, 1000000, 5000000,
};

static const struct {
	const char *action;
	const char *reason;
} result_labels[RESULT_MAX] = {
	[RESULT_GREYLIST_NEW] = {"greylist", "new"},
	[RESULT_GREYLIST_RESTART] = {"greylist", "restart"},
	[RESULT_GREYLIST_EARLY] = {"greylist", "early_retry"},
	[RESULT_PASS_FIRST] = {"pass", "delayed"},
	[RESULT_PASS_KNOWN] = {"pass", "known"},
	[RESULT_PASS_AWL] = {"pass", "client_awl"},
	[RESULT_PASS_POOL] = {"pass", "pool"},
	[RESULT_PASS_TRUSTED_SPF] = {"pass", "trusted_spf"},
	[RESULT_PASS_DNSWL] = {"pass", "dnswl"},
	[RESULT_PASS_WL_CLIENT] = {"pass", "client_whitelist"},
	[RESULT_PASS_WL_RECIPIENT] = {"pass", "recipient_whitelist"},
	[RESULT_PASS_LIVE_CLIENT] = {"pass", "live_client_whitelist"},
	[RESULT_PASS_LIVE_RECIPIENT] = {"pass", "live_recipient_whitelist"},
	[RESULT_DUNNO_NOT_RCPT] = {"dunno", "not_rcpt"},
	[RESULT_DUNNO_AUTHENTICATED] = {"dunno", "authenticated"},
	[RESULT_STORE_FAILURE] = {"failure", "store_error"},
};

enum metrics_result
metrics_result_for(const struct engine_verdict *v, int err)
{
	if (err < 0)
		return RESULT_STORE_FAILURE;
	switch (v->reason) {
	case ENGINE_NEW:
		return RESULT_GREYLIST_NEW;
	case ENGINE_RESTART:
		return RESULT_GREYLIST_RESTART;
	case ENGINE_EARLY:
		return RESULT_GREYLIST_EARLY;
	case ENGINE_PASSED:
		return RESULT_PASS_FIRST;
	case ENGINE_KNOWN:
		return RESULT_PASS_KNOWN;
	case ENGINE_AWL:
		return RESULT_PASS_AWL;
	}
	return RESULT_STORE_FAILURE;
}

static size_t
latency_bucket(uint64_t usec)
{
	size_t i;

	for (i = 0; i < METRICS_LATENCY_BUCKETS && usec > latency_bounds[i]; i++)
		;
	return i;
}

void
metrics_observe_latency(struct metrics *m, uint64_t usec)
{
	m->latency_count++;
	m->latency_sum_usec += usec;
	m->latency[latency_bucket(usec)]++;
}

void
metrics_dns_observe_latency(struct metrics_dns *m, uint64_t usec)
{
	m->latency_count++;
	m->latency_sum_usec += usec;
	m->latency[latency_bucket(usec)]++;
}

uint64_t
metrics_total_requests(const struct metrics *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < RESULT_MAX; i++)
		n += m->results[i];
	return n;
}

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void
emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
		      o->len < o->size ? o->size - o->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

static void
counter(struct out *o, const char *name, const char *help, uint64_t v)
{
	emit(o, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name,
	     help, name, name, v);
}

static void
gauge(struct out *o, const char *name, const char *help, uint64_t v)
{
	emit(o, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help,
	     name, name, v);
}

/* sentinel://: the primary, failovers, time without a primary. */
static void
format_sentinel(struct out *o, const struct store_stats *ss)
{
	emit(o, "# HELP greyhold_redis_primary_info The Redis primary in use "
	     "(sentinel://); none while there is none.\n# TYPE "
	     "greyhold_redis_primary_info gauge\n"
	     "greyhold_redis_primary_info{addr=\"%s\"} %d\n",
	     ss->primary[0] != '\0' ? ss->primary : "none",
	     ss->primary[0] != '\0');
	counter(o, "greyhold_redis_failovers_total",
		"Times the sentinels moved the Redis primary.", ss->failovers);
	emit(o, "# HELP greyhold_redis_no_primary_seconds_total Time without a "
	     "Redis primary.\n# TYPE greyhold_redis_no_primary_seconds_total "
	     "counter\ngreyhold_redis_no_primary_seconds_total %.3f\n",
	     (double)ss->no_primary_msec / 1e3);
	emit(o, "# HELP greyhold_redis_no_primary_seconds How long the Redis "
	     "primary has been gone; 0 while there is one.\n# TYPE "
	     "greyhold_redis_no_primary_seconds gauge\n"
	     "greyhold_redis_no_primary_seconds %.3f\n",
	     (double)ss->no_primary_now_msec / 1e3);
}

size_t
metrics_format(char *buf, size_t size, const struct metrics *m,
	       const struct store_stats *ss)
{
	struct out o = {buf, size, 0};
	uint64_t cumulative = 0;
	size_t i;

	emit(&o, "# HELP greyhold_requests_total Policy requests answered, by "
	     "action and reason.\n# TYPE greyhold_requests_total counter\n");
	for (i = 0; i < RESULT_MAX; i++)
		emit(&o, "greyhold_requests_total{action=\"%s\",reason=\"%s\"} %"
		     PRIu64 "\n", result_labels[i].action, result_labels[i].reason,
		     m->results[i]);

	emit(&o, "# HELP greyhold_request_duration_seconds Time from a complete "
	     "request to its answer.\n# TYPE greyhold_request_duration_seconds "
	     "histogram\n");
	for (i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		cumulative += m->latency[i];
		emit(&o, "greyhold_request_duration_seconds_bucket{le=\"%g\"} %"
		     PRIu64 "\n", (double)latency_bounds[i] / 1e6, cumulative);
	}
	cumulative += m->latency[METRICS_LATENCY_BUCKETS];
	emit(&o, "greyhold_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64
	     "\ngreyhold_request_duration_seconds_sum %.6f\n"
	     "greyhold_request_duration_seconds_count %" PRIu64 "\n", cumulative,
	     (double)m->latency_sum_usec / 1e6, m->latency_count);

	counter(&o, "greyhold_connections_accepted_total",
		"Connections accepted.", m->connections_accepted);
	counter(&o, "greyhold_connections_refused_total",
		"Connections closed at once because max_connections was reached.",
		m->connections_refused);
	gauge(&o, "greyhold_connections_open", "Connections open now.",
	      m->connections_open);
	counter(&o, "greyhold_protocol_errors_total",
		"Connections closed for malformed input.", m->protocol_errors);
	counter(&o, "greyhold_idle_closed_total",
		"Connections closed after idle_timeout.", m->idle_closed);
	counter(&o, "greyhold_stalled_closed_total",
		"Connections closed because the client took no answer for "
		"idle_timeout.", m->stalled_closed);
	counter(&o, "greyhold_log_dropped_total",
		"Log lines dropped because the log writer fell behind.",
		m->log_dropped);
	counter(&o, "greyhold_reloads_total", "Successful reloads.", m->reloads);
	counter(&o, "greyhold_reload_failures_total",
		"Reloads refused for a bad config or whitelist.",
		m->reload_failures);
	emit(&o, "# HELP greyhold_whitelist_entries Whitelist entries loaded.\n"
	     "# TYPE greyhold_whitelist_entries gauge\n"
	     "greyhold_whitelist_entries{source=\"files\"} %" PRIu64 "\n"
	     "greyhold_whitelist_entries{source=\"live\"} %" PRIu64 "\n",
	     m->static_whitelist_entries, m->live_whitelist_entries);

	counter(&o, "greyhold_store_batches_total", "Store batches decided.",
		ss->batches);
	counter(&o, "greyhold_store_jobs_total", "Requests decided by the store.",
		ss->jobs);
	counter(&o, "greyhold_store_commits_total",
		"Batches that wrote and committed.", ss->commits);
	emit(&o, "# HELP greyhold_store_commit_seconds_total Time spent in "
	     "commits.\n# TYPE greyhold_store_commit_seconds_total counter\n"
	     "greyhold_store_commit_seconds_total %.6f\n",
	     (double)ss->commit_usec / 1e6);
	gauge(&o, "greyhold_store_batch_size_max", "Largest batch so far.",
	      ss->max_batch);
	counter(&o, "greyhold_store_errors_total",
		"Batches that failed (answered with failure_action).", ss->errors);
	counter(&o, "greyhold_store_expired_total",
		"Records removed by the expiry sweep.", ss->expired);
	gauge(&o, "greyhold_store_map_size_bytes", "LMDB map size.",
	      ss->map_size);
	if (ss->sentinel)
		format_sentinel(&o, ss);
	return o.len;
}

size_t
metrics_format_dns(char *buf, size_t size, const struct metrics_dns *m)
{
	struct out o = {buf, size, 0};
	uint64_t cumulative = 0;
	size_t i;

	counter(&o, "greyhold_dns_lookups_total",
		"DNS lookups answered (from the cache or a server).", m->lookups);
	counter(&o, "greyhold_dns_cache_hits_total",
		"DNS lookups answered from the cache.", m->cache_hits);
	counter(&o, "greyhold_dns_queries_total", "DNS queries sent.",
		m->queries_sent);
	counter(&o, "greyhold_dns_timeouts_total",
		"DNS lookups without an answer within dns_timeout.", m->timeouts);
	counter(&o, "greyhold_dns_failures_total",
		"DNS lookups that failed otherwise (SERVFAIL, refused, malformed).",
		m->failures);
	counter(&o, "greyhold_dns_overflows_total",
		"DNS lookups failed at once: dns_max_outstanding queries in flight.",
		m->overflows);
	gauge(&o, "greyhold_dns_outstanding", "DNS queries in flight now.",
	      m->outstanding);
	gauge(&o, "greyhold_dns_cache_entries", "DNS answers cached now.",
	      m->cache_entries);
	emit(&o, "# HELP greyhold_dns_lookup_duration_seconds Time from a DNS "
	     "lookup to its answer.\n# TYPE greyhold_dns_lookup_duration_seconds "
	     "histogram\n");
	for (i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		cumulative += m->latency[i];
		emit(&o, "greyhold_dns_lookup_duration_seconds_bucket{le=\"%g\"} %"
		     PRIu64 "\n", (double)latency_bounds[i] / 1e6, cumulative);
	}
	cumulative += m->latency[METRICS_LATENCY_BUCKETS];
	emit(&o, "greyhold_dns_lookup_duration_seconds_bucket{le=\"+Inf\"} %"
	     PRIu64 "\ngreyhold_dns_lookup_duration_seconds_sum %.6f\n"
	     "greyhold_dns_lookup_duration_seconds_count %" PRIu64 "\n",
	     cumulative, (double)m->latency_sum_usec / 1e6, m->latency_count);
	return o.len;
}
