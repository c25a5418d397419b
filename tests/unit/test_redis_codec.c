/*
 * test_redis_codec - greyhold's keys and values in Redis.
 *
 * The formats are shared with the decision script (greylist.lua), with
 * greyholdctl and with every daemon on the same Redis, and they outlive
 * binaries: the bytes are checked as written, not just round-tripped.
 */
#include "redis_codec.h"

#include <errno.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "decide.h"

static const struct triplet_opts opts = {false, 24, 64};

static void
build(struct triplet_key *k, const char *client, const char *sender,
      const char *rcpt)
{
	triplet_build(k, client, strlen(client), sender, strlen(sender), rcpt,
		      strlen(rcpt), &opts);
}

static void
test_keys_share_the_client_tag(void **state)
{
	static const char want_t[] =
		"greyhold:t:{192.0.2.0/24}\0alice@example.org\0bob@example.com";
	char ckey[REDIS_CODEC_KEY_MAX], tkey[REDIS_CODEC_KEY_MAX];
	struct triplet_key k;
	size_t clen, tlen;

	(void)state;
	build(&k, "192.0.2.10", "Alice@Example.org", "Bob@example.com");
	assert_int_equal(redis_codec_keys("greyhold:", &k, ckey, &clen, tkey,
					  &tlen), 0);
	assert_int_equal(clen, strlen("greyhold:c:{192.0.2.0/24}"));
	assert_memory_equal(ckey, "greyhold:c:{192.0.2.0/24}", clen);
	assert_int_equal(tlen, sizeof(want_t) - 1);
	assert_memory_equal(tkey, want_t, tlen);
}

static void
test_key_with_a_brace_goes_in_hex(void **state)
{
	char ckey[REDIS_CODEC_KEY_MAX], tkey[REDIS_CODEC_KEY_MAX];
	struct triplet_key k;
	size_t clen, tlen;

	(void)state;
	memset(&k, 0, sizeof(k));
	memcpy(k.client, "a}b", 3);
	k.client_len = 3;
	memcpy(k.key, "a}b\0s\0r", 7);
	k.key_len = 7;
	assert_int_equal(redis_codec_keys("", &k, ckey, &clen, tkey, &tlen), 0);
	assert_int_equal(clen, strlen("c:{617d62}"));
	assert_memory_equal(ckey, "c:{617d62}", clen);
	assert_int_equal(tlen, strlen("t:{617d62}") + 4);
	assert_memory_equal(tkey, "t:{617d62}\0s\0r", tlen);
}

static void
test_longest_prefix_and_key_fit(void **state)
{
	char prefix[REDIS_PREFIX_MAX + 2];
	char ckey[REDIS_CODEC_KEY_MAX], tkey[REDIS_CODEC_KEY_MAX];
	char sender[TRIPLET_MAX_ADDR + 20], rcpt[TRIPLET_MAX_ADDR + 20];
	struct triplet_key k;
	size_t clen, tlen;

	(void)state;
	memset(prefix, 'p', REDIS_PREFIX_MAX);
	prefix[REDIS_PREFIX_MAX] = '\0';
	memset(sender, 's', sizeof(sender) - 1);
	sender[sizeof(sender) - 1] = '\0';
	memset(rcpt, 'r', sizeof(rcpt) - 1);
	rcpt[sizeof(rcpt) - 1] = '\0';
	/* A client with braces everywhere doubles in hex: the worst case. */
	memset(&k, 0, sizeof(k));
	memset(k.client, '{', TRIPLET_MAX_CLIENT - 1);
	k.client_len = TRIPLET_MAX_CLIENT - 1;
	memset(k.key, '{', TRIPLET_MAX_KEY);
	k.key_len = TRIPLET_MAX_KEY;
	assert_int_equal(redis_codec_keys(prefix, &k, ckey, &clen, tkey, &tlen),
			 0);
	assert_true(tlen <= REDIS_CODEC_KEY_MAX);
	assert_true(clen <= REDIS_CODEC_KEY_MAX);
	prefix[REDIS_PREFIX_MAX] = 'p';
	prefix[REDIS_PREFIX_MAX + 1] = '\0';
	assert_int_equal(redis_codec_keys(prefix, &k, ckey, &clen, tkey, &tlen),
			 -E2BIG);
}

static void
test_name(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(redis_codec_name(out, sizeof(out), "mx:", "whitelist"),
			 0);
	assert_string_equal(out, "mx:whitelist");
	assert_int_equal(redis_codec_name(out, 8, "mx:", "whitelist"), -E2BIG);
}

