/*
 * test_policy - the policy delegation protocol parser.
 *
 * Well-formed requests, the same bytes split at every offset and fed in
 * chunks of every size, pipelined requests, CRLF, and every limit and
 * malformation the contract in policy.h names.  The parser is one large
 * block, so each test gets a fresh one from test_malloc() (leak-checked).
 */
#include "policy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define NFIELDS 11
#define FIELD_COPY_MAX (POLICY_MAX_LINE + 1)

/* A request copied out of the parser, so it outlives the next feed. */
struct field_copy {
	bool present;
	size_t len;
	char text[FIELD_COPY_MAX];
};

struct request_copy {
	struct field_copy f[NFIELDS];
	unsigned nattrs;
};

static const char plain_request[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"protocol_name=ESMTP\n"
	"client_address=192.0.2.7\n"
	"client_name=mail.example.com\n"
	"reverse_client_name=mail.example.com\n"
	"helo_name=mail.example.com\n"
	"sender=alice@example.com\n"
	"recipient=bob@example.net\n"
	"recipient_count=0\n"
	"queue_id=\n"
	"instance=1a2b.5f3e4d21.9c1e0.0\n"
	"size=12345\n"
	"sasl_username=\n"
	"ccert_subject=\n"
	"\n";
#define PLAIN_NATTRS 15

static const char crlf_request[] =
	"request=smtpd_access_policy\r\n"
	"protocol_state=RCPT\r\n"
	"protocol_name=ESMTP\r\n"
	"client_address=192.0.2.7\r\n"
	"client_name=mail.example.com\r\n"
	"reverse_client_name=mail.example.com\r\n"
	"helo_name=mail.example.com\r\n"
	"sender=alice@example.com\r\n"
	"recipient=bob@example.net\r\n"
	"recipient_count=0\r\n"
	"queue_id=\r\n"
	"instance=1a2b.5f3e4d21.9c1e0.0\r\n"
	"size=12345\r\n"
	"sasl_username=\r\n"
	"ccert_subject=\r\n"
	"\r\n";

static const char request_a[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"client_address=192.0.2.1\n"
	"sender=a@example.com\n"
	"recipient=x@example.net\n"
	"\n";
static const char request_b[] =
	"request=smtpd_access_policy\n"
	"protocol_state=DATA\n"
	"client_address=2001:db8::25\n"
	"client_name=unknown\n"
	"sender=\n"
	"recipient=much.longer.recipient@example.org\n"
	"\n";
static const char request_c[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"sender=c@example.com\n"
	"recipient=z@example.net\n"
	"sasl_username=carol\n"
	"\n";

static int
setup_parser(void **state)
{
	struct policy_parser *p = test_malloc(sizeof(*p));

	policy_init(p);
	*state = p;
	return 0;
}

static int
teardown_parser(void **state)
{
	test_free(*state);
	return 0;
}

static const struct policy_str *
field_at(const struct policy_request *r, size_t i)
{
	const struct policy_str *const fields[NFIELDS] = {
		&r->request, &r->protocol_state, &r->client_address,
		&r->client_name, &r->reverse_client_name, &r->helo_name,
		&r->sender, &r->recipient, &r->sasl_username, &r->instance,
		&r->queue_id,
	};
	return fields[i];
}

static void
copy_request(struct request_copy *c, const struct policy_request *r)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NFIELDS; i++) {
		const struct policy_str *s = field_at(r, i);

		if (s->ptr == NULL)
			continue;
		assert_true(s->len < FIELD_COPY_MAX);
		c->f[i].present = true;
		c->f[i].len = s->len;
		memcpy(c->f[i].text, s->ptr, s->len);
	}
	c->nattrs = r->nattrs;
}

static void
assert_same_request(const struct request_copy *a, const struct request_copy *b)
{
	size_t i;

	assert_int_equal(a->nattrs, b->nattrs);
	for (i = 0; i < NFIELDS; i++) {
		assert_int_equal(a->f[i].present, b->f[i].present);
		assert_int_equal(a->f[i].len, b->f[i].len);
		assert_memory_equal(a->f[i].text, b->f[i].text, a->f[i].len);
	}
}

/* s holds exactly expect; expect NULL means the attribute is absent. */
static void
assert_field(struct policy_str s, const char *expect)
{
	if (expect == NULL) {
		assert_null(s.ptr);
		return;
	}
	assert_non_null(s.ptr);
	assert_int_equal(s.len, strlen(expect));
	assert_memory_equal(s.ptr, expect, s.len);
}

static void
assert_copy_field(const struct field_copy *f, const char *expect)
{
	assert_true(f->present);
	assert_int_equal(f->len, strlen(expect));
	assert_memory_equal(f->text, expect, f->len);
}

/*
 * Feed data chunk bytes at a time, copying every request out.  Returns
 * the number of requests, or the first negative error.
 */
static int
feed_in_chunks(struct policy_parser *p, const char *data, size_t len,
	       size_t chunk, struct request_copy *reqs, size_t maxreqs)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		size_t end = len - off > chunk ? off + chunk : len;

		while (off < end) {
			const struct policy_request *out = NULL;
			size_t used = 0;
			int rc = policy_feed(p, data + off, end - off, &used, &out);

			if (rc < 0) {
				assert_null(out);
				return rc;
			}
			assert_true(used <= end - off);
			if (rc == POLICY_REQUEST) {
				assert_non_null(out);
				assert_true(used > 0);
				assert_true((size_t)n < maxreqs);
				copy_request(&reqs[n++], out);
			} else {
				assert_int_equal(rc, POLICY_NEED_MORE);
				assert_null(out);
				assert_int_equal(used, end - off);
			}
			off += used;
		}
	}
	return n;
}

