/*
 * test_dnslist - the rules of DNS allow- and blocklists: which settings
 * are lists, which name the daemon asks for a client, which answers
 * count.
 *
 * The query names are worked out by hand from the conventions every
 * list uses (RFC 5782 2.1 and 2.4): reversed octets for IPv4, reversed
 * nibbles for IPv6.  The answer codes are the ones real lists return:
 * Spamhaus ZEN's listing codes and its 127.255.255.x errors, dnswl.org's
 * 127.0.<category>.<trust> and its 127.0.0.255 "blocked".
 */
#include "dnslist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static struct addr
parse_addr(const char *text)
{
	struct addr a;

	assert_int_equal(addr_parse(&a, text, strlen(text)), 0);
	return a;
}

/* ---- query names ------------------------------------------------------------ */

struct name_case {
	const char *client;
	const char *zone;
	const char *name;
};

static const struct name_case name_cases[] = {
	{"192.0.2.99", "zen.spamhaus.org", "99.2.0.192.zen.spamhaus.org"},
	{"127.0.0.2", "zen.spamhaus.org", "2.0.0.127.zen.spamhaus.org"},
	{"0.0.0.0", "bl.example", "0.0.0.0.bl.example"},
	{"255.255.255.255", "bl.example", "255.255.255.255.bl.example"},
	/* A dual-stack listener hands over IPv4 clients this way: the list
	   knows them by their IPv4 name, never by ::ffff nibbles. */
	{"::ffff:198.51.100.7", "list.dnswl.org", "7.100.51.198.list.dnswl.org"},
	{"::FFFF:203.0.113.1", "bl.example", "1.113.0.203.bl.example"},
	/* RFC 5782 2.4's example shape: every nibble, lowest first. */
	{"2001:db8::1", "bl.example",
	 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
	 "bl.example"},
	{"2001:DB8:ABCD:12::FE", "zen.spamhaus.org",
	 "e.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.1.0.0.d.c.b.a.8.b.d.0.1.0.0.2."
	 "zen.spamhaus.org"},
	{"::1", "bl.example",
	 "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	 "bl.example"},
	{NULL, NULL, NULL},
};

static void
test_query_names(void **state)
{
	char out[DNSLIST_QNAME_SIZE];

	(void)state;
	for (const struct name_case *c = name_cases; c->client != NULL; c++) {
		struct addr a = parse_addr(c->client);

		memset(out, 'x', sizeof(out));
		if (dnslist_query_name(out, sizeof(out), &a, c->zone) != 0)
			fail_msg("%s in %s: no name", c->client, c->zone);
		if (strcmp(out, c->name) != 0)
			fail_msg("%s in %s: got %s, want %s", c->client, c->zone,
				 out, c->name);
	}
}

/* Zones of exactly n bytes: labels of 50 'a's, "b.example" at the end. */
static void
zone_of(char *out, size_t n)
{
	static const char tail[] = "b.example";
	size_t o = 0;

	assert_true(n >= sizeof(tail) - 1);
	while (o + (sizeof(tail) - 1) < n) {
		size_t left = n - (sizeof(tail) - 1) - o;
		size_t take = left > 51 ? 51 : left;

		/* a label and its dot; a lone dot becomes one more letter */
		memset(out + o, 'a', take);
		if (take > 1)
			out[o + take - 1] = '.';
		o += take;
	}
	memcpy(out + o, tail, sizeof(tail));
	assert_int_equal(strlen(out), n);
}

static void
test_query_name_lengths(void **state)
{
	char zone[DNS_NAME_MAX + 8], out[DNSLIST_QNAME_SIZE];
	struct addr v4 = parse_addr("198.51.100.200");
	struct addr v6 = parse_addr("2001:db8::1");
	struct dnslist_spec spec;

	(void)state;
	/* The longest zone still gives an IPv6 name of DNS_NAME_MAX bytes. */
	zone_of(zone, DNSLIST_ZONE_MAX);
	assert_int_equal(dnslist_parse(&spec, zone, false), 0);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v6, zone), 0);
	assert_int_equal(strlen(out), DNS_NAME_MAX);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v4, zone), 0);

	/* One byte more: refused by the setting's check, and never asked
	   for an IPv6 client (a truncated name would ask another list). */
	zone_of(zone, DNSLIST_ZONE_MAX + 1);
	assert_int_equal(dnslist_parse(&spec, zone, false), -EINVAL);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v6, zone),
			 -ENAMETOOLONG);

	/* IPv4 names are shorter: "200.100.51.198." is 15 bytes. */
	zone_of(zone, DNS_NAME_MAX - 15);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v4, zone), 0);
	assert_int_equal(strlen(out), DNS_NAME_MAX);
	zone_of(zone, DNS_NAME_MAX - 14);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v4, zone),
			 -ENAMETOOLONG);

	/* The caller's buffer is checked too. */
	assert_int_equal(dnslist_query_name(out, 31, &v4, "zen.spamhaus.org"),
			 -ENAMETOOLONG);
	assert_int_equal(dnslist_query_name(out, 32, &v4, "zen.spamhaus.org"),
			 0);
	assert_string_equal(out, "200.100.51.198.zen.spamhaus.org");
	assert_int_equal(dnslist_query_name(out, 64, &v6, "bl.example"),
			 -ENAMETOOLONG);

	/* Nothing to ask without an address or a zone. */
	v4.family = ADDR_NONE;
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v4, "bl.example"),
			 -EINVAL);
	assert_int_equal(dnslist_query_name(out, sizeof(out), &v6, ""), -EINVAL);
}

