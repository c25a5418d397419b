/*
 * test_whitelist - every entry form of the client and recipient lists,
 * their mask edges, the regex limits, the file loaders, the shipped lists
 * and Debian's postgrey lists.
 *
 * Address ranges are checked just inside and just outside every boundary
 * against a brute-force reference computed here from the same numbers,
 * so a merge or binary-search slip shows up as one wrong address.
 * Debian's lists are read from $POSTGREY_LISTS_DIR (the test command
 * unpacks the postgrey package there); without it that part is skipped
 * with a note.
 */
#include "whitelist.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"

#define SHIPPED_CLIENTS TEST_SRCDIR "/../etc/whitelist_clients"
#define SHIPPED_RECIPIENTS TEST_SRCDIR "/../etc/whitelist_recipients"

static char tmpdir[] = "/tmp/test_whitelist.XXXXXX";

/* ---- helpers ---------------------------------------------------------------- */

static whitelist_t *
new_list(void)
{
	whitelist_t *wl = NULL;

	assert_int_equal(whitelist_create(&wl), 0);
	assert_non_null(wl);
	return wl;
}

static void
add_ok(whitelist_t *wl, enum whitelist_kind kind, const char *entry)
{
	char err[512] = "";
	int rc = whitelist_add(wl, kind, entry, err, sizeof(err));

	if (rc != 0)
		fail_msg("'%s' rejected (%d): %s", entry, rc, err);
}

/* A finished list of the given entries (NULL-terminated). */
static whitelist_t *
build(enum whitelist_kind kind, const char *const *entries)
{
	whitelist_t *wl = new_list();

	for (size_t i = 0; entries[i] != NULL; i++)
		add_ok(wl, kind, entries[i]);
	assert_int_equal(whitelist_finish(wl), 0);
	return wl;
}

static whitelist_t *
build_one(enum whitelist_kind kind, const char *entry)
{
	const char *entries[2] = {entry, NULL};

	return build(kind, entries);
}

/* The entry is refused with -EINVAL and a non-empty reason. */
static void
add_bad(enum whitelist_kind kind, const char *entry)
{
	whitelist_t *wl = new_list();
	char err[512] = "";
	int rc = whitelist_add(wl, kind, entry, err, sizeof(err));

	if (rc != -EINVAL)
		fail_msg("%s entry '%s' accepted or wrong error: %d",
			 kind == WHITELIST_CLIENTS ? "client" : "recipient", entry,
			 rc);
	if (err[0] == '\0')
		fail_msg("'%s' rejected without a message", entry);
	assert_int_equal(whitelist_size(wl), 0);
	whitelist_free(wl);
}

/*
 * Match a client through the text entry point and through the one the
 * daemon uses, with the address parsed once (addr_parse() leaves family
 * ADDR_NONE when the text is no address): both must say the same.
 */
static bool
match_client(const whitelist_t *wl, const char *ip, const char *name)
{
	struct addr a;
	size_t name_len = name != NULL ? strlen(name) : 0;
	bool text = whitelist_match_client(wl, ip, ip != NULL ? strlen(ip) : 0,
					   name, name_len);

	if (ip == NULL || addr_parse(&a, ip, strlen(ip)) < 0)
		a.family = ADDR_NONE;
	if (whitelist_match_client_addr(wl, &a, name, name_len) != text)
		fail_msg("%s [%s]: the parsed address matched %s", name,
			 ip != NULL ? ip : "(none)", text ? "nothing" : "it");
	return text;
}

static bool
by_ip(const whitelist_t *wl, const char *ip)
{
	return match_client(wl, ip, "unknown");
}

static bool
by_name(const whitelist_t *wl, const char *name)
{
	/* An address no test list contains. */
	return match_client(wl, "192.0.2.254", name);
}

static bool
rcpt(const whitelist_t *wl, const char *r)
{
	return whitelist_match_recipient(wl, r, strlen(r));
}

static void
expect_ip(const whitelist_t *wl, const char *ip, bool want)
{
	if (by_ip(wl, ip) != want)
		fail_msg("client address %s: expected %s", ip,
			 want ? "a match" : "no match");
}

static void
expect_name(const whitelist_t *wl, const char *name, bool want)
{
	if (by_name(wl, name) != want)
		fail_msg("client_name %s: expected %s", name,
			 want ? "a match" : "no match");
}

static void
expect_rcpt(const whitelist_t *wl, const char *r, bool want)
{
	if (rcpt(wl, r) != want)
		fail_msg("recipient %s: expected %s", r,
			 want ? "a match" : "no match");
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
tmp_path(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s", tmpdir, name);
}

static uint32_t
v4(const char *text)
{
	struct in_addr a;

	if (inet_pton(AF_INET, text, &a) != 1)
		fail_msg("test bug: %s", text);
	return ntohl(a.s_addr);
}

static void
v4_text(char *out, size_t outsz, uint32_t a)
{
	struct in_addr in = {htonl(a)};

	inet_ntop(AF_INET, &in, out, (socklen_t)outsz);
}

static uint32_t
mask_of(unsigned prefix)
{
	return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ---- client addresses --------------------------------------------------------- */

static void
test_single_ipv4(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_CLIENTS, "192.0.2.7");

	(void)state;
	expect_ip(wl, "192.0.2.7", true);
	expect_ip(wl, "192.0.2.6", false);
	expect_ip(wl, "192.0.2.8", false);
	expect_ip(wl, "192.0.3.7", false);
	/* Not a name match either: an address entry is not a hostname. */
	expect_name(wl, "192.0.2.7", false);
	assert_int_equal(whitelist_size(wl), 1);
	whitelist_free(wl);
}

static void
test_single_ipv6(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_CLIENTS, "2001:db8::1");

	(void)state;
	expect_ip(wl, "2001:db8::1", true);
	expect_ip(wl, "2001:DB8:0:0:0:0:0:1", true);
	expect_ip(wl, "2001:db8::2", false);
	expect_ip(wl, "2001:db8::", false);
	expect_ip(wl, "2001:db9::1", false);
	expect_ip(wl, "0.0.0.1", false);
	whitelist_free(wl);
}

struct cidr_case {
	const char *entry;
	const char *first, *last;	/* inside, at the edges */
	const char *below, *above;	/* just outside (NULL: none) */
};

static const struct cidr_case ipv4_cidrs[] = {
	{"10.0.0.0/8", "10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"},
	{"192.0.2.0/23", "192.0.2.0", "192.0.3.255", "192.0.1.255", "192.0.4.0"},
	/* host bits set in the entry are masked off */
	{"192.0.3.77/23", "192.0.2.0", "192.0.3.255", "192.0.1.255", "192.0.4.0"},
	{"198.51.100.0/24", "198.51.100.0", "198.51.100.255", "198.51.99.255",
	 "198.51.101.0"},
	{"198.51.100.128/25", "198.51.100.128", "198.51.100.255",
	 "198.51.100.127", "198.51.101.0"},
	{"198.51.100.0/25", "198.51.100.0", "198.51.100.127", "198.51.99.255",
	 "198.51.100.128"},
	{"203.0.113.9/32", "203.0.113.9", "203.0.113.9", "203.0.113.8",
	 "203.0.113.10"},
	{"203.0.113.8/31", "203.0.113.8", "203.0.113.9", "203.0.113.7",
	 "203.0.113.10"},
	{"128.0.0.0/1", "128.0.0.0", "255.255.255.255", "127.255.255.255", NULL},
	{"0.0.0.0/1", "0.0.0.0", "127.255.255.255", NULL, "128.0.0.0"},
	{"255.255.255.255/32", "255.255.255.255", "255.255.255.255",
	 "255.255.255.254", NULL},
	{"0.0.0.0/32", "0.0.0.0", "0.0.0.0", NULL, "0.0.0.1"},
};

