/*
 * test_answer - replies to Postfix and postgrey-shaped decision log lines.
 *
 * Configs come from config_load() with command-line overrides, as the
 * daemon builds them.  Every reply is checked for the one shape Postfix
 * accepts: a single "action=" line, then an empty line, nothing else.
 * Every log line is checked to be one line however hostile the request.
 */
#include "answer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define FIELDS_SIMPLE \
	"client_name=mail.example.com, client_address=192.0.2.7, " \
	"sender=alice@example.com, recipient=bob@example.net"

/* Configs a test loaded; the teardown frees them even when it fails. */
#define MAX_LOADED 4
static struct config *loaded[MAX_LOADED];
static size_t nloaded;

static struct config *
load(const struct config_override *ov, size_t nov)
{
	struct config *cfg = NULL;
	char err[512];
	int rc = config_load(&cfg, NULL, false, ov, nov, err, sizeof(err));

	if (rc != 0)
		fail_msg("config_load: %d: %s", rc, err);
	assert_non_null(cfg);
	assert_true(nloaded < MAX_LOADED);
	loaded[nloaded++] = cfg;
	return cfg;
}

static int
free_configs(void **state)
{
	(void)state;
	while (nloaded > 0)
		config_free(loaded[--nloaded]);
	return 0;
}

static struct policy_str
str(const char *s)
{
	struct policy_str p = {s, s != NULL ? strlen(s) : 0};
	return p;
}

static struct policy_request
rcpt_request(void)
{
	struct policy_request r;

	memset(&r, 0, sizeof(r));
	r.request = str("smtpd_access_policy");
	r.protocol_state = str("RCPT");
	r.client_name = str("mail.example.com");
	r.client_address = str("192.0.2.7");
	r.sender = str("alice@example.com");
	r.recipient = str("bob@example.net");
	return r;
}

static struct engine_verdict
verdict(enum engine_action action, enum engine_reason reason,
	int64_t seconds_left, int64_t delay)
{
	struct engine_verdict v;

	v.action = action;
	v.reason = reason;
	v.seconds_left = seconds_left;
	v.delay = delay;
	return v;
}

/* One "action=" line of printable text, then the empty line. */
static void
assert_reply_shape(const char *reply, size_t len)
{
	size_t i;

	assert_int_equal(len, strlen(reply));
	assert_true(len > strlen("action=") + 2);
	assert_memory_equal(reply, "action=", 7);
	assert_memory_equal(reply + len - 2, "\n\n", 2);
	for (i = 0; i + 2 < len; i++) {
		unsigned char c = (unsigned char)reply[i];

		if (c < 0x20 || c >= 0x7f)
			fail_msg("byte 0x%02x at %zu in reply '%s'", c, i, reply);
	}
}

/* One line of printable text: nothing can forge another log line. */
static void
assert_one_log_line(const char *line, size_t max)
{
	size_t i, n = strlen(line);

	assert_true(n < max);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c >= 0x7f)
			fail_msg("byte 0x%02x at %zu in log line", c, i);
	}
}

/* ---- classify -------------------------------------------------------------- */

static void
test_classify_non_rcpt_states(void **state)
{
	static const char *const states[] = {
		"CONNECT", "EHLO", "HELO", "MAIL", "DATA", "END-OF-MESSAGE",
		"VRFY", "ETRN", "rcpt", "RCPT ", "",
	};
	struct config *cfg = load(NULL, 0);
	struct policy_request r = rcpt_request();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		r.protocol_state = str(states[i]);
		if (answer_classify(&r, cfg) != ANSWER_NOT_RCPT)
			fail_msg("protocol_state '%s' not NOT_RCPT", states[i]);
	}
	r.protocol_state = str(NULL);
	assert_int_equal(answer_classify(&r, cfg), ANSWER_NOT_RCPT);
	/* Not RCPT wins over authentication. */
	r.protocol_state = str("DATA");
	r.sasl_username = str("alice");
	assert_int_equal(answer_classify(&r, cfg), ANSWER_NOT_RCPT);
}