/* Feed one complete buffer expecting exactly one request that uses it all. */
static const struct policy_request *
feed_one(struct policy_parser *p, const char *data, size_t len)
{
	const struct policy_request *out = NULL;
	size_t used = 0;
	int rc = policy_feed(p, data, len, &used, &out);

	assert_int_equal(rc, POLICY_REQUEST);
	assert_int_equal(used, len);
	assert_non_null(out);
	return out;
}

static void
assert_failed(const struct policy_parser *p)
{
	assert_true(p->failed);
	assert_non_null(p->error);
	assert_true(p->error[0] != '\0');
}

/* ---- well-formed requests ------------------------------------------------ */

static void
test_full_request_fields(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *r;

	r = feed_one(p, plain_request, strlen(plain_request));
	assert_field(r->request, "smtpd_access_policy");
	assert_field(r->protocol_state, "RCPT");
	assert_field(r->client_address, "192.0.2.7");
	assert_field(r->client_name, "mail.example.com");
	assert_field(r->reverse_client_name, "mail.example.com");
	assert_field(r->helo_name, "mail.example.com");
	assert_field(r->sender, "alice@example.com");
	assert_field(r->recipient, "bob@example.net");
	assert_field(r->sasl_username, "");
	assert_field(r->instance, "1a2b.5f3e4d21.9c1e0.0");
	assert_field(r->queue_id, "");
	assert_int_equal(r->nattrs, PLAIN_NATTRS);
	assert_false(p->failed);
	assert_null(p->error);
}

static void
test_absent_attributes_are_null(void **state)
{
	static const char req[] = "request=smtpd_access_policy\n\n";
	struct policy_parser *p = *state;
	const struct policy_request *r = feed_one(p, req, strlen(req));

	assert_field(r->request, "smtpd_access_policy");
	assert_field(r->protocol_state, NULL);
	assert_field(r->client_address, NULL);
	assert_field(r->sender, NULL);
	assert_field(r->recipient, NULL);
	assert_field(r->sasl_username, NULL);
	assert_int_equal(r->nattrs, 1);
}

static void
test_split_at_every_offset_gives_same_request(void **state)
{
	struct policy_parser *p = *state;
	const size_t n = strlen(plain_request);
	struct request_copy *whole = test_malloc(sizeof(*whole));
	struct request_copy *split = test_malloc(sizeof(*split));
	size_t k;

	copy_request(whole, feed_one(p, plain_request, n));

	for (k = 0; k < n; k++) {
		const struct policy_request *out = NULL;
		size_t used = 0;
		int rc;

		policy_init(p);
		rc = policy_feed(p, plain_request, k, &used, &out);
		assert_int_equal(rc, POLICY_NEED_MORE);
		assert_int_equal(used, k);
		assert_null(out);
		assert_int_equal(policy_in_request(p), k > 0);

		rc = policy_feed(p, plain_request + k, n - k, &used, &out);
		assert_int_equal(rc, POLICY_REQUEST);
		assert_int_equal(used, n - k);
		copy_request(split, out);
		assert_same_request(whole, split);
	}
	test_free(whole);
	test_free(split);
}

static void
test_chunks_of_every_size_give_same_request(void **state)
{
	struct policy_parser *p = *state;
	const size_t n = strlen(plain_request);
	struct request_copy *whole = test_malloc(sizeof(*whole));
	struct request_copy *chunked = test_malloc(sizeof(*chunked));
	size_t chunk;

	copy_request(whole, feed_one(p, plain_request, n));
	for (chunk = 1; chunk <= n; chunk++) {
		policy_init(p);
		assert_int_equal(feed_in_chunks(p, plain_request, n, chunk,
						chunked, 1), 1);
		assert_same_request(whole, chunked);
		assert_false(policy_in_request(p));
	}
	test_free(whole);
	test_free(chunked);
}

