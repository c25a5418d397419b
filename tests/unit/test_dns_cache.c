/*
 * test_dns_cache - the DNS answer cache: TTLs on a fake clock, negative
 * and failure caching, LRU eviction under the entry and byte bounds,
 * case-insensitive names, and deep copies that outlive the caller's
 * buffers.  Also the wire TTL reader the resolver feeds it from.
 */
#include "dns_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dns_wire.h"

#define SEC 1000ULL

static struct dns_cache *
new_cache(size_t entries, size_t bytes)
{
	struct dns_cache_options o;
	struct dns_cache *c;

	dns_cache_default_options(&o);
	o.max_entries = entries;
	o.max_bytes = bytes;
	o.seed = 42;
	assert_int_equal(dns_cache_new(&c, &o), 0);
	return c;
}

static struct dns_cache *
new_cache_opts(const struct dns_cache_options *o)
{
	struct dns_cache *c;

	assert_int_equal(dns_cache_new(&c, o), 0);
	return c;
}

static const uint8_t addr1[4] = {192, 0, 2, 1};
static const uint8_t addr2[4] = {192, 0, 2, 2};

static void
put_a(struct dns_cache *c, const char *name, uint32_t ttl, uint64_t now)
{
	struct dns_rr rr[2] = {{addr1, 4, 0}, {addr2, 4, 0}};
	struct dns_result r = {DNS_OK, ttl, 2, rr};

	assert_int_equal(dns_cache_put(c, DNS_T_A, name, &r, -1, now), 0);
}

static void
put_status(struct dns_cache *c, enum dns_type t, const char *name,
	   enum dns_status st, int64_t soa, uint64_t now)
{
	struct dns_result r = {st, 0, 0, NULL};

	assert_int_equal(dns_cache_put(c, t, name, &r, soa, now), 0);
}

static bool
has(struct dns_cache *c, enum dns_type t, const char *name, uint64_t now)
{
	struct dns_result r;

	return dns_cache_get(c, t, name, now, &r) == 0;
}

static void
test_hit_miss_expiry(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);
	struct dns_result r;

	assert_int_equal(dns_cache_get(c, DNS_T_A, "a.example", 0, &r), -ENOENT);
	put_a(c, "a.example", 60, 1000);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "a.example", 1000, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.ttl, 60);
	assert_int_equal(r.n, 2);
	assert_memory_equal(r.rr[0].data, addr1, 4);
	assert_memory_equal(r.rr[1].data, addr2, 4);
	/* The TTL counts down with the clock, in whole seconds left. */
	assert_int_equal(dns_cache_get(c, DNS_T_A, "a.example", 31500, &r), 0);
	assert_int_equal(r.ttl, 29);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "a.example", 60999, &r), 0);
	assert_int_equal(r.ttl, 0);
	assert_false(has(c, DNS_T_A, "a.example", 61000));
	/* Expired entries are gone, not just hidden. */
	struct dns_cache_stats st;
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	/* Another type of the same name is another key. */
	put_a(c, "a.example", 60, 1000);
	assert_false(has(c, DNS_T_AAAA, "a.example", 1000));
	assert_false(has(c, DNS_T_A, "b.example", 1000));
	dns_cache_free(c);
}

static void
test_ttl_floor_and_ceiling(void **state)
{
	struct dns_cache_options o;
	struct dns_cache *c;
	struct dns_result r;

	dns_cache_default_options(&o);
	o.min_ttl = 30;
	o.max_ttl = 600;
	c = new_cache_opts(&o);
	put_a(c, "short.example", 5, 0);
	assert_true(has(c, DNS_T_A, "short.example", 29 * SEC));
	assert_false(has(c, DNS_T_A, "short.example", 30 * SEC));
	put_a(c, "long.example", 86400, 0);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "long.example", 0, &r), 0);
	assert_int_equal(r.ttl, 600);
	assert_false(has(c, DNS_T_A, "long.example", 600 * SEC));
	dns_cache_free(c);
}

static void
test_zero_ttl_is_not_kept_and_replaces(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);
	struct dns_cache_stats st;

	put_a(c, "z.example", 300, 0);
	assert_true(has(c, DNS_T_A, "z.example", 0));
	/* A fresh answer with TTL 0 says the old one must not be used. */
	put_a(c, "z.example", 0, SEC);
	assert_false(has(c, DNS_T_A, "z.example", SEC));
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 0);
	dns_cache_free(c);
}

