/*
 * test_logline - parsing greyhold's and postgrey's decision log lines.
 *
 * greyhold's lines are built by the functions the daemon logs with
 * (answer_log_fields(), answer_log_line(), and server.c's format for
 * whitelist and authenticated passes), so these tests follow the real
 * format if it changes.  postgrey's lines are copied from its source
 * (mylog_action: empty fields left out, a queue id first when known).
 */
#include "logline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "answer.h"
#include "log.h"

/* The daemon's cut for one untrusted value (answer.c). */
#define FIELD_MAX 256

static struct config *cfg;

static int
setup(void **state)
{
	char err[512];

	(void)state;
	if (config_load(&cfg, NULL, false, NULL, 0, err, sizeof(err)) != 0) {
		fprintf(stderr, "config_load: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(cfg);
	cfg = NULL;
	return 0;
}

static struct policy_str
str(const char *s)
{
	struct policy_str p = {s, s != NULL ? strlen(s) : 0};
	return p;
}

static struct policy_request
request(const char *name, const char *addr, const char *sender,
	const char *rcpt)
{
	struct policy_request r;

	memset(&r, 0, sizeof(r));
	r.request = str("smtpd_access_policy");
	r.protocol_state = str("RCPT");
	r.client_name = str(name);
	r.client_address = str(addr);
	r.sender = str(sender);
	r.recipient = str(rcpt);
	return r;
}

static struct policy_request
plain_request(void)
{
	return request("mail.example.com", "192.0.2.7", "alice@example.org",
		       "bob@example.net");
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

/* The line the daemon logs for a verdict (or store error err < 0). */
static void
decision_line(char *out, size_t outsz, const struct policy_request *r,
	      const struct config *c, struct engine_verdict v, int err)
{
	char fields[ANSWER_FIELDS_MAX];

	answer_log_fields(fields, sizeof(fields), r);
	answer_log_line(out, outsz, c, &v, err, fields);
}

/* server.c's line for a whitelist or authenticated pass. */
static void
pass_line(char *out, size_t outsz, const struct policy_request *r,
	  const char *reason)
{
	char fields[ANSWER_FIELDS_MAX];

	answer_log_fields(fields, sizeof(fields), r);
	snprintf(out, outsz, "action=pass, reason=%s, %s", reason, fields);
}

static int
parse(const char *line, struct logline *l)
{
	return logline_parse(line, strlen(line), l);
}

static void
assert_span(struct logline_span s, const char *expect)
{
	if (s.len != strlen(expect) || (s.len > 0 &&
					memcmp(s.ptr, expect, s.len) != 0))
		fail_msg("got '%.*s', expected '%s'", (int)s.len,
			 s.ptr != NULL ? s.ptr : "", expect);
}

/* The plain request's fields, as escaped text. */
static void
assert_plain_fields(const struct logline *l)
{
	assert_span(l->client_name, "mail.example.com");
	assert_span(l->client_address, "192.0.2.7");
	assert_span(l->sender, "alice@example.org");
	assert_span(l->recipient, "bob@example.net");
}

/* ---- every line greyhold writes ------------------------------------------------ */

static void
test_greylist_lines(void **state)
{
	struct policy_request r = plain_request();
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.tag, LOGLINE_TAG_NONE);
	assert_int_equal(l.action, LOGLINE_GREYLIST);
	assert_int_equal(l.reason, LOGLINE_NEW);
	assert_span(l.reason_text, "new");
	assert_int_equal(l.delay, -1);
	assert_int_equal(l.missing, -1);
	assert_plain_fields(&l);

	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_RESTART, 300, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.reason, LOGLINE_RESTART);
	assert_span(l.reason_text, "new (seen too long ago)");
	assert_plain_fields(&l);

	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_EARLY, 42, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.action, LOGLINE_GREYLIST);
	assert_int_equal(l.reason, LOGLINE_EARLY_RETRY);
	assert_span(l.reason_text, "early-retry (42s missing)");
	assert_int_equal(l.missing, 42);
	assert_int_equal(l.delay, -1);
	assert_plain_fields(&l);
}

