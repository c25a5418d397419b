/*
 * batch - records merged into the database DB_CHUNK at a time (see
 * batch.c).
 */
#ifndef GREYHOLD_BATCH_H
#define GREYHOLD_BATCH_H

#include <stddef.h>

#include "ctl.h"
#include "db_admin.h"
#include "record.h"
#include "triplet.h"

struct batch {
	db_t *db;
	size_t n;
	size_t records;		/* handed to db_merge() */
	size_t added, changed;
	struct db_item items[DB_CHUNK];
	char keys[DB_CHUNK][TRIPLET_MAX_KEY];
};

/* Merge what is waiting: 0 or a negative errno. */
int batch_flush(struct batch *b);
/* Queue a copy of one record, merging when DB_CHUNK are waiting. */
int batch_add(struct batch *b, enum db_table table, const char *key,
	      size_t len, const struct record *r);

/*
 * "VERB N records from FROM: ..." or, with --json, an unclosed object
 * (the caller adds its own fields and the closing brace).
 */
void print_merge_summary(const struct ctl *ctl, const char *verb,
			 const struct batch *b, size_t wl, const char *from);

#endif