static void
test_classify_rcpt(void **state)
{
	struct config *cfg = load(NULL, 0);
	struct policy_request r = rcpt_request();

	(void)state;
	assert_int_equal(answer_classify(&r, cfg), ANSWER_GREYLIST);
	r.sasl_username = str("");
	assert_int_equal(answer_classify(&r, cfg), ANSWER_GREYLIST);
	r.sasl_username = str("alice");
	assert_int_equal(answer_classify(&r, cfg), ANSWER_AUTHENTICATED);
}

static void
test_classify_greylist_authenticated(void **state)
{
	static const struct config_override ov[] = {
		{"greylist_authenticated", "yes"},
	};
	struct config *cfg = load(ov, 1);
	struct policy_request r = rcpt_request();

	(void)state;
	r.sasl_username = str("alice");
	assert_int_equal(answer_classify(&r, cfg), ANSWER_GREYLIST);
	r.protocol_state = str("DATA");
	assert_int_equal(answer_classify(&r, cfg), ANSWER_NOT_RCPT);
}

/* ---- replies ------------------------------------------------------------------- */

static void
test_reply_defer_default_text(void **state)
{
	struct config *cfg = load(NULL, 0);
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0);
	char out[ANSWER_REPLY_MAX];
	size_t n;

	(void)state;
	n = answer_reply(out, sizeof(out), cfg, &v, 0, "example.net");
	assert_string_equal(out, "action=DEFER_IF_PERMIT Greylisted, please "
			    "try again in 300 seconds\n\n");
	assert_reply_shape(out, n);

	v = verdict(ENGINE_DEFER, ENGINE_EARLY, 17, 0);
	n = answer_reply(out, sizeof(out), cfg, &v, 0, "example.net");
	assert_string_equal(out, "action=DEFER_IF_PERMIT Greylisted, please "
			    "try again in 17 seconds\n\n");
	assert_reply_shape(out, n);
}

static void
test_reply_defer_expands_s_r_percent(void **state)
{
	static const struct config_override ov[] = {
		{"greylist_action", "DEFER"},
		{"greylist_text", "Greylisted for %s seconds at %r, 100%% sure (%s/%r)"},
	};
	struct config *cfg = load(ov, 2);
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_EARLY, 299, 0);
	char out[ANSWER_REPLY_MAX];
	size_t n;

	(void)state;
	n = answer_reply(out, sizeof(out), cfg, &v, 0, "example.net");
	assert_string_equal(out, "action=DEFER Greylisted for 299 seconds at "
			    "example.net, 100% sure (299/example.net)\n\n");
	assert_reply_shape(out, n);

	/* An empty domain expands to nothing. */
	n = answer_reply(out, sizeof(out), cfg, &v, 0, "");
	assert_string_equal(out, "action=DEFER Greylisted for 299 seconds at "
			    ", 100% sure (299/)\n\n");
	assert_reply_shape(out, n);
}

static void
test_reply_defer_with_smtp_code_action(void **state)
{
	static const struct config_override ov[] = {
		{"greylist_action", "450"},
		{"greylist_text", "4.7.1 try again later"},
	};
	struct config *cfg = load(ov, 2);
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0);
	char out[ANSWER_REPLY_MAX];
	size_t n;

	(void)state;
	n = answer_reply(out, sizeof(out), cfg, &v, 0, "example.net");
	assert_string_equal(out, "action=450 4.7.1 try again later\n\n");
	assert_reply_shape(out, n);
}

static void
test_reply_pass_is_dunno(void **state)
{
	static const enum engine_reason reasons[] = {
		ENGINE_PASSED, ENGINE_KNOWN, ENGINE_AWL,
	};
	struct config *cfg = load(NULL, 0);
	char out[ANSWER_REPLY_MAX];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		struct engine_verdict v = verdict(ENGINE_PASS, reasons[i], 0, 312);

		n = answer_reply(out, sizeof(out), cfg, &v, 0, "example.net");
		assert_string_equal(out, "action=DUNNO\n\n");
		assert_int_equal(n, 14);
	}
	n = answer_dunno(out, sizeof(out));
	assert_string_equal(out, "action=DUNNO\n\n");
	assert_int_equal(n, 14);
	/* Cut to a small buffer, it still ends the answer. */
	n = answer_dunno(out, 8);
	assert_string_equal(out, "actio\n\n");
	assert_int_equal(n, 7);
	n = answer_dunno(out, 15);
	assert_string_equal(out, "action=DUNNO\n\n");
	assert_int_equal(n, 14);
	n = answer_dunno(out, 2);
	assert_string_equal(out, "");
	assert_int_equal(n, 0);
}

