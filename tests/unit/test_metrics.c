/*
 * test_metrics - what a Prometheus server scraping greyhold relies on.
 *
 * The exposition is read back by a strict parser of the text format
 * (version 0.0.4) written here: every family has one HELP and one TYPE
 * line before its samples, samples of a family are together, names and
 * labels are well formed, label values are properly escaped, and every
 * value is a number.  On top of that: each counter reports its field,
 * counters never go down, a latency lands in the bucket whose bound it
 * does not exceed, buckets are cumulative and +Inf equals _count, and a
 * short buffer is reported, not overrun.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define TEXT_MAX (64 * 1024)
#define MAX_SAMPLES 256
#define MAX_FAMILIES 64

/* Bucket bounds the daemon documents, in seconds. */
static const double documented_bounds[METRICS_LATENCY_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 1, 5,
};

static uint64_t
bound_usec(size_t i)
{
	return (uint64_t)(documented_bounds[i] * 1e6 + 0.5);
}

static bool
near(double a, double b, double tolerance)
{
	return a - b <= tolerance && b - a <= tolerance;
}

/* ---- a strict reader of the text format ---------------------------------------- */

struct sample {
	char name[128];
	char labels[256];	/* as written, between the braces */
	double value;
};

struct family {
	char name[128];
	char type[16];
	bool help, has_samples, closed;
};

struct exposition {
	struct sample s[MAX_SAMPLES];
	size_t n;
	struct family f[MAX_FAMILIES];
	size_t nf;
};

static bool
name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* Length of the metric name at p (0 if none). */
static size_t
name_len(const char *p)
{
	size_t n = 0;

	while (name_char(p[n], n == 0))
		n++;
	return n;
}

static struct family *
family_find(struct exposition *e, const char *name, size_t len)
{
	for (size_t i = 0; i < e->nf; i++)
		if (strlen(e->f[i].name) == len &&
		    memcmp(e->f[i].name, name, len) == 0)
			return &e->f[i];
	return NULL;
}

static struct family *
family_get(struct exposition *e, const char *name, size_t len)
{
	struct family *f = family_find(e, name, len);

	if (f != NULL)
		return f;
	assert_true(e->nf < MAX_FAMILIES);
	assert_true(len < sizeof(f->name));
	f = &e->f[e->nf++];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, len);
	return f;
}

/* The family a sample belongs to: a histogram's _bucket/_sum/_count too. */
static struct family *
family_of_sample(struct exposition *e, const char *name, size_t len)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	struct family *f;

	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]);

		if (len > sl && memcmp(name + len - sl, suffixes[i], sl) == 0) {
			f = family_find(e, name, len - sl);
			if (f != NULL && strcmp(f->type, "histogram") == 0)
				return f;
		}
	}
	return family_find(e, name, len);
}

static void
parse_comment(struct exposition *e, const char *line)
{
	bool help = strncmp(line, "# HELP ", 7) == 0;
	bool type = strncmp(line, "# TYPE ", 7) == 0;
	const char *p = line + 7;
	size_t n;
	struct family *f;

	if (!help && !type)
		return;		/* other comments are allowed */
	n = name_len(p);
	if (n == 0 || p[n] != ' ')
		fail_msg("bad name in '%s'", line);
	f = family_get(e, p, n);
	if (f->has_samples)
		fail_msg("'%s' after the family's samples", line);
	if (help) {
		if (f->help)
			fail_msg("second HELP: '%s'", line);
		if (p[n + 1] == '\0')
			fail_msg("empty HELP: '%s'", line);
		f->help = true;
		return;
	}
	if (f->type[0] != '\0')
		fail_msg("second TYPE: '%s'", line);
	if (strcmp(p + n + 1, "counter") != 0 && strcmp(p + n + 1, "gauge") != 0 &&
	    strcmp(p + n + 1, "histogram") != 0 &&
	    strcmp(p + n + 1, "summary") != 0 && strcmp(p + n + 1, "untyped") != 0)
		fail_msg("unknown type: '%s'", line);
	snprintf(f->type, sizeof(f->type), "%s", p + n + 1);
}

/* name="value",... up to the closing brace; returns the char after it. */
static const char *
parse_labels(const char *p, const char *line)
{
	while (*p != '}') {
		size_t n = name_len(p);

		if (n == 0 || p[n] != '=' || p[n + 1] != '"')
			fail_msg("bad label in '%s'", line);
		p += n + 2;
		while (*p != '"') {
			if (*p == '\0')
				fail_msg("unterminated label value in '%s'", line);
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
					fail_msg("bad escape in '%s'", line);
				p++;
			}
			p++;
		}
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			fail_msg("expected ',' or '}' in '%s'", line);
	}
	return p + 1;
}

