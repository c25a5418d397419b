/*
 * test_redis_endpoint - the store addresses an administrator writes.
 *
 * Every accepted form is checked field by field (host, port, socket path,
 * database), and every rejection for its -EINVAL and the message the
 * administrator reads in `greyhold -n` and the log.  The contract in
 * redis_endpoint.h promises -EINVAL for every bad address, so a rejection
 * with any other code is a failure too.
 */
#include "redis_endpoint.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define FORMS_HINT "expected redis://HOST[:PORT][/DB] or unix:///PATH[?db=N]"

static struct redis_endpoint
parse_ok(const char *store)
{
	struct redis_endpoint ep;
	char err[512] = "";
	int rc = redis_endpoint_parse(store, &ep, err, sizeof(err));

	if (rc != 0)
		fail_msg("'%s' rejected (%d): %s", store, rc, err);
	return ep;
}

static void
expect_tcp(const char *store, const char *host, unsigned port, unsigned db)
{
	struct redis_endpoint ep = parse_ok(store);

	if (strcmp(ep.host, host) != 0 || ep.port != port || ep.db != db ||
	    ep.path[0] != '\0')
		fail_msg("'%s': got host '%s' port %u db %u path '%s', expected "
			 "host '%s' port %u db %u", store, ep.host, ep.port, ep.db,
			 ep.path, host, port, db);
}

static void
expect_unix(const char *store, const char *path, unsigned db)
{
	struct redis_endpoint ep = parse_ok(store);

	if (strcmp(ep.path, path) != 0 || ep.db != db || ep.host[0] != '\0')
		fail_msg("'%s': got path '%s' db %u host '%s', expected path "
			 "'%s' db %u", store, ep.path, ep.db, ep.host, path, db);
}

/* Rejected with -EINVAL and a message holding want (and store if shown). */
static void
expect_rejected(const char *store, const char *want, bool echoes_store)
{
	struct redis_endpoint ep;
	char err[512] = "";
	int rc = redis_endpoint_parse(store, &ep, err, sizeof(err));

	if (rc != -EINVAL)
		fail_msg("'%s': returned %d, expected -EINVAL", store, rc);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", store, err, want);
	if (echoes_store && strstr(err, store) == NULL)
		fail_msg("'%s': message '%s' does not name the address", store,
			 err);
}

static void
expect_bad_form(const char *store)
{
	expect_rejected(store, FORMS_HINT, true);
}

/* ---- accepted -------------------------------------------------------------- */

static void
test_tcp_forms(void **state)
{
	(void)state;
	expect_tcp("redis://localhost", "localhost", 6379, 0);
	expect_tcp("redis://localhost/", "localhost", 6379, 0);
	expect_tcp("redis://127.0.0.1:6380", "127.0.0.1", 6380, 0);
	expect_tcp("redis://127.0.0.1:6380/", "127.0.0.1", 6380, 0);
	expect_tcp("redis://redis.example.net/3", "redis.example.net", 6379, 3);
	expect_tcp("redis://redis.example.net:7000/15", "redis.example.net",
		   7000, 15);
	expect_tcp("redis://h:1/0", "h", 1, 0);
	expect_tcp("redis://h:65535", "h", 65535, 0);
	expect_tcp("redis://h/1000000", "h", 6379, 1000000);
}

static void
test_ipv6_forms(void **state)
{
	(void)state;
	expect_tcp("redis://[::1]", "::1", 6379, 0);
	expect_tcp("redis://[::1]:6390", "::1", 6390, 0);
	expect_tcp("redis://[::1]/2", "::1", 6379, 2);
	expect_tcp("redis://[2001:db8::7]:6379/9", "2001:db8::7", 6379, 9);
}

static void
test_unix_forms(void **state)
{
	(void)state;
	expect_unix("unix:///run/redis/redis.sock", "/run/redis/redis.sock", 0);
	expect_unix("unix:///run/redis/redis.sock?db=4", "/run/redis/redis.sock",
		    4);
	expect_unix("unix:///tmp/r?db=0", "/tmp/r", 0);
}