static void
test_record_as_the_script_writes_it(void **state)
{
	struct record r = {1700000000, 1700000300, 7}, back;
	char out[REDIS_CODEC_RECORD_MAX];
	size_t n;

	(void)state;
	n = redis_codec_record_encode(out, &r);
	assert_string_equal(out, "1 1700000000 1700000300 7");
	assert_int_equal(n, strlen(out));
	assert_int_equal(redis_codec_record_decode(&back, out, n), 0);
	assert_int_equal(back.first_seen, r.first_seen);
	assert_int_equal(back.last_seen, r.last_seen);
	assert_int_equal(back.passes, r.passes);

	r.passes = UINT32_MAX;
	n = redis_codec_record_encode(out, &r);
	assert_int_equal(redis_codec_record_decode(&back, out, n), 0);
	assert_int_equal(back.passes, UINT32_MAX);
}

static void
test_record_that_does_not_decode(void **state)
{
	static const char *bad[] = {
		"", "1", "1 ", "2 1 2 3", "1 1 2", "1 1 2 3 ", "1  1 2 3",
		"1 -1 2 3", "1 1 2 x", "1 1 2 4294967296", " 1 1 2 3",
		"1 1099511627777 2 3", "1 1,2,3",
	};
	struct record r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(redis_codec_record_decode(&r, bad[i],
							   strlen(bad[i])),
				 -EBADMSG);
	/* A NUL inside is not a record either. */
	assert_int_equal(redis_codec_record_decode(&r, "1 1\0 2 3", 8), -EBADMSG);
}

static struct redis_codec_elem
int_elem(long long v)
{
	struct redis_codec_elem e = {REDIS_CODEC_INT, v, NULL, 0};

	return e;
}

static struct redis_codec_elem
str_elem(const char *s)
{
	struct redis_codec_elem e = {REDIS_CODEC_STR, 0, s, strlen(s)};

	return e;
}

static void
reply(struct redis_codec_elem e[REDIS_CODEC_VERDICT_ELEMS], long long action,
      const char *reason, long long left, long long delay, long long wrote)
{
	e[0] = int_elem(action);
	e[1] = str_elem(reason);
	e[2] = int_elem(left);
	e[3] = int_elem(delay);
	e[4] = int_elem(wrote);
	e[5] = int_elem(0);
	e[6] = int_elem(0);
}

static void
test_verdicts(void **state)
{
	static const struct {
		long long action;
		const char *reason;
		enum engine_action want_action;
		enum engine_reason want_reason;
	} cases[] = {
		{1, "new", ENGINE_DEFER, ENGINE_NEW},
		{1, "restart", ENGINE_DEFER, ENGINE_RESTART},
		{1, "early", ENGINE_DEFER, ENGINE_EARLY},
		{0, "passed", ENGINE_PASS, ENGINE_PASSED},
		{0, "known", ENGINE_PASS, ENGINE_KNOWN},
		{0, "awl", ENGINE_PASS, ENGINE_AWL},
	};
	struct redis_codec_elem e[REDIS_CODEC_VERDICT_ELEMS];
	struct redis_codec_verdict v;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reply(e, cases[i].action, cases[i].reason, 12, 34, 1);
		assert_int_equal(redis_codec_verdict_parse(e, 7, &v), 0);
		assert_int_equal(v.verdict.action, cases[i].want_action);
		assert_int_equal(v.verdict.reason, cases[i].want_reason);
		assert_int_equal(v.verdict.seconds_left, 12);
		assert_int_equal(v.verdict.delay, 34);
		assert_true(v.wrote);
		assert_int_equal(v.corrupt, 0);
		assert_int_equal(v.matched, 0);
	}
	reply(e, 0, "known", 0, 0, 0);
	e[5] = int_elem(2);
	e[6] = int_elem(DECIDE_MAX_IDS - 1);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), 0);
	assert_false(v.wrote);
	assert_int_equal(v.corrupt, 2);
	assert_int_equal(v.matched, DECIDE_MAX_IDS - 1);
}

static void
test_odd_replies_rejected(void **state)
{
	struct redis_codec_elem e[REDIS_CODEC_VERDICT_ELEMS];
	struct redis_codec_verdict v;

	(void)state;
	reply(e, 1, "new", 300, 0, 1);
	assert_int_equal(redis_codec_verdict_parse(e, 6, &v), -EPROTO);
	reply(e, 2, "new", 300, 0, 1);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "newer", 300, 0, 1);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "ne", 300, 0, 1);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "new", -1, 0, 1);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "new", 300, 0, 1);
	e[1] = int_elem(0);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "new", 300, 0, 1);
	e[2] = str_elem("300");
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
	reply(e, 1, "new", 300, 0, 1);
	e[6] = int_elem(DECIDE_MAX_IDS);
	assert_int_equal(redis_codec_verdict_parse(e, 7, &v), -EPROTO);
}

