/*
 * test_ident - organisational domains, dynamic-looking names and the
 * identity strings.
 *
 * The heart is a table of names shaped like the ones real senders use:
 * provider pools and small MTAs (whose names must group by organisational
 * domain) and ISP and hoster customer ranges (which must not: grouping
 * them would treat a whole ISP as one client).  Each row has the client
 * address the name would come with, the verdict, and why.  The list is the
 * distribution's Public Suffix List, as the daemon loads it.
 */
#include "ident.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

struct dyn_case {
	const char *name;
	const char *addr;
	bool dynamic;
	const char *why;
};

static const struct dyn_case dyn_cases[] = {
	/* ---- provider pools and mail operators: not dynamic ---- */
	{"a8-30.smtp-out.amazonses.com", "54.240.8.30", false,
	 "SES numbers its pool by two octets only"},
	{"e226-55.smtp-out.us-west-2.amazonses.com", "54.240.226.55", false,
	 "SES regional pool: two octets, a region number beside them"},
	{"mail-ej1-f44.google.com", "209.85.218.44", false,
	 "Gmail outbound: one octet in the pool label"},
	{"mail-wm1-f54.google.com", "209.85.128.54", false,
	 "Gmail outbound, another pool"},
	{"mail-pj1-x1036.google.com", "2607:f8b0:4864:20::1036", false,
	 "Gmail over IPv6: the last group only, not the address"},
	{"mail-dm6nam10on2061.outbound.protection.outlook.com", "40.107.223.61",
	 false, "Office 365: data centre code and a pool number"},
	{"mail-am6eur05on2105.outbound.protection.outlook.com", "40.107.22.105",
	 false, "Office 365 Europe"},
	{"mail-bn8nam12on20600.outbound.protection.outlook.com",
	 "2a01:111:f400:7eae::600", false, "Office 365 over IPv6"},
	{"o1.ptr1234.sendgrid.net", "149.72.10.1", false,
	 "SendGrid dedicated address: a PTR number, one octet"},
	{"wrqvtzvf.outbound-mail.sendgrid.net", "149.72.123.24", false,
	 "SendGrid shared pool: letters only"},
	{"mail123.atl31.mcsv.net", "198.2.139.123", false,
	 "Mailchimp: host and site numbers"},
	{"mail135-9.atl141.mandrillapp.com", "198.2.135.9", false,
	 "Mandrill: two octets and a site number"},
	{"sonic301-20.consmr.mail.ne1.yahoo.com", "74.6.129.83", false,
	 "Yahoo consumer outbound"},
	{"mail-40134.protonmail.ch", "185.70.40.134", false,
	 "Proton: two octets run together are a pool number"},
	{"sender4-op-o11.zoho.com", "136.143.188.11", false,
	 "Zoho outbound pool"},
	{"out1-smtp.messagingengine.com", "66.111.4.25", false,
	 "Fastmail outbound"},
	{"mout.gmx.net", "212.227.17.20", false, "GMX outbound"},
	{"relay.mailchannels.net", "23.83.208.1", false, "MailChannels relay"},
	{"sc-ord-mta113.mtasv.net", "104.245.209.113", false,
	 "Postmark: one octet"},
	{"mx.example.org", "192.0.2.25", false, "a small MTA's chosen name"},
	{"mail.example.net", "2001:db8::25", false, "a small MTA on IPv6"},
	{"host.example.com", "203.0.113.9", false,
	 "a bare 'host' is how a small operator may name its one server"},
	{"smtp.cable-operator.example", "198.51.100.4", false,
	 "'cable' inside the organisational domain names the company"},
	{"mx.dyn.com", "198.51.100.5", false,
	 "Dyn (the DNS company): its domain is dyn.com"},
	{"mail.example.com", "unknown", false,
	 "no usable address and no word: nothing says dynamic"},

	/* ---- customer ranges of ISPs and hosters: dynamic ---- */
	{"c-73-15-22-101.hsd1.ca.comcast.net", "73.15.22.101", true,
	 "Comcast residential: dashed address"},
	{"host-81-22-33-44.customer.example.net", "81.22.33.44", true,
	 "dashed address, 'customer'"},
	{"dsl-10-1-2-3.dynamic.isp.example", "10.1.2.3", true,
	 "dashed address and two words"},
	{"5ad3f2e1.dyn.telefonica.de", "90.211.242.225", true,
	 "the address in hex"},
	{"101.22.15.73.static.isp.example", "73.15.22.101", true,
	 "'static' customer range: address reversed, dotted"},
	{"p5dd3f2e1.dip0.t-ipconnect.de", "93.211.242.225", true,
	 "Deutsche Telekom: hex after a letter"},
	{"pool-71-105-33-12.nycmny.fios.verizon.net", "71.105.33.12", true,
	 "Verizon FiOS"},
	{"cpe-72-182-50-10.austin.res.rr.com", "72.182.50.10", true,
	 "Spectrum residential"},
	{"99-45-12-201.lightspeed.sntcca.sbcglobal.net", "99.45.12.201", true,
	 "AT&T: the address alone"},
	{"static.89.67.45.123.clients.your-server.de", "123.45.67.89", true,
	 "Hetzner's default name for a rented server, reversed"},
	{"ec2-54-12-34-56.compute-1.amazonaws.com", "54.12.34.56", true,
	 "EC2 instance without its own name"},
	{"91-160-22-33.subs.proxad.net", "91.160.22.33", true, "Free (France)"},
	{"aaubervilliers-651-1-30-11.w86-218.abo.wanadoo.fr", "86.218.30.11",
	 true, "Orange: only part of the address, but 'abo' (subscriber)"},
	{"cpc123456-bagu17-2-0-cust456.1-3.cable.virginm.net", "86.12.34.56",
	 true, "Virgin Media: no address, 'cust' and 'cable'"},
	{"host86-150-22-33.range86-150.btcentralplus.com", "86.150.22.33", true,
	 "BT: address after 'host'"},
	{"2001-db8-1-2--5.ipv6.isp.example", "2001:db8:1:2::5", true,
	 "IPv6 as dashed text"},
	{"ip6-2001-db8-1-2--5.isp.example", "2001:db8:1:2::5", true,
	 "IPv6 as dashed text after a word"},
	{"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.isp.example",
	 "2001:db8:1:2::5", true, "IPv6 nibble by nibble, reversed"},
	{"20010db8000100020000000000000005.v6.isp.example", "2001:db8:1:2::5",
	 true, "IPv6 in hex, whole"},
	{"dynamic-pool.isp.example", "198.51.100.7", true,
	 "words alone: 'dynamic', 'pool'"},
	{"ip1360404780.isp.example", "81.22.33.44", true,
	 "the address as one 32-bit number"},
	{"ip081022033044.isp.example", "81.22.33.44", true,
	 "zero-padded octets run together"},
	{"44332281.static.isp.example", "81.22.33.44", true,
	 "octets run together, reversed"},
	{"cpe-22-33-44.static.isp.example", "81.22.33.44", true,
	 "three low octets: the ISP left off the first"},
	{"ppp-94-64-1-2.home.otenet.gr", "94.64.1.2", true, "OTE: 'ppp'"},
	{"adsl-dyn123.91-127-12.t-com.sk", "91.127.12.200", true,
	 "Slovak Telekom: 'adsl', 'dyn'"},
	{"H-155-4-56-78.NA.cust.bahnhof.se", "155.4.56.78", true,
	 "upper case as some resolvers hand it"},
	{"ip5f5a1b2c.dynamic.kabel-deutschland.de", "95.90.27.44", true,
	 "Vodafone cable: hex"},
	{"customer-187-141-12-34.uninet-ide.com.mx", "187.141.12.34", true,
	 "Telmex: under a public suffix of two labels"},
	{"dhcp-10-20-30-40.example.edu", "10.20.30.40", true,
	 "a campus DHCP range"},
	{"177.Red-88-29-94.dynamicIP.rima-tde.net", "88.29.94.177", true,
	 "Telefonica Spain: the octets rotated (d.a.b.c)"},
	{"host123.dynamicip.isp.example", "198.51.100.9", true,
	 "no address; a letter run starting with 'dynamic'"},
	{"mx1.dslam-vendor.example", "198.51.100.10", false,
	 "'dsl' starting a word in the organisational domain does not count"},
	{"smtp.dynamo.example.com", "198.51.100.11", false,
	 "'dyn' starting another word is not the word: short words stand alone"},
};