static const struct cidr_case ipv6_cidrs[] = {
	{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
	 "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"},
	{"2001:db8:1:2::/64", "2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff",
	 "2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::"},
	{"2001:db8:1:2::5/64", "2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff",
	 "2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::"},
	{"2001:db8::4/127", "2001:db8::4", "2001:db8::5", "2001:db8::3",
	 "2001:db8::6"},
	{"2001:db8::4/128", "2001:db8::4", "2001:db8::4", "2001:db8::3",
	 "2001:db8::5"},
	{"2001:db8::80/121", "2001:db8::80", "2001:db8::ff", "2001:db8::7f",
	 "2001:db8::100"},
	{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124",
	 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0",
	 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffef", NULL},
};

static void
check_cidr(const struct cidr_case *c)
{
	whitelist_t *wl = build_one(WHITELIST_CLIENTS, c->entry);

	if (!by_ip(wl, c->first) || !by_ip(wl, c->last))
		fail_msg("%s: %s..%s not all inside", c->entry, c->first, c->last);
	if (c->below != NULL && by_ip(wl, c->below))
		fail_msg("%s: %s (just below) matched", c->entry, c->below);
	if (c->above != NULL && by_ip(wl, c->above))
		fail_msg("%s: %s (just above) matched", c->entry, c->above);
	whitelist_free(wl);
}

static void
test_cidr_ipv4(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ipv4_cidrs) / sizeof(ipv4_cidrs[0]); i++)
		check_cidr(&ipv4_cidrs[i]);
}

static void
test_cidr_ipv6(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ipv6_cidrs) / sizeof(ipv6_cidrs[0]); i++)
		check_cidr(&ipv6_cidrs[i]);
}

/*
 * /0 is accepted (the code allows any prefix up to the family's width):
 * it covers its whole family and nothing of the other one.
 */
static void
test_cidr_zero(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_CLIENTS, "0.0.0.0/0");

	(void)state;
	expect_ip(wl, "0.0.0.0", true);
	expect_ip(wl, "128.66.1.2", true);
	expect_ip(wl, "255.255.255.255", true);
	expect_ip(wl, "::ffff:192.0.2.1", true);
	expect_ip(wl, "2001:db8::1", false);
	expect_ip(wl, "::1", false);
	whitelist_free(wl);

	wl = build_one(WHITELIST_CLIENTS, "::/0");
	expect_ip(wl, "2001:db8::1", true);
	expect_ip(wl, "::", true);
	expect_ip(wl, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true);
	expect_ip(wl, "192.0.2.1", false);
	whitelist_free(wl);
}

static void
test_partial_ipv4(void **state)
{
	whitelist_t *wl;

	(void)state;
	wl = build_one(WHITELIST_CLIENTS, "10");		/* /8 */
	expect_ip(wl, "10.0.0.0", true);
	expect_ip(wl, "10.255.255.255", true);
	expect_ip(wl, "9.255.255.255", false);
	expect_ip(wl, "11.0.0.0", false);
	whitelist_free(wl);

	/* /16, not postgrey's mistaken /24 */
	wl = build_one(WHITELIST_CLIENTS, "10.1");
	expect_ip(wl, "10.1.0.0", true);
	expect_ip(wl, "10.1.0.1", true);
	expect_ip(wl, "10.1.200.1", true);
	expect_ip(wl, "10.1.255.255", true);
	expect_ip(wl, "10.0.255.255", false);
	expect_ip(wl, "10.2.0.1", false);
	expect_ip(wl, "10.2.0.0", false);
	whitelist_free(wl);

	wl = build_one(WHITELIST_CLIENTS, "10.1.2");	/* /24 */
	expect_ip(wl, "10.1.2.0", true);
	expect_ip(wl, "10.1.2.255", true);
	expect_ip(wl, "10.1.1.255", false);
	expect_ip(wl, "10.1.3.0", false);
	whitelist_free(wl);

	/* A partial address with an explicit prefix: the prefix wins. */
	wl = build_one(WHITELIST_CLIENTS, "10.1/24");
	expect_ip(wl, "10.1.0.77", true);
	expect_ip(wl, "10.1.1.0", false);
	whitelist_free(wl);
}

static void
test_ipv4_mapped_client(void **state)
{
	static const char *const entries[] = {"10.1.2.3", "172.16", "192.0.2.0/24",
					      NULL};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);

	(void)state;
	expect_ip(wl, "::ffff:10.1.2.3", true);
	expect_ip(wl, "::FFFF:10.1.2.3", true);
	expect_ip(wl, "::ffff:10.1.2.4", false);
	expect_ip(wl, "::ffff:172.16.99.1", true);
	expect_ip(wl, "::ffff:172.17.0.1", false);
	expect_ip(wl, "::ffff:192.0.2.200", true);
	expect_ip(wl, "::ffff:192.0.3.0", false);
	whitelist_free(wl);

	/* A mapped entry means the IPv4 address it carries. */
	wl = build_one(WHITELIST_CLIENTS, "::ffff:198.51.100.9");
	expect_ip(wl, "198.51.100.9", true);
	expect_ip(wl, "::ffff:198.51.100.9", true);
	expect_ip(wl, "198.51.100.10", false);
	whitelist_free(wl);
}

/* ---- merging: brute-force reference over every boundary ---------------------- */

struct net4 {
	uint32_t base;
	unsigned prefix;
};

static bool
ref_contains(const struct net4 *nets, size_t n, uint32_t a)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t m = mask_of(nets[i].prefix);

		if ((a & m) == (nets[i].base & m))
			return true;
	}
	return false;
}

/* Just inside and outside both ends of the first nprobe of n entries. */
static void
check_boundaries(const whitelist_t *wl, const struct net4 *nets, size_t n,
		 size_t nprobe)
{
	char text[INET_ADDRSTRLEN];

	for (size_t i = 0; i < nprobe; i++) {
		uint32_t m = mask_of(nets[i].prefix);
		uint32_t lo = nets[i].base & m, hi = lo | ~m;
		uint32_t probes[6] = {lo - 1, lo, lo + 1, hi - 1, hi, hi + 1};

		for (size_t j = 0; j < 6; j++) {
			bool want = ref_contains(nets, n, probes[j]);

			v4_text(text, sizeof(text), probes[j]);
			if (by_ip(wl, text) != want)
				fail_msg("%s: expected %s (boundary of entry %zu)", text,
					 want ? "a match" : "no match", i);
		}
	}
}

static whitelist_t *
build_nets(const struct net4 *nets, size_t n, const size_t *order)
{
	whitelist_t *wl = new_list();
	char text[INET_ADDRSTRLEN], entry[INET_ADDRSTRLEN + 4];

	for (size_t i = 0; i < n; i++) {
		const struct net4 *net = &nets[order != NULL ? order[i] : i];

		v4_text(text, sizeof(text), net->base);
		snprintf(entry, sizeof(entry), "%s/%u", text, net->prefix);
		add_ok(wl, WHITELIST_CLIENTS, entry);
	}
	assert_int_equal(whitelist_finish(wl), 0);
	return wl;
}

