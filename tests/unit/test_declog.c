/*
 * test_declog - a decision line formatted by the log writer from a record
 * (declog.h) is byte for byte the line the loop thread used to format
 * itself: answer_log_fields() and answer_log_line() over the request,
 * with the identity or DNS-list words, or a fixed head for whitelists,
 * authentication and trusted senders.  Every verdict, a store failure,
 * absent and empty values, bytes that need escaping, and values at, just
 * over and far over the length a line shows.
 */
#include "declog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define FAILURE_ACTION "DEFER_IF_PERMIT greylisting unavailable"

/* The line as the loop thread formatted it before the writer existed. */
static void
old_line(char *out, const struct policy_request *r,
	 const struct engine_verdict *v, int err, const char *head,
	 const char *extra)
{
	char fields[ANSWER_FIELDS_MAX], shown[ANSWER_FIELDS_MAX + 256];
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.failure_action = (char *)FAILURE_ACTION;
	answer_log_fields(fields, sizeof(fields), r);
	if (v != NULL) {
		if (extra != NULL)
			snprintf(shown, sizeof(shown), "%s, %s", extra, fields);
		else
			snprintf(shown, sizeof(shown), "%s", fields);
		answer_log_line(out, ANSWER_LOG_MAX, &cfg, v, err, shown);
	} else if (extra != NULL) {
		snprintf(out, ANSWER_LOG_MAX, "%s, %s, %s", head, extra, fields);
	} else {
		snprintf(out, ANSWER_LOG_MAX, "%s, %s", head, fields);
	}
}

static void
new_line(char *out, size_t outsz, const struct policy_request *r,
	 const struct engine_verdict *v, int err, const char *head,
	 const char *extra)
{
	struct declog_fields f;
	static char rec[DECLOG_RECORD_MAX];
	size_t n;

	/* Stale bytes from an earlier request must not show. */
	memset(&f, 'Z', sizeof(f));
	declog_fields_set(&f, r);
	n = declog_encode(rec, &f, v, err, FAILURE_ACTION, head, extra);
	assert_true(n <= DECLOG_RECORD_MAX);
	n = declog_format(out, outsz, rec, n);
	assert_int_equal(n, strlen(out));
}

static struct policy_str
str(const char *s)
{
	struct policy_str v = {s, s != NULL ? strlen(s) : 0};

	return v;
}

static void
check_all(const struct policy_request *r)
{
	static const struct engine_verdict verdicts[] = {
		{ENGINE_DEFER, ENGINE_NEW, 300, 0},
		{ENGINE_DEFER, ENGINE_RESTART, 300, 0},
		{ENGINE_DEFER, ENGINE_EARLY, 17, 0},
		{ENGINE_PASS, ENGINE_PASSED, 0, 312},
		{ENGINE_PASS, ENGINE_KNOWN, 0, 0},
		{ENGINE_PASS, ENGINE_AWL, 0, 0},
	};
	static char long_extra[401];
	const char *const extras[] = {
		NULL, "identity=name:example.org", "dnsbl=bl.example.test",
		long_extra,
	};
	static const char *const heads[] = {
		"action=pass, reason=client whitelist",
		"action=pass, reason=authenticated",
		"action=pass, reason=dnswl (list.dnswl.test)",
	};
	/* Bigger than any line, so only the record's own cut applies. */
	static char want[4096], got[4096];

	/* A list zone or name at its longest pushes lines past the cut. */
	memset(long_extra, 'z', sizeof(long_extra) - 1);

	for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
		for (size_t e = 0; e < 4; e++) {
			old_line(want, r, &verdicts[i], 0, NULL, extras[e]);
			new_line(got, sizeof(got), r, &verdicts[i], 0, NULL,
				 extras[e]);
			assert_string_equal(got, want);
		}
		old_line(want, r, &verdicts[i], -EIO, NULL, NULL);
		new_line(got, sizeof(got), r, &verdicts[i], -EIO, NULL, NULL);
		assert_string_equal(got, want);
	}
	for (size_t h = 0; h < 3; h++) {
		old_line(want, r, NULL, 0, heads[h], NULL);
		new_line(got, sizeof(got), r, NULL, 0, heads[h], NULL);
		assert_string_equal(got, want);
	}
	old_line(want, r, NULL, 0, "action=pass, reason=trusted-spf",
		 "identity=name:example.org");
	new_line(got, sizeof(got), r, NULL, 0, "action=pass, reason=trusted-spf",
		 "identity=name:example.org");
	assert_string_equal(got, want);
}

static void
test_typical_request(void **state)
{
	struct policy_request r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.client_name = str("mail.example.org");
	r.client_address = str("2001:db8::25");
	r.sender = str("alice+tag@example.org");
	r.recipient = str("bob@example.net");
	check_all(&r);
}

static void
test_absent_and_empty_values(void **state)
{
	struct policy_request r;

	(void)state;
	memset(&r, 0, sizeof(r));
	check_all(&r);
	r.client_name = str("unknown");
	r.client_address = str("192.0.2.1");
	r.sender = str("");
	r.recipient = str("");
	check_all(&r);
}

static void
test_hostile_bytes_escaped(void **state)
{
	static const char name[] = "evil\n, action=pass\\x\x01\xff";
	struct policy_request r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.client_name.ptr = name;
	r.client_name.len = sizeof(name);	/* with its NUL */
	r.client_address = str("192.0.2.1");
	r.sender = str("a\"b'c@[192.0.2.1]");
	r.recipient = str("bob@example.net\r");
	check_all(&r);
}

/* At the cut, one byte over, and far over, plain and fourfold escaped. */
static void
test_long_values_cut_alike(void **state)
{
	static char plain[3][2000], nasty[3][2000];
	static const size_t lens[3] = {ANSWER_FIELD_MAX, ANSWER_FIELD_MAX + 1,
				       1999};
	struct policy_request r;

	(void)state;
	for (int i = 0; i < 3; i++) {
		memset(plain[i], 'a' + i, lens[i]);
		memset(nasty[i], 0x01, lens[i]);
		for (int j = 0; j < 3; j++) {
			memset(&r, 0, sizeof(r));
			r.client_name.ptr = plain[i];
			r.client_name.len = lens[i];
			r.client_address.ptr = nasty[j];
			r.client_address.len = lens[j];
			r.sender.ptr = nasty[i];
			r.sender.len = lens[i];
			r.recipient.ptr = plain[j];
			r.recipient.len = lens[j];
			check_all(&r);
		}
	}
}

/* A record cut short or claiming more than it holds gives an empty line. */
static void
test_short_record_rejected(void **state)
{
	static char rec[DECLOG_RECORD_MAX];
	struct declog_fields f;
	struct policy_request r;
	char out[ANSWER_LOG_MAX];
	size_t n;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.sender = str("alice@example.org");
	declog_fields_set(&f, &r);
	n = declog_encode(rec, &f, NULL, 0, NULL, "action=pass, reason=x",
			  NULL);
	assert_true(declog_format(out, sizeof(out), rec, n) > 0);
	assert_int_equal(declog_format(out, sizeof(out), rec, n - 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(declog_format(out, sizeof(out), rec, 3), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_typical_request),
		cmocka_unit_test(test_absent_and_empty_values),
		cmocka_unit_test(test_hostile_bytes_escaped),
		cmocka_unit_test(test_long_values_cut_alike),
		cmocka_unit_test(test_short_record_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