static ident_t *id;

static int
setup(void **state)
{
	char err[256];

	if (ident_open(&id, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "ident_open: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	ident_close(id);
	return 0;
}

static void
test_dynamic_table(void **state)
{
	size_t i, dyn = 0, failed = 0;

	assert_true(sizeof(dyn_cases) / sizeof(dyn_cases[0]) >= 40);
	for (i = 0; i < sizeof(dyn_cases) / sizeof(dyn_cases[0]); i++) {
		const struct dyn_case *c = &dyn_cases[i];
		bool got = ident_looks_dynamic(id, c->name, strlen(c->name),
					       c->addr, strlen(c->addr));

		dyn += c->dynamic;
		if (got != c->dynamic) {
			fprintf(stderr, "%s [%s]: %s, expected %s (%s)\n",
				c->name, c->addr, got ? "dynamic" : "not dynamic",
				c->dynamic ? "dynamic" : "not dynamic", c->why);
			failed++;
		}
	}
	/* Both sides of the table are well filled. */
	assert_true(dyn >= 20);
	assert_true(i - dyn >= 20);
	assert_int_equal(failed, 0);
}

/* The name identity follows the verdict above: a pool groups, a customer does not. */
static void
test_name_identity_of_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(dyn_cases) / sizeof(dyn_cases[0]); i++) {
		const struct dyn_case *c = &dyn_cases[i];
		struct ident_name n;
		int rc = ident_name(id, c->name, strlen(c->name), c->addr,
				    strlen(c->addr), &n);

		if (c->dynamic) {
			assert_int_equal(rc, -ENOENT);
			assert_int_equal(n.why, IDENT_NAME_DYNAMIC);
			assert_int_equal(n.org_len, 0);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(n.why, IDENT_NAME_OK);
			assert_int_equal(n.org_len, strlen(n.org));
		}
	}
}