/* The longest host and socket path that fit their fields, exactly. */
static void
test_longest_names(void **state)
{
	struct redis_endpoint ep;
	char store[600], host[sizeof(ep.host)], path[sizeof(ep.path)];

	(void)state;
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(store, sizeof(store), "redis://%s:1/2", host);
	expect_tcp(store, host, 1, 2);
	snprintf(store, sizeof(store), "redis://%sh:1/2", host);
	expect_bad_form(store);

	path[0] = '/';
	memset(path + 1, 'p', sizeof(path) - 2);
	path[sizeof(path) - 1] = '\0';
	snprintf(store, sizeof(store), "unix://%s?db=1", path);
	expect_unix(store, path, 1);
	snprintf(store, sizeof(store), "unix://%sp", path);
	expect_bad_form(store);
}

/* ---- rejected -------------------------------------------------------------- */

static void
test_rejected_forms(void **state)
{
	static const char *const bad[] = {
		"", "lmdb-ish", "redis:/host", "REDIS://host", "http://host",
		"redis://", "redis://:6379", "redis:///0",
		/* ports */
		"redis://h:", "redis://h:0", "redis://h:65536", "redis://h:-1",
		"redis://h:63x", "redis://h:6379x", "redis://h:99999999999",
		"redis://h:/1",
		/* databases */
		"redis://h/x", "redis://h/-1", "redis://h//", "redis://h/1/",
		"redis://h/1000001", "redis://h/4294967296", "redis://h:1/1 ",
		/* IPv6 */
		"redis://::1", "redis://[::1", "redis://[]", "redis://[::1]x",
		"redis://[::1]:", "redis://[::1]:0", "redis://[::1]6379",
		/* unix sockets */
		"unix://", "unix://relative.sock", "unix:/run/r.sock",
		"unix:///r.sock?", "unix:///r.sock?db=", "unix:///r.sock?db=x",
		"unix:///r.sock?db=1&x=2", "unix:///r.sock?database=1",
		"unix:///r.sock?db=1000001",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad_form(bad[i]);
}

/*
 * A password in the address would end up in every log line and error
 * message that shows the address: it is refused, and the refusal itself
 * must not repeat it.
 */
static void
test_credentials_refused_unrepeated(void **state)
{
	static const char *const with_creds[] = {
		"redis://user:s3cret-pw@host:6379/0",
		"redis://:s3cret-pw@host",
		"redis://s3cret-pw@[::1]",
		"unix://s3cret-pw@/run/r.sock",
	};
	struct redis_endpoint ep;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(with_creds) / sizeof(with_creds[0]); i++) {
		expect_rejected(with_creds[i], "redis_user and redis_password",
				false);
		redis_endpoint_parse(with_creds[i], &ep, err, sizeof(err));
		if (strstr(err, "s3cret-pw") != NULL)
			fail_msg("'%s': the message repeats the password: %s",
				 with_creds[i], err);
	}
}

static void
expect_sentinels(const char *store, const char *master, unsigned db,
		 unsigned n, const char *const *hosts, const unsigned *ports)
{
	struct redis_endpoint ep = parse_ok(store);

	if (strcmp(ep.master, master) != 0 || ep.db != db ||
	    ep.nsentinels != n || ep.host[0] != '\0' || ep.path[0] != '\0')
		fail_msg("'%s': got master '%s' db %u %u sentinels host '%s' "
			 "path '%s', expected master '%s' db %u %u sentinels",
			 store, ep.master, ep.db, ep.nsentinels, ep.host,
			 ep.path, master, db, n);
	for (unsigned i = 0; i < n; i++)
		if (strcmp(ep.sentinels[i].host, hosts[i]) != 0 ||
		    ep.sentinels[i].port != ports[i])
			fail_msg("'%s': sentinel %u is '%s' port %u, expected "
				 "'%s' port %u", store, i, ep.sentinels[i].host,
				 ep.sentinels[i].port, hosts[i], ports[i]);
}