static void
test_overlapping_ranges(void **state)
{
	const struct net4 nets[] = {
		{v4("172.16.0.0"), 16},
		{v4("172.16.255.0"), 24},	/* nested at the end */
		{v4("172.16.0.0"), 24},		/* nested at the start */
		{v4("172.17.0.0"), 16},		/* adjacent */
		{v4("192.168.1.0"), 24},
		{v4("192.168.0.0"), 23},	/* contains the one before */
		{v4("203.0.113.10"), 32},
		{v4("203.0.113.0"), 28},
		{v4("203.0.113.8"), 29},
		{v4("203.0.113.16"), 28},	/* adjacent to the /28 */
		{v4("203.0.113.64"), 26},	/* a gap before it */
		{v4("203.0.113.100"), 30},	/* nested in the middle */
		{v4("198.18.0.0"), 15},
		{v4("198.20.0.1"), 32},		/* just past the /15 + 1 */
		{v4("10.0.0.0"), 8},
		{v4("10.200.0.0"), 16},
		{v4("11.0.0.0"), 8},
		{v4("9.255.255.255"), 32},
		{v4("0.0.0.0"), 32},
		{v4("255.255.255.255"), 32},
		{v4("255.255.255.0"), 24},
	};
	size_t n = sizeof(nets) / sizeof(nets[0]);
	size_t order[sizeof(nets) / sizeof(nets[0])];
	char text[INET_ADDRSTRLEN];
	whitelist_t *wl;

	(void)state;
	/* File order, reversed, and a few shuffles: the result is the same. */
	for (int round = 0; round < 6; round++) {
		for (size_t i = 0; i < n; i++)
			order[i] = round == 1 ? n - 1 - i : i;
		if (round >= 2) {
			for (size_t i = n - 1; i > 0; i--) {
				size_t j = rng() % (i + 1), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
		}
		wl = build_nets(nets, n, order);
		check_boundaries(wl, nets, n, n);
		for (int k = 0; k < 2000; k++) {
			uint32_t a = rng();
			bool want = ref_contains(nets, n, a);

			v4_text(text, sizeof(text), a);
			if (by_ip(wl, text) != want)
				fail_msg("%s: expected %s", text,
					 want ? "a match" : "no match");
		}
		whitelist_free(wl);
	}
}

static void
test_overlapping_ranges_ipv6(void **state)
{
	static const char *const entries[] = {
		"2001:db8::/48", "2001:db8:0:ffff::/64", "2001:db8::/64",
		"2001:db8:1::/48",	/* adjacent */
		"2001:db8:5::/64", "2001:db8:4::/47",	/* later one contains */
		"2001:db8:9::1/128", "2001:db8:9::/126", NULL,
	};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);

	(void)state;
	expect_ip(wl, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false);
	expect_ip(wl, "2001:db8::", true);
	expect_ip(wl, "2001:db8:0:ffff:ffff:ffff:ffff:ffff", true);
	expect_ip(wl, "2001:db8:1:ffff:ffff:ffff:ffff:ffff", true);
	expect_ip(wl, "2001:db8:2::", false);
	expect_ip(wl, "2001:db8:3:ffff:ffff:ffff:ffff:ffff", false);
	expect_ip(wl, "2001:db8:4::", true);
	expect_ip(wl, "2001:db8:5:ffff:ffff:ffff:ffff:ffff", true);
	expect_ip(wl, "2001:db8:6::", false);
	expect_ip(wl, "2001:db8:8:ffff:ffff:ffff:ffff:ffff", false);
	expect_ip(wl, "2001:db8:9::", true);
	expect_ip(wl, "2001:db8:9::3", true);
	expect_ip(wl, "2001:db8:9::4", false);
	whitelist_free(wl);
}

/* ---- two threads building lists at once ----------------------------------------- */

/*
 * The daemon builds whitelists on two threads: the store thread rebuilds
 * the live whitelist while the loop thread reloads the files on SIGHUP.
 * Each thread here builds, finishes and checks its own lists over and
 * over; any state shared between the two builds (such as the width of
 * the address being sorted) shows up as a lost range and a wrong answer.
 * The IPv6 blocks all share their first four bytes, so sorting them as if
 * they were IPv4 addresses leaves them in no order at all.
 */
#define RACE_ROUNDS 3000
#define RACE_SECONDS 8
#define RACE_BLOCKS 48	/* blocks listed; as many unlisted between them */

struct race_worker {
	bool ipv6;
	uint64_t seed;
	double deadline_ns;
	unsigned rounds;	/* lists built */
	unsigned bad_rounds;	/* lists with at least one wrong answer */
	char first_error[128];
};

static uint32_t
race_rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 0x2545f4914f6cdd1dull) >> 32);
}

/* Block k: listed when k is even. */
static void
race_block(char *out, size_t outsz, bool ipv6, unsigned k)
{
	if (ipv6)
		snprintf(out, outsz, "2001:db8:0:%x::/64", k);
	else
		snprintf(out, outsz, "10.%u.0.0/16", k);
}

static void
race_probe(char *out, size_t outsz, bool ipv6, unsigned k, bool last)
{
	if (ipv6)
		snprintf(out, outsz, "2001:db8:0:%x:%s", k,
			 last ? "ffff:ffff:ffff:ffff" : ":1");
	else
		snprintf(out, outsz, "10.%u.%s", k, last ? "255.255" : "0.1");
}

