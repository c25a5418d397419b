/*
 * wl_entry - stored names of live-whitelist entries (see wl_entry.h).
 */
#include "wl_entry.h"

#include <errno.h>
#include <string.h>

int
wl_entry_name(char out[WL_ENTRY_NAME_MAX], enum whitelist_kind kind,
	      const char *entry)
{
	size_t n = strlen(entry);

	if (n >= WHITELIST_MAX_ENTRY)
		return -E2BIG;
	out[0] = kind == WHITELIST_CLIENTS ? 'c' : 'r';
	out[1] = ':';
	memcpy(out + 2, entry, n);
	return (int)(n + 2);
}

bool
wl_entry_name_decode(const char *name, size_t len, struct db_wl_entry *e)
{
	if (len < 3 || len - 2 >= sizeof(e->entry) || name[1] != ':' ||
	    (name[0] != 'c' && name[0] != 'r') ||
	    memchr(name, '\0', len) != NULL)
		return false;
	e->kind = name[0] == 'c' ? WHITELIST_CLIENTS : WHITELIST_RECIPIENTS;
	memcpy(e->entry, name + 2, len - 2);
	e->entry[len - 2] = '\0';
	return true;
}
