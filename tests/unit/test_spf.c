/*
 * test_spf - the SPF evaluator (RFC 7208) driven to completion by a fake
 * resolver: a table of (type, name) -> status and records, answering
 * every question spf_step() asks, as the daemon's resolver will.
 *
 * Each case names the rule of RFC 7208 it checks.  The macro cases are
 * the examples of section 7.4, with the expansions worked out from the
 * rules of 7.1-7.3.  Limits are checked on both sides of the edge
 * (10 DNS terms pass, 11 are a permerror; 2 void lookups pass, 3 are a
 * permerror; 10 MX names pass, 11 are a permerror).
 */
#include "spf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spf_macro.h"
#include "spf_parse.h"

/* ---- the fake resolver ----------------------------------------------------- */

#define RRS_MAX 16

struct rrset {
	enum dns_type type;
	const char *name;
	enum dns_status status;	/* DNS_OK (0) unless set */
	const char *rr[RRS_MAX];	/* TXT text, A/AAAA numeric, MX/PTR names */
};

struct answer {
	struct dns_result res;
	struct dns_rr rr[RRS_MAX];
	uint8_t bytes[RRS_MAX][16];
};

static bool
name_known(const struct rrset *zone, const char *name)
{
	for (; zone->name != NULL; zone++)
		if (strcasecmp(zone->name, name) == 0)
			return true;
	return false;
}

/* len0, when not 0, is the length of zone[0].rr[0] (which may hold NULs). */
static void
resolve(const struct rrset *zone, size_t len0, enum dns_type type,
	const char *name, struct answer *a)
{
	const struct rrset *z;

	memset(a, 0, sizeof(*a));
	a->res.rr = a->rr;
	for (z = zone; z->name != NULL; z++) {
		if (z->type == type && strcasecmp(z->name, name) == 0)
			break;
	}
	if (z->name == NULL) {
		a->res.status = name_known(zone, name) ? DNS_NODATA : DNS_NXDOMAIN;
		return;
	}
	a->res.status = z->status;
	if (z->status != DNS_OK)
		return;
	for (size_t i = 0; i < RRS_MAX && z->rr[i] != NULL; i++) {
		const char *d = z->rr[i];

		if (type == DNS_T_A || type == DNS_T_AAAA) {
			int af = type == DNS_T_A ? AF_INET : AF_INET6;

			assert_int_equal(inet_pton(af, d, a->bytes[i]), 1);
			a->rr[i].data = a->bytes[i];
			a->rr[i].len = type == DNS_T_A ? 4 : 16;
		} else {
			a->rr[i].data = (const uint8_t *)d;
			a->rr[i].len = z == zone && i == 0 && len0 ? len0 : strlen(d);
		}
		a->res.n++;
	}
}

/* ---- the driver -------------------------------------------------------------- */

#define STEPS_MAX 200
#define LOG_MAX 64

struct run {
	enum spf_result result;
	char why[256];
	unsigned lookups;
	unsigned queries;
	bool broad;		/* spf_too_broad() */
	char log[LOG_MAX][DNS_NAME_MAX + 8];	/* "TYPE name" */
};

static const char *
type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A: return "A";
	case DNS_T_AAAA: return "AAAA";
	case DNS_T_MX: return "MX";
	case DNS_T_PTR: return "PTR";
	case DNS_T_TXT: return "TXT";
	}
	return "?";
}

static struct addr
client_addr(const char *text)
{
	struct addr a;

	assert_int_equal(addr_parse(&a, text, strlen(text)), 0);
	return a;
}

static void
run_query(struct run *r, const struct rrset *zone, size_t len0,
	  const struct spf_query *q)
{
	static struct answer a;	/* large; one test runs at a time */
	const struct dns_result *answer = NULL;
	char qname[DNS_NAME_MAX + 1];
	enum dns_type qtype;
	spf_t *s;
	unsigned steps = 0;

	memset(r, 0, sizeof(*r));
	assert_int_equal(spf_new(&s, q), 0);
	while (spf_step(s, answer, &qtype, qname) == SPF_STEP_LOOKUP) {
		assert_true(++steps < STEPS_MAX);
		assert_true(strlen(qname) >= 1 && strlen(qname) <= DNS_NAME_MAX);
		if (r->queries < LOG_MAX)
			snprintf(r->log[r->queries], sizeof(r->log[0]), "%s %s",
				 type_name(qtype), qname);
		r->queries++;
		resolve(zone, len0, qtype, qname, &a);
		answer = &a.res;
	}
	r->result = spf_result(s);
	r->broad = spf_too_broad(s);
	snprintf(r->why, sizeof(r->why), "%s", spf_why(s));
	r->lookups = spf_lookups(s);
	/* Done is final. */
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_DONE);
	assert_int_equal(spf_result(s), r->result);
	spf_free(s);
}

static void
run_spf(struct run *r, const struct rrset *zone, const char *client,
	const char *sender, const char *helo)
{
	struct spf_query q = {
		.client = client_addr(client), .sender = sender, .helo = helo,
		.receiver = "mx.receiver.example", .now = 1700000000,
	};

	run_query(r, zone, 0, &q);
}

static bool
logged(const struct run *r, const char *line)
{
	for (unsigned i = 0; i < r->queries && i < LOG_MAX; i++)
		if (strcmp(r->log[i], line) == 0)
			return true;
	return false;
}

/* ---- the zone most cases share ------------------------------------------------- */

#define TEN_MX "m1.mx10.example", "m2.mx10.example", "m3.mx10.example", \
	"m4.mx10.example", "m5.mx10.example", "m6.mx10.example", \
	"m7.mx10.example", "m8.mx10.example", "m9.mx10.example"