/* One list in a random order; false (with a note) on a wrong answer. */
static bool
race_one_list(struct race_worker *w, char *note, size_t notesz)
{
	unsigned order[RACE_BLOCKS];
	char text[64], err[256];
	whitelist_t *wl = NULL;
	bool ok = true;

	for (unsigned i = 0; i < RACE_BLOCKS; i++)
		order[i] = 2 * i;
	for (unsigned i = RACE_BLOCKS - 1; i > 0; i--) {
		unsigned j = race_rng(&w->seed) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	if (whitelist_create(&wl) != 0) {
		snprintf(note, notesz, "create failed");
		return false;
	}
	for (unsigned i = 0; i < RACE_BLOCKS; i++) {
		race_block(text, sizeof(text), w->ipv6, order[i]);
		if (whitelist_add(wl, WHITELIST_CLIENTS, text, err,
				  sizeof(err)) != 0) {
			snprintf(note, notesz,
				 "%s rejected", text);
			ok = false;
		}
	}
	whitelist_finish(wl);
	for (unsigned k = 0; k < 2 * RACE_BLOCKS && ok; k++) {
		for (int last = 0; last <= 1 && ok; last++) {
			bool want = k % 2 == 0;

			race_probe(text, sizeof(text), w->ipv6, k, last);
			if (by_ip(wl, text) != want) {
				snprintf(note, notesz,
					 "%s: expected %s", text,
					 want ? "a match" : "no match");
				ok = false;
			}
		}
	}
	whitelist_free(wl);
	return ok;
}

/* cmocka's asserts are not for other threads: results go in *w. */
static void *
race_worker_run(void *arg)
{
	struct race_worker *w = arg;
	char note[sizeof(w->first_error)];

	while (w->rounds < RACE_ROUNDS && now_ns() < w->deadline_ns) {
		w->rounds++;
		if (race_one_list(w, note, sizeof(note)))
			continue;
		if (w->bad_rounds++ == 0)
			memcpy(w->first_error, note, sizeof(note));
	}
	return NULL;
}

static void
test_concurrent_builds(void **state)
{
	struct race_worker w[2] = {
		{.ipv6 = false, .seed = 0x243f6a8885a308d3ull},
		{.ipv6 = true, .seed = 0x13198a2e03707344ull},
	};
	pthread_t tid[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		w[i].deadline_ns = now_ns() + RACE_SECONDS * 1e9;
		assert_int_equal(pthread_create(&tid[i], NULL, race_worker_run,
						&w[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		printf("# %s: %u of %u lists wrong%s%s\n",
		       w[i].ipv6 ? "IPv6" : "IPv4", w[i].bad_rounds,
		       w[i].rounds, w[i].bad_rounds > 0 ? ", first: " : "",
		       w[i].first_error);
		/* Enough rounds ran for the two sorts to overlap. */
		assert_true(w[i].rounds >= 100);
	}
	assert_int_equal(w[0].bad_rounds, 0);
	assert_int_equal(w[1].bad_rounds, 0);
}

/* ---- client names ---------------------------------------------------------------- */

static void
test_hostname_suffix(void **state)
{
	static const char *const entries[] = {"example.com", ".example.org",
					      "Mixed.Case.NET", NULL};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);

	(void)state;
	expect_name(wl, "example.com", true);
	expect_name(wl, "mx.example.com", true);
	expect_name(wl, "a.b.c.example.com", true);
	expect_name(wl, "MX.Example.COM", true);
	expect_name(wl, "badexample.com", false);
	expect_name(wl, "example.com.evil.net", false);
	expect_name(wl, "example.co", false);
	expect_name(wl, "com", false);
	expect_name(wl, "xexample.com", false);
	expect_name(wl, "mx.badexample.com", false);
	/* ".example.org" means the same as "example.org" */
	expect_name(wl, "example.org", true);
	expect_name(wl, "mail.example.org", true);
	expect_name(wl, "notexample.org", false);
	expect_name(wl, "mixed.case.net", true);
	expect_name(wl, "smtp.MIXED.case.Net", true);
	expect_name(wl, "case.net", false);
	/* names never match by address */
	expect_ip(wl, "192.0.2.1", false);
	whitelist_free(wl);
}

static void
test_unknown_never_matches(void **state)
{
	static const char *const entries[] = {"unknown", "/.*/", "/^unknown$/",
					      "/n/", "192.0.2.5", NULL};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);

	(void)state;
	assert_false(whitelist_match_client(wl, "198.51.100.1", 12, "unknown", 7));
	/* No name at all: nothing to match a name or a regex against. */
	assert_false(whitelist_match_client(wl, "198.51.100.1", 12, NULL, 0));
	assert_false(whitelist_match_client(wl, "198.51.100.1", 12, "", 0));
	/* The address still counts when the name is unknown. */
	assert_true(whitelist_match_client(wl, "192.0.2.5", 9, "unknown", 7));
	/* A real name does match the regex. */
	assert_true(whitelist_match_client(wl, "198.51.100.1", 12, "mx.example.com",
					   14));
	whitelist_free(wl);
}

static void
test_regex_perl_syntax(void **state)
{
	static const char *const entries[] = {
		"/^mail\\d+\\.example\\.net$/",
		"/^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.fr$/",
		"/\\.relay\\.example\\.org$/",	/* anchored at the end only */
		"/^out-[a-f0-9]{4}\\./",		/* anchored at the start only */
		NULL,
	};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);

	(void)state;
	expect_name(wl, "mail12.example.net", true);
	expect_name(wl, "MAIL7.Example.NET", true);		/* caseless */
	expect_name(wl, "mailx.example.net", false);
	expect_name(wl, "mail12.example.net.evil.com", false);
	expect_name(wl, "xmail12.example.net", false);
	expect_name(wl, "smtp5-g21.free.fr", true);
	expect_name(wl, "smtpout7-g1.free.fr", true);
	expect_name(wl, "postfix3-g20.free.fr", true);
	expect_name(wl, "postfix-g20.free.fr", false);
	expect_name(wl, "a.b.relay.example.org", true);
	expect_name(wl, "relay.example.org", false);
	expect_name(wl, "out-beef.anything.example", true);
	expect_name(wl, "OUT-BEEF.anything", true);
	expect_name(wl, "out-beeg.anything", false);
	expect_name(wl, "x.out-beef.anything", false);
	/* regexes are for names: an address never matches them */
	assert_false(whitelist_match_client(wl, "10.1.2.3", 8, NULL, 0));
	whitelist_free(wl);
}

/* The match has hung: only async-signal-safe calls from here. */
static void
on_alarm(int sig)
{
	static const char msg[] = "test_whitelist: regex match did not stop at "
				  "the match limit (hung for 20 s)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static void
test_regex_match_limit(void **state)
{
	static const char *const entries[] = {"/^(a+)+$/", "/(x+x+)+y/",
					      "/b$/", NULL};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);
	char name[241];
	double t0, ms;
	bool m;

	(void)state;
	memset(name, 'a', sizeof(name) - 2);
	name[sizeof(name) - 2] = 'c';
	name[sizeof(name) - 1] = '\0';
	signal(SIGALRM, on_alarm);
	alarm(20);
	t0 = now_ns();
	m = by_name(wl, name);		/* catastrophic for (a+)+ */
	ms = (now_ns() - t0) / 1e6;
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	assert_false(m);
	printf("# pathological regex against a %zu-byte name: no match after "
	       "%.2f ms\n", strlen(name), ms);
	/* Hitting a limit is "no match" for that regex only: later ones run. */
	name[sizeof(name) - 2] = 'b';
	assert_true(by_name(wl, name));
	whitelist_free(wl);
}

/* The limits stop runaway patterns, not ordinary ones on long names. */
static void
test_regex_limit_spares_real_patterns(void **state)
{
	static const char *const entries[] = {
		"/^(?:[a-z0-9-]+\\.)+example\\.com$/",
		"/^(?:\\w+-)*\\w+\\.example\\.net$/",
		NULL,
	};
	whitelist_t *wl = build(WHITELIST_CLIENTS, entries);
	whitelist_t *rl = build_one(WHITELIST_RECIPIENTS, "/^(a+)+$/");
	char name[256] = "", addr[300];

	(void)state;
	for (int i = 0; i < 115; i++)
		strcat(name, "a.");
	strcat(name, "example.com");			/* 241 bytes, 117 labels */
	expect_name(wl, name, true);
	name[0] = '\0';
	for (int i = 0; i < 115; i++)
		strcat(name, "a-");
	strcat(name, "x.example.net");
	expect_name(wl, name, true);

	/* A recipient regex is bounded the same way. */
	memset(addr, 'a', 250);
	strcpy(addr + 250, "@x");
	expect_rcpt(rl, addr, false);
	whitelist_free(wl);
	whitelist_free(rl);
}

static void
test_regex_invalid(void **state)
{
	static const char *const bad[] = {"/(unclosed/", "/[z-a]/", "/a{2,1}/",
					  "/(?<n/", "/\\/", NULL};
	char err[512];

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++) {
		whitelist_t *wl = new_list();
		int rc;

		err[0] = '\0';
		rc = whitelist_add(wl, WHITELIST_CLIENTS, bad[i], err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("regex %s accepted (%d)", bad[i], rc);
		if (strstr(err, "regex") == NULL || strstr(err, bad[i]) == NULL)
			fail_msg("regex %s: unhelpful message '%s'", bad[i], err);
		err[0] = '\0';
		rc = whitelist_add(wl, WHITELIST_RECIPIENTS, bad[i], err, sizeof(err));
		if (rc != -EINVAL || err[0] == '\0')
			fail_msg("recipient regex %s accepted (%d)", bad[i], rc);
		whitelist_free(wl);
	}
}

/*
 * "//" is an empty pattern, which matches every name: a stray line like
 * that must not whitelist the world.  postgrey's /^\/(\S+)\/$/ never took
 * it as a regex either.
 */
static void
test_regex_empty_rejected(void **state)
{
	static const enum whitelist_kind kinds[2] = {WHITELIST_CLIENTS,
						     WHITELIST_RECIPIENTS};

	(void)state;
	for (int i = 0; i < 2; i++) {
		whitelist_t *wl = new_list();
		char err[512] = "";
		bool everything;

		if (whitelist_add(wl, kinds[i], "//", err, sizeof(err)) == -EINVAL &&
		    err[0] != '\0') {
			whitelist_free(wl);
			continue;
		}
		whitelist_finish(wl);
		everything = kinds[i] == WHITELIST_CLIENTS ?
			     by_name(wl, "mx.spammer.example") :
			     rcpt(wl, "anyone@anywhere.example");
		whitelist_free(wl);
		fail_msg("%s entry '//' accepted%s",
			 i == 0 ? "client" : "recipient",
			 everything ? " and it matches everything" : "");
	}
}

/* ---- bad client entries ----------------------------------------------------------- */

static void
test_bad_client_entries(void **state)
{
	static const char *const bad[] = {
		"", "1.2.3.4/33", "300.1.1.1", "1.2.3.4.5", "1.2.3.256",
		"1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/+8", "1.2.3.4/8x", "1.2.3.4//8",
		"1..2", "1.2.", ".1.2", "1.2.3.4 ", " example.com", "exa mple.com",
		"exa\tmple.com", "ex\001ample.com", "exam\177ple.com",
		"ex\303\251mple.com", "2001:db8::/129", "2001:db8::1::2", "2001:zz8::1",
		"::ffff:1.2.3.4/33", "1234.1.1.1", "example.com/", "foo@bar.com",
		"exa*mple.com", "/",
		NULL,
	};
	char longest[WHITELIST_MAX_ENTRY + 1];

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++)
		add_bad(WHITELIST_CLIENTS, bad[i]);
	/* Longest accepted entry is WHITELIST_MAX_ENTRY - 1 bytes. */
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	add_bad(WHITELIST_CLIENTS, longest);
}