static void
test_error_replies(void **state)
{
	(void)state;
	assert_int_equal(redis_codec_error_errno("NOAUTH Authentication "
						 "required."), -EACCES);
	assert_int_equal(redis_codec_error_errno("WRONGPASS invalid"), -EACCES);
	assert_int_equal(redis_codec_error_errno("READONLY You can't write"),
			 -EROFS);
	assert_int_equal(redis_codec_error_errno("LOADING Redis is loading"),
			 -EAGAIN);
	assert_int_equal(redis_codec_error_errno("OOM command not allowed"),
			 -ENOMEM);
	assert_int_equal(redis_codec_error_errno("ERR unknown command"),
			 -EPROTO);
	assert_int_equal(redis_codec_error_errno(""), -EPROTO);
}

static void
test_whitelist_entry_as_written(void **state)
{
	struct db_wl_entry e = {WHITELIST_RECIPIENTS, "bob@example.com",
				1700000000, 0, "partner, see ticket 42"};
	struct db_wl_entry back;
	char field[REDIS_CODEC_WL_FIELD_MAX], value[REDIS_CODEC_WL_VALUE_MAX];
	int flen;
	size_t vlen;

	(void)state;
	flen = redis_codec_wl_field(field, e.kind, e.entry);
	assert_int_equal(flen, strlen("r:bob@example.com"));
	assert_memory_equal(field, "r:bob@example.com", (size_t)flen);
	vlen = redis_codec_wl_value(value, &e);
	assert_string_equal(value, "1700000000,0,partner, see ticket 42");
	assert_int_equal(vlen, strlen(value));
	assert_int_equal(redis_codec_wl_decode(field, (size_t)flen, value, vlen,
					       &back), 0);
	assert_int_equal(back.kind, WHITELIST_RECIPIENTS);
	assert_string_equal(back.entry, "bob@example.com");
	assert_int_equal(back.added, 1700000000);
	assert_int_equal(back.expires, 0);
	assert_string_equal(back.comment, "partner, see ticket 42");

	flen = redis_codec_wl_field(field, WHITELIST_CLIENTS, "192.0.2.0/24");
	assert_memory_equal(field, "c:192.0.2.0/24", (size_t)flen);
}

static void
test_whitelist_entry_too_long(void **state)
{
	char entry[WHITELIST_MAX_ENTRY + 1];
	char field[REDIS_CODEC_WL_FIELD_MAX];
	struct db_wl_entry e;

	(void)state;
	memset(entry, 'a', sizeof(entry) - 1);
	entry[WHITELIST_MAX_ENTRY] = '\0';
	assert_int_equal(redis_codec_wl_field(field, WHITELIST_CLIENTS, entry),
			 -E2BIG);
	entry[WHITELIST_MAX_ENTRY - 1] = '\0';
	assert_int_equal(redis_codec_wl_field(field, WHITELIST_CLIENTS, entry),
			 WHITELIST_MAX_ENTRY + 1);
	/* A comment longer than the limit is cut, not the entry lost. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(redis_codec_wl_decode(
		"c:x", 3, "1,2,"
		"0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789",
		4 + 210, &e), 0);
	assert_int_equal(strlen(e.comment), DB_WL_COMMENT_MAX);
}

static void
test_whitelist_entry_that_does_not_decode(void **state)
{
	static const struct {
		const char *field, *value;
	} bad[] = {
		{"c:", "1,0,"}, {"x:a", "1,0,"}, {"c-a", "1,0,"}, {"ca", "1,0,"},
		{"c:a", ""}, {"c:a", "1"}, {"c:a", "1,"}, {"c:a", ",0,"},
		{"c:a", "x,0,"}, {"c:a", "1,-5,"}, {"c:a", "1;0;"},
	};
	struct db_wl_entry e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(redis_codec_wl_decode(bad[i].field,
						       strlen(bad[i].field),
						       bad[i].value,
						       strlen(bad[i].value), &e),
				 -EBADMSG);
	/* A NUL in the field is never an entry. */
	assert_int_equal(redis_codec_wl_decode("c:a\0b", 5, "1,0,", 4, &e),
			 -EBADMSG);
	/* Without a comment, or with an empty one: an entry. */
	assert_int_equal(redis_codec_wl_decode("c:a", 3, "1,0", 3, &e), 0);
	assert_string_equal(e.comment, "");
	assert_int_equal(redis_codec_wl_decode("c:a", 3, "1,5,", 4, &e), 0);
	assert_int_equal(e.expires, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_share_the_client_tag),
		cmocka_unit_test(test_key_with_a_brace_goes_in_hex),
		cmocka_unit_test(test_longest_prefix_and_key_fit),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_record_as_the_script_writes_it),
		cmocka_unit_test(test_record_that_does_not_decode),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_odd_replies_rejected),
		cmocka_unit_test(test_error_replies),
		cmocka_unit_test(test_whitelist_entry_as_written),
		cmocka_unit_test(test_whitelist_entry_too_long),
		cmocka_unit_test(test_whitelist_entry_that_does_not_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
