/*
 * test_privacy - keyed hashes in stored keys.
 *
 * What an admin relies on: the key file is created once, private, and
 * reused; stored keys carry no address; one secret always gives one key
 * per triplet; another secret gives unrelated keys; a client's triplets
 * share their client prefix (so forgetting by client works).
 */
#include "privacy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static const struct triplet_opts opts = {false, 24, 64};

static void
build(struct triplet_key *k, const char *client, const char *sender,
      const char *rcpt)
{
	triplet_build(k, client, strlen(client), sender, strlen(sender), rcpt,
		      strlen(rcpt), &opts);
}

static char *
temp_dir(void)
{
	char *dir = strdup("/tmp/greyhold-privacy.XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
remove_dir(char *dir, const char *file)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	unlink(path);
	rmdir(dir);
	free(dir);
}

static void
test_key_created_private_and_reused(void **state)
{
	char *dir = temp_dir();
	char path[256], err[256];
	struct privacy a, b;
	struct stat st;

	(void)state;
	if (!privacy_available())
		skip();
	snprintf(path, sizeof(path), "%s/privacy.key", dir);
	assert_int_equal(privacy_load_key(&a, path, false, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(privacy_load_key(&a, path, true, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, PRIVACY_KEY_BYTES);
	/* A second start reads the same key, never a new one. */
	assert_int_equal(privacy_load_key(&b, path, true, err, sizeof(err)), 0);
	assert_memory_equal(a.key, b.key, PRIVACY_KEY_BYTES);
	remove_dir(dir, "privacy.key");
}

static void
test_key_readable_by_others_refused(void **state)
{
	char *dir = temp_dir();
	char path[256], err[256];
	struct privacy p;

	(void)state;
	if (!privacy_available())
		skip();
	snprintf(path, sizeof(path), "%s/privacy.key", dir);
	assert_int_equal(privacy_load_key(&p, path, true, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(privacy_load_key(&p, path, false, err, sizeof(err)),
			 -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	remove_dir(dir, "privacy.key");
}

static void
test_short_key_file_refused(void **state)
{
	char *dir = temp_dir();
	char path[256], err[256];
	struct privacy p;
	int fd;

	(void)state;
	if (!privacy_available())
		skip();
	snprintf(path, sizeof(path), "%s/privacy.key", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "short", 5), 5);
	close(fd);
	assert_int_equal(privacy_load_key(&p, path, true, err, sizeof(err)),
			 -EBADMSG);
	remove_dir(dir, "privacy.key");
}

static void
test_hashed_key_hides_addresses(void **state)
{
	struct privacy p;
	struct triplet_key k;

	(void)state;
	if (!privacy_available())
		skip();
	memset(p.key, 7, sizeof(p.key));
	build(&k, "192.0.2.7", "alice@example.org", "bob@example.net");
	privacy_apply(&p, &k);
	assert_int_equal(k.key_len, PRIVACY_KEY_LEN);
	assert_int_equal(k.client_len, PRIVACY_CLIENT_LEN);
	assert_int_equal(k.key[0], 'h');
	assert_memory_equal(k.key, k.client, PRIVACY_CLIENT_LEN);
	assert_null(memmem(k.key, k.key_len, "example", 7));
	assert_null(memmem(k.key, k.key_len, "192.0.2", 7));
}

static void
test_same_secret_same_key_other_secret_other_key(void **state)
{
	struct privacy p, q;
	struct triplet_key a, b, c;

	(void)state;
	if (!privacy_available())
		skip();
	memset(p.key, 1, sizeof(p.key));
	memset(q.key, 2, sizeof(q.key));
	/* Same /24 and a normalised-equal sender: the same triplet. */
	build(&a, "192.0.2.7", "alice+news@example.org", "bob@example.net");
	build(&b, "192.0.2.99", "alice@example.org", "bob@example.net");
	build(&c, "192.0.2.7", "alice@example.org", "bob@example.net");
	privacy_apply(&p, &a);
	privacy_apply(&p, &b);
	privacy_apply(&q, &c);
	assert_memory_equal(a.key, b.key, PRIVACY_KEY_LEN);
	assert_memory_not_equal(a.key, c.key, PRIVACY_KEY_LEN);
}

static void
test_parts_hashed_apart(void **state)
{
	struct privacy p;
	struct triplet_key a, b;

	(void)state;
	if (!privacy_available())
		skip();
	memset(p.key, 3, sizeof(p.key));
	/* Swapping sender and recipient must give another key. */
	build(&a, "192.0.2.7", "x@example.org", "y@example.org");
	build(&b, "192.0.2.7", "y@example.org", "x@example.org");
	privacy_apply(&p, &a);
	privacy_apply(&p, &b);
	assert_memory_equal(a.key, b.key, PRIVACY_CLIENT_LEN);
	assert_memory_not_equal(a.key, b.key, PRIVACY_KEY_LEN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_created_private_and_reused),
		cmocka_unit_test(test_key_readable_by_others_refused),
		cmocka_unit_test(test_short_key_file_refused),
		cmocka_unit_test(test_hashed_key_hides_addresses),
		cmocka_unit_test(test_same_secret_same_key_other_secret_other_key),
		cmocka_unit_test(test_parts_hashed_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