struct org_case {
	const char *name;
	int rc;
	const char *org;
};

static const struct org_case org_cases[] = {
	{"mail123.atl31.mcsv.net", 0, "mcsv.net"},
	{"a8-30.smtp-out.amazonses.com", 0, "amazonses.com"},
	{"mail-dm6nam10on2061.outbound.protection.outlook.com", 0, "outlook.com"},
	{"mail-ej1-f44.google.com", 0, "google.com"},
	{"MAIL.Example.COM.", 0, "example.com"},	/* case, trailing dot */
	{"smtp.mail.example.co.uk", 0, "example.co.uk"},
	{"mx.city.kawasaki.jp", 0, "city.kawasaki.jp"},	/* exception rule */
	{"mail.foo.github.io", 0, "foo.github.io"},	/* private section */
	{"mx.xn--80ak6aa92e.xn--p1ai", 0, "xn--80ak6aa92e.xn--p1ai"},	/* IDN */
	{"mail_relay.example.org", 0, "example.org"},	/* '_' seen in PTRs */
	{"com", -ENOENT, NULL},
	{"co.uk", -ENOENT, NULL},
	{"localhost", -ENOENT, NULL},
	{"github.io", -ENOENT, NULL},
	{"192.0.2.1", -EINVAL, NULL},	/* IPv4 literal */
	{"[192.0.2.1]", -EINVAL, NULL},
	{"2001:db8::1", -EINVAL, NULL},
	{"", -EINVAL, NULL},
	{".", -EINVAL, NULL},
	{"mail..example.com", -EINVAL, NULL},
	{".example.com", -EINVAL, NULL},
	{"-mail.example.com", -EINVAL, NULL},
	{"mail-.example.com", -EINVAL, NULL},
	{"mail.example.com-", -EINVAL, NULL},
	{"m\xc3\xa4il.example.com", -EINVAL, NULL},	/* UTF-8: not as Postfix sends */
	{"mail example.com", -EINVAL, NULL},
	{"mail.example.com\n", -EINVAL, NULL},
	{"x.0123", -EINVAL, NULL},	/* numeric top label */
};

