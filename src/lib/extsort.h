/*
 * extsort - sort (key, value) byte items by key in bounded memory (see
 * extsort.c).
 *
 * Keys compare as LMDB compares them by default: bytes as unsigned, a
 * key that is a prefix of another first.  Items with equal keys come out
 * in the order they were added.  When the items outgrow the memory
 * given, sorted runs go to one temporary file that has no name (it is
 * gone when the sorter is freed or the process dies) and are merged.
 */
#ifndef GREYHOLD_EXTSORT_H
#define GREYHOLD_EXTSORT_H

#include <stddef.h>

typedef struct extsort extsort_t;

/* Largest key + value accepted by extsort_add(); larger is -E2BIG. */
#define EXTSORT_MAX_ITEM 8192

/* The smallest memory budget extsort_create() accepts. */
#define EXTSORT_MIN_MEMORY (64 * 1024)

struct extsort_item {
	const void *key;
	size_t key_len;
	const void *val;
	size_t val_len;
};

/*
 * A sorter that holds at most about `memory` bytes of items and index
 * before it writes a run to a temporary file in tmpdir (created at the
 * first run written, never before).  The caller keeps tmpdir alive.
 * 0, -EINVAL (memory below EXTSORT_MIN_MEMORY) or -ENOMEM.
 */
int extsort_create(const char *tmpdir, size_t memory, extsort_t **out);

/* Copy one item in: 0, -E2BIG, -EINVAL after extsort_finish(), or the
   error of writing a run (-ENOSPC, -EIO, ...). */
int extsort_add(extsort_t *s, const void *key, size_t key_len,
		const void *val, size_t val_len);

/* No more items: sort what is held, prepare the merge.  0 or -errno. */
int extsort_finish(extsort_t *s);

/*
 * The next item in key order: 1 with *out filled (its bytes valid until
 * the next call), 0 when there are no more, or a negative errno.
 */
int extsort_next(extsort_t *s, struct extsort_item *out);

/* Runs written to the temporary file so far (0: everything in memory). */
size_t extsort_runs(const extsort_t *s);

/* Free everything and close the temporary file; NULL is fine. */
void extsort_free(extsort_t *s);

#endif
