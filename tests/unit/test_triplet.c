/*
 * test_triplet - greylisting keys and sender normalisation.
 *
 * A table of real-world envelope senders and the form they must key as;
 * pairs of different senders that must stay apart; client keys for IPv4,
 * IPv6, mapped and unparsable addresses under every option; and the
 * bounds that keep a key inside LMDB's 511-byte limit.
 */
#include "triplet.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* LMDB's default mdb_env_get_maxkeysize(). */
#define LMDB_MAX_KEY 511

#define CANARY 0x5a

static const struct triplet_opts default_opts = {false, 24, 64};
static const struct triplet_opts host_opts = {true, 24, 64};

/* Normalise sender and compare with expect; checks no byte is written past the result. */
static void
assert_sender(const char *sender, const char *expect)
{
	char out[TRIPLET_MAX_ADDR + 32];
	size_t n, i;

	memset(out, CANARY, sizeof(out));
	n = triplet_normalise_sender(out, sender, strlen(sender));
	if (n != strlen(expect) || memcmp(out, expect, n) != 0)
		fail_msg("sender '%s': got '%.*s', expected '%s'", sender,
			 (int)n, out, expect);
	for (i = n; i < sizeof(out); i++)
		assert_int_equal((unsigned char)out[i], CANARY);
}

static size_t
normalise(char *out, const char *sender)
{
	return triplet_normalise_sender(out, sender, strlen(sender));
}

/*
 * The daemon parses the address once and hands the result to
 * triplet_client_addr() / triplet_build_addr(): they must key exactly as
 * the text entry points do, parsed or not.
 */
static void
assert_client_parsed_once(const char *addr, const struct triplet_opts *opts,
			  const char *expect)
{
	char out[TRIPLET_MAX_CLIENT];
	struct triplet_key k;
	struct addr a;
	size_t len = 12345;
	bool is_net = addr_parse(&a, addr, strlen(addr)) == 0;

	assert_int_equal(triplet_client_addr(out, sizeof(out), &len, &a, addr,
					     strlen(addr), opts), is_net);
	if (strcmp(out, expect) != 0)
		fail_msg("client '%s' parsed once: got '%s', expected '%s'",
			 addr, out, expect);
	assert_int_equal(len, strlen(expect));

	memset(&k, CANARY, sizeof(k));
	triplet_build_addr(&k, &a, addr, strlen(addr), "a@b", 3, "c@d", 3,
			   opts);
	assert_string_equal(k.client, expect);
	assert_int_equal(k.client_is_net, is_net);
	assert_int_equal(k.key_len, strlen(expect) + 8);
	assert_memory_equal(k.key, expect, strlen(expect) + 1);
	assert_memory_equal(k.key + strlen(expect) + 1, "a@b\0c@d", 7);
}

static void
assert_client(const char *addr, const struct triplet_opts *opts,
	      const char *expect)
{
	char out[TRIPLET_MAX_CLIENT];
	size_t len = 12345;

	triplet_client(out, sizeof(out), &len, addr, strlen(addr), opts);
	if (strcmp(out, expect) != 0)
		fail_msg("client '%s': got '%s', expected '%s'", addr, out,
			 expect);
	assert_int_equal(len, strlen(expect));
	assert_client_parsed_once(addr, opts, expect);
}

/* ---- sender normalisation -------------------------------------------------- */

struct sender_case {
	const char *in;
	const char *out;
};

static void
run_sender_cases(const struct sender_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_sender(cases[i].in, cases[i].out);
}