static void
test_replace_keeps_one_entry(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);
	struct dns_rr rr = {addr2, 4, 0};
	struct dns_result one = {DNS_OK, 100, 1, &rr};
	struct dns_result r;
	struct dns_cache_stats st;

	put_a(c, "r.example", 300, 0);
	assert_int_equal(dns_cache_put(c, DNS_T_A, "R.example", &one, -1, 0), 0);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "r.example", 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ttl, 100);
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 1);
	dns_cache_free(c);
}

static void
test_negative_caching(void **state)
{
	struct dns_cache_options o;
	struct dns_cache *c;
	struct dns_result r;

	dns_cache_default_options(&o);
	o.neg_ttl = 60;
	o.neg_max_ttl = 3600;
	c = new_cache_opts(&o);
	/* With an SOA: its min(TTL, MINIMUM) as the resolver computed it. */
	put_status(c, DNS_T_A, "gone.example", DNS_NXDOMAIN, 120, 0);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "gone.example", 0, &r), 0);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.ttl, 120);
	assert_true(has(c, DNS_T_A, "gone.example", 119 * SEC));
	assert_false(has(c, DNS_T_A, "gone.example", 120 * SEC));
	/* Without one: the configured negative TTL. */
	put_status(c, DNS_T_MX, "nomx.example", DNS_NODATA, -1, 0);
	assert_int_equal(dns_cache_get(c, DNS_T_MX, "nomx.example", 0, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	assert_int_equal(r.ttl, 60);
	assert_false(has(c, DNS_T_A, "nomx.example", 0));
	/* A huge SOA minimum is held to the negative ceiling. */
	put_status(c, DNS_T_TXT, "big.example", DNS_NXDOMAIN, 7 * 86400, 0);
	assert_int_equal(dns_cache_get(c, DNS_T_TXT, "big.example", 0, &r), 0);
	assert_int_equal(r.ttl, 3600);
	dns_cache_free(c);
}

static void
test_failures_cached_briefly(void **state)
{
	struct dns_cache_options o;
	struct dns_cache *c;
	struct dns_result r;

	dns_cache_default_options(&o);
	o.fail_ttl = 2;
	c = new_cache_opts(&o);
	put_status(c, DNS_T_A, "dead.example", DNS_TEMPFAIL, -1, 0);
	assert_int_equal(dns_cache_get(c, DNS_T_A, "dead.example", SEC, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_false(has(c, DNS_T_A, "dead.example", 2 * SEC));
	put_status(c, DNS_T_A, "refused.example", DNS_PERMFAIL, 999, 0);
	assert_false(has(c, DNS_T_A, "refused.example", 2 * SEC));
	dns_cache_free(c);

	/* Never longer than the hard limit, whatever the options say. */
	o.fail_ttl = 3600;
	c = new_cache_opts(&o);
	put_status(c, DNS_T_A, "dead.example", DNS_TEMPFAIL, -1, 0);
	assert_true(has(c, DNS_T_A, "dead.example",
			(DNS_CACHE_FAIL_TTL_MAX - 1) * SEC));
	assert_false(has(c, DNS_T_A, "dead.example",
			 DNS_CACHE_FAIL_TTL_MAX * SEC));
	dns_cache_free(c);

	o.fail_ttl = 0;
	c = new_cache_opts(&o);
	put_status(c, DNS_T_A, "dead.example", DNS_TEMPFAIL, -1, 0);
	assert_false(has(c, DNS_T_A, "dead.example", 0));
	dns_cache_free(c);
}

static void
test_lru_eviction_order(void **state)
{
	struct dns_cache *c = new_cache(3, 1000000);
	struct dns_cache_stats st;

	put_a(c, "a.example", 300, 0);
	put_a(c, "b.example", 300, 0);
	put_a(c, "c.example", 300, 0);
	/* Using a makes b the least recently used. */
	assert_true(has(c, DNS_T_A, "a.example", 0));
	put_a(c, "d.example", 300, 0);
	assert_false(has(c, DNS_T_A, "b.example", 0));
	assert_true(has(c, DNS_T_A, "a.example", 0));
	assert_true(has(c, DNS_T_A, "c.example", 0));
	assert_true(has(c, DNS_T_A, "d.example", 0));
	/* Order now (oldest first): a c d -> a, c, d were all used; a then. */
	put_a(c, "e.example", 300, 0);
	assert_false(has(c, DNS_T_A, "a.example", 0));
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 2);
	dns_cache_free(c);
}

static void
put_txt(struct dns_cache *c, const char *name, size_t len, int expect)
{
	uint8_t *buf = malloc(len);
	struct dns_rr rr;
	struct dns_result r = {DNS_OK, 300, 1, &rr};

	assert_non_null(buf);
	memset(buf, 'v', len);
	rr.data = buf;
	rr.len = len;
	rr.pref = 0;
	assert_int_equal(dns_cache_put(c, DNS_T_TXT, name, &r, -1, 0), expect);
	free(buf);
}

static void
test_byte_bound_with_huge_txt(void **state)
{
	struct dns_cache *c = new_cache(1000, 10000);
	struct dns_cache_stats st;
	struct dns_result r;

	put_txt(c, "t1.example", 4000, 0);
	put_txt(c, "t2.example", 4000, 0);
	dns_cache_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_true(st.bytes > 8000 && st.bytes <= 10000);
	/* A third does not fit beside both: the oldest goes. */
	put_txt(c, "t3.example", 4000, 0);
	assert_false(has(c, DNS_T_TXT, "t1.example", 0));
	assert_int_equal(dns_cache_get(c, DNS_T_TXT, "t3.example", 0, &r), 0);
	assert_int_equal(r.rr[0].len, 4000);
	dns_cache_stats(c, &st);
	assert_true(st.bytes <= 10000);
	/* One answer bigger than the whole cache is refused, evicting none. */
	put_txt(c, "huge.example", 20000, -EFBIG);
	assert_false(has(c, DNS_T_TXT, "huge.example", 0));
	assert_true(has(c, DNS_T_TXT, "t2.example", 0));
	assert_true(has(c, DNS_T_TXT, "t3.example", 0));
	/* Many small answers still fit under the same bound. */
	for (int i = 0; i < 200; i++) {
		char name[32];

		snprintf(name, sizeof(name), "s%d.example", i);
		put_txt(c, name, 10, 0);
		dns_cache_stats(c, &st);
		assert_true(st.bytes <= 10000);
	}
	dns_cache_free(c);
}

static void
test_names_case_insensitive(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);

	put_a(c, "Mail.Example.COM.", 300, 0);
	assert_true(has(c, DNS_T_A, "mail.example.com", 0));
	assert_true(has(c, DNS_T_A, "MAIL.EXAMPLE.COM", 0));
	assert_true(has(c, DNS_T_A, "mail.example.com.", 0));
	assert_false(has(c, DNS_T_A, "mail.example.co", 0));
	dns_cache_free(c);
}

static void
test_bad_names(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);
	struct dns_result r = {DNS_NXDOMAIN, 0, 0, NULL};
	char longname[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(dns_cache_put(c, DNS_T_A, "", &r, 60, 0), -EINVAL);
	assert_int_equal(dns_cache_put(c, DNS_T_A, ".", &r, 60, 0), -EINVAL);
	assert_int_equal(dns_cache_put(c, DNS_T_A, longname, &r, 60, 0), -EINVAL);
	longname[DNS_NAME_MAX] = '\0';
	assert_int_equal(dns_cache_put(c, DNS_T_A, longname, &r, 60, 0), 0);
	assert_true(has(c, DNS_T_A, longname, 0));
	dns_cache_free(c);
}

static void
test_copies_outlive_callers_buffers(void **state)
{
	struct dns_cache *c = new_cache(100, 100000);
	char *name = strdup("copy.example");
	uint8_t *d1 = malloc(5);
	uint8_t *d2 = malloc(3);
	struct dns_rr *rr = malloc(2 * sizeof(*rr));
	struct dns_result in = {DNS_OK, 300, 2, rr};
	struct dns_result out;
	struct dns_result *clone;

	assert_non_null(name);
	assert_non_null(d1);
	assert_non_null(d2);
	assert_non_null(rr);
	memcpy(d1, "v=spf", 5);
	memcpy(d2, "\0x\xff", 3);
	rr[0] = (struct dns_rr){d1, 5, 10};
	rr[1] = (struct dns_rr){d2, 3, 20};
	assert_int_equal(dns_cache_put(c, DNS_T_MX, name, &in, -1, 0), 0);
	assert_int_equal(dns_cache_clone(&in, &clone), 0);
	memset(d1, 'X', 5);
	memset(d2, 'X', 3);
	memset(name, 'X', strlen(name));
	free(d1);
	free(d2);
	free(rr);
	free(name);
	assert_int_equal(dns_cache_get(c, DNS_T_MX, "copy.example", 0, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.rr[0].len, 5);
	assert_memory_equal(out.rr[0].data, "v=spf", 5);
	assert_int_equal(out.rr[0].pref, 10);
	assert_int_equal(out.rr[1].len, 3);
	assert_memory_equal(out.rr[1].data, "\0x\xff", 3);
	assert_int_equal(out.rr[1].pref, 20);
	assert_int_equal(clone->n, 2);
	assert_int_equal(clone->ttl, 300);
	assert_memory_equal(clone->rr[0].data, "v=spf", 5);
	assert_memory_equal(clone->rr[1].data, "\0x\xff", 3);
	free(clone);
	dns_cache_free(c);
}

static void
test_disabled_cache_keeps_nothing(void **state)
{
	struct dns_cache *c = new_cache(0, 100000);

	put_a(c, "a.example", 300, 0);
	assert_false(has(c, DNS_T_A, "a.example", 0));
	dns_cache_free(c);
}

static void
test_many_entries_stay_findable(void **state)
{
	struct dns_cache *c = new_cache(5000, 10000000);
	char name[64];
	int i;

	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		put_a(c, name, 300, 0);
	}
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "H%d.EXAMPLE", i);
		assert_true(has(c, DNS_T_A, name, 0));
	}
	dns_cache_free(c);
}

