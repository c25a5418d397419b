/*
 * extsort - sort (key, value) byte items by key in bounded memory.
 *
 * Items are copied into an arena until it and the index of their
 * addresses would pass the memory budget; then the index is sorted and
 * the items written, in order, as one run at the end of a temporary
 * file.  extsort_finish() sorts the last run in memory; when runs were
 * written, it writes the last one too and merges them all: each run gets
 * a read buffer (the budget shared among them, at least RUN_BUF_MIN) and
 * a binary heap picks the run whose current item has the smallest key.
 *
 * Order: keys as LMDB's default comparison orders them (memcmp, then
 * the shorter first), so items come out in the order of a database's
 * pages.  Equal keys keep the order they were added in: within a run
 * the arena's addresses grow in that order, and runs are merged with
 * the earlier run first on a tie.
 *
 * The temporary file never has a name for long: it is opened with
 * O_TMPFILE where the file system allows, else created with mkostemp()
 * and unlinked at once, so it disappears with its descriptor on every
 * exit, a crash or a kill included.  It is created in tmpdir (mode
 * 0600) when the first run is written, not before.
 *
 * The sorter is single-threaded and owns every buffer; the items
 * extsort_next() hands out point into them.  Errors are negative errnos:
 * -ENOSPC and -EIO from writing or reading the file, -ENOMEM, -E2BIG for
 * an item over EXTSORT_MAX_ITEM, -EINVAL for calls out of order.
 */
#include "extsort.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* An item: u32 key length, u32 value length (host order), key, value. */
#define ITEM_HEAD 8
#define ITEM_MAX (ITEM_HEAD + EXTSORT_MAX_ITEM)
/* A run's read buffer holds at least two of the largest items. */
#define RUN_BUF_MIN (2 * ITEM_MAX)
#define WRITE_BUF (64 * 1024)

struct run {
	off_t next;		/* file offset of the bytes not read yet */
	off_t end;		/* where the run ends */
	unsigned char *buf;
	size_t cap;
	size_t len;		/* bytes in buf */
	size_t pos;		/* start of the current item in buf */
};

struct extsort {
	const char *tmpdir;
	size_t memory;
	int fd;			/* -1 until the first run is written */
	off_t file_end;
	unsigned char *arena;	/* the items of the run being gathered */
	size_t arena_used;
	unsigned char **index;	/* their addresses in the arena */
	size_t n, index_cap;
	size_t pos;		/* next item handed out, all in memory */
	struct run *runs;
	size_t nruns, runs_cap;
	size_t *heap;		/* run numbers; smallest current key on top */
	size_t heap_len;
	bool finished;
	bool advance;		/* the top run's item was handed out */
};

static size_t
get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static size_t
item_size(const unsigned char *p)
{
	return ITEM_HEAD + get32(p) + get32(p + 4);
}