static double
parse_value(const char *p, const char *line)
{
	char *end;
	double v;

	if (strcmp(p, "+Inf") == 0)
		return INFINITY;
	if (strcmp(p, "-Inf") == 0)
		return -INFINITY;
	if (strcmp(p, "NaN") == 0)
		return NAN;
	v = strtod(p, &end);
	if (end == p || *end != '\0')
		fail_msg("bad value in '%s'", line);
	return v;
}

static void
parse_sample(struct exposition *e, const char *line, struct family **last)
{
	size_t n = name_len(line);
	const char *p = line + n;
	struct sample *s;
	struct family *f;

	if (n == 0)
		fail_msg("bad sample line '%s'", line);
	f = family_of_sample(e, line, n);
	if (f == NULL || !f->help || f->type[0] == '\0')
		fail_msg("sample without HELP and TYPE: '%s'", line);
	if (f->closed)
		fail_msg("family %s split: '%s'", f->name, line);
	if (*last != NULL && *last != f)
		(*last)->closed = true;
	*last = f;
	f->has_samples = true;
	assert_true(e->n < MAX_SAMPLES);
	s = &e->s[e->n++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, line, n);
	if (*p == '{') {
		const char *end = parse_labels(p + 1, line);

		assert_true((size_t)(end - p - 2) < sizeof(s->labels));
		memcpy(s->labels, p + 1, (size_t)(end - p - 2));
		p = end;
	}
	if (*p != ' ')
		fail_msg("expected one space before the value in '%s'", line);
	s->value = parse_value(p + 1, line);
}

static void
expo_parse(struct exposition *e, const char *text)
{
	char *copy = strdup(text), *line, *next;
	struct family *last = NULL;
	size_t len = strlen(text);

	assert_non_null(copy);
	memset(e, 0, sizeof(*e));
	if (len == 0 || text[len - 1] != '\n')
		fail_msg("the exposition does not end in a newline");
	for (line = copy; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		*next++ = '\0';
		if (line[0] == '\0')
			continue;
		if (line[0] == '#') {
			if (last != NULL)
				last->closed = true;
			last = NULL;
			parse_comment(e, line);
		} else {
			parse_sample(e, line, &last);
		}
	}
	free(copy);
	for (size_t i = 0; i < e->nf; i++) {
		if (!e->f[i].has_samples)
			fail_msg("family %s has no samples", e->f[i].name);
		if (strcmp(e->f[i].type, "counter") == 0 &&
		    strstr(e->f[i].name, "_total") == NULL)
			fail_msg("counter %s does not end in _total", e->f[i].name);
	}
}

static const struct sample *
sample_find(const struct exposition *e, const char *name, const char *labels)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, name) == 0 &&
		    strcmp(e->s[i].labels, labels) == 0)
			return &e->s[i];
	return NULL;
}

static double
value_of(const struct exposition *e, const char *name, const char *labels)
{
	const struct sample *s = sample_find(e, name, labels);

	if (s == NULL)
		fail_msg("no sample %s{%s}", name, labels);
	return s->value;
}

static const char *
type_of(struct exposition *e, const char *name)
{
	struct family *f = family_find(e, name, strlen(name));

	if (f == NULL)
		fail_msg("no family %s", name);
	return f->type;
}

static struct exposition *
format_and_parse(const struct metrics *m, const struct store_stats *ss)
{
	char *text = malloc(TEXT_MAX);
	struct exposition *e = malloc(sizeof(*e));
	size_t n;

	assert_non_null(text);
	assert_non_null(e);
	n = metrics_format(text, TEXT_MAX, m, ss);
	assert_true(n < TEXT_MAX);
	assert_int_equal(strlen(text), n);
	expo_parse(e, text);
	free(text);
	return e;
}

/* ---- the exposition ----------------------------------------------------------- */

static void
test_exposition_valid_when_zero(void **state)
{
	struct metrics m;
	struct store_stats ss;
	struct exposition *e;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&ss, 0, sizeof(ss));
	e = format_and_parse(&m, &ss);
	assert_string_equal(type_of(e, "greyhold_requests_total"), "counter");
	assert_string_equal(type_of(e, "greyhold_request_duration_seconds"),
			    "histogram");
	assert_string_equal(type_of(e, "greyhold_connections_open"), "gauge");
	assert_string_equal(type_of(e, "greyhold_whitelist_entries"), "gauge");
	assert_string_equal(type_of(e, "greyhold_store_map_size_bytes"), "gauge");
	for (size_t i = 0; i < e->n; i++)
		if (e->s[i].value != 0)
			fail_msg("%s{%s} is %g with nothing counted",
				 e->s[i].name, e->s[i].labels, e->s[i].value);
	free(e);
}