static void
test_crlf_lines_parse_like_lf_lines(void **state)
{
	struct policy_parser *p = *state;
	struct request_copy *lf = test_malloc(sizeof(*lf));
	struct request_copy *crlf = test_malloc(sizeof(*crlf));
	const struct policy_request *r;
	size_t chunk;

	copy_request(lf, feed_one(p, plain_request, strlen(plain_request)));
	policy_init(p);
	r = feed_one(p, crlf_request, strlen(crlf_request));
	assert_field(r->sender, "alice@example.com");
	assert_field(r->queue_id, "");
	copy_request(crlf, r);
	assert_same_request(lf, crlf);

	/* A CR and its LF in different reads. */
	for (chunk = 1; chunk <= 3; chunk++) {
		policy_init(p);
		assert_int_equal(feed_in_chunks(p, crlf_request,
						strlen(crlf_request), chunk,
						crlf, 1), 1);
		assert_same_request(lf, crlf);
	}
	test_free(lf);
	test_free(crlf);
}

static void
test_unknown_attributes_ignored_but_counted(void **state)
{
	static const char req[] =
		"request=smtpd_access_policy\n"
		"x_custom=whatever\n"
		"protocol_state=RCPT\n"
		"Sender=not-the-sender@example.com\n"
		"sender_extra=also-not@example.com\n"
		"x_custom=repeated unknowns are fine\n"
		"sender=real@example.com\n"
		"\n";
	struct policy_parser *p = *state;
	const struct policy_request *r = feed_one(p, req, strlen(req));

	assert_field(r->protocol_state, "RCPT");
	assert_field(r->sender, "real@example.com");
	assert_int_equal(r->nattrs, 7);
}

static void
test_values_keep_equals_and_spaces(void **state)
{
	static const char req[] =
		"request=smtpd_access_policy\n"
		"sender=prvs=1234abcdef=user@example.com\n"
		"client_name= spaced  name \n"
		"recipient==\n"
		"helo_name=a=b=c\n"
		"\n";
	struct policy_parser *p = *state;
	const struct policy_request *r = feed_one(p, req, strlen(req));

	assert_field(r->sender, "prvs=1234abcdef=user@example.com");
	assert_field(r->client_name, " spaced  name ");
	assert_field(r->recipient, "=");
	assert_field(r->helo_name, "a=b=c");
}

/* ---- attribute names ---------------------------------------------------- */

/* The names of field_at(r, 0..NFIELDS-1), in that order. */
static const char *const field_names[NFIELDS] = {
	"request", "protocol_state", "client_address", "client_name",
	"reverse_client_name", "helo_name", "sender", "recipient",
	"sasl_username", "instance", "queue_id",
};

/*
 * Feed "request=smtpd_access_policy" (unless name is "request") and
 * "name=value"; returns the request, or NULL with *rc the error.
 */
static const struct policy_request *
feed_with_attr(struct policy_parser *p, const char *name, const char *value,
	       int *rc)
{
	char buf[256];
	const struct policy_request *out = NULL;
	size_t used;
	int n;

	if (strcmp(name, "request") == 0)
		n = snprintf(buf, sizeof(buf), "%s=%s\n\n", name, value);
	else
		n = snprintf(buf, sizeof(buf),
			     "request=smtpd_access_policy\n%s=%s\n\n", name, value);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	policy_init(p);
	*rc = policy_feed(p, buf, (size_t)n, &used, &out);
	return out;
}

/*
 * Each known name lands in its own field and in no other: a dispatch
 * table that files a name under the wrong field, or misses one, fails.
 */
static void
test_each_known_name_fills_its_field(void **state)
{
	struct policy_parser *p = *state;

	for (size_t k = 0; k < NFIELDS; k++) {
		const char *value = strcmp(field_names[k], "request") == 0
				    ? "smtpd_access_policy" : "value-of-this-one";
		int rc;
		const struct policy_request *r =
			feed_with_attr(p, field_names[k], value, &rc);

		if (rc != POLICY_REQUEST)
			fail_msg("%s: got %d", field_names[k], rc);
		for (size_t i = 0; i < NFIELDS; i++) {
			if (i == k)
				assert_field(*field_at(r, i), value);
			else if (i == 0)
				assert_field(r->request, "smtpd_access_policy");
			else if (field_at(r, i)->ptr != NULL)
				fail_msg("%s also filled %s", field_names[k],
					 field_names[i]);
		}
	}
}