static void
test_reply_store_failure_uses_failure_action(void **state)
{
	static const struct config_override ov[] = {
		{"failure_action", "451 4.3.0 Temporary greylisting failure"},
	};
	struct config *dflt = load(NULL, 0);
	struct config *cfg = load(ov, 1);
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0);
	char out[ANSWER_REPLY_MAX];
	size_t n;

	(void)state;
	n = answer_reply(out, sizeof(out), dflt, &v, -EIO, "example.net");
	assert_string_equal(out, "action=DUNNO\n\n");
	assert_reply_shape(out, n);

	/* The verdict does not matter when the store failed. */
	v = verdict(ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	n = answer_reply(out, sizeof(out), cfg, &v, -ENOSPC, "example.net");
	assert_string_equal(out,
			    "action=451 4.3.0 Temporary greylisting failure\n\n");
	assert_reply_shape(out, n);
}

static void
test_reply_longest_expansion_stays_one_line(void **state)
{
	char text[401];
	char domain[256];
	struct config_override ov[] = {{"greylist_text", text}};
	struct config *cfg;
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_NEW,
					  INT64_MAX, 0);
	char out[ANSWER_REPLY_MAX];
	size_t i, n;

	(void)state;
	for (i = 0; i < 400; i += 2)
		memcpy(text + i, i % 4 == 0 ? "%r" : "%s", 2);
	text[400] = '\0';
	memset(domain, 'd', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	cfg = load(ov, 1);

	n = answer_reply(out, sizeof(out), cfg, &v, 0, domain);
	assert_reply_shape(out, n);
	assert_true(n < sizeof(out));
}

static void
test_replies_cut_to_small_buffer_keep_shape(void **state)
{
	struct config *cfg = load(NULL, 0);
	struct engine_verdict defer = verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0);
	struct engine_verdict pass = verdict(ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	char out[64];
	size_t sz, n;

	(void)state;
	for (sz = 12; sz <= 40; sz++) {
		memset(out, 'X', sizeof(out));
		n = answer_reply(out, sz, cfg, &defer, 0, "example.net");
		assert_true(n < sz);
		assert_reply_shape(out, n);
		assert_int_equal(out[sz], 'X');

		n = answer_reply(out, sz, cfg, &defer, -EIO, "example.net");
		assert_true(n < sz);
		assert_reply_shape(out, n);

		n = answer_reply(out, sz, cfg, &pass, 0, "example.net");
		if (n >= sz)
			fail_msg("pass reply in %zu bytes claims %zu bytes", sz, n);
		assert_reply_shape(out, n);
	}
}

/* ---- recipient domain ---------------------------------------------------------- */

static void
assert_domain(const char *rcpt, const char *expect)
{
	struct policy_request r = rcpt_request();
	char out[256];

	r.recipient = str(rcpt);
	memset(out, 'X', sizeof(out));
	answer_rcpt_domain(out, sizeof(out), &r);
	if (strcmp(out, expect) != 0)
		fail_msg("recipient '%s': domain '%s', expected '%s'",
			 rcpt != NULL ? rcpt : "(absent)", out, expect);
}

static void
test_rcpt_domain(void **state)
{
	(void)state;
	assert_domain("bob@Example.NET", "example.net");
	assert_domain("a@b@Sub.Example.org", "sub.example.org");
	assert_domain("bob@xn--bcher-kva.example", "xn--bcher-kva.example");
	assert_domain("postmaster", "");
	assert_domain("", "");
	assert_domain("bob@", "");
	assert_domain(NULL, "");
	/* Nothing but domain characters reaches a reply. */
	assert_domain("bob@exa mple.com\r\n%s%%\tx", "example.comsx");
	assert_domain("bob@[192.0.2.1]", "192.0.2.1");
}