static void
test_add_after_finish(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_CLIENTS, "192.0.2.1");
	char err[256] = "";

	(void)state;
	assert_int_equal(whitelist_add(wl, WHITELIST_CLIENTS, "192.0.2.2", err,
				       sizeof(err)), -EBUSY);
	expect_ip(wl, "192.0.2.2", false);
	whitelist_free(wl);
	whitelist_free(NULL);
}

/* ---- recipients ----------------------------------------------------------------- */

static void
test_recipient_user_any_domain(void **state)
{
	static const char *const entries[] = {"postmaster@", "Abuse@", NULL};
	whitelist_t *wl = build(WHITELIST_RECIPIENTS, entries);

	(void)state;
	expect_rcpt(wl, "postmaster@any.domain", true);
	expect_rcpt(wl, "postmaster@example.org", true);
	expect_rcpt(wl, "PostMaster@Example.ORG", true);
	expect_rcpt(wl, "postmaster+tag@x", true);
	expect_rcpt(wl, "postmaster+a+b@x.example", true);
	expect_rcpt(wl, "postmasterx@x", false);
	expect_rcpt(wl, "xpostmaster@x", false);
	expect_rcpt(wl, "post@x", false);
	expect_rcpt(wl, "abuse@example.net", true);
	expect_rcpt(wl, "ABUSE+reports@example.net", true);
	expect_rcpt(wl, "abuses@example.net", false);
	whitelist_free(wl);
}

/* postgrey: "user+ext@" matches exactly that local part (qr{^user\+ext...@}). */
static void
test_recipient_user_with_extension_entry(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_RECIPIENTS, "bob+lists@");

	(void)state;
	expect_rcpt(wl, "bob+lists@example.org", true);
	expect_rcpt(wl, "bob@example.org", false);
	expect_rcpt(wl, "bob+other@example.org", false);
	whitelist_free(wl);
}

static void
test_recipient_address(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_RECIPIENTS, "user@example.org");

	(void)state;
	expect_rcpt(wl, "user@example.org", true);
	expect_rcpt(wl, "USER@Example.Org", true);
	expect_rcpt(wl, "user+tag@example.org", true);
	expect_rcpt(wl, "user2@example.org", false);
	expect_rcpt(wl, "xuser@example.org", false);
	expect_rcpt(wl, "user@sub.example.org", false);
	expect_rcpt(wl, "user@example.org.evil", false);
	expect_rcpt(wl, "user@example.com", false);
	expect_rcpt(wl, "other@example.org", false);
	whitelist_free(wl);
}

static void
test_recipient_domain(void **state)
{
	static const char *const entries[] = {"example.org", "@Example.NET", NULL};
	whitelist_t *wl = build(WHITELIST_RECIPIENTS, entries);

	(void)state;
	expect_rcpt(wl, "anyone@example.org", true);
	expect_rcpt(wl, "anyone@mail.example.org", true);
	expect_rcpt(wl, "anyone@EXAMPLE.ORG", true);
	expect_rcpt(wl, "anyone@notexample.org", false);
	expect_rcpt(wl, "anyone@example.org.evil.com", false);
	expect_rcpt(wl, "example.org@evil.com", false);
	expect_rcpt(wl, "anyone@example.net", true);
	expect_rcpt(wl, "anyone@a.b.example.net", true);
	expect_rcpt(wl, "anyone@badexample.net", false);
	whitelist_free(wl);
}

static void
test_recipient_regex(void **state)
{
	whitelist_t *wl = build_one(WHITELIST_RECIPIENTS,
				    "/^support-\\w+@example\\.org$/");

	(void)state;
	expect_rcpt(wl, "support-eu@example.org", true);
	expect_rcpt(wl, "Support-EU@Example.ORG", true);
	expect_rcpt(wl, "support@example.org", false);
	expect_rcpt(wl, "support-eu@example.org.evil", false);
	expect_rcpt(wl, "xsupport-eu@example.org", false);
	whitelist_free(wl);
}

static void
test_bad_recipient_entries(void **state)
{
	static const char *const bad[] = {
		"", "foo@bar@baz", "@", "@@", "user@exa mple.org",
		"us er@", "user@ex\001ample.org", "user@example.org\r", " postmaster@",
		"user@exa*mple.org", "exa/mple.org", "user@@example.org",
		NULL,
	};

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++)
		add_bad(WHITELIST_RECIPIENTS, bad[i]);
}