#define RUN(cases) run_sender_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void
test_sender_lower_cased(void **state)
{
	static const struct sender_case cases[] = {
		{"Bob@Example.COM", "bob@example.com"},
		{"ALICE@EXAMPLE.ORG", "alice@example.org"},
		{"already.lower@example.net", "already.lower@example.net"},
		{"first.last@sub.example.co.uk", "first.last@sub.example.co.uk"},
		/* Only A-Z: UTF-8 and other 8-bit bytes stay as they came. */
		{"\xC3\x84rger.Z@B\xC3\x9CRO.example", "\xC3\x84rger.z@b\xC3\x9Cro.example"},
		{"@[]^_`{|}~AZaz", "@[]^_`{|}~azaz"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_plus_extension_dropped(void **state)
{
	static const struct sender_case cases[] = {
		{"user+tag@example.com", "user@example.com"},
		{"User+Some.Tag+more@Example.com", "user@example.com"},
		{"user+@example.com", "user@example.com"},
		{"list-bounces+bob=example.net@lists.example.org",
		 "list-bounces@lists.example.org"},
		/* A leading '+' is the local part, not an extension. */
		{"+user@example.com", "+user@example.com"},
		{"+@example.com", "+@example.com"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_batv_folded(void **state)
{
	static const struct sender_case cases[] = {
		{"prvs=1234abcdef=user@example.com", "user@example.com"},
		{"PRVS=0123456789=User@Example.COM", "user@example.com"},
		{"msprvs1=17123abcde=bounces@example.com",
		 "bounces@example.com"},
		{"btv1==0123456789a==user@example.com", "user@example.com"},
		/* BATV around a VERP address. */
		{"prvs=4321dcba00=bounce-12345@list.example",
		 "bounce-#@list.example"},
		/* Not BATV: no tag and local part. */
		{"prvs@example.com", "prvs@example.com"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_srs_folded(void **state)
{
	static const struct sender_case cases[] = {
		{"SRS0=HHH=TT=orig.example=user@fwd.example",
		 "srs0=#=#=orig.example=user@fwd.example"},
		{"SRS0=a1Bc=6Q=orig.example=user@fwd.example",
		 "srs0=#=#=orig.example=user@fwd.example"},
		{"SRS0+x9yZ=K2=orig.example=user@fwd.example",
		 "srs0+#=#=orig.example=user@fwd.example"},
		{"SRS1=HHH=fwd1.example==HHH=TT=orig.example=user@fwd2.example",
		 "srs1=#=fwd1.example==#=#=orig.example=user@fwd2.example"},
		{"SRS1=Zq1=first.example==a9B=T3=orig.example=user@second.example",
		 "srs1=#=first.example==#=#=orig.example=user@second.example"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_srs_same_for_every_hash_and_time(void **state)
{
	char a[TRIPLET_MAX_ADDR], b[TRIPLET_MAX_ADDR];
	size_t na = normalise(a, "SRS0=abcd=TT=orig.example=user@fwd.example");
	size_t nb = normalise(b, "SRS0=wxyz=UU=orig.example=user@fwd.example");

	(void)state;
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
}

static void
test_sender_verp_digit_tokens_folded(void **state)
{
	static const struct sender_case cases[] = {
		{"bounce-12345-678@list.example", "bounce-#-#@list.example"},
		{"owner-list.1234.5678@lists.example", "owner-list.#.#@lists.example"},
		{"bounce-123-abc@list.example", "bounce-#-abc@list.example"},
		/* Digits inside a word are not a VERP token. */
		{"user123@example.com", "user123@example.com"},
		{"123user@example.com", "123user@example.com"},
		{"a_1@example.com", "a_1@example.com"},
		/* The domain keeps its digits. */
		{"bounce-1@mx1.123.example", "bounce-#@mx1.123.example"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_null_and_odd_shapes(void **state)
{
	static const struct sender_case cases[] = {
		{"", ""},
		{"MAILER-DAEMON", "mailer-daemon"},
		{"Postmaster", "postmaster"},
		{"@example.com", "@example.com"},
		{"user@", "user@"},
		/* The domain starts at the last '@'. */
		{"\"a@b\"@Example.com", "\"a@b\"@example.com"},
	};

	(void)state;
	RUN(cases);
}

static void
test_sender_cut_to_max_addr(void **state)
{
	char in[1200];
	char out[TRIPLET_MAX_ADDR + 32];
	char expect[TRIPLET_MAX_ADDR];
	size_t lens[] = {TRIPLET_MAX_ADDR, TRIPLET_MAX_ADDR + 1, 256, 511,
			 512, 513, 1000, sizeof(in) - 1};
	size_t i, j, n;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* Local part of 64, domain fills the rest: nothing to fold. */
		memset(in, 'd', lens[i]);
		memset(in, 'L', 64);
		in[64] = '@';
		memset(out, CANARY, sizeof(out));
		n = triplet_normalise_sender(out, in, lens[i]);
		assert_int_equal(n, TRIPLET_MAX_ADDR);
		for (j = n; j < sizeof(out); j++)
			assert_int_equal((unsigned char)out[j], CANARY);
		for (j = 0; j < TRIPLET_MAX_ADDR; j++)
			expect[j] = j < 64 ? 'l' : j == 64 ? '@' : 'd';
		assert_memory_equal(out, expect, TRIPLET_MAX_ADDR);
	}
}

static void
test_sender_long_local_part_cut(void **state)
{
	char in[600];
	char out[TRIPLET_MAX_ADDR + 32];
	size_t n, j;

	(void)state;
	memset(in, 'x', 580);
	memcpy(in + 580, "@example.com", 12);
	memset(out, CANARY, sizeof(out));
	n = triplet_normalise_sender(out, in, 592);
	assert_true(n <= TRIPLET_MAX_ADDR);
	for (j = n; j < sizeof(out); j++)
		assert_int_equal((unsigned char)out[j], CANARY);
}

static void
test_senders_varying_only_envelope_collapse(void **state)
{
	static const char *const groups[][3] = {
		{"user+a@example.com", "user+b@example.com", "User@Example.com"},
		{"prvs=1111111111=user@example.com",
		 "prvs=2222222222=user@example.com", "user@example.com"},
		{"bounce-1-2@list.example", "bounce-33-44@list.example",
		 "bounce-555-666@list.example"},
		{"SRS0=h1=AA=orig.example=u@fwd.example",
		 "SRS0=h2=BB=orig.example=u@fwd.example",
		 "srs0=h3=CC=orig.example=u@fwd.example"},
	};
	size_t g, i;

	(void)state;
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		char first[TRIPLET_MAX_ADDR], other[TRIPLET_MAX_ADDR];
		size_t n = normalise(first, groups[g][0]);

		for (i = 1; i < 3; i++) {
			size_t m = normalise(other, groups[g][i]);

			if (m != n || memcmp(first, other, n) != 0)
				fail_msg("'%s' and '%s' should key alike",
					 groups[g][0], groups[g][i]);
		}
	}
}

static void
assert_senders_differ(const char *a, const char *b)
{
	char na[TRIPLET_MAX_ADDR], nb[TRIPLET_MAX_ADDR];
	size_t la = normalise(na, a);
	size_t lb = normalise(nb, b);

	if (la == lb && memcmp(na, nb, la) == 0)
		fail_msg("different senders '%s' and '%s' both key as '%.*s'",
			 a, b, (int)la, na);
}

static void
test_different_senders_stay_apart(void **state)
{
	static const char *const pairs[][2] = {
		{"alice@example.com", "bob@example.com"},
		{"alice@example.com", "alice@example.net"},
		{"user+x@a.example", "user+x@b.example"},
		{"+alice@example.com", "+bob@example.com"},
		{"prvs=1234567890=alice@example.com",
		 "prvs=1234567890=bob@example.com"},
		{"SRS0=abc=TT=orig1.example=user@fwd.example",
		 "SRS0=abc=TT=orig2.example=user@fwd.example"},
		{"SRS0=abc=TT=orig.example=alice@fwd.example",
		 "SRS0=abc=TT=orig.example=bob@fwd.example"},
		{"bounce-123-alice@list.example", "bounce-123-bob@list.example"},
		{"user1@example.com", "user2@example.com"},
		{"a.b@example.com", "ab@example.com"},
		{"", "mailer-daemon@example.com"},
		{"", "@"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		assert_senders_differ(pairs[i][0], pairs[i][1]);
}

/*
 * Whole local parts that are numbers are people, not VERP tokens: large
 * providers hand out numeric addresses (12345678@qq.com).
 */
static void
test_numeric_local_parts_stay_apart(void **state)
{
	(void)state;
	assert_senders_differ("12345678@qq.example", "87654321@qq.example");
}

static void
test_recipient_lower_cased_keeps_extension(void **state)
{
	char out[TRIPLET_MAX_ADDR + 16];
	char in[400];
	size_t n;

	(void)state;
	n = triplet_normalise_recipient(out, "Bob+Tag@Example.NET", 19);
	assert_int_equal(n, 19);
	assert_memory_equal(out, "bob+tag@example.net", 19);

	n = triplet_normalise_recipient(out, "bounce-123@Example.NET", 22);
	assert_int_equal(n, 22);
	assert_memory_equal(out, "bounce-123@example.net", 22);

	memset(in, 'R', sizeof(in));
	memset(out, CANARY, sizeof(out));
	n = triplet_normalise_recipient(out, in, sizeof(in));
	assert_int_equal(n, TRIPLET_MAX_ADDR);
	assert_int_equal(out[0], 'r');
	assert_int_equal(out[TRIPLET_MAX_ADDR - 1], 'r');
	assert_int_equal((unsigned char)out[TRIPLET_MAX_ADDR], CANARY);
}

/* ---- client keys -------------------------------------------------------------- */

static void
test_client_ipv4_default_slash24(void **state)
{
	(void)state;
	assert_client("192.0.2.7", &default_opts, "192.0.2.0/24");
	assert_client("192.0.2.255", &default_opts, "192.0.2.0/24");
	assert_client("198.51.100.1", &default_opts, "198.51.100.0/24");
}

static void
test_client_ipv6_default_slash64(void **state)
{
	(void)state;
	assert_client("2001:db8:1:2:3:4:5:6", &default_opts,
		      "2001:db8:1:2::/64");
	assert_client("2001:DB8:1:2::ABCD", &default_opts, "2001:db8:1:2::/64");
	assert_client("::1", &default_opts, "::/64");
}

static void
test_client_v4_mapped_keyed_as_v4(void **state)
{
	(void)state;
	assert_client("::ffff:192.0.2.7", &default_opts, "192.0.2.0/24");
	assert_client("::FFFF:192.0.2.7", &host_opts, "192.0.2.7/32");
}

static void
test_client_by_host(void **state)
{
	(void)state;
	assert_client("192.0.2.7", &host_opts, "192.0.2.7/32");
	assert_client("2001:db8:1:2:3:4:5:6", &host_opts,
		      "2001:db8:1:2:3:4:5:6/128");
	/* by_host wins over the prefixes. */
	{
		const struct triplet_opts o = {true, 8, 16};

		assert_client("192.0.2.7", &o, "192.0.2.7/32");
	}
}

static void
test_client_custom_prefixes(void **state)
{
	const struct triplet_opts wide = {false, 16, 48};
	const struct triplet_opts narrow = {false, 25, 96};
	const struct triplet_opts full = {false, 32, 128};

	(void)state;
	assert_client("192.0.2.7", &wide, "192.0.0.0/16");
	assert_client("2001:db8:1:2:3:4:5:6", &wide, "2001:db8:1::/48");
	assert_client("192.0.2.200", &narrow, "192.0.2.128/25");
	assert_client("192.0.2.7", &narrow, "192.0.2.0/25");
	assert_client("2001:db8:1:2:3:4:5:6", &narrow, "2001:db8:1:2:3:4::/96");
	assert_client("192.0.2.7", &full, "192.0.2.7/32");
	assert_client("2001:db8::7", &full, "2001:db8::7/128");
}

static void
test_client_unknown_keyed_as_text(void **state)
{
	char out[TRIPLET_MAX_CLIENT];
	char in[200];
	char nul_in[] = "bad\0addr";
	size_t len;

	(void)state;
	assert_client("unknown", &default_opts, "unknown");
	assert_client("UNKNOWN", &default_opts, "unknown");
	assert_client("192.0.2", &default_opts, "192.0.2");

	memset(in, 'Z', sizeof(in));
	triplet_client(out, sizeof(out), &len, in, sizeof(in), &default_opts);
	assert_int_equal(len, sizeof(out) - 1);
	assert_int_equal(strlen(out), len);
	assert_int_equal(out[0], 'z');

	/* A NUL would split the key: it must not reach the client part. */
	triplet_client(out, sizeof(out), &len, nul_in, sizeof(nul_in) - 1,
		       &default_opts);
	assert_int_equal(len, sizeof(nul_in) - 1);
	assert_null(memchr(out, '\0', len));
}

/*
 * The client key as it was made before the formatter was written by hand
 * (inet_ntop() of the masked address, then "/%u"): keys already in a
 * database were made that way, so every address must still key the same.
 */
static void
old_client_key(char *out, size_t outsz, const char *text,
	       const struct triplet_opts *opts)
{
	char ntop[INET6_ADDRSTRLEN];
	struct addr a;
	unsigned prefix;

	assert_int_equal(addr_parse(&a, text, strlen(text)), 0);
	prefix = opts->by_host ? addr_bits(&a)
		 : a.family == ADDR_V4 ? opts->ipv4_prefix : opts->ipv6_prefix;
	addr_mask(&a, prefix);
	assert_non_null(inet_ntop(a.family == ADDR_V4 ? AF_INET : AF_INET6,
				  a.bytes, ntop, sizeof(ntop)));
	snprintf(out, outsz, "%s/%u", ntop, prefix);
}

static uint64_t
next_random(uint64_t *s)
{
	/* xorshift64*: deterministic, so a failure repeats. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/*
 * A client address as Postfix may send it: IPv4; IPv6 with runs of zero
 * groups, ffff groups, IPv4-compatible and IPv4-mapped forms, written
 * canonically by inet_ntop() or in full upper-case hex with leading
 * zeros (so the key is not simply the text masked).
 */
static void
random_client_text(char *out, size_t outsz, uint64_t *s)
{
	uint64_t r = next_random(s);
	uint8_t b[16];

	if (r % 3 == 0) {
		snprintf(out, outsz, "%u.%u.%u.%u", (unsigned)(r >> 8) & 255,
			 (unsigned)(r >> 16) & 255, (unsigned)(r >> 24) & 255,
			 (unsigned)(r >> 32) & 255);
		return;
	}
	for (int i = 0; i < 8; i++) {
		uint64_t g = next_random(s);
		unsigned v = g % 8 < 4 ? 0 : g % 8 == 4 ? 0xffff
			     : (unsigned)(g >> 16) & 0xffff;

		b[2 * i] = (uint8_t)(v >> 8);
		b[2 * i + 1] = (uint8_t)v;
	}
	if ((r >> 8) % 6 == 0)
		memset(b, 0, 12);
	if ((r >> 8) % 6 == 1) {
		memset(b, 0, 10);
		b[10] = b[11] = 0xff;
	}
	if ((r >> 16) % 4 == 0) {
		snprintf(out, outsz, "%02X%02X:%02X%02X:%02X%02X:%02X%02X:"
			 "%02X%02X:%02X%02X:%02X%02X:%02X%02X", b[0], b[1], b[2],
			 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
			 b[12], b[13], b[14], b[15]);
		return;
	}
	assert_non_null(inet_ntop(AF_INET6, b, out, (socklen_t)outsz));
}

static void
test_client_keys_same_as_before_for_random_addresses(void **state)
{
	uint64_t seed = 0x2545f4914f6cdd1dULL;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		char text[64], expect[INET6_ADDRSTRLEN + 12];
		uint64_t r = next_random(&seed);
		struct triplet_opts opts = {
			r % 5 == 0, (unsigned)(r >> 8) % 33, (unsigned)(r >> 16) % 129,
		};

		random_client_text(text, sizeof(text), &seed);
		old_client_key(expect, sizeof(expect), text, &opts);
		assert_client(text, &opts, expect);
	}
}

/* ---- whole keys ---------------------------------------------------------------- */

static void
assert_key(const struct triplet_key *k, const char *client, const char *sender,
	   const char *rcpt)
{
	char expect[TRIPLET_MAX_KEY + 3];
	size_t cl = strlen(client), sl = strlen(sender), rl = strlen(rcpt);
	size_t n = cl + 1 + sl + 1 + rl;

	assert_true(n <= sizeof(expect));
	memcpy(expect, client, cl);
	expect[cl] = '\0';
	memcpy(expect + cl + 1, sender, sl);
	expect[cl + 1 + sl] = '\0';
	memcpy(expect + cl + 2 + sl, rcpt, rl);

	assert_string_equal(k->client, client);
	assert_int_equal(k->client_len, cl);
	assert_int_equal(k->key_len, n);
	assert_memory_equal(k->key, expect, n);
}

static void
build(struct triplet_key *k, const char *client, const char *sender,
      const char *rcpt, const struct triplet_opts *opts)
{
	memset(k, CANARY, sizeof(*k));
	triplet_build(k, client, strlen(client), sender, strlen(sender), rcpt,
		      strlen(rcpt), opts);
}

static void
test_key_layout(void **state)
{
	struct triplet_key k;

	(void)state;
	build(&k, "192.0.2.7", "Alice+news@Example.COM", "Bob+Tag@Example.NET",
	      &default_opts);
	assert_key(&k, "192.0.2.0/24", "alice@example.com",
		   "bob+tag@example.net");

	build(&k, "2001:db8:1:2::25", "", "postmaster@example.net",
	      &default_opts);
	assert_key(&k, "2001:db8:1:2::/64", "", "postmaster@example.net");

	build(&k, "::ffff:192.0.2.7", "SRS0=HHH=TT=orig.example=user@fwd.example",
	      "x@y", &host_opts);
	assert_key(&k, "192.0.2.7/32", "srs0=#=#=orig.example=user@fwd.example",
		   "x@y");

	build(&k, "unknown", "a@b", "c@d", &default_opts);
	assert_key(&k, "unknown", "a@b", "c@d");
}

static void
test_key_same_subnet_shared_other_subnet_apart(void **state)
{
	struct triplet_key a, b;

	(void)state;
	build(&a, "192.0.2.7", "s@x", "r@y", &default_opts);
	build(&b, "192.0.2.250", "s@x", "r@y", &default_opts);
	assert_int_equal(a.key_len, b.key_len);
	assert_memory_equal(a.key, b.key, a.key_len);

	build(&b, "192.0.3.7", "s@x", "r@y", &default_opts);
	assert_false(a.key_len == b.key_len &&
		     memcmp(a.key, b.key, a.key_len) == 0);

	build(&a, "192.0.2.7", "s@x", "r@y", &host_opts);
	build(&b, "192.0.2.8", "s@x", "r@y", &host_opts);
	assert_false(a.key_len == b.key_len &&
		     memcmp(a.key, b.key, a.key_len) == 0);
}

static void
test_key_fields_cannot_shift(void **state)
{
	struct triplet_key a, b;

	(void)state;
	/* The separators keep "ab" + "c" apart from "a" + "bc". */
	build(&a, "192.0.2.1", "ab", "c", &default_opts);
	build(&b, "192.0.2.1", "a", "bc", &default_opts);
	assert_false(a.key_len == b.key_len &&
		     memcmp(a.key, b.key, a.key_len) == 0);
}

static void
test_key_never_exceeds_max(void **state)
{
	static const char *const clients[] = {
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"255.255.255.255",
		"this-is-not-an-address-and-it-is-much-longer-than-any-client-field",
	};
	struct triplet_opts opts[] = {{false, 24, 64}, {true, 24, 64}};
	char *sender = test_malloc(2000);
	char *rcpt = test_malloc(2000);
	struct triplet_key *k = test_malloc(sizeof(*k));
	size_t c, o, s;

	(void)state;
	assert_true(TRIPLET_MAX_KEY <= LMDB_MAX_KEY);
	memset(rcpt, 'R', 2000);
	for (c = 0; c < sizeof(clients) / sizeof(clients[0]); c++) {
		for (o = 0; o < 2; o++) {
			for (s = 0; s <= 2000; s += 50) {
				memset(sender, 'S', 2000);
				if (s > 0 && s < 2000)
					sender[s / 2] = '@';
				memset(k, CANARY, sizeof(*k));
				triplet_build(k, clients[c], strlen(clients[c]),
					      sender, s, rcpt, s, &opts[o]);
				assert_true(k->key_len <= TRIPLET_MAX_KEY);
				assert_true(k->client_len < TRIPLET_MAX_CLIENT);
				assert_int_equal(strlen(k->client), k->client_len);
			}
		}
	}
	test_free(sender);
	test_free(rcpt);
	test_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sender_lower_cased),
		cmocka_unit_test(test_sender_plus_extension_dropped),
		cmocka_unit_test(test_sender_batv_folded),
		cmocka_unit_test(test_sender_srs_folded),
		cmocka_unit_test(test_sender_srs_same_for_every_hash_and_time),
		cmocka_unit_test(test_sender_verp_digit_tokens_folded),
		cmocka_unit_test(test_sender_null_and_odd_shapes),
		cmocka_unit_test(test_sender_cut_to_max_addr),
		cmocka_unit_test(test_sender_long_local_part_cut),
		cmocka_unit_test(test_senders_varying_only_envelope_collapse),
		cmocka_unit_test(test_different_senders_stay_apart),
		cmocka_unit_test(test_numeric_local_parts_stay_apart),
		cmocka_unit_test(test_recipient_lower_cased_keeps_extension),
		cmocka_unit_test(test_client_ipv4_default_slash24),
		cmocka_unit_test(test_client_ipv6_default_slash64),
		cmocka_unit_test(test_client_v4_mapped_keyed_as_v4),
		cmocka_unit_test(test_client_by_host),
		cmocka_unit_test(test_client_custom_prefixes),
		cmocka_unit_test(test_client_unknown_keyed_as_text),
		cmocka_unit_test(test_key_layout),
		cmocka_unit_test(test_key_same_subnet_shared_other_subnet_apart),
		cmocka_unit_test(test_key_fields_cannot_shift),
		cmocka_unit_test(test_key_never_exceeds_max),
		cmocka_unit_test(test_client_keys_same_as_before_for_random_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
