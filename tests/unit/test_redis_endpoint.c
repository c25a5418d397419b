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
		cmocka_unit_test(test_small_error_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