/* A name that is none of the known ones leaves every field but request= absent. */
static void
assert_ignored(struct policy_parser *p, const char *name)
{
	int rc;
	const struct policy_request *r = feed_with_attr(p, name, "x", &rc);

	if (rc != POLICY_REQUEST)
		fail_msg("'%s': got %d, expected it ignored", name, rc);
	assert_field(r->request, "smtpd_access_policy");
	for (size_t i = 1; i < NFIELDS; i++) {
		if (field_at(r, i)->ptr != NULL)
			fail_msg("'%s' was taken for %s", name, field_names[i]);
	}
	assert_int_equal(r->nattrs, 2);
}

/*
 * Near misses of every known name: the same length with one byte off at
 * each position (so also the other known name of that length, where one
 * exists, is checked byte for byte), a prefix, one byte longer, one byte
 * in front, and upper case.
 */
static void
test_near_miss_names_ignored(void **state)
{
	struct policy_parser *p = *state;

	for (size_t k = 0; k < NFIELDS; k++) {
		const char *name = field_names[k];
		size_t len = strlen(name);
		char miss[64];

		for (size_t j = 0; j < len; j++) {
			memcpy(miss, name, len + 1);
			miss[j] = name[j] == 'x' ? 'y' : 'x';
			assert_ignored(p, miss);
		}
		memcpy(miss, name, len - 1);
		miss[len - 1] = '\0';
		assert_ignored(p, miss);
		snprintf(miss, sizeof(miss), "%ss", name);
		assert_ignored(p, miss);
		snprintf(miss, sizeof(miss), "%s_", name);
		assert_ignored(p, miss);
		snprintf(miss, sizeof(miss), "x%s", name);
		assert_ignored(p, miss);
		for (size_t j = 0; j <= len; j++)
			miss[j] = (char)(name[j] >= 'a' && name[j] <= 'z'
					 ? name[j] - 'a' + 'A' : name[j]);
		assert_ignored(p, miss);
	}
}

/* Postfix's other attributes, some as long as a known name, are ignored. */
static void
test_postfix_attributes_greyhold_does_not_use_ignored(void **state)
{
	static const char *const others[] = {
		"protocol_name", "recipient_count", "sasl_method", "sasl_sender",
		"size", "ccert_subject", "ccert_issuer", "ccert_fingerprint",
		"ccert_pubkey_fingerprint", "encryption_protocol",
		"encryption_cipher", "encryption_keysize", "etrn_domain", "stress",
		"server_address", "server_port", "policy_context",
		"compatibility_level", "mail_version", "client_port",
		"a", "s", "senders", "sende", "requests", "instanc", "queue_ids",
		"client_addresses", "reverse_client_name_",
		"a_name_longer_than_every_known_one_by_far",
	};
	struct policy_parser *p = *state;

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_ignored(p, others[i]);
}

/* A repeated known name is refused for every one of them. */
static void
test_each_known_name_repeated_rejected(void **state)
{
	struct policy_parser *p = *state;

	for (size_t k = 0; k < NFIELDS; k++) {
		char buf[256];
		const struct policy_request *out = NULL;
		size_t used;
		int n = snprintf(buf, sizeof(buf),
				 "request=smtpd_access_policy\n%s=a\n%s=b\n\n",
				 field_names[k], field_names[k]);
		int rc;

		policy_init(p);
		rc = policy_feed(p, buf, (size_t)n, &used, &out);
		if (rc != -EBADMSG)
			fail_msg("%s twice: got %d", field_names[k], rc);
		assert_null(out);
		assert_failed(p);
	}
}

static void
test_null_sender_present_with_len_zero(void **state)
{
	static const char req[] =
		"request=smtpd_access_policy\nsender=\nrecipient=a@b\n\n";
	struct policy_parser *p = *state;
	const struct policy_request *r = feed_one(p, req, strlen(req));

	assert_non_null(r->sender.ptr);
	assert_int_equal(r->sender.len, 0);
	assert_true(policy_str_eq(r->sender, ""));
	assert_false(policy_str_eq(r->client_name, ""));
}

static void
test_str_eq(void **state)
{
	struct policy_str abc = {"abcdef", 3};
	struct policy_str empty = {"x", 0};
	struct policy_str absent = {NULL, 0};

	(void)state;
	assert_true(policy_str_eq(abc, "abc"));
	assert_false(policy_str_eq(abc, "ab"));
	assert_false(policy_str_eq(abc, "abcd"));
	assert_false(policy_str_eq(abc, "ABC"));
	assert_true(policy_str_eq(empty, ""));
	assert_false(policy_str_eq(absent, ""));
}

/* ---- pipelining ------------------------------------------------------------ */

static char *
concat(const char *const *parts, size_t nparts, size_t *len)
{
	size_t total = 0, i;
	char *buf;

	for (i = 0; i < nparts; i++)
		total += strlen(parts[i]);
	buf = test_malloc(total + 1);
	buf[0] = '\0';
	for (i = 0; i < nparts; i++)
		strcat(buf, parts[i]);
	*len = total;
	return buf;
}