static void
test_pass_lines(void **state)
{
	struct policy_request r = plain_request();
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 312), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.action, LOGLINE_PASS);
	assert_int_equal(l.reason, LOGLINE_TRIPLET_FOUND);
	assert_int_equal(l.delay, 312);
	assert_plain_fields(&l);

	/* A triplet that passed before: no delay. */
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_KNOWN, 0, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.reason, LOGLINE_TRIPLET_FOUND);
	assert_int_equal(l.delay, -1);
	assert_plain_fields(&l);

	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_AWL, 0, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.reason, LOGLINE_CLIENT_AWL);
	assert_plain_fields(&l);

	/* delay=0 is a delay, not a missing one. */
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.delay, 0);
}

static void
test_whitelist_and_authenticated_lines(void **state)
{
	static const struct {
		const char *text;
		enum logline_reason reason;
	} cases[] = {
		{"client whitelist", LOGLINE_CLIENT_WHITELIST},
		{"client whitelist (live)", LOGLINE_CLIENT_WHITELIST_LIVE},
		{"recipient whitelist", LOGLINE_RECIPIENT_WHITELIST},
		{"recipient whitelist (live)", LOGLINE_RECIPIENT_WHITELIST_LIVE},
		{"authenticated", LOGLINE_AUTHENTICATED},
	};
	struct policy_request r = plain_request();
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pass_line(line, sizeof(line), &r, cases[i].text);
		assert_int_equal(parse(line, &l), 0);
		assert_int_equal(l.action, LOGLINE_PASS);
		assert_int_equal(l.reason, cases[i].reason);
		assert_span(l.reason_text, cases[i].text);
		assert_string_equal(logline_reason_name(l.reason), cases[i].text);
		assert_int_equal(l.delay, -1);
		assert_plain_fields(&l);
	}
}

static void
test_error_lines(void **state)
{
	/* failure_action is the admin's text and may hold ", ". */
	static const struct config_override ov[] = {
		{"failure_action", "DEFER_IF_PERMIT Greylisting down, retry"},
	};
	struct policy_request r = plain_request();
	struct config *c = NULL;
	char line[ANSWER_LOG_MAX], err[512];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 0), -EIO);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.action, LOGLINE_ERROR);
	assert_int_equal(l.reason, LOGLINE_STORE_FAILURE);
	assert_string_equal(logline_reason_name(l.reason), "store failure");
	assert_int_equal(l.delay, -1);
	assert_plain_fields(&l);

	assert_int_equal(config_load(&c, NULL, false, ov, 1, err, sizeof(err)),
			 0);
	decision_line(line, sizeof(line), &r, c,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 0), -ENOSPC);
	config_free(c);
	assert_non_null(strstr(line, "answer=DEFER_IF_PERMIT Greylisting "
			       "down, retry, client_name="));
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(l.action, LOGLINE_ERROR);
	assert_int_equal(l.reason, LOGLINE_STORE_FAILURE);
	assert_plain_fields(&l);
}

/* Every verdict the engine can give makes a line that parses. */
static void
test_every_engine_reason_parses(void **state)
{
	static const struct {
		enum engine_action action;
		enum engine_reason reason;
		enum logline_reason expect;
	} cases[] = {
		{ENGINE_DEFER, ENGINE_NEW, LOGLINE_NEW},
		{ENGINE_DEFER, ENGINE_RESTART, LOGLINE_RESTART},
		{ENGINE_DEFER, ENGINE_EARLY, LOGLINE_EARLY_RETRY},
		{ENGINE_PASS, ENGINE_PASSED, LOGLINE_TRIPLET_FOUND},
		{ENGINE_PASS, ENGINE_KNOWN, LOGLINE_TRIPLET_FOUND},
		{ENGINE_PASS, ENGINE_AWL, LOGLINE_CLIENT_AWL},
	};
	struct policy_request r = plain_request();
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		decision_line(line, sizeof(line), &r, cfg,
			      verdict(cases[i].action, cases[i].reason, 7, 9), 0);
		assert_int_equal(parse(line, &l), 0);
		assert_int_equal(l.reason, cases[i].expect);
		assert_int_equal(l.action, cases[i].action == ENGINE_DEFER
				 ? LOGLINE_GREYLIST : LOGLINE_PASS);
	}
}

