/*
 * test_addr - parsing, masking and formatting client addresses.
 *
 * Masks are checked at every byte and bit boundary on an all-ones
 * address, so an off-by-one in the partial-byte mask shows up as a wrong
 * byte rather than a wrong key much later.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static struct addr
parse_ok(const char *text)
{
	struct addr a;
	int rc = addr_parse(&a, text, strlen(text));

	if (rc != 0)
		fail_msg("'%s' did not parse: %d", text, rc);
	return a;
}

static void
assert_bytes(const struct addr *a, const uint8_t *expect, size_t n)
{
	size_t i;

	assert_memory_equal(a->bytes, expect, n);
	for (i = n; i < sizeof(a->bytes); i++)
		assert_int_equal(a->bytes[i], 0);
}

/* ---- parse ---------------------------------------------------------------- */

static void
test_parse_ipv4(void **state)
{
	static const uint8_t expect[4] = {192, 0, 2, 7};
	struct addr a = parse_ok("192.0.2.7");

	(void)state;
	assert_int_equal(a.family, ADDR_V4);
	assert_int_equal(addr_bits(&a), 32);
	assert_bytes(&a, expect, 4);

	a = parse_ok("0.0.0.0");
	assert_int_equal(a.family, ADDR_V4);
	a = parse_ok("255.255.255.255");
	assert_int_equal(a.family, ADDR_V4);
	assert_int_equal(a.bytes[3], 255);
}

static void
test_parse_ipv6(void **state)
{
	static const uint8_t expect[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2,
					   0, 3, 0, 4, 0, 5, 0, 6};
	static const uint8_t loopback[16] = {[15] = 1};
	struct addr a = parse_ok("2001:db8:1:2:3:4:5:6");

	(void)state;
	assert_int_equal(a.family, ADDR_V6);
	assert_int_equal(addr_bits(&a), 128);
	assert_memory_equal(a.bytes, expect, 16);

	a = parse_ok("2001:DB8:1:2:3:4:5:6");
	assert_memory_equal(a.bytes, expect, 16);

	a = parse_ok("::1");
	assert_int_equal(a.family, ADDR_V6);
	assert_memory_equal(a.bytes, loopback, 16);

	/* IPv4-compatible (not mapped) stays IPv6. */
	a = parse_ok("::192.0.2.7");
	assert_int_equal(a.family, ADDR_V6);
}

static void
test_parse_v4_mapped_is_ipv4(void **state)
{
	static const uint8_t expect[4] = {192, 0, 2, 7};
	static const char *const forms[] = {
		"::ffff:192.0.2.7", "::FFFF:192.0.2.7", "::ffff:c000:207",
		"0:0:0:0:0:ffff:192.0.2.7",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct addr a = parse_ok(forms[i]);

		assert_int_equal(a.family, ADDR_V4);
		assert_bytes(&a, expect, 4);
	}
}

static void
test_parse_garbage_rejected(void **state)
{
	static const char *const bad[] = {
		"", "unknown", "192.0.2", "192.0.2.256", "192.0.2.7.1",
		"192.0.2.7 ", " 192.0.2.7", "192.0.2.7/24", "[::1]", "::1::2",
		"2001:db8::g", "fe80::1%eth0", "1.2.3.-4", "mail.example.com",
		"0x7f.0.0.1",
		/* IPv4 text with a ':', IPv6 text without one */
		"192.0.2.7:25", ":192.0.2.7", "192.0.2.7:", "2001.db8..1",
		"20010db8000000000000000000000001", ":", ":::", "::ffff:192.0.2",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct addr a;

		if (addr_parse(&a, bad[i], strlen(bad[i])) != -EINVAL)
			fail_msg("'%s' parsed", bad[i]);
		/* Callers that parse once pass the result on as it is. */
		assert_int_equal(a.family, ADDR_NONE);
	}
}

static void
test_parse_uses_only_len_bytes(void **state)
{
	struct addr a;
	static const uint8_t expect[4] = {192, 0, 2, 7};

	(void)state;
	/* Trailing bytes past len are not part of the address. */
	assert_int_equal(addr_parse(&a, "192.0.2.7xyz", 9), 0);
	assert_bytes(&a, expect, 4);
	assert_int_equal(addr_parse(&a, "192.0.2.77", 9), 0);
	assert_bytes(&a, expect, 4);
}