static void
test_rcpt_domain_respects_outsz(void **state)
{
	struct policy_request r = rcpt_request();
	char out[16];

	(void)state;
	r.recipient = str("bob@example.net");
	memset(out, 'X', sizeof(out));
	answer_rcpt_domain(out, 8, &r);
	assert_string_equal(out, "example");
	assert_int_equal(out[8], 'X');

	memset(out, 'X', sizeof(out));
	answer_rcpt_domain(out, 1, &r);
	assert_string_equal(out, "");
	assert_int_equal(out[1], 'X');

	/* No room at all: nothing written. */
	memset(out, 'X', sizeof(out));
	answer_rcpt_domain(out, 0, &r);
	assert_int_equal(out[0], 'X');
}

/* ---- log lines ----------------------------------------------------------------- */

static void
test_log_fields_plain(void **state)
{
	struct policy_request r = rcpt_request();
	char out[ANSWER_FIELDS_MAX];

	(void)state;
	answer_log_fields(out, sizeof(out), &r);
	assert_string_equal(out, FIELDS_SIMPLE);

	r.sender = str("");
	r.client_name = str(NULL);
	answer_log_fields(out, sizeof(out), &r);
	assert_string_equal(out, "client_name=, client_address=192.0.2.7, "
			    "sender=, recipient=bob@example.net");
}

static void
test_log_fields_escape_control_characters(void **state)
{
	static const char evil_name[] =
		"evil\r\nNov 28 greyhold[1]: action=pass, reason=triplet found";
	static const char nul_sender[] = "a\0b@example.com";
	struct policy_request r = rcpt_request();
	char out[ANSWER_FIELDS_MAX];

	(void)state;
	r.client_name = str(evil_name);
	r.sender.ptr = nul_sender;
	r.sender.len = sizeof(nul_sender) - 1;
	r.recipient = str("back\\slash\x1b[31m\xc3\xa9@example.net");
	answer_log_fields(out, sizeof(out), &r);
	assert_one_log_line(out, sizeof(out));
	assert_string_equal(out,
		"client_name=evil\\x0d\\x0aNov 28 greyhold[1]: action=pass, "
		"reason=triplet found, client_address=192.0.2.7, "
		"sender=a\\x00b@example.com, "
		"recipient=back\\\\slash\\x1b[31m\\xc3\\xa9@example.net");
}

static void
test_log_fields_long_values_cut(void **state)
{
	struct policy_request r = rcpt_request();
	char *big = test_malloc(5000);
	char out[ANSWER_FIELDS_MAX];
	const char *s;

	(void)state;
	memset(big, 'A', 4999);
	big[4999] = '\0';
	r.sender = str(big);
	answer_log_fields(out, sizeof(out), &r);
	assert_one_log_line(out, sizeof(out));
	s = strstr(out, "sender=");
	assert_non_null(s);
	/* Cut, marked as cut, and the next field still follows. */
	assert_non_null(strstr(s, "A..., recipient=bob@example.net"));
	assert_true(strlen(out) < 600);
	test_free(big);
}

static void
test_log_fields_worst_case_fits(void **state)
{
	struct policy_request r = rcpt_request();
	char *ctl = test_malloc(3000);
	char out[ANSWER_FIELDS_MAX];
	char line[ANSWER_LOG_MAX];
	struct config *cfg = load(NULL, 0);
	struct engine_verdict v = verdict(ENGINE_PASS, ENGINE_PASSED, 0,
					  INT64_MAX);

	(void)state;
	/* Every byte quadruples when escaped. */
	memset(ctl, '\n', 3000);
	r.client_name.ptr = ctl;
	r.client_name.len = 3000;
	r.client_address = r.client_name;
	r.sender = r.client_name;
	r.recipient = r.client_name;
	answer_log_fields(out, sizeof(out), &r);
	assert_one_log_line(out, sizeof(out));
	assert_non_null(strstr(out, ", recipient=\\x0a"));

	answer_log_line(line, sizeof(line), cfg, &v, 0, out);
	assert_one_log_line(line, sizeof(line));
	answer_log_line(line, sizeof(line), cfg, &v, -EIO, out);
	assert_one_log_line(line, sizeof(line));
	test_free(ctl);
}

static void
assert_log_line(const struct config *cfg, struct engine_verdict v, int err,
		const char *expect)
{
	char line[ANSWER_LOG_MAX];

	answer_log_line(line, sizeof(line), cfg, &v, err, FIELDS_SIMPLE);
	assert_string_equal(line, expect);
	assert_one_log_line(line, sizeof(line));
}