static const struct rrset zone[] = {
	/* record selection (4.5) */
	{DNS_T_A, "norecord.example", 0, {"192.0.2.10"}},
	{DNS_T_TXT, "two.example", 0, {"v=spf1 -all", "v=spf1 +all"}},
	{DNS_T_TXT, "case.example", 0, {"V=SpF1 ip4:192.0.2.3 -all"}},
	{DNS_T_TXT, "othertxt.example", 0,
	 {"site-verification=abc", "v=spf1 -all", "v=spf10 +all"}},
	{DNS_T_TXT, "spf10.example", 0, {"v=spf10 +all"}},
	{DNS_T_TXT, "spf1x.example", 0, {"v=spf1x +all"}},
	{DNS_T_TXT, "empty.example", 0, {"v=spf1"}},
	{DNS_T_TXT, "spaces.example", 0, {"v=spf1   ip4:192.0.2.3   -all  "}},
	{DNS_T_TXT, "txttemp.example", DNS_TEMPFAIL, {NULL}},
	{DNS_T_TXT, "txtperm.example", DNS_PERMFAIL, {NULL}},
	/* all and qualifiers (4.6.2, 5.1) */
	{DNS_T_TXT, "fail.example", 0, {"v=spf1 -all"}},
	{DNS_T_TXT, "softfail.example", 0, {"v=spf1 ~all"}},
	{DNS_T_TXT, "neutral.example", 0, {"v=spf1 ?all"}},
	{DNS_T_TXT, "pass.example", 0, {"v=spf1 +all"}},
	{DNS_T_TXT, "bare.example", 0, {"v=spf1 all"}},
	{DNS_T_TXT, "first.example", 0, {"v=spf1 ~all -all +all"}},
	/* ip4, ip6 (5.6) */
	{DNS_T_TXT, "ip.example", 0,
	 {"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8:a::/48 "
	  "-ip6:2001:db8:b::1 ip4:203.0.113.0/0 ?all"}},
	{DNS_T_TXT, "ip6only.example", 0, {"v=spf1 ip6:2001:db8::/32 -all"}},
	/* a (5.3) */
	{DNS_T_TXT, "a.example", 0, {"v=spf1 a -all"}},
	{DNS_T_A, "a.example", 0, {"192.0.2.3"}},
	{DNS_T_AAAA, "a.example", 0, {"2001:db8::3"}},
	{DNS_T_TXT, "acidr.example", 0,
	 {"v=spf1 a:host.acidr.example/24//64 -all"}},
	{DNS_T_A, "host.acidr.example", 0, {"192.0.2.200"}},
	{DNS_T_AAAA, "host.acidr.example", 0, {"2001:db8:1:2::1"}},
	{DNS_T_TXT, "a6.example", 0, {"v=spf1 a//48 -all"}},
	{DNS_T_AAAA, "a6.example", 0, {"2001:db8:5:1::1"}},
	/* mx (5.4) */
	{DNS_T_TXT, "mx.example", 0, {"v=spf1 mx -all"}},
	{DNS_T_MX, "mx.example", 0, {"mx1.mx.example", "mx2.mx.example"}},
	{DNS_T_A, "mx1.mx.example", 0, {"198.51.100.1"}},
	{DNS_T_A, "mx2.mx.example", 0, {"192.0.2.3"}},
	{DNS_T_TXT, "mxcidr.example", 0, {"v=spf1 mx:mx.example/24 mx//48 -all"}},
	{DNS_T_MX, "mxcidr.example", 0, {"mx1.mxcidr.example"}},
	{DNS_T_AAAA, "mx1.mxcidr.example", 0, {"2001:db8:7::1"}},
	{DNS_T_TXT, "mx10.example", 0, {"v=spf1 mx ip4:192.0.2.3 -all"}},
	{DNS_T_MX, "mx10.example", 0, {TEN_MX, "m10.mx10.example"}},
	{DNS_T_TXT, "mx11.example", 0, {"v=spf1 mx:mx10.example mx ?all"}},
	{DNS_T_MX, "mx11.example", 0, {TEN_MX, "m10.mx10.example", "m11.mx10.example"}},
	{DNS_T_TXT, "nullmx.example", 0, {"v=spf1 mx ?all"}},
	{DNS_T_MX, "nullmx.example", 0, {""}},
	{DNS_T_TXT, "mxtemp.example", 0, {"v=spf1 mx ?all"}},
	{DNS_T_MX, "mxtemp.example", 0, {"down.mxtemp.example"}},
	{DNS_T_A, "down.mxtemp.example", DNS_TEMPFAIL, {NULL}},
	/* ptr (5.5) */
	{DNS_T_TXT, "ptr.example", 0, {"v=spf1 ptr -all"}},
	{DNS_T_PTR, "3.2.0.192.in-addr.arpa", 0,
	 {"mail.elsewhere.example", "mail.ptr.example"}},
	{DNS_T_A, "mail.ptr.example", 0, {"192.0.2.3"}},
	{DNS_T_A, "mail.elsewhere.example", 0, {"192.0.2.3"}},
	{DNS_T_PTR, "5.2.0.192.in-addr.arpa", 0, {"forged.ptr.example"}},
	{DNS_T_A, "forged.ptr.example", 0, {"198.51.100.99"}},
	{DNS_T_PTR, "6.2.0.192.in-addr.arpa", DNS_TEMPFAIL, {NULL}},
	{DNS_T_TXT, "ptr11.example", 0, {"v=spf1 ptr -all"}},
	{DNS_T_PTR, "7.2.0.192.in-addr.arpa", 0,
	 {"n1.x.example", "n2.x.example", "n3.x.example", "n4.x.example",
	  "n5.x.example", "n6.x.example", "n7.x.example", "n8.x.example",
	  "n9.x.example", "n10.x.example", "mail.ptr11.example"}},
	{DNS_T_A, "mail.ptr11.example", 0, {"192.0.2.7"}},
	{DNS_T_TXT, "ptrtarget.example", 0, {"v=spf1 ptr:ptr.example -all"}},
	/* exists (5.7) */
	{DNS_T_TXT, "exists.example", 0,
	 {"v=spf1 exists:%{i}.%{l}.list.exists.example -all"}},
	{DNS_T_A, "192.0.2.3.user.list.exists.example", 0, {"127.0.0.2"}},
	{DNS_T_TXT, "exists6.example", 0, {"v=spf1 exists:%{ir}.%{v}.e6.example -all"}},
	{DNS_T_A, "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.e6.example",
	 0, {"127.0.0.2"}},
	{DNS_T_TXT, "existstemp.example", 0, {"v=spf1 exists:tf.example +all"}},
	{DNS_T_A, "tf.example", DNS_TEMPFAIL, {NULL}},
	{DNS_T_TXT, "atemp.example", 0, {"v=spf1 a:tf.example +all"}},
	{DNS_T_TXT, "aperm.example", 0, {"v=spf1 a:refused.example +all"}},
	{DNS_T_A, "refused.example", DNS_PERMFAIL, {NULL}},
	/* include (5.2) and its result table */
	{DNS_T_TXT, "t-pass.example", 0, {"v=spf1 +all"}},
	{DNS_T_TXT, "t-fail.example", 0, {"v=spf1 -all"}},
	{DNS_T_TXT, "t-soft.example", 0, {"v=spf1 ~all"}},
	{DNS_T_TXT, "t-neutral.example", 0, {"v=spf1 ?all"}},
	{DNS_T_TXT, "t-temp.example", DNS_TEMPFAIL, {NULL}},
	{DNS_T_TXT, "t-perm.example", 0, {"v=spf1 bogus"}},
	{DNS_T_A, "t-none.example", 0, {"192.0.2.99"}},
	{DNS_T_TXT, "inc-pass.example", 0, {"v=spf1 -include:t-pass.example ?all"}},
	{DNS_T_TXT, "inc-fail.example", 0, {"v=spf1 include:t-fail.example ?all"}},
	{DNS_T_TXT, "inc-soft.example", 0, {"v=spf1 include:t-soft.example ?all"}},
	{DNS_T_TXT, "inc-neutral.example", 0, {"v=spf1 include:t-neutral.example -all"}},
	{DNS_T_TXT, "inc-temp.example", 0, {"v=spf1 include:t-temp.example +all"}},
	{DNS_T_TXT, "inc-perm.example", 0, {"v=spf1 include:t-perm.example +all"}},
	{DNS_T_TXT, "inc-none.example", 0, {"v=spf1 include:t-none.example +all"}},
	{DNS_T_TXT, "inc-nx.example", 0, {"v=spf1 include:nowhere.example +all"}},
	{DNS_T_TXT, "inc-d.example", 0, {"v=spf1 include:sub.inc-d.example -all"}},
	{DNS_T_TXT, "sub.inc-d.example", 0, {"v=spf1 a ?all"}},
	{DNS_T_A, "sub.inc-d.example", 0, {"192.0.2.3"}},
	/* redirect and exp (6) */
	{DNS_T_TXT, "red.example", 0, {"v=spf1 redirect=t-soft.example"}},
	{DNS_T_TXT, "red-first.example", 0, {"v=spf1 redirect=t-fail.example ip4:192.0.2.3"}},
	{DNS_T_TXT, "red-none.example", 0, {"v=spf1 redirect=t-none.example"}},
	{DNS_T_TXT, "red-all.example", 0, {"v=spf1 ?all redirect=t-fail.example"}},
	{DNS_T_TXT, "red-d.example", 0, {"v=spf1 redirect=r.%{d}"}},
	{DNS_T_TXT, "r.red-d.example", 0, {"v=spf1 a -all"}},
	{DNS_T_A, "r.red-d.example", 0, {"192.0.2.3"}},
	{DNS_T_TXT, "red-dup.example", 0,
	 {"v=spf1 redirect=t-pass.example redirect=t-fail.example"}},
	{DNS_T_TXT, "exp.example", 0, {"v=spf1 exp=why.%{d} -all"}},
	{DNS_T_TXT, "exp-crt.example", 0, {"v=spf1 -all exp=%{c}.%{r}.%{t}.x.example"}},
	{DNS_T_TXT, "exp-dup.example", 0, {"v=spf1 exp=a.example exp=b.example -all"}},
	{DNS_T_TXT, "unknown-mod.example", 0, {"v=spf1 foo=bar x-y.z=%{d} -all"}},
	{DNS_T_TXT, "bad-mod.example", 0, {"v=spf1 foo=%{z} -all"}},
	/* loops (4.6.4) */
	{DNS_T_TXT, "loop.example", 0, {"v=spf1 include:loop.example -all"}},
	{DNS_T_TXT, "rloop.example", 0, {"v=spf1 redirect=rloop.example"}},
	{DNS_T_TXT, "ping.example", 0, {"v=spf1 include:pong.example -all"}},
	{DNS_T_TXT, "pong.example", 0, {"v=spf1 include:ping.example -all"}},
	/* lookup limit: e.example is an empty (neutral) record */
	{DNS_T_TXT, "e.example", 0, {"v=spf1"}},
	{DNS_T_TXT, "lim10.example", 0,
	 {"v=spf1 include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example ip4:192.0.2.3 -all"}},
	{DNS_T_TXT, "lim11.example", 0,
	 {"v=spf1 include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example ip4:192.0.2.3 -all"}},
	{DNS_T_TXT, "limred.example", 0,
	 {"v=spf1 include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "redirect=pass.example"}},
	{DNS_T_TXT, "limred11.example", 0,
	 {"v=spf1 include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example include:e.example include:e.example "
	  "include:e.example redirect=pass.example"}},
	{DNS_T_TXT, "limip.example", 0,
	 {"v=spf1 a:mx1.mx.example a:mx1.mx.example a:mx1.mx.example "
	  "a:mx1.mx.example a:mx1.mx.example a:mx1.mx.example "
	  "a:mx1.mx.example a:mx1.mx.example a:mx1.mx.example "
	  "a:mx1.mx.example ip4:198.51.100.0/24 ip4:203.0.113.0/24 ip4:192.0.2.3 -all"}},
	{DNS_T_TXT, "c1.example", 0, {"v=spf1 include:c2.example"}},
	{DNS_T_TXT, "c2.example", 0, {"v=spf1 include:c3.example"}},
	{DNS_T_TXT, "c3.example", 0, {"v=spf1 include:c4.example"}},
	{DNS_T_TXT, "c4.example", 0, {"v=spf1 include:c5.example"}},
	{DNS_T_TXT, "c5.example", 0, {"v=spf1 include:c6.example"}},
	{DNS_T_TXT, "c6.example", 0, {"v=spf1 include:c7.example"}},
	{DNS_T_TXT, "c7.example", 0, {"v=spf1 include:c8.example"}},
	{DNS_T_TXT, "c8.example", 0, {"v=spf1 include:c9.example"}},
	{DNS_T_TXT, "c9.example", 0, {"v=spf1 include:c10.example"}},
	{DNS_T_TXT, "c10.example", 0, {"v=spf1 ip4:192.0.2.3 include:c11.example"}},
	{DNS_T_TXT, "c11.example", 0, {"v=spf1 ip4:192.0.2.4 include:c12.example"}},
	{DNS_T_TXT, "c12.example", 0, {"v=spf1 +all"}},
	/* void lookups (4.6.4) */
	{DNS_T_TXT, "void2.example", 0,
	 {"v=spf1 a:nx1.example mx:norecord.example ip4:192.0.2.3 -all"}},
	{DNS_T_TXT, "void3.example", 0,
	 {"v=spf1 a:nx1.example mx:norecord.example exists:nx3.example "
	  "ip4:192.0.2.3 -all"}},
	/* syntax (4.6, 12) */
	{DNS_T_TXT, "after-match.example", 0, {"v=spf1 +all ip4:192.0.2.300"}},
	/* HELO identity for the null sender */
	{DNS_T_TXT, "helo.example", 0, {"v=spf1 exists:%{l}.%{o}.%{h}.n.example -all"}},
	{DNS_T_A, "postmaster.helo.example.helo.example.n.example", 0, {"127.0.0.2"}},
	/* macros in names */
	{DNS_T_TXT, "long.example", 0,
	 {"v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.long.example -all"}},
	{DNS_T_TXT, "badname.example", 0, {"v=spf1 exists:%{l}.bad.example -all"}},
	{DNS_T_TXT, "bigexp.example", 0,
	 {"v=spf1 exists:%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{S}%{S}%{S}%{S}.x.example -all"}},
	{0, NULL, 0, {NULL}},
};

/* ---- table-driven evaluation ------------------------------------------------- */

struct eval_case {
	const char *rule;
	const char *client;
	const char *sender;
	enum spf_result expect;
	const char *why;	/* substring of spf_why(), or NULL */
};

static const struct eval_case cases[] = {
	/* 4.3, 4.4, 4.5: which record, if any */
	{"no TXT at all", "192.0.2.3", "u@nowhere.example", SPF_NONE, "no SPF record"},
	{"TXT NODATA", "192.0.2.3", "u@norecord.example", SPF_NONE, NULL},
	{"two SPF records", "192.0.2.3", "u@two.example", SPF_PERMERROR, "2 SPF records"},
	{"version is case-insensitive", "192.0.2.3", "u@case.example", SPF_PASS, NULL},
	{"other TXT records ignored", "192.0.2.3", "u@othertxt.example", SPF_FAIL, NULL},
	{"v=spf10 is not v=spf1", "192.0.2.3", "u@spf10.example", SPF_NONE, NULL},
	{"v=spf1x is not v=spf1", "192.0.2.3", "u@spf1x.example", SPF_NONE, NULL},
	{"empty record is neutral", "192.0.2.3", "u@empty.example", SPF_NEUTRAL, "neutral by default"},
	{"runs of spaces", "192.0.2.3", "u@spaces.example", SPF_PASS, NULL},
	{"TXT tempfail", "192.0.2.3", "u@txttemp.example", SPF_TEMPERROR, "TXT lookup"},
	{"TXT refused", "192.0.2.3", "u@txtperm.example", SPF_TEMPERROR, NULL},
	{"single-label domain", "192.0.2.3", "u@localhost", SPF_NONE, "not a domain"},
	{"address literal", "192.0.2.3", "u@[192.0.2.1]", SPF_NONE, NULL},
	{"numeric domain", "192.0.2.3", "u@192.0.2.1", SPF_NONE, NULL},
	{"empty label", "192.0.2.3", "u@a..example", SPF_NONE, NULL},
	{"label of 64", "192.0.2.3",
	 "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	 SPF_NONE, NULL},
	{"trailing dot", "192.0.2.3", "u@fail.example.", SPF_FAIL, NULL},
	/* 5.1 all, 4.6.2 qualifiers */
	{"-all", "192.0.2.3", "u@fail.example", SPF_FAIL, "matched '-all' in fail.example"},
	{"~all", "192.0.2.3", "u@softfail.example", SPF_SOFTFAIL, NULL},
	{"?all", "192.0.2.3", "u@neutral.example", SPF_NEUTRAL, NULL},
	{"+all", "192.0.2.3", "u@pass.example", SPF_PASS, NULL},
	{"all", "192.0.2.3", "u@bare.example", SPF_PASS, NULL},
	{"first match wins", "192.0.2.3", "u@first.example", SPF_SOFTFAIL, NULL},
	/* 5.6 ip4, ip6 */
	{"ip4 net", "192.0.2.77", "u@ip.example", SPF_PASS, "ip4:192.0.2.0/24"},
	{"ip4 host", "198.51.100.7", "u@ip.example", SPF_PASS, NULL},
	{"ip4 host misses neighbour", "198.51.100.8", "u@ip.example", SPF_PASS, "/0"},
	{"ip6 net", "2001:db8:a:ffff::1", "u@ip.example", SPF_PASS, NULL},
	{"-ip6 host", "2001:db8:b::1", "u@ip.example", SPF_FAIL, NULL},
	{"ip6 outside", "2001:db8:c::1", "u@ip.example", SPF_NEUTRAL, NULL},
	{"IPv4-mapped is IPv4", "::ffff:192.0.2.3", "u@ip.example", SPF_PASS, "ip4:192.0.2.0/24"},
	{"ip6 never matches IPv4", "192.0.2.3", "u@ip6only.example", SPF_FAIL, NULL},
	/* 5.3 a */
	{"a IPv4", "192.0.2.3", "u@a.example", SPF_PASS, "matched 'a' in a.example"},
	{"a IPv6 asks AAAA", "2001:db8::3", "u@a.example", SPF_PASS, NULL},
	{"a no match", "192.0.2.4", "u@a.example", SPF_FAIL, NULL},
	{"a/24 IPv4", "192.0.2.3", "u@acidr.example", SPF_PASS, NULL},
	{"a//64 IPv6 in", "2001:db8:1:2::99", "u@acidr.example", SPF_PASS, NULL},
	{"a//64 IPv6 out", "2001:db8:1:3::1", "u@acidr.example", SPF_FAIL, NULL},
	{"a/24 IPv4 out", "192.0.3.3", "u@acidr.example", SPF_FAIL, NULL},
	{"a//48", "2001:db8:5:ffff::1", "u@a6.example", SPF_PASS, NULL},
	{"a tempfail", "192.0.2.3", "u@atemp.example", SPF_TEMPERROR, "DNS lookup failed"},
	{"a refused", "192.0.2.3", "u@aperm.example", SPF_TEMPERROR, NULL},
	/* 5.4 mx */
	{"mx second host", "192.0.2.3", "u@mx.example", SPF_PASS, NULL},
	{"mx no host matches", "192.0.2.4", "u@mx.example", SPF_FAIL, NULL},
	{"mx:d/24", "192.0.2.250", "u@mxcidr.example", SPF_PASS, NULL},
	{"mx//48", "2001:db8:7:9::9", "u@mxcidr.example", SPF_PASS, NULL},
	{"10 MX names", "192.0.2.3", "u@mx10.example", SPF_PASS, NULL},
	{"11 MX names", "192.0.2.3", "u@mx11.example", SPF_PERMERROR, "more than 10 MX"},
	{"null MX", "192.0.2.3", "u@nullmx.example", SPF_NEUTRAL, NULL},
	{"MX host tempfail", "192.0.2.3", "u@mxtemp.example", SPF_TEMPERROR, NULL},
	/* 5.5 ptr */
	{"ptr validated", "192.0.2.3", "u@ptr.example", SPF_PASS, "matched 'ptr'"},
	{"ptr forged name", "192.0.2.5", "u@ptr.example", SPF_FAIL, NULL},
	{"ptr tempfail is no match", "192.0.2.6", "u@ptr.example", SPF_FAIL, NULL},
	{"ptr no name", "192.0.2.9", "u@ptr.example", SPF_FAIL, NULL},
	{"ptr past 10 names ignored", "192.0.2.7", "u@ptr11.example", SPF_FAIL, NULL},
	{"ptr:domain", "192.0.2.3", "u@ptrtarget.example", SPF_PASS, NULL},
	/* 5.7 exists */
	{"exists", "192.0.2.3", "user@exists.example", SPF_PASS, NULL},
	{"exists no", "192.0.2.4", "user@exists.example", SPF_FAIL, NULL},
	{"exists IPv6 asks A", "2001:db8::3", "u@exists6.example", SPF_PASS, NULL},
	{"exists tempfail", "192.0.2.3", "u@existstemp.example", SPF_TEMPERROR, NULL},
	/* 5.2 include result table */
	{"include pass matches", "192.0.2.3", "u@inc-pass.example", SPF_FAIL,
	 "matched '-include:t-pass.example' in inc-pass.example"},
	{"include fail no match", "192.0.2.3", "u@inc-fail.example", SPF_NEUTRAL, NULL},
	{"include softfail no match", "192.0.2.3", "u@inc-soft.example", SPF_NEUTRAL, NULL},
	{"include neutral no match", "192.0.2.3", "u@inc-neutral.example", SPF_FAIL, NULL},
	{"include temperror", "192.0.2.3", "u@inc-temp.example", SPF_TEMPERROR, NULL},
	{"include permerror", "192.0.2.3", "u@inc-perm.example", SPF_PERMERROR, "unknown mechanism"},
	{"include none", "192.0.2.3", "u@inc-none.example", SPF_PERMERROR, "include target"},
	{"include nxdomain", "192.0.2.3", "u@inc-nx.example", SPF_PERMERROR, NULL},
	{"include sets %{d}", "192.0.2.3", "u@inc-d.example", SPF_PASS, NULL},
	/* 6.1 redirect, 6.2 exp, unknown modifiers */
	{"redirect", "192.0.2.3", "u@red.example", SPF_SOFTFAIL, NULL},
	{"redirect after mechanisms", "192.0.2.3", "u@red-first.example", SPF_PASS, NULL},
	{"redirect none", "192.0.2.3", "u@red-none.example", SPF_PERMERROR, "redirect target"},
	{"redirect ignored with all", "192.0.2.3", "u@red-all.example", SPF_NEUTRAL, NULL},
	{"redirect macro and new %{d}", "192.0.2.3", "u@red-d.example", SPF_PASS, NULL},
	{"two redirects", "192.0.2.3", "u@red-dup.example", SPF_PERMERROR, "more than one redirect"},
	{"exp parsed, ignored", "192.0.2.3", "u@exp.example", SPF_FAIL, NULL},
	{"c r t only in exp text", "192.0.2.3", "u@exp-crt.example", SPF_PERMERROR, NULL},
	{"two exps", "192.0.2.3", "u@exp-dup.example", SPF_PERMERROR, "more than one exp"},
	{"unknown modifiers ignored", "192.0.2.3", "u@unknown-mod.example", SPF_FAIL, NULL},
	{"bad macro in a modifier", "192.0.2.3", "u@bad-mod.example", SPF_PERMERROR, NULL},
	/* 4.6.4 limits */
	{"include loop", "192.0.2.3", "u@loop.example", SPF_PERMERROR, "more than 10"},
	{"redirect loop", "192.0.2.3", "u@rloop.example", SPF_PERMERROR, "more than 10"},
	{"include ping-pong", "192.0.2.3", "u@ping.example", SPF_PERMERROR, "more than 10"},
	{"10 DNS terms", "192.0.2.3", "u@lim10.example", SPF_PASS, NULL},
	{"11 DNS terms", "192.0.2.3", "u@lim11.example", SPF_PERMERROR, "more than 10 DNS"},
	{"redirect is the 10th", "192.0.2.3", "u@limred.example", SPF_PASS, NULL},
	{"redirect is the 11th", "192.0.2.3", "u@limred11.example", SPF_PERMERROR, NULL},
	{"ip4 after 10 a is free", "192.0.2.3", "u@limip.example", SPF_PASS, NULL},
	{"include chain 9 deep", "192.0.2.3", "u@c1.example", SPF_PASS, NULL},
	{"include chain 10 deep", "192.0.2.4", "u@c1.example", SPF_PASS, NULL},
	{"include chain 11 deep", "192.0.2.5", "u@c1.example", SPF_PERMERROR, "more than 10"},
	{"2 void lookups", "192.0.2.3", "u@void2.example", SPF_PASS, NULL},
	{"3 void lookups", "192.0.2.3", "u@void3.example", SPF_PERMERROR, "void"},
	/* 4.6 a syntax error anywhere, even after a match */
	{"error after the match", "192.0.2.3", "u@after-match.example", SPF_PERMERROR, "ip4"},
	/* 2.4 null sender: postmaster@HELO */
	{"null sender uses HELO", "192.0.2.3", "", SPF_PASS, NULL},
	{"@domain is postmaster@domain", "192.0.2.3", "@helo.example", SPF_PASS, NULL},
	/* 4.8 expansion cut to 253 from the left */
	{"macro longer than a name", "192.0.2.3",
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@long.example",
	 SPF_FAIL, NULL},
	{"macro makes an empty label", "192.0.2.3", "a..b@badname.example",
	 SPF_PERMERROR, "invalid name"},
	{"macro makes a 64-byte label", "192.0.2.3",
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@badname.example",
	 SPF_PERMERROR, NULL},
};

static void
test_rfc7208_cases(void **state)
{
	struct run r;
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct eval_case *c = &cases[i];

		run_spf(&r, zone, c->client, c->sender, "helo.example");
		if (r.result != c->expect ||
		    (c->why != NULL && strstr(r.why, c->why) == NULL)) {
			print_error("%s: %s for %s: got %s (%s), want %s%s%s\n",
				    c->rule, c->sender, c->client,
				    spf_result_name(r.result), r.why,
				    spf_result_name(c->expect),
				    c->why ? " with " : "", c->why ? c->why : "");
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* The queries the evaluator asks are the ones the rules name. */
static void
test_queries_asked(void **state)
{
	struct run r;

	(void)state;
	run_spf(&r, zone, "192.0.2.3", "user@exists.example", "h.example");
	assert_true(logged(&r, "TXT exists.example"));
	assert_true(logged(&r, "A 192.0.2.3.user.list.exists.example"));

	run_spf(&r, zone, "2001:db8::3", "u@a.example", "h.example");
	assert_true(logged(&r, "AAAA a.example"));
	assert_false(logged(&r, "A a.example"));

	run_spf(&r, zone, "192.0.2.3", "u@ptr.example", "h.example");
	assert_true(logged(&r, "PTR 3.2.0.192.in-addr.arpa"));
	assert_true(logged(&r, "A mail.ptr.example"));
	/* A name outside the domain is not worth validating. */
	assert_false(logged(&r, "A mail.elsewhere.example"));

	run_spf(&r, zone, "2001:db8::cb01", "u@ptr.example", "h.example");
	assert_true(logged(&r, "PTR 1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
			   "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"));

	/* 4.8: whole labels are cut from the left down to 253 bytes. */
	run_spf(&r, zone, "192.0.2.3",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"@long.example", "h.example");
	assert_int_equal(r.result, SPF_FAIL);
	assert_int_equal(r.queries, 2);
	assert_int_equal(strlen(r.log[1]), 2 + 3 * 63 + 12);
	assert_string_equal(r.log[1] + 2 + 3 * 63, "long.example");

	/* Mechanisms after a match are not evaluated. */
	run_spf(&r, zone, "192.0.2.3", "u@red-first.example", "h.example");
	assert_int_equal(r.queries, 1);
	assert_int_equal(r.lookups, 0);
}

/* The explanations, whole: they go to logs and greyholdctl check. */
static void
test_why_texts(void **state)
{
	static const struct {
		const char *client, *sender, *why;
	} c[] = {
		{"192.0.2.3", "u@fail.example", "matched '-all' in fail.example"},
		{"192.0.2.3", "u@inc-pass.example",
		 "matched '-include:t-pass.example' in inc-pass.example; "
		 "matched '+all' in t-pass.example"},
		{"192.0.2.3", "u@empty.example",
		 "no mechanism matched in empty.example (neutral by default)"},
		{"192.0.2.3", "u@nowhere.example", "no SPF record at nowhere.example"},
		{"192.0.2.3", "u@two.example", "2 SPF records at two.example"},
		{"192.0.2.3", "u@lim11.example",
		 "more than 10 DNS-querying terms at 'include:e.example' in "
		 "lim11.example"},
		{"192.0.2.3", "u@atemp.example",
		 "DNS lookup failed at 'a:tf.example' in atemp.example"},
		{"192.0.2.3", "u@localhost", "'localhost' is not a domain name"},
	};
	struct run r;

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		run_spf(&r, zone, c[i].client, c[i].sender, "h.example");
		assert_string_equal(r.why, c[i].why);
	}
}

static void
test_lookup_counts(void **state)
{
	struct run r;

	(void)state;
	run_spf(&r, zone, "192.0.2.3", "u@lim10.example", "h.example");
	assert_int_equal(r.result, SPF_PASS);
	assert_int_equal(r.lookups, 10);
	run_spf(&r, zone, "192.0.2.3", "u@lim11.example", "h.example");
	assert_int_equal(r.result, SPF_PERMERROR);
	assert_int_equal(r.lookups, 11);
	/* The 11th term is refused before it is asked. */
	assert_int_equal(r.queries, 11);
	/* 10 MX hosts are asked for, each once. */
	run_spf(&r, zone, "192.0.2.3", "u@mx10.example", "h.example");
	assert_int_equal(r.lookups, 1);
	assert_int_equal(r.queries, 1 + 1 + 10);
}

/* ---- records from a one-domain zone ------------------------------------------ */

static enum spf_result
eval_record(const char *rec, size_t len, const char *client, char *why,
	    size_t whysz)
{
	struct rrset z[] = {
		{DNS_T_TXT, "x.example", 0, {rec}},
		{DNS_T_A, "x.example", 0, {"192.0.2.3"}},
		{DNS_T_AAAA, "x.example", 0, {"2001:db8::3"}},
		{0, NULL, 0, {NULL}},
	};
	struct spf_query q = {
		.client = client_addr(client), .sender = "u@x.example",
		.helo = "h.example",
	};
	struct run r;

	run_query(&r, z, len, &q);
	if (why != NULL)
		snprintf(why, whysz, "%s", r.why);
	return r.result;
}

static enum spf_result
eval_text(const char *rec)
{
	return eval_record(rec, strlen(rec), "192.0.2.3", NULL, 0);
}

static void
test_syntax_errors(void **state)
{
	static const char *bad[] = {
		"v=spf1 bogus",
		"v=spf1 -all garbage:x",
		"v=spf1 include",
		"v=spf1 include:",
		"v=spf1 exists",
		"v=spf1 all:x.example",
		"v=spf1 all/24",
		"v=spf1 +redirect=x.example",
		"v=spf1 redirect=",
		"v=spf1 exp=",
		"v=spf1 =x",
		"v=spf1 ip4",
		"v=spf1 ip4:",
		"v=spf1 ip4:192.0.2.300",
		"v=spf1 ip4:192.0.2",
		"v=spf1 ip4:192.0.2.0/33",
		"v=spf1 ip4:192.0.2.0/024",
		"v=spf1 ip4:192.0.2.0/",
		"v=spf1 ip4:192.0.2.0//24",
		"v=spf1 ip4:2001:db8::1",
		"v=spf1 ip4:192.00.2.1",
		"v=spf1 ip6:2001:db8::/129",
		"v=spf1 ip6:192.0.2.1",
		"v=spf1 ip6:2001:db8:::1",
		"v=spf1 ip6:2001:db8::/1280",
		"v=spf1 a/33",
		"v=spf1 a//129",
		"v=spf1 a/024",
		"v=spf1 a//64/24",
		"v=spf1 a/",
		"v=spf1 a:",
		"v=spf1 a:x",
		"v=spf1 a:x.123",
		"v=spf1 a:x.-com",
		"v=spf1 a:x.example/",
		"v=spf1 mx:/24",
		"v=spf1 mx/24x",
		"v=spf1 ptr:",
		"v=spf1 exists:%{",
		"v=spf1 exists:%{d",
		"v=spf1 exists:%{x}.example",
		"v=spf1 exists:%{d0}.example",
		"v=spf1 exists:%{c}.example",
		"v=spf1 exists:%{r}.example",
		"v=spf1 exists:%{t}.example",
		"v=spf1 exists:%x.example",
		"v=spf1 exists:x.example%",
		"v=spf1 exists:%{d}%{",
		"v=spf1 foo=%",
		"v=spf1 ~all -ptr:",
		"v=spf1 ++all",
		"v=spf1 -",
		"v=spf1 a\tmx",
	};
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char why[256];
		enum spf_result r = eval_record(bad[i], strlen(bad[i]),
						"192.0.2.3", why, sizeof(why));

		if (r != SPF_PERMERROR || strstr(why, "syntax error") == NULL) {
			print_error("'%s': %s (%s)\n", bad[i], spf_result_name(r),
				    why);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void
test_syntax_accepted(void **state)
{
	static const char *good[] = {
		"v=spf1 a:x.example/32//128 mx:x.example//0 -all",
		"v=spf1 ip4:192.0.2.3/32 -all",
		"v=spf1 ip4:0.0.0.0/0",
		"v=spf1 ip6:::/0 ip4:192.0.2.3",
		"v=spf1 IP4:192.0.2.3 -ALL",
		"v=spf1 a:x.example. -all",
		"v=spf1 a:%{d} -all",
		"v=spf1 a:x.1-2 ip4:192.0.2.3",
		"v=spf1 exists:%{ir}.%{v}._spf.%{d2}%{d} a",
		"v=spf1 Redirect=x.example a",
		"v=spf1 a exp=%{d} x-y=%{c}%{t}%{r}",
		"v=spf1 a:x.example/24 -all",
	};
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char why[256];
		enum spf_result r = eval_record(good[i], strlen(good[i]),
						"192.0.2.3", why, sizeof(why));

		if (r != SPF_PASS) {
			print_error("'%s': %s (%s)\n", good[i],
				    spf_result_name(r), why);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* ---- hostile records -------------------------------------------------------------- */

static void
test_hostile_records(void **state)
{
	static const char nul[] = "v=spf1 ip4:192.0.2.3\0 -all";
	static const char nul_late[] = "v=spf1 -all\0";
	char why[256];
	char *big;
	size_t n;

	(void)state;
	assert_int_equal(eval_record(nul, sizeof(nul) - 1, "192.0.2.3", NULL, 0),
			 SPF_PERMERROR);
	assert_int_equal(eval_record(nul_late, sizeof(nul_late) - 1, "192.0.2.3",
				     NULL, 0), SPF_PERMERROR);
	assert_int_equal(eval_text("v=spf1 a\x01 -all"), SPF_PERMERROR);
	assert_int_equal(eval_text("v=spf1 a:\xc3\xa9.example -all"), SPF_PERMERROR);

	/* Exactly SPF_RECORD_MAX bytes is read; one more is refused. */
	big = malloc(SPF_RECORD_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', SPF_RECORD_MAX + 1);
	memcpy(big, "v=spf1", 6);
	n = SPF_RECORD_MAX - strlen("ip4:192.0.2.3");
	memcpy(big + n, "ip4:192.0.2.3", strlen("ip4:192.0.2.3"));
	big[SPF_RECORD_MAX] = '\0';
	assert_int_equal(eval_record(big, SPF_RECORD_MAX, "192.0.2.3", NULL, 0),
			 SPF_PASS);
	big[SPF_RECORD_MAX] = ' ';
	big[SPF_RECORD_MAX + 1] = '\0';
	assert_int_equal(eval_record(big, SPF_RECORD_MAX + 1, "192.0.2.3", NULL, 0),
			 SPF_PERMERROR);

	free(big);

	/* Digits past any part count mean "all parts". */
	assert_int_equal(eval_text("v=spf1 a:%{d99999999999999999999} -all"),
			 SPF_PASS);
	/*
	 * An expansion past the bound (2048 bytes before the cut to 253) is
	 * a permerror, not a long name: 200 x "u%40x.example".
	 */
	big = malloc(SPF_RECORD_MAX);
	assert_non_null(big);
	strcpy(big, "v=spf1 exists:");
	for (n = 0; n < 200; n++)
		strcat(big, "%{S}");
	strcat(big, ".x.example -all");
	assert_int_equal(eval_record(big, strlen(big), "192.0.2.3", why,
				     sizeof(why)), SPF_PERMERROR);
	assert_non_null(strstr(why, "too long"));
	/* 120 x 14 bytes fit, and are cut to a name. */
	strcpy(big, "v=spf1 exists:");
	for (n = 0; n < 120; n++)
		strcat(big, "%{S}.");
	strcat(big, "x.example -all");
	assert_int_equal(eval_text(big), SPF_FAIL);
	free(big);
}

/* Answers that a broken or hostile resolver might hand over. */
static void
test_hostile_answers(void **state)
{
	static const uint8_t weird[] = {'m', 'x', 0, '.', 'x'};
	struct spf_query q = {
		.client = client_addr("192.0.2.3"), .sender = "u@x.example",
		.helo = "h.example",
	};
	struct dns_rr rr[3];
	struct dns_result res = {DNS_OK, 60, 1, rr};
	char qname[DNS_NAME_MAX + 1];
	enum dns_type qtype;
	spf_t *s;

	(void)state;
	/* An answer with records but no array; an unknown status. */
	assert_int_equal(spf_new(&s, &q), 0);
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_LOOKUP);
	res.rr = NULL;
	res.n = 5;
	assert_int_equal(spf_step(s, &res, &qtype, qname), SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_NONE);
	spf_free(s);

	assert_int_equal(spf_new(&s, &q), 0);
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_LOOKUP);
	res.status = (enum dns_status)77;
	assert_int_equal(spf_step(s, &res, &qtype, qname), SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	spf_free(s);

	/* MX names with a NUL, and A records of the wrong size. */
	assert_int_equal(spf_new(&s, &q), 0);
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_LOOKUP);
	rr[0].data = (const uint8_t *)"v=spf1 mx -all";
	rr[0].len = 14;
	res.status = DNS_OK;
	res.rr = rr;
	res.n = 1;
	assert_int_equal(spf_step(s, &res, &qtype, qname), SPF_STEP_LOOKUP);
	assert_int_equal(qtype, DNS_T_MX);
	rr[0].data = weird;
	rr[0].len = sizeof(weird);
	rr[1].data = (const uint8_t *)"ok.x.example";
	rr[1].len = 12;
	res.n = 2;
	assert_int_equal(spf_step(s, &res, &qtype, qname), SPF_STEP_LOOKUP);
	assert_string_equal(qname, "ok.x.example");
	rr[0].data = (const uint8_t *)"\xc0\x00\x02\x03\x00";
	rr[0].len = 5;
	res.n = 1;
	assert_int_equal(spf_step(s, &res, &qtype, qname), SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_FAIL);
	spf_free(s);

	/* No answer to a pending question. */
	assert_int_equal(spf_new(&s, &q), 0);
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_LOOKUP);
	assert_int_equal(spf_step(s, NULL, &qtype, qname), SPF_STEP_DONE);
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	spf_free(s);
}

/* ---- macros: RFC 7208 7.4 ---------------------------------------------------------- */

struct macro_case {
	const char *in;
	const char *out;
};

static void
check_macros(const struct macro_case *c, size_t n, const char *client,
	     unsigned flags)
{
	struct addr a = client_addr(client);
	struct spf_macro_ctx ctx = {
		.sender = "strong-bad@email.example.com",
		.local_len = strlen("strong-bad"),
		.domain = "email.example.com",
		.helo = "mx.example.org",
		.receiver = "mx.receiver.example",
		.client = &a,
		.now = 1700000000,
	};
	char out[1024];
	size_t len;
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		int rc = spf_macro_expand(&ctx, c[i].in, strlen(c[i].in), flags,
					  out, sizeof(out), &len);

		if (rc != 0 || strcmp(out, c[i].out) != 0 ||
		    len != strlen(c[i].out)) {
			print_error("%s: got %d '%s', want '%s'\n", c[i].in, rc,
				    out, c[i].out);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void
test_macro_rfc_examples(void **state)
{
	static const struct macro_case v4[] = {
		{"%{s}", "strong-bad@email.example.com"},
		{"%{o}", "email.example.com"},
		{"%{d}", "email.example.com"},
		{"%{d4}", "email.example.com"},
		{"%{d3}", "email.example.com"},
		{"%{d2}", "example.com"},
		{"%{d1}", "com"},
		{"%{dr}", "com.example.email"},
		{"%{d2r}", "example.email"},
		{"%{l}", "strong-bad"},
		{"%{l-}", "strong.bad"},
		{"%{lr}", "strong-bad"},
		{"%{lr-}", "bad.strong"},
		{"%{l1r-}", "strong"},
		{"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
		{"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
		{"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		 "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		 "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{"%{d2}.trusted-domains.example.net",
		 "example.com.trusted-domains.example.net"},
		/* the rest of 7.2 and 7.3 */
		{"%{i}", "192.0.2.3"},
		{"%{p}", "unknown"},
		{"%{h}", "mx.example.org"},
		{"%{S}", "strong-bad%40email.example.com"},
		{"%{L-}", "strong.bad"},
		{"%%%_%-", "% %20"},
		{"x%%y", "x%y"},
		{"%{d0000000002}", "example.com"},
		{"%{d100}", "email.example.com"},
		{"%{l-.}", "strong.bad"},
		{"%{s=}", "strong-bad@email.example.com"},
		{"%{o1r}", "email"},
		{"%{DR}", "com.example.email"},
		{"", ""},
	};
	static const struct macro_case v6[] = {
		{"%{ir}.%{v}._spf.%{d2}",
		 "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
		 ".ip6._spf.example.com"},
		{"%{i8}", "0.0.0.0.c.b.0.1"},
		{"%{v}", "ip6"},
	};
	static const struct macro_case exp4[] = {
		{"%{c}", "192.0.2.3"},
		{"%{r}", "mx.receiver.example"},
		{"%{t}", "1700000000"},
		{"%{t1}", "1700000000"},
		{"%{C}/%{R}", "192.0.2.3/mx.receiver.example"},
	};
	static const struct macro_case exp6[] = {
		{"%{c}", "2001:db8::cb01"},
		{"%{C}", "2001%3Adb8%3A%3Acb01"},
	};

	(void)state;
	check_macros(v4, sizeof(v4) / sizeof(v4[0]), "192.0.2.3", 0);
	check_macros(v6, sizeof(v6) / sizeof(v6[0]), "2001:db8::cb01", 0);
	check_macros(exp4, sizeof(exp4) / sizeof(exp4[0]), "192.0.2.3",
		     SPF_MACRO_EXP);
	check_macros(exp6, sizeof(exp6) / sizeof(exp6[0]), "2001:db8::cb01",
		     SPF_MACRO_EXP);
}

static void
test_macro_errors(void **state)
{
	static const char *bad[] = {
		"%", "%x", "%{", "%{}", "%{d", "%{d2", "%{x}", "%{d0}", "%{d00}",
		"%{c}", "%{r}", "%{t}", "%{dr2}", "%{d-r}", "%{d }", "a b",
		"%{d2rr}", "%{d!}",
	};
	struct addr a = client_addr("192.0.2.3");
	struct spf_macro_ctx ctx = {
		.sender = "u@x.example", .local_len = 1, .domain = "x.example",
		.helo = "", .receiver = NULL, .client = &a, .now = 0,
	};
	char out[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (spf_macro_check(bad[i], strlen(bad[i]), 0, NULL) != -EINVAL)
			fail_msg("'%s' passed the check", bad[i]);
		if (spf_macro_expand(&ctx, bad[i], strlen(bad[i]), 0, out,
				     sizeof(out), &len) != -EINVAL)
			fail_msg("'%s' expanded", bad[i]);
	}
	assert_int_equal(spf_macro_check("a\0b", 3, 0, NULL), -EINVAL);
	/* NULL receiver is "unknown"; the buffer bound holds. */
	assert_int_equal(spf_macro_expand(&ctx, "%{r}", 4, SPF_MACRO_EXP, out,
					  sizeof(out), &len), 0);
	assert_string_equal(out, "unknown");
	assert_int_equal(spf_macro_expand(&ctx, "%{d}%{d}%{d}%{d}%{d}%{d}%{d}%{d}",
					  32, 0, out, sizeof(out), &len), -ENOSPC);
	assert_int_equal(spf_macro_expand(&ctx, "0123456789", 10, 0, out, 10,
					  &len), -ENOSPC);
	assert_int_equal(spf_macro_expand(&ctx, "012345678", 9, 0, out, 10,
					  &len), 0);
	assert_string_equal(out, "012345678");
}

/* ---- the query, the interface ------------------------------------------------------- */

static void
test_query_validation(void **state)
{
	char longsender[SPF_SENDER_MAX + 2];
	struct spf_query q = {
		.client = client_addr("192.0.2.3"), .sender = "u@x.example",
		.helo = "h.example",
	};
	spf_t *s = (spf_t *)&q;

	(void)state;
	assert_null(spf_query_invalid(&q));
	assert_non_null(spf_query_invalid(NULL));
	assert_int_equal(spf_new(&s, NULL), -EINVAL);
	assert_null(s);

	q.client.family = ADDR_NONE;
	assert_string_equal(spf_query_invalid(&q), "no client address");
	assert_int_equal(spf_new(&s, &q), -EINVAL);
	q.client = client_addr("192.0.2.3");

	q.sender = "u v@x.example";
	assert_non_null(spf_query_invalid(&q));
	memset(longsender, 'a', sizeof(longsender) - 1);
	longsender[sizeof(longsender) - 1] = '\0';
	q.sender = longsender;
	assert_non_null(spf_query_invalid(&q));
	longsender[SPF_SENDER_MAX] = '\0';
	longsender[10] = '@';
	assert_null(spf_query_invalid(&q));

	q.sender = "";
	q.helo = NULL;
	assert_string_equal(spf_query_invalid(&q), "null sender without a HELO name");
	q.sender = NULL;
	q.helo = "";
	assert_non_null(spf_query_invalid(&q));
	q.helo = "h\x7f.example";
	q.sender = "u@x.example";
	assert_non_null(spf_query_invalid(&q));
	q.helo = NULL;
	assert_null(spf_query_invalid(&q));
}

static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(spf_result_name(SPF_NONE), "none");
	assert_string_equal(spf_result_name(SPF_NEUTRAL), "neutral");
	assert_string_equal(spf_result_name(SPF_PASS), "pass");
	assert_string_equal(spf_result_name(SPF_FAIL), "fail");
	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_TEMPERROR), "temperror");
	assert_string_equal(spf_result_name(SPF_PERMERROR), "permerror");
}

/* ---- a pass that would pass anyone proves nothing ----------------------------------- */

static const struct rrset probe_zone[] = {
	{DNS_T_TXT, "own.example", 0, {"v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:1::/48 -all"}},
	{DNS_T_TXT, "anyone.example", 0, {"v=spf1 +all"}},
	{DNS_T_TXT, "half.example", 0, {"v=spf1 ip4:128.0.0.0/1 ip6:2000::/3 -all"}},
	{DNS_T_TXT, "bigger.example", 0, {"v=spf1 include:own.example ?all"}},
	{DNS_T_TXT, "temp.example", 0, {"v=spf1 ip4:198.51.100.0/24 exists:%{i}.t.example -all"}},
	{DNS_T_A, "192.0.2.1.t.example", DNS_TEMPFAIL, {NULL}},
	{0, NULL, 0, {NULL}},
};

static bool
proven(const char *client, const char *sender)
{
	struct spf_query q = {
		.client = client_addr(client), .sender = sender,
		.helo = "h.example",
	};
	struct spf_query probe;
	struct run real, other;

	run_query(&real, probe_zone, 0, &q);
	assert_true(spf_query_probe(&probe, &q));
	run_query(&other, probe_zone, 0, &probe);
	return spf_proven(real.result, other.result);
}

static void
test_probe(void **state)
{
	struct spf_query q = {
		.client = client_addr("198.51.100.5"), .sender = "u@own.example",
		.helo = "h.example", .receiver = "r.example", .now = 7,
	};
	struct spf_query p;
	struct addr doc = client_addr("192.0.2.1");

	(void)state;
	assert_true(spf_query_probe(&p, &q));
	assert_memory_equal(&p.client, &doc, sizeof(doc));
	assert_ptr_equal(p.sender, q.sender);
	assert_ptr_equal(p.helo, q.helo);
	assert_ptr_equal(p.receiver, q.receiver);
	assert_int_equal(p.now, 7);

	q.client = client_addr("2001:db8:1::5");
	assert_true(spf_query_probe(&p, &q));
	doc = client_addr("2001:db8::1");
	assert_memory_equal(&p.client, &doc, sizeof(doc));

	/* Never the client itself; IPv4-mapped probes as IPv4. */
	q.client = client_addr("192.0.2.1");
	assert_true(spf_query_probe(&p, &q));
	doc = client_addr("192.0.2.2");
	assert_memory_equal(&p.client, &doc, sizeof(doc));
	q.client.family = ADDR_V6;
	memset(q.client.bytes, 0, 16);
	q.client.bytes[10] = q.client.bytes[11] = 0xff;
	q.client.bytes[12] = 203;
	q.client.bytes[15] = 9;
	assert_true(spf_query_probe(&p, &q));
	doc = client_addr("192.0.2.1");
	assert_memory_equal(&p.client, &doc, sizeof(doc));

	q.client.family = ADDR_NONE;
	assert_false(spf_query_probe(&p, &q));

	assert_true(proven("198.51.100.5", "u@own.example"));
	assert_true(proven("2001:db8:1::5", "u@own.example"));
	assert_true(proven("198.51.100.5", "u@bigger.example"));
	assert_false(proven("198.51.100.5", "u@anyone.example"));
	assert_false(proven("2001:db8:1::5", "u@anyone.example"));
	assert_false(proven("198.51.100.5", "u@half.example"));
	assert_false(proven("2001:db8:1::5", "u@half.example"));
	assert_false(proven("203.0.113.5", "u@own.example"));
	/* A probe that cannot be decided proves nothing. */
	assert_false(proven("198.51.100.5", "u@temp.example"));

	assert_true(spf_proven(SPF_PASS, SPF_FAIL));
	assert_true(spf_proven(SPF_PASS, SPF_SOFTFAIL));
	assert_true(spf_proven(SPF_PASS, SPF_NEUTRAL));
	assert_true(spf_proven(SPF_PASS, SPF_NONE));
	assert_false(spf_proven(SPF_PASS, SPF_PASS));
	assert_false(spf_proven(SPF_PASS, SPF_TEMPERROR));
	assert_false(spf_proven(SPF_PASS, SPF_PERMERROR));
	assert_false(spf_proven(SPF_SOFTFAIL, SPF_FAIL));
}

/* ---- which record authorised a pass ---------------------------------------------- */

static const struct rrset auth_zone[] = {
	{DNS_T_TXT, "own.example", 0, {"v=spf1 ip4:198.51.100.0/24 -all"}},
	/* A customer's record including a provider's, which includes its
	   netblocks (Office 365 and Google are shaped so). */
	{DNS_T_TXT, "customer.example", 0,
	 {"v=spf1 include:_spf.provider.example -all"}},
	{DNS_T_TXT, "_spf.provider.example", 0,
	 {"v=spf1 include:_netblocks.provider.example ~all"}},
	{DNS_T_TXT, "_netblocks.provider.example", 0,
	 {"v=spf1 ip4:198.18.0.0/16 ip6:2001:db8:5::/48 -all"}},
	/* The include's records end in -all and ~all, which match inside
	   them; the customer's own ip4 after the include passes. */
	{DNS_T_TXT, "mixed.example", 0,
	 {"v=spf1 include:_spf.provider.example ip4:100.64.0.0/10 -all"}},
	{DNS_T_TXT, "redirect.example", 0, {"v=spf1 redirect=own.example"}},
	{DNS_T_TXT, "redirect-chain.example", 0,
	 {"v=spf1 redirect=_spf.provider.example"}},
	{DNS_T_TXT, "mx-only.example", 0, {"v=spf1 mx ?all"}},
	{DNS_T_MX, "mx-only.example", 0, {"mail.mx-only.example"}},
	{DNS_T_A, "mail.mx-only.example", 0, {"198.51.100.25"}},
	{0, NULL, 0, {NULL}},
};

/* Evaluate; the result and spf_authorised_by() ("" for NULL) in *by. */
static enum spf_result
authorised(const char *client, const char *sender, char *by, size_t bysz)
{
	struct spf_query q = {
		.client = client_addr(client), .sender = sender,
		.helo = "h.example",
	};
	static struct answer a;
	const struct dns_result *answer = NULL;
	char qname[DNS_NAME_MAX + 1];
	enum dns_type qtype;
	enum spf_result r;
	unsigned steps = 0;
	const char *who;
	spf_t *s;

	assert_int_equal(spf_new(&s, &q), 0);
	/* Nothing is known before the evaluation ends. */
	assert_null(spf_authorised_by(s));
	while (spf_step(s, answer, &qtype, qname) == SPF_STEP_LOOKUP) {
		assert_true(++steps < STEPS_MAX);
		resolve(auth_zone, 0, qtype, qname, &a);
		answer = &a.res;
	}
	r = spf_result(s);
	who = spf_authorised_by(s);
	snprintf(by, bysz, "%s", who != NULL ? who : "");
	spf_free(s);
	return r;
}

struct auth_case {
	const char *client, *sender;
	enum spf_result result;
	const char *by;		/* "": NULL */
	const char *why;
};

static const struct auth_case auth_cases[] = {
	{"198.51.100.7", "u@own.example", SPF_PASS, "own.example",
	 "the sender's own record"},
	{"198.18.1.1", "u@customer.example", SPF_PASS,
	 "_netblocks.provider.example", "the innermost record of an include "
	 "chain, not the customer's"},
	{"2001:db8:5::9", "u@customer.example", SPF_PASS,
	 "_netblocks.provider.example", "the same over IPv6"},
	{"100.64.3.3", "u@mixed.example", SPF_PASS, "mixed.example",
	 "an include whose records ended in -all/~all did not authorise; "
	 "the customer's own ip4 did"},
	{"198.51.100.7", "u@redirect.example", SPF_PASS, "own.example",
	 "redirect: the record redirected to"},
	{"198.18.200.1", "u@redirect-chain.example", SPF_PASS,
	 "_netblocks.provider.example", "redirect to a record with includes"},
	{"198.51.100.25", "u@mx-only.example", SPF_PASS, "mx-only.example",
	 "an mx match is the record's own domain"},
	{"203.0.113.5", "u@own.example", SPF_FAIL, "", "fail: nobody"},
	{"203.0.113.5", "u@customer.example", SPF_FAIL, "",
	 "fail after an include that did not match: nobody"},
	{"203.0.113.5", "u@mx-only.example", SPF_NEUTRAL, "",
	 "neutral (?all matched): nobody"},
	{"203.0.113.5", "u@redirect-chain.example", SPF_SOFTFAIL, "",
	 "softfail through a redirect: nobody"},
	{"203.0.113.5", "u@nowhere.example", SPF_NONE, "", "no record"},
};

static void
test_authorised_by(void **state)
{
	char by[DNS_NAME_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(auth_cases) / sizeof(auth_cases[0]);
	     i++) {
		const struct auth_case *c = &auth_cases[i];
		enum spf_result r = authorised(c->client, c->sender, by,
					       sizeof(by));

		if (r != c->result || strcmp(by, c->by) != 0)
			fail_msg("%s from %s: %s by '%s', want %s by '%s' (%s)",
				 c->sender, c->client, spf_result_name(r), by,
				 spf_result_name(c->result), c->by, c->why);
	}
}

/* ---- records wide enough to pass anyone prove nothing ------------------------------ */

static const struct rrset wide_zone[] = {
	{DNS_T_TXT, "plusall.example", 0, {"v=spf1 +all"}},
	{DNS_T_TXT, "bareall.example", 0, {"v=spf1 ip4:198.18.0.0/16 all"}},
	{DNS_T_TXT, "all4.example", 0, {"v=spf1 ip4:0.0.0.0/0 -all"}},
	{DNS_T_TXT, "lowhalf.example", 0, {"v=spf1 ip4:0.0.0.0/1 -all"}},
	{DNS_T_TXT, "highhalf.example", 0, {"v=spf1 ip4:128.0.0.0/1 -all"}},
	{DNS_T_TXT, "slash7.example", 0, {"v=spf1 ip4:10.0.0.0/7 -all"}},
	{DNS_T_TXT, "slash8.example", 0, {"v=spf1 ip4:10.0.0.0/8 -all"}},
	{DNS_T_TXT, "all6.example", 0, {"v=spf1 ip6:::/0 -all"}},
	{DNS_T_TXT, "normal.example", 0,
	 {"v=spf1 ip4:198.18.0.0/16 ip6:2001:db8:7::/48 include:_spf.normal.example -all"}},
	{DNS_T_TXT, "_spf.normal.example", 0, {"v=spf1 ip4:100.64.0.0/24 ~all"}},
	{0, NULL, 0, {NULL}},
};

/* The real evaluation and the probe, as the daemon runs them. */
static bool
wide_proven(const char *client, const char *sender, enum spf_result *real)
{
	struct spf_query q = {
		.client = client_addr(client), .sender = sender,
		.helo = "h.example", .receiver = "r.example", .now = 1,
	};
	struct spf_query probe;
	struct run r, p;

	run_query(&r, wide_zone, 0, &q);
	assert_true(spf_query_probe(&probe, &q));
	run_query(&p, wide_zone, 0, &probe);
	*real = r.result;
	/* As the daemon combines them (evidence.c): the probe, and breadth. */
	return spf_proven(r.result, p.result) && !r.broad;
}

struct wide_case {
	const char *client, *sender;
	enum spf_result real;
	bool proven;
	const char *why;
};

static const struct wide_case wide_cases[] = {
	{"198.18.4.4", "u@plusall.example", SPF_PASS, false,
	 "+all passes the probe too"},
	{"198.18.4.4", "u@bareall.example", SPF_PASS, false,
	 "the client's range matches first, but a bare 'all' (+) passes "
	 "the probe"},
	{"2001:db8:9::1", "u@plusall.example", SPF_PASS, false,
	 "+all over IPv6: the probe 2001:db8::1 passes"},
	{"198.18.4.4", "u@all4.example", SPF_PASS, false,
	 "ip4:0.0.0.0/0 covers 192.0.2.1"},
	{"198.18.4.4", "u@highhalf.example", SPF_PASS, false,
	 "ip4:128.0.0.0/1 covers 192.0.2.1"},
	{"2001:db8:9::1", "u@all6.example", SPF_PASS, false,
	 "ip6:::/0 covers 2001:db8::1"},
	{"10.1.2.3", "u@lowhalf.example", SPF_PASS, false,
	 "ip4:0.0.0.0/1 does not cover 192.0.2.1, so the probe alone "
	 "cannot catch it; spf_too_broad() does (a /1 is far wider than /8)"},
	{"10.1.2.3", "u@slash7.example", SPF_PASS, false,
	 "a /7 is too broad too"},
	{"10.1.2.3", "u@slash8.example", SPF_PASS, true,
	 "a /8 is the widest range that still proves something"},
	{"198.18.4.4", "u@lowhalf.example", SPF_FAIL, false,
	 "ip4:0.0.0.0/1 does not cover a client in 128/1 either"},
	{"198.18.4.4", "u@normal.example", SPF_PASS, true,
	 "a normal record: proven"},
	{"2001:db8:7::25", "u@normal.example", SPF_PASS, true,
	 "a normal record over IPv6, whose probe is 2001:db8::1: proven"},
	{"100.64.0.9", "u@normal.example", SPF_PASS, true,
	 "a normal include: proven"},
	{"203.0.113.9", "u@normal.example", SPF_FAIL, false,
	 "no pass, nothing proven"},
};

static void
test_probe_wide_records(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wide_cases) / sizeof(wide_cases[0]);
	     i++) {
		const struct wide_case *c = &wide_cases[i];
		enum spf_result real;
		bool proven = wide_proven(c->client, c->sender, &real);

		if (real != c->real || proven != c->proven)
			fail_msg("%s from %s: %s, proven %d; want %s, %d (%s)",
				 c->sender, c->client, spf_result_name(real),
				 proven, spf_result_name(c->real), c->proven,
				 c->why);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7208_cases),
		cmocka_unit_test(test_queries_asked),
		cmocka_unit_test(test_why_texts),
		cmocka_unit_test(test_lookup_counts),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_syntax_accepted),
		cmocka_unit_test(test_hostile_records),
		cmocka_unit_test(test_hostile_answers),
		cmocka_unit_test(test_macro_rfc_examples),
		cmocka_unit_test(test_macro_errors),
		cmocka_unit_test(test_query_validation),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_authorised_by),
		cmocka_unit_test(test_probe_wide_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
