/*
 * test_smart - what smart_assess() makes of a request and its evidence:
 * trusted or not, and the identities it is greylisted under.
 *
 * One table of requests shaped like real traffic (a small domain's own
 * server, Office 365 and Mailchimp pools, a snowshoe bulk sender, ISP
 * customer ranges, bounces), each with the DNS evidence the daemon would
 * have gathered and the outcome smart.h promises, with the reason.  The
 * keys are checked part by part as the store will see them.  The Public
 * Suffix List is the distribution's, as the daemon loads it.
 */
#include "smart.h"

#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* Rule sets: the defaults, and the ones a case switches. */
enum rules_set { R_DEFAULT, R_SPF_ID, R_NO_NAME, R_NO_TRUST };

static const struct smart_rules rule_sets[] = {
	[R_DEFAULT] = {.name_identity = true, .spf_identity = false,
		       .trust_spf_aligned = true},
	[R_SPF_ID] = {.name_identity = true, .spf_identity = true,
		      .trust_spf_aligned = true},
	[R_NO_NAME] = {.name_identity = false, .spf_identity = true,
		       .trust_spf_aligned = true},
	[R_NO_TRUST] = {.name_identity = true, .spf_identity = false,
			.trust_spf_aligned = false},
};

/* One expected further identity: key parts and whether it may AWL. */
struct want_id {
	const char *client;	/* "n:ORG" / "s:ORG"; NULL: no identity */
	const char *sender;
	const char *rcpt;
	bool awl;
};

struct smart_case {
	const char *why;
	enum rules_set rules;
	/* the request */
	const char *addr, *name, *sender, *rcpt;
	/* the evidence */
	enum spf_result spf;
	bool proven;
	const char *spf_domain, *authorised_by;
	bool dnswl, dnsbl;
	/* the outcome */
	enum smart_trust trust;
	enum ident_name_why name_why;
	bool aligned;
	struct want_id ids[JOB_MAX_MORE];
};

#define PASS SPF_PASS
#define NONE SPF_NONE