static void
test_org_domain(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(org_cases) / sizeof(org_cases[0]); i++) {
		const struct org_case *c = &org_cases[i];
		char out[IDENT_MAX_NAME + 1];
		size_t len = 0;
		int rc = ident_org_domain(id, c->name, strlen(c->name), out,
					  sizeof(out), &len);

		if (rc != c->rc)
			fail_msg("'%s': rc %d, expected %d", c->name, rc, c->rc);
		if (c->org != NULL) {
			assert_string_equal(out, c->org);
			assert_int_equal(len, strlen(c->org));
		}
	}
}

static void
test_org_domain_bounds(void **state)
{
	char name[300], out[IDENT_MAX_NAME + 1], small[8];
	size_t len, i;

	/* A label of 63 bytes is fine, 64 is not. */
	memset(name, 'a', 63);
	strcpy(name + 63, ".example.com");
	assert_int_equal(ident_org_domain(id, name, strlen(name), out,
					  sizeof(out), &len), 0);
	memset(name, 'a', 64);
	strcpy(name + 64, ".example.com");
	assert_int_equal(ident_org_domain(id, name, strlen(name), out,
					  sizeof(out), &len), -EINVAL);

	/* 253 bytes in all is the limit. */
	for (i = 0; i + 2 <= 240; i += 2)
		memcpy(name + i, "a.", 2);
	strcpy(name + 240, "example.com");	/* 251 */
	assert_int_equal(ident_org_domain(id, name, strlen(name), out,
					  sizeof(out), &len), 0);
	assert_string_equal(out, "example.com");
	memcpy(name + 240, "aa.a.", 5);
	strcpy(name + 245, "example.com");	/* 256 */
	assert_int_equal(ident_org_domain(id, name, strlen(name), out,
					  sizeof(out), &len), -EINVAL);

	/* Only len bytes count: the name need not be NUL-terminated. */
	assert_int_equal(ident_org_domain(id, "mail.example.comXYZ", 16, out,
					  sizeof(out), &len), 0);
	assert_string_equal(out, "example.com");

	assert_int_equal(ident_org_domain(id, "mail.example.com", 16, small,
					  sizeof(small), &len), -ENOSPC);
}

struct name_case {
	const char *name;
	const char *addr;
	enum ident_name_why why;
	const char *org;
};

static const struct name_case name_cases[] = {
	{"unknown", "192.0.2.1", IDENT_NAME_UNKNOWN, NULL},
	{"UNKNOWN", "192.0.2.1", IDENT_NAME_UNKNOWN, NULL},
	{"[UNAVAILABLE]", "192.0.2.1", IDENT_NAME_UNKNOWN, NULL},
	{"", "192.0.2.1", IDENT_NAME_UNKNOWN, NULL},
	{"192.0.2.1", "192.0.2.1", IDENT_NAME_INVALID, NULL},
	{"[192.0.2.1]", "192.0.2.1", IDENT_NAME_INVALID, NULL},
	{"com", "192.0.2.1", IDENT_NAME_SUFFIX, NULL},
	{"co.uk", "192.0.2.1", IDENT_NAME_SUFFIX, NULL},
	{"localhost", "127.0.0.1", IDENT_NAME_SUFFIX, NULL},
	{"c-73-15-22-101.hsd1.ca.comcast.net", "73.15.22.101",
	 IDENT_NAME_DYNAMIC, NULL},
	{"mail123.atl31.mcsv.net", "198.2.139.123", IDENT_NAME_OK, "mcsv.net"},
	{"Mail-EJ1-F44.Google.COM", "209.85.218.44", IDENT_NAME_OK, "google.com"},
	{"mx.example.org.", "unknown", IDENT_NAME_OK, "example.org"},
};

static void
test_name_identity(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		struct ident_name n;
		int rc = ident_name(id, c->name, strlen(c->name), c->addr,
				    strlen(c->addr), &n);

		if (n.why != c->why)
			fail_msg("'%s': %s, expected %s", c->name,
				 ident_name_why_str(n.why),
				 ident_name_why_str(c->why));
		assert_int_equal(rc, c->why == IDENT_NAME_OK ? 0 : -ENOENT);
		if (c->org != NULL)
			assert_string_equal(n.org, c->org);
		else
			assert_string_equal(n.org, "");
	}
	assert_string_equal(ident_name_why_str(IDENT_NAME_DYNAMIC), "dynamic");
}

struct sender_case {
	const char *sender;
	const char *expect;
};