static void
test_two_pipelined_requests_one_by_one(void **state)
{
	static const char *const parts[] = {request_a, request_b};
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t len, used;
	char *buf = concat(parts, 2, &len);

	assert_int_equal(policy_feed(p, buf, len, &used, &out), POLICY_REQUEST);
	assert_int_equal(used, strlen(request_a));
	assert_field(out->sender, "a@example.com");
	assert_field(out->client_name, NULL);
	assert_int_equal(out->nattrs, 5);

	assert_int_equal(policy_feed(p, buf + used, len - used, &used, &out),
			 POLICY_REQUEST);
	assert_int_equal(used, strlen(request_b));
	assert_field(out->sender, "");
	assert_field(out->protocol_state, "DATA");
	assert_field(out->client_name, "unknown");
	assert_field(out->recipient, "much.longer.recipient@example.org");
	assert_int_equal(out->nattrs, 6);
	assert_false(policy_in_request(p));
	test_free(buf);
}

static void
test_three_pipelined_requests_one_by_one(void **state)
{
	static const char *const parts[] = {request_a, request_b, request_c};
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t len, used, off = 0;
	char *buf = concat(parts, 3, &len);

	assert_int_equal(policy_feed(p, buf, len, &used, &out), POLICY_REQUEST);
	assert_int_equal(used, strlen(request_a));
	assert_field(out->recipient, "x@example.net");
	off += used;

	assert_int_equal(policy_feed(p, buf + off, len - off, &used, &out),
			 POLICY_REQUEST);
	assert_int_equal(used, strlen(request_b));
	assert_field(out->client_address, "2001:db8::25");
	/* Fields of the previous request do not leak into this one. */
	assert_field(out->sasl_username, NULL);
	off += used;

	assert_int_equal(policy_feed(p, buf + off, len - off, &used, &out),
			 POLICY_REQUEST);
	assert_int_equal(used, strlen(request_c));
	assert_field(out->sasl_username, "carol");
	assert_field(out->client_name, NULL);
	assert_field(out->client_address, NULL);
	off += used;
	assert_int_equal(off, len);
	test_free(buf);
}

static void
test_pipelined_requests_in_chunks_of_every_size(void **state)
{
	static const char *const parts[] = {request_a, request_b, request_c};
	struct policy_parser *p = *state;
	struct request_copy *whole = test_malloc(3 * sizeof(*whole));
	struct request_copy *chunked = test_malloc(3 * sizeof(*chunked));
	size_t len, chunk, i;
	char *buf = concat(parts, 3, &len);

	assert_int_equal(feed_in_chunks(p, buf, len, len, whole, 3), 3);
	assert_copy_field(&whole[0].f[6], "a@example.com");
	assert_copy_field(&whole[1].f[6], "");
	assert_copy_field(&whole[2].f[6], "c@example.com");
	for (chunk = 1; chunk <= len; chunk++) {
		policy_init(p);
		assert_int_equal(feed_in_chunks(p, buf, len, chunk, chunked, 3),
				 3);
		for (i = 0; i < 3; i++)
			assert_same_request(&whole[i], &chunked[i]);
	}
	test_free(buf);
	test_free(whole);
	test_free(chunked);
}

static void
test_pipelined_partial_second_request_waits(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t alen = strlen(request_a), blen = strlen(request_b);
	size_t cut = 20, used;
	char *buf = test_malloc(alen + blen);

	memcpy(buf, request_a, alen);
	memcpy(buf + alen, request_b, blen);
	assert_int_equal(policy_feed(p, buf, alen + cut, &used, &out),
			 POLICY_REQUEST);
	assert_int_equal(used, alen);
	assert_int_equal(policy_feed(p, buf + alen, cut, &used, &out),
			 POLICY_NEED_MORE);
	assert_int_equal(used, cut);
	assert_null(out);
	assert_true(policy_in_request(p));
	assert_int_equal(policy_feed(p, buf + alen + cut, blen - cut, &used,
				     &out), POLICY_REQUEST);
	assert_int_equal(used, blen - cut);
	assert_field(out->protocol_state, "DATA");
	test_free(buf);
}

static void
test_in_request_tracks_partial_input(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	const size_t n = strlen(request_a);
	size_t used;

	assert_false(policy_in_request(p));
	assert_int_equal(policy_feed(p, request_a, 0, &used, &out),
			 POLICY_NEED_MORE);
	assert_false(policy_in_request(p));
	/* Part of the first line. */
	assert_int_equal(policy_feed(p, request_a, 5, &used, &out),
			 POLICY_NEED_MORE);
	assert_true(policy_in_request(p));
	/* Everything but the final empty line. */
	assert_int_equal(policy_feed(p, request_a + 5, n - 6, &used, &out),
			 POLICY_NEED_MORE);
	assert_true(policy_in_request(p));
	assert_int_equal(policy_feed(p, request_a + n - 1, 1, &used, &out),
			 POLICY_REQUEST);
	assert_false(policy_in_request(p));
	/* The next request starts. */
	assert_int_equal(policy_feed(p, request_b, 3, &used, &out),
			 POLICY_NEED_MORE);
	assert_true(policy_in_request(p));
}