/* ---- escaped and hostile fields ------------------------------------------------ */

static void
assert_escaped(struct logline_span s, const char *raw)
{
	char want[FIELD_MAX + 8];	/* answer.c's buffer: the same cut */

	log_escape(want, sizeof(want), raw, strlen(raw), FIELD_MAX);
	assert_span(s, want);
}

static void
test_escaped_fields_kept_escaped(void **state)
{
	static const char name[] = "mx\x01.example.com";
	static const char sender[] = "a\\b\n\xc3\xa9@example.org";
	static const char rcpt[] = "bob\t@example.net";
	struct policy_request r = request(name, "2001:db8::7", sender, rcpt);
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_escaped(l.client_name, name);
	assert_span(l.client_address, "2001:db8::7");
	assert_escaped(l.sender, sender);
	assert_span(l.sender, "a\\\\b\\x0a\\xc3\\xa9@example.org");
	assert_escaped(l.recipient, rcpt);
}

/* A sender that reads like more fields stays the sender. */
static void
test_sender_that_looks_like_fields(void **state)
{
	static const char sender[] =
		"\"x, recipient=victim@example.net, client_address=1.2.3.4\""
		"@evil.example";
	struct policy_request r = request("unknown", "198.51.100.9", sender,
					  "bob@example.net");
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 61), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_span(l.client_name, "unknown");
	assert_span(l.client_address, "198.51.100.9");
	assert_span(l.sender, sender);
	assert_span(l.recipient, "bob@example.net");
	assert_int_equal(l.delay, 61);
}

static void
test_null_sender_and_empty_fields(void **state)
{
	struct policy_request r = request("", "192.0.2.8", "", "bob@example.net");
	char line[ANSWER_LOG_MAX];
	struct logline l;

	(void)state;
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0), 0);
	assert_non_null(strstr(line, "client_name=, "));
	assert_non_null(strstr(line, "sender=, recipient="));
	assert_int_equal(parse(line, &l), 0);
	assert_span(l.client_name, "");
	assert_span(l.client_address, "192.0.2.8");
	assert_span(l.sender, "");
	assert_span(l.recipient, "bob@example.net");
}

/* Over-long values are cut by the daemon ("...") and still parse. */
static void
test_long_fields_cut(void **state)
{
	char name[600], sender[900], rcpt[900];
	char line[ANSWER_LOG_MAX];
	struct policy_request r;
	struct logline l;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(sender, '\xff', sizeof(sender) - 1);
	sender[sizeof(sender) - 1] = '\0';
	memset(rcpt, 'r', sizeof(rcpt) - 1);
	rcpt[sizeof(rcpt) - 1] = '\0';
	r = request(name, "192.0.2.9", sender, rcpt);
	decision_line(line, sizeof(line), &r, cfg,
		      verdict(ENGINE_DEFER, ENGINE_NEW, 300, 0), 0);
	assert_int_equal(parse(line, &l), 0);
	assert_escaped(l.client_name, name);
	assert_span(l.client_address, "192.0.2.9");
	assert_escaped(l.sender, sender);
	/* The recipient is whatever fit in the line. */
	assert_true(l.recipient.len > 0);
	assert_int_equal(l.recipient.ptr + l.recipient.len, line + strlen(line));
}

/* ---- prefixes -------------------------------------------------------------------- */

static void
assert_prefixed(const char *prefix, const char *body, enum logline_tag tag,
		const char *stamp)
{
	char line[ANSWER_LOG_MAX + 128];
	struct logline l;

	snprintf(line, sizeof(line), "%s%s", prefix, body);
	if (parse(line, &l) != 0)
		fail_msg("line not parsed: '%s'", line);
	assert_int_equal(l.tag, tag);
	assert_span(l.stamp, stamp);
	assert_int_equal(l.action, LOGLINE_PASS);
	assert_int_equal(l.delay, 312);
	assert_plain_fields(&l);
}