/* One series per result, each labelled by a distinct action and reason. */
static void
test_requests_by_action_and_reason(void **state)
{
	static const char *const expected[RESULT_MAX] = {
		[RESULT_GREYLIST_NEW] = "action=\"greylist\",reason=\"new\"",
		[RESULT_GREYLIST_RESTART] = "action=\"greylist\",reason=\"restart\"",
		[RESULT_GREYLIST_EARLY] = "action=\"greylist\",reason=\"early_retry\"",
		[RESULT_PASS_FIRST] = "action=\"pass\",reason=\"delayed\"",
		[RESULT_PASS_KNOWN] = "action=\"pass\",reason=\"known\"",
		[RESULT_PASS_AWL] = "action=\"pass\",reason=\"client_awl\"",
		[RESULT_PASS_WL_CLIENT] = "action=\"pass\",reason=\"client_whitelist\"",
		[RESULT_PASS_WL_RECIPIENT] =
			"action=\"pass\",reason=\"recipient_whitelist\"",
		[RESULT_PASS_LIVE_CLIENT] =
			"action=\"pass\",reason=\"live_client_whitelist\"",
		[RESULT_PASS_LIVE_RECIPIENT] =
			"action=\"pass\",reason=\"live_recipient_whitelist\"",
		[RESULT_PASS_POOL] = "action=\"pass\",reason=\"pool\"",
		[RESULT_PASS_TRUSTED_SPF] =
			"action=\"pass\",reason=\"trusted_spf\"",
		[RESULT_PASS_DNSWL] = "action=\"pass\",reason=\"dnswl\"",
		[RESULT_DUNNO_NOT_RCPT] = "action=\"dunno\",reason=\"not_rcpt\"",
		[RESULT_DUNNO_AUTHENTICATED] =
			"action=\"dunno\",reason=\"authenticated\"",
		[RESULT_STORE_FAILURE] = "action=\"failure\",reason=\"store_error\"",
	};
	struct metrics m;
	struct store_stats ss;
	struct exposition *e;
	size_t series = 0;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&ss, 0, sizeof(ss));
	for (size_t i = 0; i < RESULT_MAX; i++)
		m.results[i] = 1000 + i;
	e = format_and_parse(&m, &ss);
	for (size_t i = 0; i < RESULT_MAX; i++)
		assert_true(value_of(e, "greyhold_requests_total", expected[i]) ==
			    (double)(1000 + i));
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->s[i].name, "greyhold_requests_total") == 0)
			series++;
	assert_int_equal(series, RESULT_MAX);
	assert_int_equal(metrics_total_requests(&m),
			 RESULT_MAX * 1000 + RESULT_MAX * (RESULT_MAX - 1) / 2);
	free(e);
}

/* Each field shows up, under its own name, with its own value. */
static void
test_each_field_reported(void **state)
{
	struct metrics m;
	struct store_stats ss = {
		.batches = 101, .jobs = 102, .commits = 103,
		.commit_usec = 1500000, .max_batch = 105, .errors = 106,
		.expired = 107, .map_size = 1ull << 33,
	};
	struct exposition *e;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.connections_accepted = 11;
	m.connections_refused = 12;
	m.connections_open = 13;
	m.protocol_errors = 14;
	m.idle_closed = 15;
	m.reloads = 16;
	m.reload_failures = 17;
	m.static_whitelist_entries = 18;
	m.live_whitelist_entries = 19;
	e = format_and_parse(&m, &ss);
	assert_true(value_of(e, "greyhold_connections_accepted_total", "") == 11);
	assert_true(value_of(e, "greyhold_connections_refused_total", "") == 12);
	assert_true(value_of(e, "greyhold_connections_open", "") == 13);
	assert_true(value_of(e, "greyhold_protocol_errors_total", "") == 14);
	assert_true(value_of(e, "greyhold_idle_closed_total", "") == 15);
	assert_true(value_of(e, "greyhold_reloads_total", "") == 16);
	assert_true(value_of(e, "greyhold_reload_failures_total", "") == 17);
	assert_true(value_of(e, "greyhold_whitelist_entries",
			     "source=\"files\"") == 18);
	assert_true(value_of(e, "greyhold_whitelist_entries",
			     "source=\"live\"") == 19);
	assert_true(value_of(e, "greyhold_store_batches_total", "") == 101);
	assert_true(value_of(e, "greyhold_store_jobs_total", "") == 102);
	assert_true(value_of(e, "greyhold_store_commits_total", "") == 103);
	assert_true(value_of(e, "greyhold_store_commit_seconds_total", "") == 1.5);
	assert_true(value_of(e, "greyhold_store_batch_size_max", "") == 105);
	assert_true(value_of(e, "greyhold_store_errors_total", "") == 106);
	assert_true(value_of(e, "greyhold_store_expired_total", "") == 107);
	assert_true(value_of(e, "greyhold_store_map_size_bytes", "") ==
		    (double)(1ull << 33));
	free(e);
}