static void
test_sentinel_forms(void **state)
{
	static const char *const one[] = {"10.0.0.1"};
	static const unsigned one_p[] = {26379};
	static const char *const three[] = {"192.0.2.1", "::1", "10.0.0.3"};
	static const unsigned three_p[] = {26379, 26380, 5000};
	static const char *const eight[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3",
					    "10.0.0.4", "10.0.0.5", "10.0.0.6",
					    "10.0.0.7", "10.0.0.8"};
	static const unsigned eight_p[] = {1, 2, 3, 4, 5, 6, 7, 8};
	char name[REDIS_ENDPOINT_MASTER_MAX + 1];
	char store[128];

	(void)state;
	expect_sentinels("sentinel://10.0.0.1/mymaster", "mymaster", 0, 1, one,
			 one_p);
	expect_sentinels("sentinel://10.0.0.1:26379/my-master.1_x?db=3",
			 "my-master.1_x", 3, 1, one, one_p);
	expect_sentinels("sentinel://192.0.2.1,[::1]:26380,10.0.0.3:5000/gh",
			 "gh", 0, 3, three, three_p);
	expect_sentinels("sentinel://10.0.0.1:1,10.0.0.2:2,10.0.0.3:3,10.0.0.4:4,"
			 "10.0.0.5:5,10.0.0.6:6,10.0.0.7:7,10.0.0.8:8/m?db=1000000",
			 "m", 1000000, 8, eight, eight_p);
	/* The longest master name: 64 characters. */
	memset(name, 'm', REDIS_ENDPOINT_MASTER_MAX);
	name[REDIS_ENDPOINT_MASTER_MAX] = '\0';
	snprintf(store, sizeof(store), "sentinel://10.0.0.1/%s", name);
	expect_sentinels(store, name, 0, 1, one, one_p);
	/* One more is refused. */
	snprintf(store, sizeof(store), "sentinel://10.0.0.1/%sm", name);
	expect_rejected(store, "/MASTER[?db=N]", true);
}

static void
test_sentinel_rejected(void **state)
{
	static const char *const bad[] = {
		"sentinel://",
		"sentinel:///mymaster",
		"sentinel://10.0.0.1",
		"sentinel://10.0.0.1/",
		"sentinel://10.0.0.1:/m",
		"sentinel://10.0.0.1:0/m",
		"sentinel://10.0.0.1:65536/m",
		"sentinel://10.0.0.1:26379x/m",
		"sentinel://10.0.0.1,/m",
		"sentinel://,10.0.0.1/m",
		"sentinel://10.0.0.1,,10.0.0.2/m",
		"sentinel://[::1/m",
		"sentinel://10.0.0.1/my master",
		"sentinel://10.0.0.1/m/0",
		"sentinel://10.0.0.1/m?db=",
		"sentinel://10.0.0.1/m?db=x",
		"sentinel://10.0.0.1/m?db=1000001",
		"sentinel://10.0.0.1/m?dbx=1",
		"sentinel://10.0.0.1/m{x}",
		"sentinel://1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,"
		"1.1.1.7,1.1.1.8,1.1.1.9/m",
		"sentinel://sentinel1.example/m",
		"sentinel://10.0.0.1,localhost:26379/m",
		"sentinel://10.0.0.256/m",
		"sentinel://[fe80::1%eth0]/m",
		"SENTINEL://10.0.0.1/m",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_rejected(bad[i], "sentinel://IP[:PORT][,IP[:PORT]...]"
				"/MASTER[?db=N]", true);
	expect_rejected("sentinel://pw@10.0.0.1/m",
			"redis_user and redis_password", false);
}

/* A small err buffer gets a cut, terminated message, never an overrun. */
static void
test_small_error_buffer(void **state)
{
	struct redis_endpoint ep;
	char err[16];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_int_equal(redis_endpoint_parse("bogus", &ep, err, 8), -EINVAL);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(err[8], 'x');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_forms),
		cmocka_unit_test(test_ipv6_forms),
		cmocka_unit_test(test_unix_forms),
		cmocka_unit_test(test_longest_names),
		cmocka_unit_test(test_rejected_forms),
		cmocka_unit_test(test_credentials_refused_unrepeated),
		cmocka_unit_test(test_sentinel_forms),
		cmocka_unit_test(test_sentinel_rejected),
		cmocka_unit_test(test_small_error_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