static void
test_prefixes(void **state)
{
	struct policy_request r = plain_request();
	char body[ANSWER_LOG_MAX], crlf[ANSWER_LOG_MAX + 16];
	struct logline l;

	(void)state;
	decision_line(body, sizeof(body), &r, cfg,
		      verdict(ENGINE_PASS, ENGINE_PASSED, 0, 312), 0);
	/* The daemon's stderr. */
	assert_prefixed("greyhold: ", body, LOGLINE_TAG_GREYHOLD, "");
	/* syslog (LOG_PID), traditional and high-precision timestamps. */
	assert_prefixed("Nov 28 21:30:00 mx1 greyhold[123]: ", body,
			LOGLINE_TAG_GREYHOLD, "Nov 28 21:30:00");
	assert_prefixed("Nov  3 01:02:03 mx1 greyhold[9]: ", body,
			LOGLINE_TAG_GREYHOLD, "Nov  3 01:02:03");
	assert_prefixed("Nov 28 21:30:00.123456 mx1 greyhold[123]: ", body,
			LOGLINE_TAG_GREYHOLD, "Nov 28 21:30:00.123456");
	assert_prefixed("2026-11-28T21:30:00.123456+01:00 mx1 greyhold[123]: ",
			body, LOGLINE_TAG_GREYHOLD,
			"2026-11-28T21:30:00.123456+01:00");
	assert_prefixed("2026-11-28T21:30:00Z mx1.example.org greyhold: ", body,
			LOGLINE_TAG_GREYHOLD, "2026-11-28T21:30:00Z");
	/* A syslog that leaves the host out. */
	assert_prefixed("Nov 28 21:30:00 greyhold[123]: ", body,
			LOGLINE_TAG_GREYHOLD, "Nov 28 21:30:00");
	/* stderr logging captured by the journal. */
	assert_prefixed("Nov 28 21:30:00 mx1 greyhold[123]: greyhold: ", body,
			LOGLINE_TAG_GREYHOLD, "Nov 28 21:30:00");
	/* journalctl -o cat. */
	assert_prefixed("", body, LOGLINE_TAG_NONE, "");
	/* A CRLF file. */
	snprintf(crlf, sizeof(crlf), "greyhold: %s\r", body);
	assert_int_equal(parse(crlf, &l), 0);
	assert_span(l.recipient, "bob@example.net");
}

/* ---- postgrey ---------------------------------------------------------------------- */

#define PLAIN_FIELDS \
	"client_name=mail.example.com, client_address=192.0.2.7, " \
	"sender=alice@example.org, recipient=bob@example.net"
#define PG "Nov 28 21:30:00 mx postgrey[812]: "

static void
test_postgrey_lines(void **state)
{
	struct logline l;

	(void)state;
	assert_int_equal(parse(PG "action=greylist, reason=new, " PLAIN_FIELDS,
			       &l), 0);
	assert_int_equal(l.tag, LOGLINE_TAG_POSTGREY);
	assert_span(l.stamp, "Nov 28 21:30:00");
	assert_int_equal(l.action, LOGLINE_GREYLIST);
	assert_int_equal(l.reason, LOGLINE_NEW);
	assert_plain_fields(&l);

	/* A queue id first; early retry. */
	assert_int_equal(parse(PG "4Fq1Zx0Y2Kz1: action=greylist, "
			       "reason=early-retry (283s missing), "
			       PLAIN_FIELDS, &l), 0);
	assert_int_equal(l.reason, LOGLINE_EARLY_RETRY);
	assert_int_equal(l.missing, 283);
	assert_plain_fields(&l);

	assert_int_equal(parse(PG "action=pass, reason=triplet found, "
			       "delay=360, " PLAIN_FIELDS, &l), 0);
	assert_int_equal(l.reason, LOGLINE_TRIPLET_FOUND);
	assert_int_equal(l.delay, 360);
	assert_plain_fields(&l);

	/* postgrey leaves empty fields out: the null sender. */
	assert_int_equal(parse("postgrey[812]: action=greylist, reason=new, "
			       "client_name=unknown, client_address=192.0.2.8, "
			       "recipient=bob@example.net", &l), 0);
	assert_span(l.sender, "");
	assert_span(l.client_address, "192.0.2.8");
	assert_span(l.recipient, "bob@example.net");

	/* No client name at all; raw UTF-8 kept as it is. */
	assert_int_equal(parse("postgrey: action=pass, reason=client AWL, "
			       "client_address=192.0.2.9, "
			       "sender=j\xc3\xa9@example.org, "
			       "recipient=bob@example.net", &l), 0);
	assert_int_equal(l.reason, LOGLINE_CLIENT_AWL);
	assert_span(l.client_name, "");
	assert_span(l.sender, "j\xc3\xa9@example.org");

	assert_int_equal(parse(PG "action=pass, reason=recipient whitelist, "
			       PLAIN_FIELDS, &l), 0);
	assert_int_equal(l.reason, LOGLINE_RECIPIENT_WHITELIST);
	assert_plain_fields(&l);
}