/* ---- the latency histogram ------------------------------------------------------ */

/* The bucket a latency was counted in (METRICS_LATENCY_BUCKETS: +Inf). */
static size_t
bucket_of(uint64_t usec)
{
	struct metrics m;

	memset(&m, 0, sizeof(m));
	metrics_observe_latency(&m, usec);
	assert_int_equal(m.latency_count, 1);
	assert_int_equal(m.latency_sum_usec, usec);
	for (size_t i = 0; i <= METRICS_LATENCY_BUCKETS; i++)
		if (m.latency[i] == 1)
			return i;
	fail_msg("%" PRIu64 " us counted in no bucket", usec);
	return 0;
}

/* A bucket counts what is less than or equal to its bound ("le"). */
static void
test_latency_bucket_edges(void **state)
{
	(void)state;
	assert_int_equal(bucket_of(0), 0);
	for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		uint64_t bound = bound_usec(i);

		if (bucket_of(bound) != i)
			fail_msg("%" PRIu64 " us not in bucket le=%g", bound,
				 documented_bounds[i]);
		if (bucket_of(bound + 1) != i + 1)
			fail_msg("%" PRIu64 " us not in the bucket above le=%g",
				 bound + 1, documented_bounds[i]);
	}
	assert_int_equal(bucket_of(UINT64_MAX / 2), METRICS_LATENCY_BUCKETS);
}

static void
test_histogram_cumulative(void **state)
{
	struct metrics m;
	struct store_stats ss;
	struct exposition *e;
	double prev_le = -1, prev_count = 0, sum_usec = 0;
	size_t buckets = 0;
	char labels[64];

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&ss, 0, sizeof(ss));
	/* i observations at the i-th bound, and three beyond every bound. */
	for (size_t i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
		uint64_t bound = bound_usec(i);

		for (size_t k = 0; k < i; k++) {
			metrics_observe_latency(&m, bound);
			sum_usec += (double)bound;
		}
	}
	for (int k = 0; k < 3; k++) {
		metrics_observe_latency(&m, 60000000);
		sum_usec += 60000000;
	}
	e = format_and_parse(&m, &ss);
	for (size_t i = 0; i < e->n; i++) {
		const struct sample *s = &e->s[i];
		char le_text[32];
		double le;

		if (strcmp(s->name, "greyhold_request_duration_seconds_bucket") != 0)
			continue;
		assert_int_equal(strncmp(s->labels, "le=\"", 4), 0);
		assert_true(strlen(s->labels) - 5 < sizeof(le_text));
		snprintf(le_text, sizeof(le_text), "%.*s",
			 (int)(strlen(s->labels) - 5), s->labels + 4);
		le = parse_value(le_text, s->labels);
		if (le <= prev_le)
			fail_msg("bucket le=%g after le=%g", le, prev_le);
		if (s->value < prev_count)
			fail_msg("bucket le=%g holds %g, less than the one below",
				 le, s->value);
		if (isfinite(le)) {
			size_t expect = buckets * (buckets + 1) / 2;

			assert_true(near(le, documented_bounds[buckets], 1e-12));
			if (s->value != (double)expect)
				fail_msg("bucket le=%g holds %g, expected %zu", le,
					 s->value, expect);
		}
		prev_le = le;
		prev_count = s->value;
		buckets++;
	}
	assert_int_equal(buckets, METRICS_LATENCY_BUCKETS + 1);
	assert_true(isinf(prev_le));
	snprintf(labels, sizeof(labels), "le=\"+Inf\"");
	assert_true(value_of(e, "greyhold_request_duration_seconds_bucket",
			     labels) ==
		    value_of(e, "greyhold_request_duration_seconds_count", ""));
	assert_true(value_of(e, "greyhold_request_duration_seconds_count", "") ==
		    (double)m.latency_count);
	assert_true(near(value_of(e, "greyhold_request_duration_seconds_sum", ""),
			 sum_usec / 1e6, 1e-6));
	free(e);
}