static const struct smart_case cases[] = {
	/* ---- trusted: the sender's own, SPF-proven server ---- */
	{"a small domain's own server, SPF proven, name in the domain",
	 R_DEFAULT, "100.64.1.10", "mail.example.org", "a@example.org",
	 "b@example.net", PASS, true, "example.org", "example.org", false,
	 false, SMART_TRUSTED_SPF, IDENT_NAME_OK, false, {{0}}},
	{"sender and name in different hosts of one organisation",
	 R_DEFAULT, "100.64.1.11", "mx1.out.example.org",
	 "news@lists.example.org", "b@example.net", PASS, true,
	 "lists.example.org", "example.org", false, false, SMART_TRUSTED_SPF,
	 IDENT_NAME_OK, false, {{0}}},
	{"trusted beats an allowlist: the more specific reason is logged",
	 R_DEFAULT, "100.64.1.10", "mail.example.org", "a@example.org",
	 "b@example.net", PASS, true, "example.org", "example.org", true,
	 false, SMART_TRUSTED_SPF, IDENT_NAME_OK, false, {{0}}},
	{"SPF passes but would pass for anyone (probe passed): not proven, "
	 "so not trusted; the aligned name groups without AWL",
	 R_DEFAULT, "100.64.1.10", "mail.example.org", "a@example.org",
	 "b@example.net", PASS, false, NULL, NULL, false, false,
	 SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:example.org", "a@example.org", "b@example.net", false}}},
	{"a blocklisted client is never trusted; its aligned name still "
	 "groups it (it only waits longer)",
	 R_DEFAULT, "100.64.1.10", "mail.example.org", "a@example.org",
	 "b@example.net", PASS, true, "example.org", "example.org", false,
	 true, SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:example.org", "a@example.org", "b@example.net", true}}},
	{"trust_spf_aligned off: greylisted, the proven name may AWL",
	 R_NO_TRUST, "100.64.1.10", "mail.example.org", "a@example.org",
	 "b@example.net", PASS, true, "example.org", "example.org", false,
	 false, SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:example.org", "a@example.org", "b@example.net", true}}},
	{"SPF proven but the name is another organisation's: not trusted",
	 R_DEFAULT, "100.64.2.10", "mx.hoster.example", "a@example.org",
	 "b@example.net", PASS, true, "example.org", "example.org", false,
	 false, SMART_GREYLIST, IDENT_NAME_OK, false, {{0}}},
	{"SPF proven, aligned, but no verified name: not trusted",
	 R_DEFAULT, "100.64.1.10", "unknown", "a@example.org", "b@example.net",
	 PASS, true, "example.org", "example.org", false, false,
	 SMART_GREYLIST, IDENT_NAME_UNKNOWN, false, {{0}}},

	/* ---- DNS lists ---- */
	{"an allowlist vouches for an unnamed client", R_DEFAULT,
	 "198.18.7.1", "unknown", "x@example.com", "b@example.net", NONE,
	 false, NULL, NULL, true, false, SMART_DNSWL, IDENT_NAME_UNKNOWN,
	 false, {{0}}},
	{"a blocklist overrides the allowlist", R_DEFAULT, "198.18.7.1",
	 "unknown", "x@example.com", "b@example.net", NONE, false, NULL, NULL,
	 true, true, SMART_GREYLIST, IDENT_NAME_UNKNOWN, false, {{0}}},
	{"blocklisted alone: greylisted by network only", R_DEFAULT,
	 "198.18.7.1", "unknown", "x@example.com", "b@example.net", NONE,
	 false, NULL, NULL, false, true, SMART_GREYLIST, IDENT_NAME_UNKNOWN,
	 false, {{0}}},

	/* ---- name identity: pools ---- */
	{"Office 365: a customer's record includes the provider's; the "
	 "pool groups and may AWL", R_DEFAULT, "40.107.223.61",
	 "mail-dm6nam10on2061.outbound.protection.outlook.com",
	 "Alice@Customer.example", "Bob@Example.NET", PASS, true,
	 "customer.example", "spf.protection.outlook.com", false, false,
	 SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:outlook.com", "alice@customer.example", "bob@example.net",
	   true}}},
	{"Office 365, but the pass was not proven: the provider's record "
	 "proves nothing, no grouping", R_DEFAULT, "40.107.223.61",
	 "mail-dm6nam10on2061.outbound.protection.outlook.com",
	 "alice@customer.example", "bob@example.net", PASS, false, NULL,
	 "spf.protection.outlook.com", false, false, SMART_GREYLIST,
	 IDENT_NAME_OK, false, {{0}}},
	{"Mailchimp return path: the sender's org is the name's; no SPF "
	 "proof, so grouped without AWL; the sender keys by org domain",
	 R_DEFAULT, "198.2.139.123", "mail123.atl31.mcsv.net",
	 "bounce-x@mail9.atl3.mcsv.net", "user@example.com", NONE, false,
	 NULL, NULL, false, false, SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:mcsv.net", "bounce-x@mcsv.net", "user@example.com", false}}},
	{"Mailchimp with SPF proven by its own record: may AWL", R_DEFAULT,
	 "198.2.139.123", "mail123.atl31.mcsv.net",
	 "bounce-x@mail9.atl3.mcsv.net", "user@example.com", PASS, true,
	 "mail9.atl3.mcsv.net", "mcsv.net", false, false, SMART_TRUSTED_SPF,
	 IDENT_NAME_OK, false, {{0}}},
	{"snowshoe: verified names, SPF proven by the brand's own record, "
	 "sender unrelated to the name: no grouping", R_DEFAULT,
	 "198.18.40.17", "mta17.bulk-sender.example", "offer@brand-a.example",
	 "user@example.com", PASS, true, "brand-a.example", "brand-a.example",
	 false, false, SMART_GREYLIST, IDENT_NAME_OK, false, {{0}}},
	{"name_identity off: nothing added for an aligned pool", R_NO_NAME,
	 "198.2.139.123", "mail123.atl31.mcsv.net",
	 "bounce-x@mail9.atl3.mcsv.net", "user@example.com", NONE, false,
	 NULL, NULL, false, false, SMART_GREYLIST, IDENT_NAME_OK, false,
	 {{0}}},

	/* ---- names that are no identity ---- */
	{"an ISP's customer name, even in the sender's organisation",
	 R_DEFAULT, "10.1.2.3", "dsl-10-1-2-3.dynamic.isp.example",
	 "joe@isp.example", "user@example.com", PASS, true, "isp.example",
	 "isp.example", false, false, SMART_GREYLIST, IDENT_NAME_DYNAMIC,
	 false, {{0}}},
	{"Postfix's 'unknown': not verified", R_DEFAULT, "198.18.0.9",
	 "unknown", "a@example.org", "b@example.net", NONE, false, NULL, NULL,
	 false, false, SMART_GREYLIST, IDENT_NAME_UNKNOWN, false, {{0}}},
	{"[UNAVAILABLE]: the lookup failed", R_DEFAULT, "198.18.0.9",
	 "[UNAVAILABLE]", "a@example.org", "b@example.net", NONE, false, NULL,
	 NULL, false, false, SMART_GREYLIST, IDENT_NAME_UNKNOWN, false,
	 {{0}}},
	{"an IP literal is no name", R_DEFAULT, "198.18.0.9", "[198.18.0.9]",
	 "a@example.org", "b@example.net", NONE, false, NULL, NULL, false,
	 false, SMART_GREYLIST, IDENT_NAME_INVALID, false, {{0}}},
	{"a bare IPv4 address is no name", R_DEFAULT, "198.18.0.9",
	 "198.18.0.9", "a@example.org", "b@example.net", NONE, false, NULL,
	 NULL, false, false, SMART_GREYLIST, IDENT_NAME_INVALID, false,
	 {{0}}},
	{"a public suffix is nobody's name, even when the sender's "
	 "domain is the same suffix", R_DEFAULT, "198.18.0.9", "co.uk",
	 "a@co.uk", "b@example.net", PASS, true, "co.uk", "co.uk", false,
	 false, SMART_GREYLIST, IDENT_NAME_SUFFIX, false, {{0}}},
	{"a platform's private suffix (github.io) is nobody's name either",
	 R_DEFAULT, "198.18.0.9", "github.io", "a@foo.github.io",
	 "b@example.net", NONE, false, NULL, NULL, false, false,
	 SMART_GREYLIST, IDENT_NAME_SUFFIX, false, {{0}}},

	/* ---- SPF identity ---- */
	{"spf_identity on: a proven sender domain keys by its org, and "
	 "may AWL", R_SPF_ID, "198.18.3.3", "unknown",
	 "bounce@news.example.net", "User@Example.COM", PASS, true,
	 "news.example.net", "example.net", false, false, SMART_GREYLIST,
	 IDENT_NAME_UNKNOWN, false,
	 {{"s:example.net", "bounce@example.net", "user@example.com", true}}},
	{"spf_identity on, pass not proven: none", R_SPF_ID, "198.18.3.3",
	 "unknown", "bounce@news.example.net", "user@example.com", PASS,
	 false, NULL, NULL, false, false, SMART_GREYLIST, IDENT_NAME_UNKNOWN,
	 false, {{0}}},
	{"spf_identity off (the default): none for a proven sender",
	 R_DEFAULT, "198.18.3.3", "unknown", "bounce@news.example.net",
	 "user@example.com", PASS, true, "news.example.net", "example.net",
	 false, false, SMART_GREYLIST, IDENT_NAME_UNKNOWN, false, {{0}}},
	{"both identities: name first, then SPF", R_SPF_ID, "40.107.223.61",
	 "mail-dm6nam10on2061.outbound.protection.outlook.com",
	 "alice@mail.customer.example", "bob@example.net", PASS, true,
	 "mail.customer.example", "spf.protection.outlook.com", false, false,
	 SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:outlook.com", "alice@customer.example", "bob@example.net", true},
	  {"s:customer.example", "alice@customer.example", "bob@example.net",
	   true}}},
	{"a blocklisted proven sender still gets its SPF identity",
	 R_SPF_ID, "198.18.3.3", "unknown", "a@example.net",
	 "user@example.com", PASS, true, "example.net", "example.net", false,
	 true, SMART_GREYLIST, IDENT_NAME_UNKNOWN, false,
	 {{"s:example.net", "a@example.net", "user@example.com", true}}},

	/* ---- the null sender (SPF checks the HELO name) ---- */
	{"a bounce from a named server whose HELO SPF is proven: grouped "
	 "by the name, sender part empty; never trusted (no sender org)",
	 R_SPF_ID, "100.64.1.10", "mail.example.org", "", "b@example.net",
	 PASS, true, "mail.example.org", "example.org", false, false,
	 SMART_GREYLIST, IDENT_NAME_OK, true,
	 {{"n:example.org", "", "b@example.net", true},
	  {"s:example.org", "", "b@example.net", true}}},
	{"a bounce without SPF proof: nothing aligns it with the name",
	 R_DEFAULT, "100.64.1.10", "mail.example.org", "", "b@example.net",
	 NONE, false, NULL, NULL, false, false, SMART_GREYLIST, IDENT_NAME_OK,
	 false, {{0}}},
};

/* Split a triplet key (client NUL sender NUL recipient) into its parts. */
static void
key_parts(const struct triplet_key *k, char client[TRIPLET_MAX_KEY],
	  char sender[TRIPLET_MAX_KEY], char rcpt[TRIPLET_MAX_KEY])
{
	const char *p = k->key, *end = k->key + k->key_len;
	char *out[3] = {client, sender, rcpt};

	for (int i = 0; i < 3; i++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul != NULL ? (size_t)(nul - p) : (size_t)(end - p);

		assert_true(i == 2 || nul != NULL);
		memcpy(out[i], p, n);
		out[i][n] = '\0';
		p += n + (nul != NULL ? 1 : 0);
	}
	assert_ptr_equal(p, end);
}

static struct policy_str
str(const char *s)
{
	struct policy_str v = {s, s != NULL ? strlen(s) : 0};

	return v;
}

/*
 * The daemon assesses a request twice: without evidence, then with it,
 * reusing the first call's name and sender domain (smart_assess_again()).
 * That must come to exactly what one call with the evidence gives.
 */
static void
same_as_the_daemons_way(const ident_t *id, const struct smart_rules *rules,
			const struct policy_request *r,
			const struct smart_evidence *ev,
			const struct store_job *want_job,
			const struct smart_outcome *want)
{
	static const struct smart_evidence none;
	struct smart_outcome first, got;
	struct store_job job = *want_job;

	job.n_more = JOB_MAX_MORE;
	smart_assess(id, rules, r, &none, &job, &first);
	job.n_more = JOB_MAX_MORE;
	smart_assess_again(id, rules, r, ev, &first, &job, &got);
	assert_int_equal(got.trust, want->trust);
	assert_string_equal(got.name.org, want->name.org);
	assert_int_equal(got.name.org_len, want->name.org_len);
	assert_int_equal(got.name.why, want->name.why);
	assert_string_equal(got.sender_org, want->sender_org);
	assert_int_equal(got.name_aligned, want->name_aligned);
	assert_int_equal(got.name_id, want->name_id);
	assert_int_equal(got.name_awl, want->name_awl);
	assert_int_equal(got.spf_id, want->spf_id);
	assert_int_equal(job.n_more, want_job->n_more);
	for (size_t i = 0; i < job.n_more; i++) {
		assert_int_equal(job.more[i].key.key_len,
				 want_job->more[i].key.key_len);
		assert_memory_equal(job.more[i].key.key, want_job->more[i].key.key,
				    job.more[i].key.key_len);
		assert_string_equal(job.more[i].key.client,
				    want_job->more[i].key.client);
		assert_int_equal(job.more[i].awl, want_job->more[i].awl);
	}
}

static void
assess(const ident_t *id, const struct smart_rules *rules, const char *addr,
       const char *name, const char *sender, const char *rcpt,
       const struct smart_evidence *ev, struct store_job *job,
       struct smart_outcome *out)
{
	static const struct triplet_opts topts = {.ipv4_prefix = 24,
						  .ipv6_prefix = 64};
	struct policy_request r;

	memset(&r, 0, sizeof(r));
	r.request = str("smtpd_access_policy");
	r.protocol_state = str("RCPT");
	r.client_address = str(addr);
	r.client_name = str(name);
	r.sender = str(sender);
	r.recipient = str(rcpt);
	memset(job, 0, sizeof(*job));
	/* Leftovers from an earlier request must not survive. */
	job->n_more = JOB_MAX_MORE;
	triplet_build(&job->key, addr, strlen(addr), sender, strlen(sender),
		      rcpt, strlen(rcpt), &topts);
	smart_assess(id, rules, &r, ev, job, out);
	same_as_the_daemons_way(id, rules, &r, ev, job, out);
}

static void
check_case(const ident_t *id, const struct smart_case *c)
{
	struct smart_evidence ev = {
		.spf = c->spf, .spf_proven = c->proven,
		.spf_domain = c->spf_domain,
		.spf_authorised_by = c->authorised_by,
		.dnswl = c->dnswl, .dnsbl = c->dnsbl,
	};
	char client[TRIPLET_MAX_KEY], sender[TRIPLET_MAX_KEY],
		rcpt[TRIPLET_MAX_KEY];
	struct store_job job;
	struct smart_outcome out;
	size_t want_n = 0;
	bool want_name = false, want_spf = false, want_name_awl = false;

	assess(id, &rule_sets[c->rules], c->addr, c->name, c->sender, c->rcpt,
	       &ev, &job, &out);
	if (out.trust != c->trust)
		fail_msg("%s: trust %s, want %s", c->why,
			 smart_trust_name(out.trust), smart_trust_name(c->trust));
	if (out.name.why != c->name_why)
		fail_msg("%s: name %s, want %s", c->why,
			 ident_name_why_str(out.name.why),
			 ident_name_why_str(c->name_why));
	if (out.trust != SMART_GREYLIST) {
		/* Trusted requests are not greylisted under anything. */
		if (job.n_more != 0)
			fail_msg("%s: trusted with %zu identities", c->why,
				 job.n_more);
		return;
	}
	if (out.name_aligned != c->aligned)
		fail_msg("%s: aligned %d, want %d", c->why, out.name_aligned,
			 c->aligned);
	for (size_t i = 0; i < JOB_MAX_MORE && c->ids[i].client != NULL; i++) {
		want_n++;
		if (c->ids[i].client[0] == 'n') {
			want_name = true;
			want_name_awl = c->ids[i].awl;
		} else {
			want_spf = true;
		}
	}
	if (job.n_more != want_n)
		fail_msg("%s: %zu identities, want %zu", c->why, job.n_more,
			 want_n);
	if (out.name_id != want_name || out.name_awl != want_name_awl ||
	    out.spf_id != want_spf)
		fail_msg("%s: name_id %d awl %d spf_id %d, want %d %d %d",
			 c->why, out.name_id, out.name_awl, out.spf_id,
			 want_name, want_name_awl, want_spf);
	for (size_t i = 0; i < want_n; i++) {
		const struct want_id *w = &c->ids[i];

		key_parts(&job.more[i].key, client, sender, rcpt);
		if (strcmp(client, w->client) != 0 ||
		    strcmp(sender, w->sender) != 0 ||
		    strcmp(rcpt, w->rcpt) != 0)
			fail_msg("%s: identity %zu is (%s, %s, %s), want "
				 "(%s, %s, %s)", c->why, i, client, sender,
				 rcpt, w->client, w->sender, w->rcpt);
		assert_string_equal(job.more[i].key.client, w->client);
		assert_int_equal(job.more[i].key.client_len, strlen(w->client));
		/* Never a network: only the awl flag lets it auto-whitelist. */
		assert_false(job.more[i].key.client_is_net);
		if (job.more[i].awl != w->awl)
			fail_msg("%s: identity %zu awl %d, want %d", c->why, i,
				 job.more[i].awl, w->awl);
	}
}

static void
test_cases(void **state)
{
	const ident_t *id = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(id, &cases[i]);
}

/*
 * An organisational domain that does not fit the client part of a key
 * ("n:" + domain + NUL in TRIPLET_MAX_CLIENT bytes) gives no identity:
 * a cut one would merge unrelated domains sharing a prefix.
 */
static void
test_org_too_long(void **state)
{
	const ident_t *id = *state;
	const size_t fit = TRIPLET_MAX_CLIENT - 3;
	static const char tld[] = ".example";
	char label[64], name[128], sender[160], org[128], spf_domain[128];
	struct smart_evidence ev = {.spf = SPF_PASS, .spf_proven = true};
	struct store_job job;
	struct smart_outcome out;
	char want[TRIPLET_MAX_CLIENT + 8];

	for (size_t len = fit - 1; len <= fit + 2; len++) {
		size_t llen = len - (sizeof(tld) - 1);

		memset(label, 'q', llen);
		label[llen] = '\0';
		snprintf(org, sizeof(org), "%s%s", label, tld);
		assert_int_equal(strlen(org), len);
		snprintf(name, sizeof(name), "mx.%s", org);
		snprintf(sender, sizeof(sender), "a@lists.%s", org);
		snprintf(spf_domain, sizeof(spf_domain), "lists.%s", org);
		ev.spf_domain = spf_domain;
		ev.spf_authorised_by = org;

		assess(id, &rule_sets[R_NO_TRUST], "100.64.9.9", name, sender,
		       "b@example.net", &ev, &job, &out);
		assert_int_equal(out.name.why, IDENT_NAME_OK);
		assert_string_equal(out.name.org, org);
		assert_true(out.name_aligned);
		if (len > fit) {
			assert_false(out.name_id);
			assert_int_equal(job.n_more, 0);
		} else {
			assert_true(out.name_id);
			assert_int_equal(job.n_more, 1);
			snprintf(want, sizeof(want), "n:%s", org);
			assert_string_equal(job.more[0].key.client, want);
		}

		/* The SPF identity follows the same rule. */
		assess(id, &(struct smart_rules){.spf_identity = true},
		       "100.64.9.9", name, sender, "b@example.net", &ev, &job,
		       &out);
		assert_int_equal(out.spf_id, len <= fit);
		assert_int_equal(job.n_more, len <= fit ? 1 : 0);
		if (len <= fit) {
			snprintf(want, sizeof(want), "s:%s", org);
			assert_string_equal(job.more[0].key.client, want);
		}
	}
}

static void
test_trust_names(void **state)
{
	(void)state;
	assert_string_equal(smart_trust_name(SMART_GREYLIST), "greylist");
	assert_string_equal(smart_trust_name(SMART_TRUSTED_SPF), "trusted-spf");
	assert_string_equal(smart_trust_name(SMART_DNSWL), "dnswl");
}

static int
setup(void **state)
{
	char err[256];
	ident_t *id;

	if (ident_open(&id, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "ident_open: %s\n", err);
		return -1;
	}
	*state = id;
	return 0;
}

static int
teardown(void **state)
{
	ident_close(*state);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_org_too_long),
		cmocka_unit_test(test_trust_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