static void
test_log_line_postgrey_shapes(void **state)
{
	struct config *cfg = load(NULL, 0);

	(void)state;
	assert_log_line(cfg, verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0), 0,
			"action=greylist, reason=new, " FIELDS_SIMPLE);
	assert_log_line(cfg, verdict(ENGINE_DEFER, ENGINE_EARLY, 120, 0), 0,
			"action=greylist, reason=early-retry (120s missing), "
			FIELDS_SIMPLE);
	assert_log_line(cfg, verdict(ENGINE_PASS, ENGINE_PASSED, 0, 312), 0,
			"action=pass, reason=triplet found, delay=312, "
			FIELDS_SIMPLE);
	assert_log_line(cfg, verdict(ENGINE_PASS, ENGINE_KNOWN, 0, 0), 0,
			"action=pass, reason=triplet found, " FIELDS_SIMPLE);
	assert_log_line(cfg, verdict(ENGINE_PASS, ENGINE_AWL, 0, 0), 0,
			"action=pass, reason=client AWL, " FIELDS_SIMPLE);
}

static void
test_log_line_restart_reads_as_new(void **state)
{
	struct config *cfg = load(NULL, 0);
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_RESTART, 300, 0);
	char line[ANSWER_LOG_MAX];
	char expect[ANSWER_LOG_MAX];

	(void)state;
	answer_log_line(line, sizeof(line), cfg, &v, 0, FIELDS_SIMPLE);
	assert_one_log_line(line, sizeof(line));
	/* Tools matching postgrey's "reason=new" still count it. */
	assert_memory_equal(line, "action=greylist, reason=new", 27);
	snprintf(expect, sizeof(expect), "action=greylist, reason=%s, %s",
		 engine_reason_name(ENGINE_RESTART), FIELDS_SIMPLE);
	assert_string_equal(line, expect);
}

static void
test_log_line_store_failure(void **state)
{
	static const struct config_override ov[] = {
		{"failure_action", "451 4.3.0 try later"},
	};
	struct config *cfg = load(ov, 1);
	struct engine_verdict v = verdict(ENGINE_PASS, ENGINE_KNOWN, 0, 0);
	char expect[ANSWER_LOG_MAX];

	(void)state;
	snprintf(expect, sizeof(expect), "action=error, reason=store failure "
		 "(%s), answer=451 4.3.0 try later, %s", strerror(EIO),
		 FIELDS_SIMPLE);
	assert_log_line(cfg, v, -EIO, expect);
}

static void
test_log_line_from_request_end_to_end(void **state)
{
	struct config *cfg = load(NULL, 0);
	struct policy_request r = rcpt_request();
	struct engine_verdict v = verdict(ENGINE_DEFER, ENGINE_EARLY, 42, 0);
	char fields[ANSWER_FIELDS_MAX];
	char line[ANSWER_LOG_MAX];

	(void)state;
	r.sender = str("evil\n@example.com");
	answer_log_fields(fields, sizeof(fields), &r);
	answer_log_line(line, sizeof(line), cfg, &v, 0, fields);
	assert_string_equal(line, "action=greylist, reason=early-retry (42s "
			    "missing), client_name=mail.example.com, "
			    "client_address=192.0.2.7, sender=evil\\x0a@example.com, "
			    "recipient=bob@example.net");
}

#define T(f) cmocka_unit_test_teardown(f, free_configs)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_classify_non_rcpt_states),
		T(test_classify_rcpt),
		T(test_classify_greylist_authenticated),
		T(test_reply_defer_default_text),
		T(test_reply_defer_expands_s_r_percent),
		T(test_reply_defer_with_smtp_code_action),
		T(test_reply_pass_is_dunno),
		T(test_reply_store_failure_uses_failure_action),
		T(test_reply_longest_expansion_stays_one_line),
		T(test_replies_cut_to_small_buffer_keep_shape),
		T(test_rcpt_domain),
		T(test_rcpt_domain_respects_outsz),
		T(test_log_fields_plain),
		T(test_log_fields_escape_control_characters),
		T(test_log_fields_long_values_cut),
		T(test_log_fields_worst_case_fits),
		T(test_log_line_postgrey_shapes),
		T(test_log_line_restart_reads_as_new),
		T(test_log_line_store_failure),
		T(test_log_line_from_request_end_to_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