/* ---- limits ---------------------------------------------------------------- */

/*
 * "request=smtpd_access_policy\n" then a sender line of exactly line_len
 * bytes (without its LF), then the empty line.
 */
static char *
request_with_line(size_t line_len, size_t *len)
{
	static const char head[] = "request=smtpd_access_policy\nsender=";
	const size_t name = strlen("sender=");
	size_t hl = strlen(head);
	char *buf;

	assert_true(line_len > name);
	*len = hl + (line_len - name) + 2;
	buf = test_malloc(*len);
	memcpy(buf, head, hl);
	memset(buf + hl, 'a', line_len - name);
	buf[*len - 2] = '\n';
	buf[*len - 1] = '\n';
	return buf;
}

static void
test_line_of_max_length_accepted(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *r;
	size_t len;
	char *buf = request_with_line(POLICY_MAX_LINE, &len);

	r = feed_one(p, buf, len);
	assert_int_equal(r->sender.len, POLICY_MAX_LINE - strlen("sender="));
	assert_int_equal(r->sender.ptr[0], 'a');
	assert_int_equal(r->sender.ptr[r->sender.len - 1], 'a');
	test_free(buf);
}

static void
test_line_one_byte_over_max_rejected(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t len, used;
	char *buf = request_with_line(POLICY_MAX_LINE + 1, &len);

	assert_int_equal(policy_feed(p, buf, len, &used, &out), -EMSGSIZE);
	assert_null(out);
	assert_failed(p);
	test_free(buf);
}

static void
test_line_over_max_rejected_when_fed_bytewise(void **state)
{
	struct policy_parser *p = *state;
	struct request_copy *reqs = test_malloc(sizeof(*reqs));
	size_t len;
	char *buf = request_with_line(POLICY_MAX_LINE + 1, &len);

	assert_int_equal(feed_in_chunks(p, buf, len, 1, reqs, 1), -EMSGSIZE);
	assert_failed(p);
	test_free(buf);
	test_free(reqs);
}

static void
test_endless_line_rejected_before_newline(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	const size_t n = POLICY_MAX_LINE + 100;
	char *buf = test_malloc(n);
	size_t used;

	memset(buf, 'x', n);
	assert_int_equal(policy_feed(p, buf, n, &used, &out), -EMSGSIZE);
	assert_failed(p);
	test_free(buf);
}

/* request= plus nunknown unknown attributes, then the empty line. */
static char *
request_with_attrs(unsigned nunknown, size_t *len)
{
	static const char head[] = "request=smtpd_access_policy\n";
	char *buf = test_malloc(strlen(head) + nunknown * 16 + 2);
	size_t o = strlen(head);
	unsigned i;

	memcpy(buf, head, o);
	for (i = 0; i < nunknown; i++)
		o += (size_t)sprintf(buf + o, "x%u=%u\n", i, i);
	buf[o++] = '\n';
	*len = o;
	return buf;
}

static void
test_max_attrs_accepted(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *r;
	size_t len;
	char *buf = request_with_attrs(POLICY_MAX_ATTRS - 1, &len);

	r = feed_one(p, buf, len);
	assert_int_equal(r->nattrs, POLICY_MAX_ATTRS);
	test_free(buf);
}

static void
test_one_attr_over_max_rejected(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t len, used;
	char *buf = request_with_attrs(POLICY_MAX_ATTRS, &len);

	assert_int_equal(policy_feed(p, buf, len, &used, &out), -E2BIG);
	assert_null(out);
	assert_failed(p);
	test_free(buf);
}

/*
 * A request of exactly wire_len bytes on the wire (LFs included):
 * request=, filler lines of at most 2000 bytes, the empty line.
 */
static char *
request_of_size(size_t wire_len)
{
	static const char head[] = "request=smtpd_access_policy\n";
	char *buf = test_malloc(wire_len);
	size_t o = strlen(head);
	unsigned i = 0;

	memcpy(buf, head, o);
	while (o < wire_len - 1) {
		size_t room = wire_len - 1 - o;	/* before the final LF */
		size_t line = room > 2001 ? 2001 : room;	/* with its LF */
		int n;

		if (room > 2001 && room - 2001 < 8)
			line = room - 8;
		n = sprintf(buf + o, "f%u=", i++);
		assert_true((size_t)n + 1 <= line);
		memset(buf + o + n, 'v', line - (size_t)n - 1);
		buf[o + line - 1] = '\n';
		o += line;
	}
	buf[o++] = '\n';
	assert_int_equal(o, wire_len);
	return buf;
}