/* ---- lines to skip and lines that do not parse ----------------------------------------- */

static void
test_other_lines_skipped(void **state)
{
	static const char *const lines[] = {
		"",
		"Nov 28 21:30:00 mx postfix/smtpd[77]: NOQUEUE: reject: RCPT "
		"from unknown[192.0.2.7]: 450 4.2.0 <bob@example.net>: "
		"Recipient address rejected: Greylisted",
		"Nov 28 21:30:00 mx kernel: action=pass, reason=new, "
		"client_address=1, recipient=2",
		"Nov 28 21:30:00 mx greyholdctl: action=pass, reason=new, "
		"client_address=1, recipient=2",
		"greyhold: listening on 127.0.0.1:10023",
		"greyhold: warning: 127.0.0.1:5: malformed policy request",
		"greyhold: error: store: commit failed: Input/output error",
		"Nov 28 21:30:00 mx greyhold[5]: greyhold 1.0 ready: delay 300s",
		"Nov 28 21:30:00 mx postgrey[812]: whitelisted: mx[192.0.2.7]",
		"Nov 28 21:30:00 mx postgrey[812]: cleaning up old logs...",
		"greyholds: action=pass, reason=new, client_address=1, "
		"recipient=2",
		"greyhold[12: action=pass, reason=new, client_address=1, "
		"recipient=2",
		" action=pass, reason=new, client_address=1, recipient=2",
		"xNov 28 21:30:00 mx greyhold[5]: action=pass, reason=new, "
		"client_address=1, recipient=2",
	};
	struct logline l;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (parse(lines[i], &l) != -ENOENT)
			fail_msg("not skipped: '%s'", lines[i]);
	}
}

static void
assert_unparseable(const char *line, enum logline_tag tag)
{
	struct logline l;
	int rc = parse(line, &l);

	if (rc != -EINVAL)
		fail_msg("'%s': %d, expected -EINVAL", line, rc);
	assert_int_equal(l.tag, tag);
}

static void
test_garbage_decision_lines(void **state)
{
	static const char *const tail =
		", client_name=a, client_address=192.0.2.1, sender=b@c, "
		"recipient=d@e";
	char line[512];

	(void)state;
	assert_unparseable("greyhold: action=", LOGLINE_TAG_GREYHOLD);
	assert_unparseable("greyhold: action=pass", LOGLINE_TAG_GREYHOLD);
	assert_unparseable("greyhold: action=pass, reason=new",
			   LOGLINE_TAG_GREYHOLD);
	assert_unparseable("postgrey[3]: action=greylist, reason=new, "
			   "client_name=a", LOGLINE_TAG_POSTGREY);
	snprintf(line, sizeof(line), "greyhold: action=reject, reason=new%s",
		 tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, why=new%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=triplet "
		 "found, delay=12x%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=triplet "
		 "found, delay=%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=triplet "
		 "found, delay=-5%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=triplet "
		 "found, delay=99999999999999999999%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	snprintf(line, sizeof(line), "greyhold: action=pass, reason=new, "
		 "Delay=5%s", tail);
	assert_unparseable(line, LOGLINE_TAG_GREYHOLD);
	/* No address, no recipient, fields out of order. */
	assert_unparseable("greyhold: action=greylist, reason=new, "
			   "client_name=a, sender=b@c, recipient=d@e",
			   LOGLINE_TAG_GREYHOLD);
	assert_unparseable("greyhold: action=greylist, reason=new, "
			   "client_name=a, client_address=192.0.2.1, sender=b@c",
			   LOGLINE_TAG_GREYHOLD);
	assert_unparseable("greyhold: action=greylist, reason=new, "
			   "recipient=d@e, client_address=192.0.2.1",
			   LOGLINE_TAG_GREYHOLD);
	/* A line cut short by a full disk or a small syslog buffer. */
	assert_unparseable("Nov 28 21:30:00 mx greyhold[5]: action=greylist, "
			   "reason=new, client_name=a, client_addr",
			   LOGLINE_TAG_GREYHOLD);
}

