/*
 * wl_entry - the name of a live-whitelist entry, as every store keeps it.
 *
 * Pure.  An entry (struct db_wl_entry, db_wl.h) is stored under
 * "c:ENTRY" (clients) or "r:ENTRY" (recipients): the LMDB "whitelist"
 * database's key and the Redis hash's field are the same bytes, so an
 * entry reads the same whichever store holds it.  Only the values differ
 * (LMDB: binary, db_wl.c; Redis: text, redis_codec.c).
 */
#ifndef GREYHOLD_WL_ENTRY_H
#define GREYHOLD_WL_ENTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "db_wl.h"

#define WL_ENTRY_NAME_MAX (WHITELIST_MAX_ENTRY + 2)

/* The stored name of an entry into out; its length, or -E2BIG. */
int wl_entry_name(char out[WL_ENTRY_NAME_MAX], enum whitelist_kind kind,
		  const char *entry);

/* Kind and entry of e from a stored name; false when it is not one. */
bool wl_entry_name_decode(const char *name, size_t len, struct db_wl_entry *e);

#endif