/* ---- counters only go up ----------------------------------------------------- */

static void
bump_everything(struct metrics *m, struct store_stats *ss, unsigned step)
{
	for (size_t i = 0; i < RESULT_MAX; i++)
		m->results[i] += (i + step) % 3;
	metrics_observe_latency(m, 37ull * step);
	metrics_observe_latency(m, 7000000ull + step);
	m->connections_accepted += step;
	m->protocol_errors += step % 2;
	m->idle_closed++;
	m->reloads += step % 4 == 0;
	ss->batches++;
	ss->jobs += 3;
	ss->commit_usec += 999;
	ss->expired += step;
}

static void
test_counters_monotonic(void **state)
{
	struct metrics m;
	struct store_stats ss;
	struct exposition *before, *after;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&ss, 0, sizeof(ss));
	before = format_and_parse(&m, &ss);
	for (unsigned step = 1; step <= 20; step++) {
		bump_everything(&m, &ss, step);
		after = format_and_parse(&m, &ss);
		assert_int_equal(after->n, before->n);
		for (size_t i = 0; i < after->n; i++) {
			const struct sample *s = &after->s[i];
			struct family *f = family_of_sample(after, s->name,
							    strlen(s->name));
			const struct sample *old;

			if (strcmp(f->type, "gauge") == 0)
				continue;
			old = sample_find(before, s->name, s->labels);
			assert_non_null(old);
			if (s->value < old->value)
				fail_msg("%s{%s} went down from %g to %g", s->name,
					 s->labels, old->value, s->value);
		}
		free(before);
		before = after;
	}
	free(before);
}

/* ---- a short buffer ------------------------------------------------------------- */

static void
test_short_buffer_reports_need(void **state)
{
	struct metrics m;
	struct store_stats ss;
	char *full = malloc(TEXT_MAX), *part = malloc(TEXT_MAX);
	size_t need, n;

	(void)state;
	assert_non_null(full);
	assert_non_null(part);
	memset(&m, 0, sizeof(m));
	memset(&ss, 0, sizeof(ss));
	m.results[RESULT_PASS_KNOWN] = UINT64_MAX;
	need = metrics_format(full, TEXT_MAX, &m, &ss);
	assert_true(need > 1000 && need < TEXT_MAX);

	/* Room for the text and its NUL: the same text. */
	memset(part, '#', TEXT_MAX);
	assert_int_equal(metrics_format(part, need + 1, &m, &ss), need);
	assert_string_equal(part, full);

	/* Less room: the same length reported, a terminated prefix, no overrun. */
	for (size_t size = 0; size <= need; size += size < 64 ? 1 : 97) {
		memset(part, '#', TEXT_MAX);
		n = metrics_format(part, size, &m, &ss);
		assert_int_equal(n, need);
		if (size > 0) {
			assert_int_equal(strlen(part), size - 1);
			assert_memory_equal(part, full, size - 1);
		}
		assert_int_equal(part[size], '#');
	}
	assert_int_equal(metrics_format(NULL, 0, &m, &ss), need);
	free(full);
	free(part);
}

/* ---- results ------------------------------------------------------------------ */

static void
test_result_for_verdicts(void **state)
{
	static const struct {
		enum engine_reason reason;
		enum metrics_result result;
	} table[] = {
		{ENGINE_NEW, RESULT_GREYLIST_NEW},
		{ENGINE_RESTART, RESULT_GREYLIST_RESTART},
		{ENGINE_EARLY, RESULT_GREYLIST_EARLY},
		{ENGINE_PASSED, RESULT_PASS_FIRST},
		{ENGINE_KNOWN, RESULT_PASS_KNOWN},
		{ENGINE_AWL, RESULT_PASS_AWL},
	};
	struct engine_verdict v;

	(void)state;
	memset(&v, 0, sizeof(v));
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		v.reason = table[i].reason;
		assert_int_equal(metrics_result_for(&v, 0), table[i].result);
		/* A store error wins over whatever the verdict holds. */
		assert_int_equal(metrics_result_for(&v, -EIO), RESULT_STORE_FAILURE);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition_valid_when_zero),
		cmocka_unit_test(test_requests_by_action_and_reason),
		cmocka_unit_test(test_each_field_reported),
		cmocka_unit_test(test_latency_bucket_edges),
		cmocka_unit_test(test_histogram_cumulative),
		cmocka_unit_test(test_counters_monotonic),
		cmocka_unit_test(test_short_buffer_reports_need),
		cmocka_unit_test(test_result_for_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