static void
test_nul_byte_is_unparseable(void **state)
{
	static const char line[] = "greyhold: action=pass, reason=new, "
		"client_address=192.0.2.1, sender=b\0@c, recipient=d@e";
	struct logline l;

	(void)state;
	assert_int_equal(logline_parse(line, sizeof(line) - 1, &l), -EINVAL);
	/* The same line without the NUL parses. */
	assert_int_equal(parse("greyhold: action=pass, reason=new, "
			       "client_address=192.0.2.1, sender=b@c, "
			       "recipient=d@e", &l), 0);
}

/* The parser reads only len bytes, not up to a NUL. */
static void
test_reads_only_len(void **state)
{
	static const char line[] = "greyhold: action=pass, reason=new, "
		"client_address=192.0.2.1, sender=b@c, recipient=d@eXTRA";
	struct logline l;

	(void)state;
	assert_int_equal(logline_parse(line, sizeof(line) - 1 - strlen("XTRA"),
				       &l), 0);
	assert_span(l.recipient, "d@e");
}

static void
test_unknown_reason_is_other(void **state)
{
	struct logline l;

	(void)state;
	assert_int_equal(parse("greyhold: action=pass, reason=a future "
			       "reason (x), client_name=a, client_address=192.0.2.1, "
			       "sender=b@c, recipient=d@e", &l), 0);
	assert_int_equal(l.reason, LOGLINE_OTHER);
	assert_span(l.reason_text, "a future reason (x)");
	assert_string_equal(logline_reason_name(l.reason), "other");
	/* An early retry without a count is still an early retry. */
	assert_int_equal(parse("greyhold: action=greylist, reason=early-retry, "
			       "client_address=192.0.2.1, recipient=d@e", &l), 0);
	assert_int_equal(l.reason, LOGLINE_EARLY_RETRY);
	assert_int_equal(l.missing, -1);
	/* An unknown extra field before the client's is skipped. */
	assert_int_equal(parse("greyhold: action=pass, reason=triplet found, "
			       "delay=5, backend=redis, client_address=192.0.2.1, "
			       "sender=b@c, recipient=d@e", &l), 0);
	assert_int_equal(l.delay, 5);
	assert_span(l.client_address, "192.0.2.1");
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(logline_action_name(LOGLINE_GREYLIST), "greylist");
	assert_string_equal(logline_action_name(LOGLINE_PASS), "pass");
	assert_string_equal(logline_action_name(LOGLINE_ERROR), "error");
	assert_string_equal(logline_reason_name(LOGLINE_NEW), "new");
	assert_string_equal(logline_reason_name(LOGLINE_EARLY_RETRY),
			    "early-retry");
	assert_string_equal(logline_reason_name(LOGLINE_TRIPLET_FOUND),
			    "triplet found");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greylist_lines),
		cmocka_unit_test(test_pass_lines),
		cmocka_unit_test(test_whitelist_and_authenticated_lines),
		cmocka_unit_test(test_error_lines),
		cmocka_unit_test(test_every_engine_reason_parses),
		cmocka_unit_test(test_escaped_fields_kept_escaped),
		cmocka_unit_test(test_sender_that_looks_like_fields),
		cmocka_unit_test(test_null_sender_and_empty_fields),
		cmocka_unit_test(test_long_fields_cut),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_postgrey_lines),
		cmocka_unit_test(test_other_lines_skipped),
		cmocka_unit_test(test_garbage_decision_lines),
		cmocka_unit_test(test_nul_byte_is_unparseable),
		cmocka_unit_test(test_reads_only_len),
		cmocka_unit_test(test_unknown_reason_is_other),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