static int
key_cmp(const unsigned char *a, const unsigned char *b)
{
	size_t alen = get32(a), blen = get32(b);
	int c = memcmp(a + ITEM_HEAD, b + ITEM_HEAD, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* qsort() order of the index: key, then the order items were added. */
static int
index_cmp(const void *pa, const void *pb)
{
	const unsigned char *a = *(unsigned char *const *)pa;
	const unsigned char *b = *(unsigned char *const *)pb;
	int c = key_cmp(a, b);

	if (c != 0)
		return c;
	return (a > b) - (a < b);
}

static void
fill_item(const unsigned char *p, struct extsort_item *out)
{
	out->key_len = get32(p);
	out->val_len = get32(p + 4);
	out->key = p + ITEM_HEAD;
	out->val = p + ITEM_HEAD + out->key_len;
}

int
extsort_create(const char *tmpdir, size_t memory, extsort_t **out)
{
	extsort_t *s;

	*out = NULL;
	if (memory < EXTSORT_MIN_MEMORY)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	/* Pages of a large allocation are only backed once touched, so a
	   small sort does not cost the whole budget. */
	s->arena = malloc(memory);
	if (s->arena == NULL) {
		free(s);
		return -ENOMEM;
	}
	s->tmpdir = tmpdir;
	s->memory = memory;
	s->fd = -1;
	*out = s;
	return 0;
}

static int
open_tmp(const char *dir, int *out)
{
	char path[4096];
	int fd;

#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		*out = fd;
		return 0;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
#endif
	if ((size_t)snprintf(path, sizeof(path), "%s/.greyhold-sort-XXXXXX",
			     dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);	/* nameless from now on: nothing to remove later */
	*out = fd;
	return 0;
}

static int
write_at(int fd, const unsigned char *p, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

static int
add_run(extsort_t *s, off_t start, off_t end)
{
	if (s->nruns == s->runs_cap) {
		size_t cap = s->runs_cap ? 2 * s->runs_cap : 16;
		struct run *r = realloc(s->runs, cap * sizeof(*r));

		if (r == NULL)
			return -ENOMEM;
		s->runs = r;
		s->runs_cap = cap;
	}
	memset(&s->runs[s->nruns], 0, sizeof(s->runs[0]));
	s->runs[s->nruns].next = start;
	s->runs[s->nruns].end = end;
	s->nruns++;
	return 0;
}

/* Sort the items held and append them to the file as one run. */
static int
spill(extsort_t *s)
{
	unsigned char *buf;
	off_t start = s->file_end;
	size_t used = 0;
	int rc = 0;

	if (s->fd < 0 && (rc = open_tmp(s->tmpdir, &s->fd)) < 0)
		return rc;
	buf = malloc(WRITE_BUF);
	if (buf == NULL)
		return -ENOMEM;
	qsort(s->index, s->n, sizeof(s->index[0]), index_cmp);
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		size_t len = item_size(s->index[i]);

		if (used + len > WRITE_BUF) {
			rc = write_at(s->fd, buf, used, s->file_end);
			s->file_end += (off_t)used;
			used = 0;
		}
		memcpy(buf + used, s->index[i], len);
		used += len;
	}
	if (rc == 0)
		rc = write_at(s->fd, buf, used, s->file_end);
	s->file_end += (off_t)used;
	free(buf);
	if (rc == 0)
		rc = add_run(s, start, s->file_end);
	s->n = 0;
	s->arena_used = 0;
	return rc;
}

int
extsort_add(extsort_t *s, const void *key, size_t key_len, const void *val,
	    size_t val_len)
{
	size_t need = ITEM_HEAD + key_len + val_len;
	uint32_t lens[2];
	unsigned char *p;
	int rc;

	if (s->finished)
		return -EINVAL;
	if (key_len > EXTSORT_MAX_ITEM || val_len > EXTSORT_MAX_ITEM - key_len)
		return -E2BIG;
	if (s->n > 0 && s->arena_used + need + (s->n + 1) * sizeof(s->index[0]) >
	    s->memory && (rc = spill(s)) < 0)
		return rc;
	if (s->n == s->index_cap) {
		size_t cap = s->index_cap ? 2 * s->index_cap : 1024;
		unsigned char **ix = realloc(s->index, cap * sizeof(*ix));

		if (ix == NULL)
			return -ENOMEM;
		s->index = ix;
		s->index_cap = cap;
	}
	p = s->arena + s->arena_used;
	lens[0] = (uint32_t)key_len;
	lens[1] = (uint32_t)val_len;
	memcpy(p, lens, sizeof(lens));
	if (key_len > 0)
		memcpy(p + ITEM_HEAD, key, key_len);
	if (val_len > 0)
		memcpy(p + ITEM_HEAD + key_len, val, val_len);
	s->index[s->n++] = p;
	s->arena_used += need;
	return 0;
}

/* Make buf hold the run's whole current item: 1, 0 at its end, -errno. */
static int
run_load(const extsort_t *s, struct run *r)
{
	for (;;) {
		size_t have = r->len - r->pos, want;
		ssize_t got;

		if (have >= ITEM_HEAD && have >= item_size(r->buf + r->pos))
			return 1;
		if (r->next == r->end)
			return have == 0 ? 0 : -EIO;
		memmove(r->buf, r->buf + r->pos, have);
		r->len = have;
		r->pos = 0;
		want = r->cap - have;
		if ((off_t)want > r->end - r->next)
			want = (size_t)(r->end - r->next);
		got = pread(s->fd, r->buf + have, want, r->next);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		r->len += (size_t)got;
		r->next += got;
	}
}

/* Is run a's current item before run b's? */
static bool
run_before(const extsort_t *s, size_t a, size_t b)
{
	const struct run *ra = &s->runs[a], *rb = &s->runs[b];
	int c = key_cmp(ra->buf + ra->pos, rb->buf + rb->pos);

	return c < 0 || (c == 0 && a < b);
}

static void
sift_down(extsort_t *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i, t;

		if (l < s->heap_len && run_before(s, s->heap[l], s->heap[m]))
			m = l;
		if (r < s->heap_len && run_before(s, s->heap[r], s->heap[m]))
			m = r;
		if (m == i)
			return;
		t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
}

static int
start_merge(extsort_t *s)
{
	size_t cap = s->memory / s->nruns;
	int rc;

	if (cap < RUN_BUF_MIN)
		cap = RUN_BUF_MIN;
	s->heap = calloc(s->nruns, sizeof(s->heap[0]));
	if (s->heap == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->nruns; i++) {
		struct run *r = &s->runs[i];

		r->buf = malloc(cap);
		if (r->buf == NULL)
			return -ENOMEM;
		r->cap = cap;
		rc = run_load(s, r);
		if (rc < 0)
			return rc;
		if (rc == 1)
			s->heap[s->heap_len++] = i;
	}
	for (size_t i = s->heap_len; i-- > 0;)
		sift_down(s, i);
	return 0;
}

int
extsort_finish(extsort_t *s)
{
	int rc;

	if (s->finished)
		return -EINVAL;
	s->finished = true;
	if (s->nruns == 0) {
		/* No item at all leaves the index unallocated: nothing to sort. */
		if (s->n > 1)
			qsort(s->index, s->n, sizeof(s->index[0]), index_cmp);
		return 0;
	}
	if (s->n > 0 && (rc = spill(s)) < 0)
		return rc;
	/* The gathering memory goes back before the read buffers come. */
	free(s->arena);
	free(s->index);
	s->arena = NULL;
	s->index = NULL;
	return start_merge(s);
}

static int
merge_next(extsort_t *s, struct extsort_item *out)
{
	if (s->advance) {
		struct run *r = &s->runs[s->heap[0]];
		int rc;

		s->advance = false;
		r->pos += item_size(r->buf + r->pos);
		rc = run_load(s, r);
		if (rc < 0)
			return rc;
		if (rc == 0)
			s->heap[0] = s->heap[--s->heap_len];
		sift_down(s, 0);
	}
	if (s->heap_len == 0)
		return 0;
	fill_item(s->runs[s->heap[0]].buf + s->runs[s->heap[0]].pos, out);
	s->advance = true;
	return 1;
}

int
extsort_next(extsort_t *s, struct extsort_item *out)
{
	if (!s->finished)
		return -EINVAL;
	if (s->nruns > 0)
		return merge_next(s, out);
	if (s->pos == s->n)
		return 0;
	fill_item(s->index[s->pos++], out);
	return 1;
}

size_t
extsort_runs(const extsort_t *s)
{
	return s->nruns;
}

void
extsort_free(extsort_t *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	for (size_t i = 0; i < s->nruns; i++)
		free(s->runs[i].buf);
	free(s->runs);
	free(s->heap);
	free(s->arena);
	free(s->index);
	free(s);
}
