/*
 * test_extsort - sorting in bounded memory: the order LMDB uses, stable
 * among equal keys, the same with runs merged from the temporary file as
 * all in memory, and no file left behind in its directory.
 */
#include "extsort.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

struct ref {
	char key[24];
	size_t key_len;
	uint32_t seq;		/* the value: the order added */
};

static char *
make_tmpdir(void)
{
	static char dir[64];

	snprintf(dir, sizeof(dir), "/tmp/test_extsort.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

/* Entries in dir other than . and .. */
static int
dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
			n++;
	}
	closedir(d);
	return n;
}

static int
ref_cmp(const void *pa, const void *pb)
{
	const struct ref *a = pa, *b = pb;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	if (c != 0)
		return c;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Random keys from a small alphabet with high bytes, many repeated. */
static void
make_refs(struct ref *r, size_t n, unsigned seed)
{
	static const char alpha[] = {'a', 'b', '\0', (char)0x80, (char)0xff};

	srand(seed);
	for (size_t i = 0; i < n; i++) {
		r[i].key_len = (size_t)rand() % 7;
		for (size_t j = 0; j < r[i].key_len; j++)
			r[i].key[j] = alpha[rand() % (int)sizeof(alpha)];
		r[i].seq = (uint32_t)i;
	}
}

/* Sort n items with the budget given; check against qsort of refs. */
static size_t
sort_and_check(const char *dir, size_t memory, size_t n)
{
	struct ref *r = calloc(n, sizeof(*r));
	struct extsort_item it;
	extsort_t *s;
	size_t runs, i = 0;
	int rc;

	assert_non_null(r);
	make_refs(r, n, 7);
	assert_int_equal(extsort_create(dir, memory, &s), 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(extsort_add(s, r[k].key, r[k].key_len,
					     &r[k].seq, sizeof(r[k].seq)), 0);
	assert_int_equal(extsort_finish(s), 0);
	qsort(r, n, sizeof(*r), ref_cmp);
	while ((rc = extsort_next(s, &it)) == 1) {
		uint32_t seq;

		assert_true(i < n);
		assert_int_equal(it.key_len, r[i].key_len);
		assert_memory_equal(it.key, r[i].key, it.key_len);
		assert_int_equal(it.val_len, sizeof(seq));
		memcpy(&seq, it.val, sizeof(seq));
		assert_int_equal(seq, r[i].seq);
		i++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(i, n);
	assert_int_equal(extsort_next(s, &it), 0);
	/* the runs' file never shows in the directory */
	assert_int_equal(dir_entries(dir), 0);
	runs = extsort_runs(s);
	extsort_free(s);
	free(r);
	return runs;
}

static void
test_in_memory(void **state)
{
	const char *dir = make_tmpdir();

	(void)state;
	assert_int_equal(sort_and_check(dir, 1 << 20, 5000), 0);
	assert_int_equal(dir_entries(dir), 0);
	rmdir(dir);
}

static void
test_runs_merged_stably(void **state)
{
	const char *dir = make_tmpdir();

	(void)state;
	/* about 2700 items a run of 64 KiB: some 37 runs */
	assert_true(sort_and_check(dir, EXTSORT_MIN_MEMORY, 100000) > 30);
	assert_int_equal(dir_entries(dir), 0);
	rmdir(dir);
}

static void
test_lmdb_order(void **state)
{
	/* shorter first on a common prefix; bytes compare unsigned */
	static const char *const want[] = {"", "a", "a\0", "ab", "a\x7f",
					   "a\x80", "b"};
	static const size_t lens[] = {0, 1, 2, 2, 2, 2, 1};
	static const int add_order[] = {6, 3, 0, 5, 1, 4, 2};
	const char *dir = make_tmpdir();
	struct extsort_item it;
	extsort_t *s;

	(void)state;
	assert_int_equal(extsort_create(dir, EXTSORT_MIN_MEMORY, &s), 0);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(extsort_add(s, want[add_order[i]],
					     lens[add_order[i]], NULL, 0), 0);
	assert_int_equal(extsort_finish(s), 0);
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(extsort_next(s, &it), 1);
		assert_int_equal(it.key_len, lens[i]);
		assert_memory_equal(it.key, want[i], lens[i]);
		assert_int_equal(it.val_len, 0);
	}
	assert_int_equal(extsort_next(s, &it), 0);
	extsort_free(s);
	rmdir(dir);
}

/* A dump whose first line is already wrong sorts nothing. */
static void
test_no_items(void **state)
{
	const char *dir = make_tmpdir();
	struct extsort_item it;
	extsort_t *s;

	(void)state;
	assert_int_equal(extsort_create(dir, EXTSORT_MIN_MEMORY, &s), 0);
	assert_int_equal(extsort_finish(s), 0);
	assert_int_equal(extsort_runs(s), 0);
	assert_int_equal(extsort_next(s, &it), 0);
	extsort_free(s);
	assert_int_equal(dir_entries(dir), 0);
	rmdir(dir);
}

static void
test_errors(void **state)
{
	static char big[EXTSORT_MAX_ITEM + 1];
	char missing[128];
	const char *dir = make_tmpdir();
	struct extsort_item it;
	extsort_t *s;
	int rc = 0;

	(void)state;
	assert_int_equal(extsort_create(dir, EXTSORT_MIN_MEMORY - 1, &s),
			 -EINVAL);
	assert_null(s);
	assert_int_equal(extsort_create(dir, EXTSORT_MIN_MEMORY, &s), 0);
	assert_int_equal(extsort_next(s, &it), -EINVAL);
	assert_int_equal(extsort_add(s, big, sizeof(big), NULL, 0), -E2BIG);
	assert_int_equal(extsort_add(s, big, 10, big, EXTSORT_MAX_ITEM - 9),
			 -E2BIG);
	assert_int_equal(extsort_add(s, big, 10, big, EXTSORT_MAX_ITEM - 10),
			 0);
	assert_int_equal(extsort_finish(s), 0);
	assert_int_equal(extsort_add(s, "a", 1, NULL, 0), -EINVAL);
	assert_int_equal(extsort_finish(s), -EINVAL);
	extsort_free(s);
	extsort_free(NULL);

	/* a run that cannot be written: the error comes back from add */
	snprintf(missing, sizeof(missing), "%s/gone", dir);
	assert_int_equal(extsort_create(missing, EXTSORT_MIN_MEMORY, &s), 0);
	for (int i = 0; i < 100000 && rc == 0; i++)
		rc = extsort_add(s, "key", 3, &i, sizeof(i));
	assert_int_equal(rc, -ENOENT);
	extsort_free(s);
	assert_int_equal(dir_entries(dir), 0);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_runs_merged_stably),
		cmocka_unit_test(test_lmdb_order),
		cmocka_unit_test(test_no_items),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