static void
test_parse_embedded_nul_rejected(void **state)
{
	static const char text[] = "192.0.2.7\0garbage";
	struct addr a;

	(void)state;
	/* len covers the NUL and what follows: that is not an address. */
	assert_int_equal(addr_parse(&a, text, sizeof(text) - 1), -EINVAL);
}

static void
test_parse_length_bounds(void **state)
{
	/* The longest text form of an IPv6 address: 45 bytes. */
	static const char longest[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	char too_long[200];
	struct addr a;

	(void)state;
	assert_int_equal(strlen(longest), 45);
	assert_int_equal(addr_parse(&a, longest, strlen(longest)), 0);
	assert_int_equal(a.family, ADDR_V6);

	memset(too_long, '1', sizeof(too_long));
	assert_int_equal(addr_parse(&a, too_long, sizeof(too_long)), -EINVAL);
	/* Leading zeros padding a valid address past the buffer. */
	memset(too_long, '0', 60);
	memcpy(too_long + 60, "::1", 3);
	assert_int_equal(addr_parse(&a, too_long, 63), -EINVAL);
	assert_int_equal(addr_parse(&a, "1", 0), -EINVAL);
}

/* ---- mask ----------------------------------------------------------------- */

static struct addr
all_ones(enum addr_family family)
{
	struct addr a;

	memset(&a, 0, sizeof(a));
	a.family = family;
	memset(a.bytes, 0xff, family == ADDR_V4 ? 4 : 16);
	return a;
}

/* The bytes of an all-ones address of nbytes masked to prefix. */
static void
expected_mask(uint8_t *out, size_t nbytes, unsigned prefix)
{
	size_t i;

	memset(out, 0, 16);
	for (i = 0; i < nbytes; i++) {
		unsigned start = (unsigned)i * 8;

		if (prefix >= start + 8)
			out[i] = 0xff;
		else if (prefix > start)
			out[i] = (uint8_t)(0xff00 >> (prefix - start));
	}
}

static void
test_mask_ipv4_boundaries(void **state)
{
	static const struct {
		unsigned prefix;
		uint8_t bytes[4];
	} cases[] = {
		{0, {0, 0, 0, 0}},
		{1, {0x80, 0, 0, 0}},
		{7, {0xfe, 0, 0, 0}},
		{8, {0xff, 0, 0, 0}},
		{9, {0xff, 0x80, 0, 0}},
		{16, {0xff, 0xff, 0, 0}},
		{23, {0xff, 0xff, 0xfe, 0}},
		{24, {0xff, 0xff, 0xff, 0}},
		{25, {0xff, 0xff, 0xff, 0x80}},
		{31, {0xff, 0xff, 0xff, 0xfe}},
		{32, {0xff, 0xff, 0xff, 0xff}},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct addr a = all_ones(ADDR_V4);

		addr_mask(&a, cases[i].prefix);
		assert_int_equal(a.family, ADDR_V4);
		assert_bytes(&a, cases[i].bytes, 4);
	}
}

static void
test_mask_ipv4_every_prefix(void **state)
{
	uint8_t expect[16];
	unsigned prefix;

	(void)state;
	for (prefix = 0; prefix <= 32; prefix++) {
		struct addr a = all_ones(ADDR_V4);

		addr_mask(&a, prefix);
		expected_mask(expect, 4, prefix);
		assert_memory_equal(a.bytes, expect, 16);
	}
}

static void
test_mask_ipv6_boundaries(void **state)
{
	static const unsigned prefixes[] = {0, 7, 8, 9, 24, 31, 32, 48, 63,
					    64, 65, 96, 120, 127, 128};
	uint8_t expect[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		struct addr a = all_ones(ADDR_V6);

		addr_mask(&a, prefixes[i]);
		expected_mask(expect, 16, prefixes[i]);
		assert_memory_equal(a.bytes, expect, 16);
		assert_int_equal(a.family, ADDR_V6);
	}
	/* Spot checks written out by hand. */
	{
		struct addr a = all_ones(ADDR_V6);
		static const uint8_t p127[16] = {
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
		static const uint8_t p64[16] = {
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

		addr_mask(&a, 127);
		assert_memory_equal(a.bytes, p127, 16);
		a = all_ones(ADDR_V6);
		addr_mask(&a, 64);
		assert_memory_equal(a.bytes, p64, 16);
	}
}

static void
test_mask_ipv6_every_prefix(void **state)
{
	uint8_t expect[16];
	unsigned prefix;

	(void)state;
	for (prefix = 0; prefix <= 128; prefix++) {
		struct addr a = all_ones(ADDR_V6);

		addr_mask(&a, prefix);
		expected_mask(expect, 16, prefix);
		assert_memory_equal(a.bytes, expect, 16);
	}
}

static void
test_mask_real_addresses(void **state)
{
	static const uint8_t v4[4] = {198, 51, 100, 128};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34,
				       0x56, 0x78};
	struct addr a = parse_ok("198.51.100.200");
	struct addr b = parse_ok("2001:db8:1234:5678:9abc:def0:1:2");

	(void)state;
	addr_mask(&a, 25);
	assert_bytes(&a, v4, 4);
	addr_mask(&b, 64);
	assert_memory_equal(b.bytes, v6, 16);
}

/* ---- in_net ---------------------------------------------------------------- */

static void
test_in_net(void **state)
{
	struct addr net4 = parse_ok("192.0.2.0");
	struct addr net6 = parse_ok("2001:db8:1::");
	struct addr mapped = parse_ok("::ffff:192.0.2.99");
	struct addr any4 = parse_ok("0.0.0.0");
	struct addr any6 = parse_ok("::");
	struct addr a;

	(void)state;
	a = parse_ok("192.0.2.77");
	assert_true(addr_in_net(&a, &net4, 24));
	assert_false(addr_in_net(&a, &net4, 32));
	assert_true(addr_in_net(&a, &net4, 25));
	assert_false(addr_in_net(&a, &net4, 26)); /* 77 = 0b01001101 */
	a = parse_ok("192.0.3.1");
	assert_false(addr_in_net(&a, &net4, 24));
	assert_true(addr_in_net(&a, &net4, 23));
	a = parse_ok("192.0.2.0");
	assert_true(addr_in_net(&a, &net4, 32));
	a = parse_ok("10.1.2.3");
	assert_false(addr_in_net(&a, &net4, 1));
	assert_true(addr_in_net(&a, &any4, 0));

	assert_true(addr_in_net(&mapped, &net4, 24));

	a = parse_ok("2001:db8:1:ffff::1");
	assert_true(addr_in_net(&a, &net6, 48));
	assert_false(addr_in_net(&a, &net6, 64));
	a = parse_ok("2001:db8:2::1");
	assert_false(addr_in_net(&a, &net6, 48));
	{
		struct addr net6_46 = parse_ok("2001:db8::");

		assert_true(addr_in_net(&a, &net6_46, 46));
		assert_false(addr_in_net(&a, &net6_46, 47));
	}
	assert_true(addr_in_net(&a, &any6, 0));
	a = parse_ok("2001:db8:1::");
	assert_true(addr_in_net(&a, &net6, 128));
}

/*
 * net/prefix is a set of addresses: host bits written in net (as in
 * "192.0.2.1/24") do not change which addresses it holds.
 */
static void
test_in_net_ignores_host_bits_of_net(void **state)
{
	struct addr net = parse_ok("192.0.2.1");
	struct addr net6 = parse_ok("2001:db8::1");
	struct addr a = parse_ok("192.0.2.77");
	struct addr b = parse_ok("2001:db8::abcd");

	(void)state;
	assert_true(addr_in_net(&a, &net, 24));
	assert_true(addr_in_net(&a, &net, 0));
	assert_true(addr_in_net(&b, &net6, 64));
}

static void
test_in_net_never_across_families(void **state)
{
	struct addr v4 = parse_ok("0.0.0.0");
	struct addr v6 = parse_ok("::");

	(void)state;
	assert_false(addr_in_net(&v4, &v6, 0));
	assert_false(addr_in_net(&v6, &v4, 0));
}

/* ---- format ------------------------------------------------------------------ */

static void
assert_format(const char *text, unsigned prefix, const char *expect)
{
	char out[ADDR_NET_STRLEN];
	struct addr a = parse_ok(text);

	addr_mask(&a, prefix);
	addr_format_net(out, sizeof(out), &a, prefix);
	assert_string_equal(out, expect);
}

static void
test_format_net(void **state)
{
	char out[ADDR_NET_STRLEN];
	struct addr a;

	(void)state;
	assert_format("192.0.2.7", 24, "192.0.2.0/24");
	assert_format("192.0.2.7", 32, "192.0.2.7/32");
	assert_format("192.0.2.7", 0, "0.0.0.0/0");
	assert_format("::ffff:192.0.2.7", 24, "192.0.2.0/24");
	assert_format("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64");
	assert_format("2001:db8::1", 128, "2001:db8::1/128");
	assert_format("::1", 0, "::/0");

	/* The longest net fits ADDR_NET_STRLEN. */
	a = parse_ok("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	addr_format_net(out, sizeof(out), &a, 128);
	assert_string_equal(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	assert_true(strlen(out) < ADDR_NET_STRLEN);
}

static void
test_format_respects_outsz(void **state)
{
	char out[16];
	struct addr a = parse_ok("2001:db8:1:2:3:4:5:6");

	(void)state;
	memset(out, 'X', sizeof(out));
	addr_format_net(out, 8, &a, 64);
	assert_int_equal(strlen(out), 7);
	assert_int_equal(out[8], 'X');
}

/* ---- format against inet_ntop ------------------------------------------- */

/*
 * The text keys had when addr_format_net() was inet_ntop() + "/%u": the
 * database holds keys made that way, so the formatter must give the same
 * bytes for every address.
 */
static void
old_format_net(char *out, size_t outsz, const struct addr *a, unsigned prefix)
{
	char text[INET6_ADDRSTRLEN];
	int af = a->family == ADDR_V4 ? AF_INET : AF_INET6;

	assert_non_null(inet_ntop(af, a->bytes, text, sizeof(text)));
	snprintf(out, outsz, "%s/%u", text, prefix);
}

static void
assert_formats_like_inet_ntop(const struct addr *a)
{
	char got[ADDR_STRLEN], expect[INET6_ADDRSTRLEN];
	int af = a->family == ADDR_V4 ? AF_INET : AF_INET6;
	size_t n = addr_format(got, a);

	assert_non_null(inet_ntop(af, a->bytes, expect, sizeof(expect)));
	if (strcmp(got, expect) != 0)
		fail_msg("formatted '%s', inet_ntop says '%s'", got, expect);
	assert_int_equal(n, strlen(expect));
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
 * A group value drawn so that the cases inet_ntop treats apart come up
 * often: zero (runs of every length and position, ties), ffff (the
 * IPv4-mapped form), one digit, and any value.
 */
static unsigned
random_group(uint64_t *s)
{
	uint64_t r = next_random(s);

	switch (r % 8) {
	case 0: case 1: case 2: case 3:
		return 0;
	case 4:
		return 0xffff;
	case 5:
		return (unsigned)(r >> 8) % 16;
	default:
		return (unsigned)(r >> 16) & 0xffff;
	}
}

static void
random_addr(struct addr *a, uint64_t *s)
{
	uint64_t r = next_random(s);

	memset(a, 0, sizeof(*a));
	if (r % 3 == 0) {
		a->family = ADDR_V4;
		for (int i = 0; i < 4; i++)
			a->bytes[i] = (uint8_t)(next_random(s) >> 24);
		return;
	}
	a->family = ADDR_V6;
	for (int i = 0; i < 8; i++) {
		unsigned g = random_group(s);

		a->bytes[2 * i] = (uint8_t)(g >> 8);
		a->bytes[2 * i + 1] = (uint8_t)g;
	}
	switch ((r >> 8) % 6) {
	case 0:		/* ::a.b.c.d, IPv4-compatible */
		memset(a->bytes, 0, 12);
		break;
	case 1:		/* ::ffff:a.b.c.d, IPv4-mapped */
		memset(a->bytes, 0, 10);
		a->bytes[10] = a->bytes[11] = 0xff;
		break;
	default:
		break;
	}
}

static void
test_format_matches_inet_ntop_for_random_addresses(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		char got[ADDR_NET_STRLEN], expect[INET6_ADDRSTRLEN + 12];
		struct addr a;
		unsigned prefix;
		size_t n;

		random_addr(&a, &seed);
		assert_formats_like_inet_ntop(&a);
		prefix = (unsigned)(next_random(&seed) % (addr_bits(&a) + 1));
		addr_mask(&a, prefix);
		old_format_net(expect, sizeof(expect), &a, prefix);
		n = addr_format_net(got, sizeof(got), &a, prefix);
		if (strcmp(got, expect) != 0)
			fail_msg("formatted '%s', the old way '%s'", got, expect);
		assert_int_equal(n, strlen(expect));
	}
}

/*
 * Every pattern of zero and non-zero groups (256), with each non-zero
 * group 1, ffff or a four-digit value, and the group before the last two
 * ffff or not: every run length, position and tie inet_ntop decides.
 */
static void
test_format_matches_inet_ntop_for_every_zero_pattern(void **state)
{
	static const unsigned values[] = {1, 0xffff, 0xabc, 0x1234};

	(void)state;
	for (unsigned zeros = 0; zeros < 256; zeros++) {
		for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
			struct addr a;

			memset(&a, 0, sizeof(a));
			a.family = ADDR_V6;
			for (int i = 0; i < 8; i++) {
				unsigned g = (zeros >> i) & 1 ? 0 : values[v] + (unsigned)i;

				a.bytes[2 * i] = (uint8_t)(g >> 8);
				a.bytes[2 * i + 1] = (uint8_t)g;
			}
			assert_formats_like_inet_ntop(&a);
			a.bytes[10] = a.bytes[11] = 0xff;
			assert_formats_like_inet_ntop(&a);
		}
	}
}

/* Texts a client address may arrive as, parsed and formatted back. */
static void
test_format_parsed_texts(void **state)
{
	static const char *const texts[] = {
		"::", "::1", "1::", "::1.2.3.4", "::0.0.1.2", "::ffff:0:0",
		"::ffff:1.2.3.4", "::fffe:1.2.3.4", "0:0:0:0:0:1:1.2.3.4",
		"1:0:0:1:0:0:0:1", "1:0:0:2:0:0:3:4", "1:0:2:3:4:5:6:7",
		"fe80::1", "2001:DB8::A", "2001:db8:0:0:1:0:0:1",
		"64:ff9b::192.0.2.33", "0.0.0.0", "255.255.255.255", "10.0.0.1",
		"100.64.3.7", "2001:db8:1234:5678:9abc:def0:1234:5678",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct addr a = parse_ok(texts[i]);

		assert_formats_like_inet_ntop(&a);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_v4_mapped_is_ipv4),
		cmocka_unit_test(test_parse_garbage_rejected),
		cmocka_unit_test(test_parse_uses_only_len_bytes),
		cmocka_unit_test(test_parse_embedded_nul_rejected),
		cmocka_unit_test(test_parse_length_bounds),
		cmocka_unit_test(test_mask_ipv4_boundaries),
		cmocka_unit_test(test_mask_ipv4_every_prefix),
		cmocka_unit_test(test_mask_ipv6_boundaries),
		cmocka_unit_test(test_mask_ipv6_every_prefix),
		cmocka_unit_test(test_mask_real_addresses),
		cmocka_unit_test(test_in_net),
		cmocka_unit_test(test_in_net_ignores_host_bits_of_net),
		cmocka_unit_test(test_in_net_never_across_families),
		cmocka_unit_test(test_format_net),
		cmocka_unit_test(test_format_respects_outsz),
		cmocka_unit_test(test_format_matches_inet_ntop_for_random_addresses),
		cmocka_unit_test(test_format_matches_inet_ntop_for_every_zero_pattern),
		cmocka_unit_test(test_format_parsed_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