/* ---- settings ------------------------------------------------------------------ */

struct spec_case {
	const char *spec;
	bool allow;
	int rc;
	const char *zone;
	int min_last;
};

static const struct spec_case spec_cases[] = {
	{"zen.spamhaus.org", false, 0, "zen.spamhaus.org", -1},
	{"bl.spamcop.net", false, 0, "bl.spamcop.net", -1},
	{"list.dnswl.org", true, 0, "list.dnswl.org", -1},
	{"list.dnswl.org:2", true, 0, "list.dnswl.org", 2},
	{"list.dnswl.org:0", true, 0, "list.dnswl.org", 0},
	{"list.dnswl.org:255", true, 0, "list.dnswl.org", 255},
	{"List.DNSWL.org:3", true, 0, "List.DNSWL.org", 3},
	{"b.barracudacentral.org", false, 0, "b.barracudacentral.org", -1},
	{"xn--bcher-kva.example", false, 0, "xn--bcher-kva.example", -1},
	/* minimum: allowlists only, a plain number 0-255 */
	{"zen.spamhaus.org:2", false, -EINVAL, NULL, 0},
	{"list.dnswl.org:", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:256", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:-1", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:+1", true, -EINVAL, NULL, 0},
	{"list.dnswl.org: 1", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:1x", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:0001", true, -EINVAL, NULL, 0},
	{"list.dnswl.org:1:2", true, -EINVAL, NULL, 0},
	/* zones */
	{"", false, -EINVAL, NULL, 0},
	{":2", true, -EINVAL, NULL, 0},
	{"localhost", false, -EINVAL, NULL, 0},
	{".zen.spamhaus.org", false, -EINVAL, NULL, 0},
	{"zen.spamhaus.org.", false, -EINVAL, NULL, 0},
	{"zen..spamhaus.org", false, -EINVAL, NULL, 0},
	{"zen.spamhaus.org.:2", true, -EINVAL, NULL, 0},
	{"zen spamhaus.org", false, -EINVAL, NULL, 0},
	{"zen_x.spamhaus.org", false, -EINVAL, NULL, 0},
	{"zen.spamhaus.org/24", false, -EINVAL, NULL, 0},
	{"127.0.0.1:53", false, -EINVAL, NULL, 0},
	{"b\xc3\xbc" "cher.example", false, -EINVAL, NULL, 0},
	{NULL, false, 0, NULL, 0},
};

static void
test_specs(void **state)
{
	struct dnslist_spec spec;

	(void)state;
	for (const struct spec_case *c = spec_cases; c->spec != NULL; c++) {
		int rc = dnslist_parse(&spec, c->spec, c->allow);

		if (rc != c->rc)
			fail_msg("'%s' (%s): rc %d, want %d", c->spec,
				 c->allow ? "dnswl" : "dnsbl", rc, c->rc);
		if (rc != 0)
			continue;
		assert_string_equal(spec.zone, c->zone);
		assert_int_equal(spec.min_last, c->min_last);
	}
}

static void
test_spec_label_lengths(void **state)
{
	char zone[128];
	struct dnslist_spec spec;

	(void)state;
	/* A label is at most 63 bytes (RFC 1035 2.3.4). */
	memset(zone, 'a', 63);
	snprintf(zone + 63, sizeof(zone) - 63, ".example");
	assert_int_equal(dnslist_parse(&spec, zone, false), 0);
	memset(zone, 'a', 64);
	snprintf(zone + 64, sizeof(zone) - 64, ".example");
	assert_int_equal(dnslist_parse(&spec, zone, false), -EINVAL);
	snprintf(zone, sizeof(zone), "bl.");
	memset(zone + 3, 'b', 64);
	zone[67] = '\0';
	assert_int_equal(dnslist_parse(&spec, zone, false), -EINVAL);
}

/* ---- answers ------------------------------------------------------------------ */

struct answer_case {
	uint8_t a[4];
	bool allow;
	int min_last;
	bool counts;
	const char *why;
};

static const struct answer_case answer_cases[] = {
	/* blocklists: any code in 127/8 outside the error range */
	{{127, 0, 0, 2}, false, -1, true, "ZEN: SBL"},
	{{127, 0, 0, 4}, false, -1, true, "ZEN: XBL"},
	{{127, 0, 0, 10}, false, -1, true, "ZEN: PBL"},
	{{127, 0, 0, 255}, false, -1, true,
	 "127.0.0.255 is dnswl.org's 'blocked', not a blocklist error"},
	{{127, 0, 0, 1}, false, 5, true, "a minimum means nothing to a blocklist"},
	{{127, 255, 255, 252}, false, -1, false, "Spamhaus: typing error"},
	{{127, 255, 255, 254}, false, -1, false, "Spamhaus: public resolver"},
	{{127, 255, 255, 255}, false, -1, false, "Spamhaus: rate limited"},
	{{127, 255, 255, 0}, false, -1, false, "the whole error /24"},
	{{127, 255, 254, 1}, false, -1, true, "just outside the error /24"},
	{{127, 254, 255, 1}, false, -1, true, "just outside the error /24"},
	{{192, 0, 2, 1}, false, -1, false, "outside 127/8: a hijacking resolver"},
	{{126, 0, 0, 2}, false, -1, false, "just below 127/8"},
	{{128, 0, 0, 2}, false, -1, false, "just above 127/8"},
	{{0, 0, 0, 0}, false, -1, false, "0.0.0.0"},
	/* allowlists: dnswl.org 127.0.<category>.<trust 0-3> */
	{{127, 0, 15, 0}, true, -1, true, "trust 0 counts without a minimum"},
	{{127, 0, 15, 3}, true, -1, true, "trust 3"},
	{{127, 0, 2, 1}, true, 2, false, "trust 1 below :2"},
	{{127, 0, 2, 2}, true, 2, true, "trust 2 at :2"},
	{{127, 0, 2, 3}, true, 2, true, "trust 3 above :2"},
	{{127, 0, 2, 0}, true, 0, true, ":0 takes every level"},
	{{127, 0, 0, 255}, true, -1, false, "dnswl.org: blocked"},
	{{127, 0, 0, 255}, true, 2, false,
	 "blocked even though 255 passes the minimum"},
	{{127, 0, 1, 255}, true, 2, true, "only 127.0.0.255 is 'blocked'"},
	{{127, 255, 255, 254}, true, -1, false, "error codes never count"},
	{{127, 255, 255, 3}, true, 2, false, "error codes never count"},
	{{10, 0, 2, 3}, true, 2, false, "outside 127/8"},
};

static void
test_answers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(answer_cases) / sizeof(answer_cases[0]);
	     i++) {
		const struct answer_case *c = &answer_cases[i];

		if (dnslist_answer_counts(c->a, c->allow, c->min_last) !=
		    c->counts)
			fail_msg("%u.%u.%u.%u %s min %d: want %s (%s)", c->a[0],
				 c->a[1], c->a[2], c->a[3],
				 c->allow ? "dnswl" : "dnsbl", c->min_last,
				 c->counts ? "counts" : "does not count",
				 c->why);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_names),
		cmocka_unit_test(test_query_name_lengths),
		cmocka_unit_test(test_specs),
		cmocka_unit_test(test_spec_label_lengths),
		cmocka_unit_test(test_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