static const struct sender_case sender_cases[] = {
	/* Mailchimp: the return path names the sending host. */
	{"bounce-mc.us5_1234.5678-#@mail123.atl31.mcsv.net",
	 "bounce-mc.us5_1234.5678-#@mcsv.net"},
	{"bounce-mc.us5_1234.5678-#@mail77.suw21.mcsv.net",
	 "bounce-mc.us5_1234.5678-#@mcsv.net"},
	{"#@eu-west-1.amazonses.com", "#@amazonses.com"},
	{"user@example.com", "user@example.com"},
	{"user@mail.example.co.uk", "user@example.co.uk"},
	{"user@mail.example.com.", "user@example.com"},
	/* The local part is the normaliser's: kept byte for byte. */
	{"\"a@b\"@lists.example.org", "\"a@b\"@example.org"},
	{"", ""},			/* the null sender */
	{"postmaster", "postmaster"},	/* no domain */
	{"user@", "user@"},
	{"user@[192.0.2.1]", "user@[192.0.2.1]"},
	{"user@localhost", "user@localhost"},
	{"user@co.uk", "user@co.uk"},
	{"user@bad..example.com", "user@bad..example.com"},
};

static void
test_sender_org(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(sender_cases) / sizeof(sender_cases[0]); i++) {
		const struct sender_case *c = &sender_cases[i];
		char out[300];
		size_t n;

		memset(out, 0x5a, sizeof(out));
		n = ident_sender_org(id, out, c->sender, strlen(c->sender));
		if (n != strlen(c->expect) || memcmp(out, c->expect, n) != 0)
			fail_msg("'%s': got '%.*s', expected '%s'", c->sender,
				 (int)n, out, c->expect);
		assert_true(n <= strlen(c->sender));
		assert_int_equal((unsigned char)out[n], 0x5a);
	}
}

static void
test_open_file(void **state)
{
	ident_t *other;
	char err[256] = "";
	char out[IDENT_MAX_NAME + 1];
	size_t len;

	assert_int_equal(ident_open(&other, "/nonexistent/psl.dafsa", err,
				    sizeof(err)), -ENOENT);
	assert_null(other);
	assert_non_null(strstr(err, "/nonexistent/psl.dafsa"));

	/* The text form of the list, as the package ships it. */
	assert_int_equal(ident_open(&other, TEST_SRCDIR "/unit/fixtures/psl_small.dat",
				    err, sizeof(err)), 0);
	assert_string_equal(ident_source(other),
			    TEST_SRCDIR "/unit/fixtures/psl_small.dat");
	/* Only what that list says: "example" is a public suffix in it. */
	assert_int_equal(ident_org_domain(other, "a.b.example", 11, out,
					  sizeof(out), &len), 0);
	assert_string_equal(out, "b.example");
	assert_int_equal(ident_org_domain(other, "example", 7, out,
					  sizeof(out), &len), -ENOENT);
	ident_close(other);
	ident_close(NULL);
	assert_non_null(ident_source(id));
}

/*
 * One ident_t serves every thread at once (the daemon's loop and the
 * store thread): four threads judge the whole table many times over and
 * must all agree with it.
 */
static void *
judge_table(void *arg)
{
	size_t round, i, wrong = 0;

	for (round = 0; round < 200; round++) {
		for (i = 0; i < sizeof(dyn_cases) / sizeof(dyn_cases[0]); i++) {
			const struct dyn_case *c = &dyn_cases[i];
			struct ident_name n;

			ident_name(id, c->name, strlen(c->name), c->addr,
				   strlen(c->addr), &n);
			wrong += (n.why == IDENT_NAME_DYNAMIC) != c->dynamic;
		}
	}
	*(size_t *)arg = wrong;
	return NULL;
}

static void
test_shared_between_threads(void **state)
{
	pthread_t th[4];
	size_t wrong[4], i;

	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, judge_table,
						&wrong[i]), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(wrong[i], 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dynamic_table),
		cmocka_unit_test(test_name_identity_of_table),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_org_domain_bounds),
		cmocka_unit_test(test_name_identity),
		cmocka_unit_test(test_sender_org),
		cmocka_unit_test(test_open_file),
		cmocka_unit_test(test_shared_between_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