static void
test_request_of_max_size_accepted(void **state)
{
	struct policy_parser *p = *state;
	char *buf = request_of_size(POLICY_MAX_REQUEST);
	const struct policy_request *r = feed_one(p, buf, POLICY_MAX_REQUEST);

	assert_field(r->request, "smtpd_access_policy");
	assert_true(r->nattrs <= POLICY_MAX_ATTRS);
	test_free(buf);
}

static void
test_request_over_max_size_rejected(void **state)
{
	struct policy_parser *p = *state;
	struct request_copy *reqs = test_malloc(sizeof(*reqs));
	/* Over the limit even when line ends are not counted. */
	const size_t n = POLICY_MAX_REQUEST + 20;
	char *buf = request_of_size(n);
	const struct policy_request *out;
	size_t used;
	int rc = policy_feed(p, buf, n, &used, &out);

	assert_int_equal(rc, -EMSGSIZE);
	assert_null(out);
	assert_failed(p);

	policy_init(p);
	assert_int_equal(feed_in_chunks(p, buf, n, 7, reqs, 1), -EMSGSIZE);
	assert_failed(p);
	test_free(buf);
	test_free(reqs);
}

/* ---- malformed input ------------------------------------------------------- */

struct bad_case {
	const char *what;
	const char *data;
	size_t len;	/* 0: strlen(data) */
};

static const char nul_request[] =
	"request=smtpd_access_policy\nsender=a\0b@example.com\n\n";

static const char nul_in_name[] =
	"request=smtpd_access_policy\nsen\0der=a@example.com\n\n";
static const char nul_before_eq[] =
	"request=smtpd_access_policy\nsender\0=a@example.com\n\n";
static const char nul_after_eq[] =
	"request=smtpd_access_policy\nsender=\0a@example.com\n\n";
static const char nul_without_eq[] =
	"request=smtpd_access_policy\nsender\0\n\n";
static const char nul_before_cr[] =
	"request=smtpd_access_policy\nx_unknown=a\0\r\n\r\n";

static const struct bad_case bad_cases[] = {
	{"NUL byte", nul_request, sizeof(nul_request) - 1},
	{"NUL in the name", nul_in_name, sizeof(nul_in_name) - 1},
	{"NUL just before '='", nul_before_eq, sizeof(nul_before_eq) - 1},
	{"NUL just after '='", nul_after_eq, sizeof(nul_after_eq) - 1},
	{"NUL in a line without '='", nul_without_eq, sizeof(nul_without_eq) - 1},
	{"NUL before CR", nul_before_cr, sizeof(nul_before_cr) - 1},
	{"line without '='",
	 "request=smtpd_access_policy\nprotocol_state RCPT\n\n", 0},
	{"empty name", "request=smtpd_access_policy\n=RCPT\n\n", 0},
	{"repeated known attribute",
	 "request=smtpd_access_policy\nsender=a@x\nsender=b@x\n\n", 0},
	{"repeated request=",
	 "request=smtpd_access_policy\nrequest=smtpd_access_policy\n\n", 0},
	{"repeated empty sender", "request=smtpd_access_policy\nsender=\nsender=\n\n", 0},
	{"empty request", "\n", 0},
	{"empty request CRLF", "\r\n", 0},
	{"no request=", "protocol_state=RCPT\nsender=a@x\nrecipient=b@y\n\n", 0},
	{"request= with wrong case",
	 "Request=smtpd_access_policy\nsender=a@x\n\n", 0},
};

static size_t
bad_len(const struct bad_case *c)
{
	return c->len != 0 ? c->len : strlen(c->data);
}

static void
test_malformed_requests_rejected(void **state)
{
	struct policy_parser *p = *state;
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct policy_request *out = NULL;
		size_t used;
		int rc;

		policy_init(p);
		rc = policy_feed(p, bad_cases[i].data, bad_len(&bad_cases[i]),
				 &used, &out);
		if (rc != -EBADMSG)
			fail_msg("%s: got %d, expected -EBADMSG", bad_cases[i].what,
				 rc);
		assert_null(out);
		assert_failed(p);
	}
}

static void
test_malformed_requests_rejected_bytewise(void **state)
{
	struct policy_parser *p = *state;
	struct request_copy *reqs = test_malloc(sizeof(*reqs));
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		int rc;

		policy_init(p);
		rc = feed_in_chunks(p, bad_cases[i].data, bad_len(&bad_cases[i]),
				    1, reqs, 1);
		if (rc != -EBADMSG)
			fail_msg("%s: got %d, expected -EBADMSG", bad_cases[i].what,
				 rc);
		assert_failed(p);
	}
	test_free(reqs);
}