static void
test_empty_list_matches_nothing(void **state)
{
	static const char *const none[] = {NULL};
	whitelist_t *wl = build(WHITELIST_CLIENTS, none);

	(void)state;
	assert_int_equal(whitelist_size(wl), 0);
	expect_ip(wl, "192.0.2.1", false);
	expect_ip(wl, "2001:db8::1", false);
	expect_name(wl, "mx.example.com", false);
	expect_rcpt(wl, "postmaster@example.com", false);
	assert_false(whitelist_match_recipient(wl, NULL, 0));
	assert_false(match_client(wl, NULL, NULL));
	assert_false(match_client(wl, "not an address", NULL));
	whitelist_free(wl);
}

/* Client and recipient entries live apart. */
static void
test_kinds_are_separate(void **state)
{
	whitelist_t *wl = new_list();

	(void)state;
	add_ok(wl, WHITELIST_RECIPIENTS, "example.org");
	add_ok(wl, WHITELIST_CLIENTS, "example.net");
	assert_int_equal(whitelist_finish(wl), 0);
	expect_name(wl, "mx.example.org", false);
	expect_name(wl, "mx.example.net", true);
	expect_rcpt(wl, "u@example.org", true);
	expect_rcpt(wl, "u@example.net", false);
	assert_int_equal(whitelist_size(wl), 2);
	whitelist_free(wl);
}

/* ---- files ---------------------------------------------------------------------- */

static void
test_load_file_comments(void **state)
{
	char path[256], err[600] = "";
	whitelist_t *wl = new_list();

	(void)state;
	tmp_path(path, sizeof(path), "comments");
	write_file(path,
		   "# a comment line\n"
		   "\n"
		   "   \t  \n"
		   "192.0.2.1   # after white space\n"
		   "\t198.51.100.0/24\t\n"
		   "  # indented comment\n"
		   "/^mx#\\d+\\.example$/\n"		/* '#' inside a regex is kept */
		   "crlf.example\r\n"
		   "/^tab\\d$/\t# comment after a tab\n"
		   "last.example");			/* no final newline */
	assert_int_equal(whitelist_load_file(wl, WHITELIST_CLIENTS, path, err,
					     sizeof(err)), 0);
	assert_int_equal(whitelist_size(wl), 6);
	assert_int_equal(whitelist_finish(wl), 0);
	expect_ip(wl, "192.0.2.1", true);
	expect_ip(wl, "198.51.100.77", true);
	expect_name(wl, "mx#12.example", true);
	expect_name(wl, "mx.example", false);
	expect_name(wl, "smtp.crlf.example", true);
	expect_name(wl, "tab7", true);
	expect_name(wl, "last.example", true);
	whitelist_free(wl);
	unlink(path);
}