/* ---- dns_wire ---------------------------------------------------------- */

/* example. A? -> one CNAME (ttl 50) and one A (ttl 300). */
static const uint8_t msg_answer[] = {
	0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
	0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 50, 0, 4, 1, 'b', 0xc0, 12,
	0xc0, 33, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1,
};

/* example. MX? NODATA with SOA ttl 3600, minimum 120. */
static const uint8_t msg_soa[] = {
	0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 1, 0, 0,
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 15, 0, 1,
	0xc0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10, 0, 23,
	0, 0xc0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
	0, 0, 0, 120,
};

static void
test_wire_ttls(void **state)
{
	struct dns_wire_ttls t;

	assert_int_equal(dns_wire_ttls(msg_answer, sizeof(msg_answer), &t), 0);
	assert_int_equal(t.answer_ttl, 50);
	assert_int_equal(t.soa_ttl, -1);
	assert_int_equal(dns_wire_ttls(msg_soa, sizeof(msg_soa), &t), 0);
	assert_int_equal(t.answer_ttl, UINT32_MAX);
	assert_int_equal(t.soa_ttl, 120);
}

static void
test_wire_truncated_is_an_error(void **state)
{
	struct dns_wire_ttls t;
	size_t n;

	for (n = 0; n < sizeof(msg_answer); n++)
		assert_int_equal(dns_wire_ttls(msg_answer, n, &t), -EBADMSG);
	for (n = 0; n < sizeof(msg_soa); n++)
		assert_int_equal(dns_wire_ttls(msg_soa, n, &t), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_expiry),
		cmocka_unit_test(test_ttl_floor_and_ceiling),
		cmocka_unit_test(test_zero_ttl_is_not_kept_and_replaces),
		cmocka_unit_test(test_replace_keeps_one_entry),
		cmocka_unit_test(test_negative_caching),
		cmocka_unit_test(test_failures_cached_briefly),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_byte_bound_with_huge_txt),
		cmocka_unit_test(test_names_case_insensitive),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_copies_outlive_callers_buffers),
		cmocka_unit_test(test_disabled_cache_keeps_nothing),
		cmocka_unit_test(test_many_entries_stay_findable),
		cmocka_unit_test(test_wire_ttls),
		cmocka_unit_test(test_wire_truncated_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