/*
 * NUL bytes are looked for a block of input at a time, ahead of the
 * lines: a NUL anywhere in a request fails exactly that request, never
 * the ones before it in the same input, wherever the blocks fall.
 */
static void
test_nul_fails_only_its_own_request(void **state)
{
	struct policy_parser *p = *state;
	static const char head[] = "request=smtpd_access_policy\nx_pad=";
	char buf[4000];
	size_t first, total, used;

	/* A clean request of 1500 bytes, then one with a NUL in x_pad. */
	memcpy(buf, head, sizeof(head) - 1);
	first = sizeof(head) - 1;
	memset(buf + first, 'a', 1500 - first - 2);
	first = 1500;
	buf[first - 2] = '\n';
	buf[first - 1] = '\n';
	memcpy(buf + first, head, sizeof(head) - 1);
	total = first + sizeof(head) - 1;
	memset(buf + total, 'b', 2000);
	total += 2000;
	buf[total++] = '\n';
	buf[total++] = '\n';

	for (size_t at = first + sizeof(head) - 1; at < total - 2; at += 7) {
		const struct policy_request *out = NULL;
		char saved = buf[at];

		buf[at] = '\0';
		policy_init(p);
		assert_int_equal(policy_feed(p, buf, total, &used, &out),
				 POLICY_REQUEST);
		assert_int_equal(used, first);
		assert_int_equal(out->nattrs, 2);
		if (policy_feed(p, buf + used, total - used, &used, &out) !=
		    -EBADMSG)
			fail_msg("NUL at %zu of the second request not seen",
				 at - first);
		assert_string_equal(p->error, "NUL byte in request");
		buf[at] = saved;
	}
	/* And without the NUL both parse. */
	{
		const struct policy_request *out = NULL;

		policy_init(p);
		assert_int_equal(policy_feed(p, buf, total, &used, &out),
				 POLICY_REQUEST);
		assert_int_equal(policy_feed(p, buf + used, total - used, &used,
					     &out), POLICY_REQUEST);
	}
}

static void
test_parser_keeps_failing_after_error(void **state)
{
	struct policy_parser *p = *state;
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct policy_request *out = NULL;
		size_t used = 99;
		int rc;

		policy_init(p);
		rc = policy_feed(p, bad_cases[i].data, bad_len(&bad_cases[i]),
				 &used, &out);
		assert_true(rc < 0);
		/* A perfectly good request is refused now. */
		rc = policy_feed(p, plain_request, strlen(plain_request), &used,
				 &out);
		assert_true(rc < 0);
		assert_null(out);
		assert_int_equal(used, 0);
		rc = policy_feed(p, "\n", 1, &used, &out);
		assert_true(rc < 0);
		assert_null(out);
		assert_failed(p);
	}
}

static void
test_init_recovers_a_failed_parser(void **state)
{
	struct policy_parser *p = *state;
	const struct policy_request *out;
	size_t used;

	assert_true(policy_feed(p, "\n", 1, &used, &out) < 0);
	policy_init(p);
	assert_false(p->failed);
	assert_null(p->error);
	feed_one(p, request_a, strlen(request_a));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_parser, teardown_parser)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full_request_fields),
		T(test_absent_attributes_are_null),
		T(test_split_at_every_offset_gives_same_request),
		T(test_chunks_of_every_size_give_same_request),
		T(test_crlf_lines_parse_like_lf_lines),
		T(test_unknown_attributes_ignored_but_counted),
		T(test_values_keep_equals_and_spaces),
		T(test_each_known_name_fills_its_field),
		T(test_near_miss_names_ignored),
		T(test_postfix_attributes_greyhold_does_not_use_ignored),
		T(test_each_known_name_repeated_rejected),
		T(test_null_sender_present_with_len_zero),
		T(test_str_eq),
		T(test_two_pipelined_requests_one_by_one),
		T(test_three_pipelined_requests_one_by_one),
		T(test_pipelined_requests_in_chunks_of_every_size),
		T(test_pipelined_partial_second_request_waits),
		T(test_in_request_tracks_partial_input),
		T(test_line_of_max_length_accepted),
		T(test_line_one_byte_over_max_rejected),
		T(test_line_over_max_rejected_when_fed_bytewise),
		T(test_endless_line_rejected_before_newline),
		T(test_max_attrs_accepted),
		T(test_one_attr_over_max_rejected),
		T(test_request_of_max_size_accepted),
		T(test_request_over_max_size_rejected),
		T(test_malformed_requests_rejected),
		T(test_malformed_requests_rejected_bytewise),
		T(test_nul_fails_only_its_own_request),
		T(test_parser_keeps_failing_after_error),
		T(test_init_recovers_a_failed_parser),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