static void
test_load_file_error_location(void **state)
{
	char path[256], err[600] = "", want[300];
	whitelist_t *wl = new_list();
	int rc;

	(void)state;
	tmp_path(path, sizeof(path), "bad-line");
	write_file(path, "# ok\n192.0.2.1\n\nexample.com\n1.2.3.4/33\n10.0.0.1\n");
	rc = whitelist_load_file(wl, WHITELIST_CLIENTS, path, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	snprintf(want, sizeof(want), "%s:5:", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("message '%s' does not start with '%s'", err, want);
	if (strstr(err, "1.2.3.4/33") == NULL)
		fail_msg("message '%s' does not name the entry", err);
	whitelist_free(wl);

	/* The same for recipients. */
	wl = new_list();
	write_file(path, "postmaster@\nfoo@bar@baz\n");
	err[0] = '\0';
	rc = whitelist_load_file(wl, WHITELIST_RECIPIENTS, path, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	snprintf(want, sizeof(want), "%s:2:", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("message '%s' does not start with '%s'", err, want);
	whitelist_free(wl);
	unlink(path);
}

static void
test_load_file_missing(void **state)
{
	char path[256], err[600] = "";
	whitelist_t *wl = new_list();

	(void)state;
	tmp_path(path, sizeof(path), "does-not-exist");
	assert_int_equal(whitelist_load_file(wl, WHITELIST_CLIENTS, path, err,
					     sizeof(err)), -ENOENT);
	assert_int_equal(whitelist_size(wl), 0);
	assert_non_null(strstr(err, path));
	whitelist_free(wl);
}

static void
test_load_file_long_lines(void **state)
{
	char path[256], err[600] = "";
	char line[WHITELIST_MAX_ENTRY + 100];
	whitelist_t *wl;
	FILE *fp;
	int rc;

	(void)state;
	tmp_path(path, sizeof(path), "long");
	/* An over-long entry: an error with the line, not a split entry. */
	fp = fopen(path, "w");
	assert_non_null(fp);
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	fprintf(fp, "192.0.2.1\n%s.example\n", line);
	fclose(fp);
	wl = new_list();
	rc = whitelist_load_file(wl, WHITELIST_CLIENTS, path, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	{
		char want[300];

		snprintf(want, sizeof(want), "%s:2:", path);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("message '%s' does not start with '%s'", err, want);
	}
	whitelist_free(wl);

	/*
	 * A long comment is still a comment: a descriptive '#' line longer
	 * than one entry may be must not make the whole file unloadable.
	 */
	fp = fopen(path, "w");
	assert_non_null(fp);
	memset(line, 'x', sizeof(line) - 1);
	fprintf(fp, "# %s\n192.0.2.1\n", line);
	fclose(fp);
	wl = new_list();
	err[0] = '\0';
	rc = whitelist_load_file(wl, WHITELIST_CLIENTS, path, err, sizeof(err));
	if (rc != 0)
		fail_msg("a %zu-byte comment line made the file fail: %s",
			 strlen(line) + 2, err);
	assert_int_equal(whitelist_size(wl), 1);
	whitelist_free(wl);
	unlink(path);
}

static struct config *
config_with_lists(const char *clients, const char *recipients)
{
	struct config_override ov[2] = {
		{"whitelist_clients", clients},
		{"whitelist_recipients", recipients},
	};
	struct config *cfg = NULL;
	char err[600] = "";

	if (config_load(&cfg, NULL, true, ov, 2, err, sizeof(err)) != 0)
		fail_msg("config_load: %s", err);
	return cfg;
}

static void
test_load_config_with_local(void **state)
{
	char c1[256], c2[256], r1[256], local[300], lists[600], err[600] = "";
	struct config *cfg;
	whitelist_t *wl = NULL;

	(void)state;
	tmp_path(c1, sizeof(c1), "clients1");
	tmp_path(c2, sizeof(c2), "clients2");
	tmp_path(r1, sizeof(r1), "recipients");
	write_file(c1, "192.0.2.1\n");
	snprintf(local, sizeof(local), "%s.local", c1);
	write_file(local, "192.0.2.2\n# local comment\nlocal.example\n");
	/* c2 has no main file, only a .local: the .local is still read */
	snprintf(local, sizeof(local), "%s.local", c2);
	write_file(local, "192.0.2.3\n");
	write_file(r1, "postmaster@\n");
	snprintf(local, sizeof(local), "%s.local", r1);
	write_file(local, "example.org\n");

	snprintf(lists, sizeof(lists), "%s,%s", c1, c2);
	cfg = config_with_lists(lists, r1);
	assert_int_equal(whitelist_load_config(&wl, cfg, err, sizeof(err)), 0);
	assert_non_null(wl);
	assert_int_equal(whitelist_size(wl), 6);
	expect_ip(wl, "192.0.2.1", true);
	expect_ip(wl, "192.0.2.2", true);
	expect_ip(wl, "192.0.2.3", true);
	expect_ip(wl, "192.0.2.4", false);
	expect_name(wl, "mx.local.example", true);
	expect_rcpt(wl, "postmaster@example.com", true);
	expect_rcpt(wl, "user@example.org", true);
	expect_rcpt(wl, "user@example.com", false);
	whitelist_free(wl);
	config_free(cfg);

	/* A bad line in a .local is an error with its location; nothing built. */
	snprintf(local, sizeof(local), "%s.local", c1);
	write_file(local, "192.0.2.2\n300.1.1.1\n");
	cfg = config_with_lists(c1, r1);
	wl = NULL;
	assert_int_equal(whitelist_load_config(&wl, cfg, err, sizeof(err)), -EINVAL);
	assert_null(wl);
	{
		char want[320];

		snprintf(want, sizeof(want), "%s:2:", local);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("message '%s' does not start with '%s'", err, want);
	}
	config_free(cfg);

	unlink(c1);
	unlink(r1);
	snprintf(local, sizeof(local), "%s.local", c1);
	unlink(local);
	snprintf(local, sizeof(local), "%s.local", c2);
	unlink(local);
	snprintf(local, sizeof(local), "%s.local", r1);
	unlink(local);
}

/*
 * A missing list is skipped (postgrey's packages ship them optional), but
 * one that is there and cannot be read stops the load: starting without a
 * list the admin configured would greylist mail they meant to let through.
 * (The test runs as root, where modes don't bite; a path through a regular
 * file fails the same way, with ENOTDIR.)
 */
static void
test_load_config_unreadable(void **state)
{
	char file[256], path[300], r1[256], want[400], err[600] = "";
	struct config *cfg;
	whitelist_t *wl = NULL;

	(void)state;
	tmp_path(file, sizeof(file), "plain-file");
	tmp_path(r1, sizeof(r1), "recipients-absent");
	write_file(file, "192.0.2.1\n");
	snprintf(path, sizeof(path), "%s/whitelist_clients", file);
	cfg = config_with_lists(path, r1);
	assert_int_equal(whitelist_load_config(&wl, cfg, err, sizeof(err)),
			 -ENOTDIR);
	assert_null(wl);
	snprintf(want, sizeof(want), "cannot read whitelist %s: ", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("message '%s' does not start with '%s'", err, want);
	config_free(cfg);
	unlink(file);
}

/* ---- scale ------------------------------------------------------------------------ */

#define BIG_ENTRIES 10000
#define BIG_LOOKUPS 100000
#define BIG_CHECKED 3000

static void
test_large_list(void **state)
{
	struct net4 *nets = calloc(BIG_ENTRIES, sizeof(*nets));
	char (*probes)[INET_ADDRSTRLEN] = calloc(BIG_LOOKUPS, sizeof(*probes));
	uint32_t *probe_addr = calloc(BIG_LOOKUPS, sizeof(*probe_addr));
	char text[INET_ADDRSTRLEN], entry[INET_ADDRSTRLEN + 4];
	whitelist_t *wl = new_list();
	size_t hits = 0, want_hits = 0;
	double t0, t1, build_ms;

	(void)state;
	assert_non_null(nets);
	assert_non_null(probes);
	assert_non_null(probe_addr);
	rng_state = 0x12345678abcdefull;
	t0 = now_ns();
	for (size_t i = 0; i < BIG_ENTRIES; i++) {
		nets[i].prefix = (rng() & 1) ? 24 : 32;
		nets[i].base = rng() & mask_of(nets[i].prefix);
		v4_text(text, sizeof(text), nets[i].base);
		snprintf(entry, sizeof(entry), "%s/%u", text, nets[i].prefix);
		add_ok(wl, WHITELIST_CLIENTS, entry);
	}
	assert_int_equal(whitelist_finish(wl), 0);
	build_ms = (now_ns() - t0) / 1e6;
	assert_int_equal(whitelist_size(wl), BIG_ENTRIES);

	/* Half the probes near an entry (often inside), half anywhere. */
	for (size_t i = 0; i < BIG_LOOKUPS; i++) {
		uint32_t a;

		if (i % 2 == 0) {
			const struct net4 *n = &nets[rng() % BIG_ENTRIES];
			a = n->base + (rng() % 300) - 20;
		} else {
			a = rng();
		}
		probe_addr[i] = a;
		v4_text(probes[i], sizeof(probes[i]), a);
	}
	t0 = now_ns();
	for (size_t i = 0; i < BIG_LOOKUPS; i++)
		hits += by_ip(wl, probes[i]);
	t1 = now_ns();
	printf("# %d entries built in %.1f ms; %d lookups: %.0f ns per lookup "
	       "(%zu matched)\n", BIG_ENTRIES, build_ms, BIG_LOOKUPS,
	       (t1 - t0) / BIG_LOOKUPS, hits);

	/* Correctness of a sample against a linear scan of every entry. */
	hits = 0;
	for (size_t i = 0; i < BIG_LOOKUPS; i += BIG_LOOKUPS / BIG_CHECKED) {
		bool want = ref_contains(nets, BIG_ENTRIES, probe_addr[i]);
		bool got = by_ip(wl, probes[i]);

		if (got != want)
			fail_msg("%s: expected %s", probes[i],
				 want ? "a match" : "no match");
		want_hits += want;
		hits += got;
	}
	/* The sample must exercise both answers or it proves little. */
	assert_true(want_hits > 100);
	assert_true(want_hits < BIG_CHECKED - 100);
	/* And every entry's own edges. */
	check_boundaries(wl, nets, BIG_ENTRIES, 300);
	whitelist_free(wl);
	free(nets);
	free(probes);
	free(probe_addr);
}

/* ---- shipped and Debian lists --------------------------------------------------- */

/* Entries of a file as postgrey counts them: lines left after "#..." strip. */
static size_t
count_entries(const char *path)
{
	FILE *fp = fopen(path, "r");
	char line[2048];
	size_t n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *s = line;

		line[strcspn(line, "#")] = '\0';
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '\0')
			n++;
	}
	fclose(fp);
	return n;
}

static whitelist_t *
load_list(enum whitelist_kind kind, const char *path)
{
	whitelist_t *wl = new_list();
	char err[600] = "";
	int rc = whitelist_load_file(wl, kind, path, err, sizeof(err));

	if (rc != 0)
		fail_msg("%s does not load: %s", path, err);
	assert_int_equal(whitelist_finish(wl), 0);
	return wl;
}

static void
test_shipped_lists_parse(void **state)
{
	whitelist_t *wl;

	(void)state;
	wl = load_list(WHITELIST_CLIENTS, SHIPPED_CLIENTS);
	assert_int_equal(whitelist_size(wl), count_entries(SHIPPED_CLIENTS));
	assert_true(whitelist_size(wl) >= 10);
	whitelist_free(wl);

	wl = load_list(WHITELIST_RECIPIENTS, SHIPPED_RECIPIENTS);
	assert_int_equal(whitelist_size(wl), count_entries(SHIPPED_RECIPIENTS));
	/* postmaster@ and abuse@ are the shipped defaults */
	expect_rcpt(wl, "postmaster@example.com", true);
	expect_rcpt(wl, "abuse@example.com", true);
	expect_rcpt(wl, "user@example.com", false);
	whitelist_free(wl);
}

/* Debian's list path, or false when $POSTGREY_LISTS_DIR is not set. */
static bool
debian_list(char *out, size_t outsz, const char *name)
{
	const char *dir = getenv("POSTGREY_LISTS_DIR");
	struct stat st;

	if (dir == NULL || dir[0] == '\0')
		return false;
	snprintf(out, outsz, "%s/%s", dir, name);
	if (stat(out, &st) == 0)
		return true;
	/* the package unpacked whole */
	snprintf(out, outsz, "%s/etc/postgrey/%s", dir, name);
	if (stat(out, &st) == 0)
		return true;
	fail_msg("POSTGREY_LISTS_DIR=%s has no %s", dir, name);
	return false;
}

static void
test_debian_lists_parse(void **state)
{
	char path[1024];
	whitelist_t *wl;

	(void)state;
	if (!debian_list(path, sizeof(path), "whitelist_clients")) {
		printf("# POSTGREY_LISTS_DIR not set: Debian's postgrey lists not "
		       "checked\n");
		skip();
	}
	wl = load_list(WHITELIST_CLIENTS, path);
	printf("# %s: %zu entries\n", path, whitelist_size(wl));
	assert_int_equal(whitelist_size(wl), count_entries(path));
	assert_true(whitelist_size(wl) > 50);
	whitelist_free(wl);

	assert_true(debian_list(path, sizeof(path), "whitelist_recipients"));
	wl = load_list(WHITELIST_RECIPIENTS, path);
	printf("# %s: %zu entries\n", path, whitelist_size(wl));
	assert_int_equal(whitelist_size(wl), count_entries(path));
	expect_rcpt(wl, "postmaster@example.com", true);
	expect_rcpt(wl, "abuse@example.com", true);
	whitelist_free(wl);
}

struct real_client {
	const char *name;
	const char *addr;
	bool debian;	/* matched by Debian's postgrey list */
	bool shipped;	/* matched by greyhold's etc/whitelist_clients */
};

/* Real-looking outbound names of the senders the lists are about. */
static const struct real_client real_clients[] = {
	{"mail-wr1-f54.google.com", "209.85.221.54", true, true},
	{"mail-ed1-f45.google.com", "2a00:1450:4864:20::52d", true, true},
	{"mail-dm6nam10on2070.outbound.protection.outlook.com", "40.107.93.70",
	 true, true},
	{"a8-31.smtp-out.amazonses.com", "54.240.8.31", true, true},
	{"sonic301-2.consmr.mail.ne1.yahoo.com", "66.163.184.1", true, true},
	{"mail131-5.atl131.mcsv.net", "205.201.131.5", true, true},
	{"mail.protonmail.ch", "185.70.40.10", true, true},
	{"mail-40131.protonmail.ch", "185.70.40.131", true, true},
	{"so254-20.mailgun.net", "198.61.254.20", true, true},
	{"mta-out-12.mtasv.net", "50.31.156.12", true, true},
	/* Debian's regexes and netblocks, not in greyhold's short list */
	{"smtp5-g21.free.fr", "212.27.42.5", true, false},
	{"fallback12.mail.ru", "217.69.128.12", true, false},
	{"m15-112.126.com", "220.181.15.112", true, false},
	{"mail-fr2deu01on2061.outbound.protection.outlook.de", "51.4.72.61", true,
	 false},
	{"unknown", "51.4.72.9", true, false},
	{"unknown", "2a01:4180:4051:800::25", true, false},
	{"mx.partner.example", "195.235.39.200", true, false},
	/* nobody's */
	{"mx.example.com", "192.0.2.1", false, false},
	{"google.com.evil.example", "192.0.2.2", false, false},
	{"notgoogle.com", "192.0.2.3", false, false},
	{"mailx.siol.net", "192.0.2.4", false, false},
	{"mx.partner.example", "195.235.40.1", false, false},
	{"unknown", "192.0.2.99", false, false},
};

static void
check_real_clients(const whitelist_t *wl, bool debian)
{
	for (size_t i = 0; i < sizeof(real_clients) / sizeof(real_clients[0]); i++) {
		const struct real_client *c = &real_clients[i];
		bool want = debian ? c->debian : c->shipped;
		bool got = match_client(wl, c->addr, c->name);

		if (got != want)
			fail_msg("%s [%s] against %s's list: expected %s", c->name,
				 c->addr, debian ? "Debian" : "greyhold",
				 want ? "a match" : "no match");
	}
}

static void
test_real_clients_shipped(void **state)
{
	whitelist_t *wl = load_list(WHITELIST_CLIENTS, SHIPPED_CLIENTS);

	(void)state;
	check_real_clients(wl, false);
	whitelist_free(wl);
}

static void
test_real_clients_debian(void **state)
{
	char path[1024];
	whitelist_t *wl;

	(void)state;
	if (!debian_list(path, sizeof(path), "whitelist_clients")) {
		printf("# POSTGREY_LISTS_DIR not set: table against Debian's list "
		       "skipped\n");
		skip();
	}
	wl = load_list(WHITELIST_CLIENTS, path);
	check_real_clients(wl, true);
	whitelist_free(wl);
}

/* ---- runner --------------------------------------------------------------------- */

static int
group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

/* Files a failed test left behind go too. */
static int
group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];

	(void)state;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_ipv4),
		cmocka_unit_test(test_single_ipv6),
		cmocka_unit_test(test_cidr_ipv4),
		cmocka_unit_test(test_cidr_ipv6),
		cmocka_unit_test(test_cidr_zero),
		cmocka_unit_test(test_partial_ipv4),
		cmocka_unit_test(test_ipv4_mapped_client),
		cmocka_unit_test(test_overlapping_ranges),
		cmocka_unit_test(test_overlapping_ranges_ipv6),
		cmocka_unit_test(test_concurrent_builds),
		cmocka_unit_test(test_hostname_suffix),
		cmocka_unit_test(test_unknown_never_matches),
		cmocka_unit_test(test_regex_perl_syntax),
		cmocka_unit_test(test_regex_match_limit),
		cmocka_unit_test(test_regex_limit_spares_real_patterns),
		cmocka_unit_test(test_regex_invalid),
		cmocka_unit_test(test_regex_empty_rejected),
		cmocka_unit_test(test_bad_client_entries),
		cmocka_unit_test(test_add_after_finish),
		cmocka_unit_test(test_recipient_user_any_domain),
		cmocka_unit_test(test_recipient_user_with_extension_entry),
		cmocka_unit_test(test_recipient_address),
		cmocka_unit_test(test_recipient_domain),
		cmocka_unit_test(test_recipient_regex),
		cmocka_unit_test(test_bad_recipient_entries),
		cmocka_unit_test(test_empty_list_matches_nothing),
		cmocka_unit_test(test_kinds_are_separate),
		cmocka_unit_test(test_load_file_comments),
		cmocka_unit_test(test_load_file_error_location),
		cmocka_unit_test(test_load_file_missing),
		cmocka_unit_test(test_load_file_long_lines),
		cmocka_unit_test(test_load_config_with_local),
		cmocka_unit_test(test_load_config_unreadable),
		cmocka_unit_test(test_large_list),
		cmocka_unit_test(test_shipped_lists_parse),
		cmocka_unit_test(test_debian_lists_parse),
		cmocka_unit_test(test_real_clients_shipped),
		cmocka_unit_test(test_real_clients_debian),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
