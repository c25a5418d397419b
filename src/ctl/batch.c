/*
 * batch - records merged into the database DB_CHUNK at a time, for load
 * and import-postgrey.
 *
 * Records are copied into the batch (the caller's key buffer may be
 * reused at once) and merged by db_merge() whenever DB_CHUNK are waiting,
 * so the daemon gets LMDB's write lock back within milliseconds; the
 * caller flushes the rest.  Counts of what was added and changed
 * accumulate across flushes.  Errors are negative errnos from db_merge().
 */
#include "batch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int
batch_flush(struct batch *b)
{
	int rc = db_merge(b->db, b->items, b->n, &b->added, &b->changed);

	b->records += b->n;
	b->n = 0;
	return rc;
}

int
batch_add(struct batch *b, enum db_table table, const char *key, size_t len,
	  const struct record *r)
{
	struct db_item *it = &b->items[b->n];

	if (len > sizeof(b->keys[0]))
		return -E2BIG;
	memcpy(b->keys[b->n], key, len);
	it->table = table;
	it->key = b->keys[b->n];
	it->key_len = len;
	it->rec = *r;
	if (++b->n == DB_CHUNK)
		return batch_flush(b);
	return 0;
}

void
print_merge_summary(const struct ctl *ctl, const char *verb,
		    const struct batch *b, size_t wl, const char *from)
{
	size_t same = b->records - b->added - b->changed;

	if (ctl->json) {
		printf("{\"records\":%zu,\"added\":%zu,\"merged\":%zu,"
		       "\"unchanged\":%zu,\"whitelist\":%zu", b->records,
		       b->added, b->changed, same, wl);
		return;	/* the caller closes the object */
	}
	printf("%s %zu records from %s: %zu added, %zu merged into existing "
	       "ones, %zu unchanged", verb, b->records, from, b->added,
	       b->changed, same);
	if (wl > 0)
		printf("; %zu live whitelist entr%s", wl, wl == 1 ? "y" : "ies");
	printf("\n");
}
