/*
 * record - encode and decode stored records.  See record.h for the layout.
 */
#include "record.h"

#include <errno.h>
#include <string.h>

#include "le.h"

void
record_encode(uint8_t out[RECORD_SIZE], const struct record *r)
{
	memset(out, 0, RECORD_SIZE);
	out[0] = RECORD_VERSION;
	le64_put(out + 4, (uint64_t)r->first_seen);
	le64_put(out + 12, (uint64_t)r->last_seen);
	le32_put(out + 20, r->passes);
}

int
record_decode(struct record *out, const void *data, size_t len)
{
	const uint8_t *p = data;

	uint64_t first, last;

	if (len < 1 || p[0] != RECORD_VERSION || len != RECORD_SIZE)
		return -EBADMSG;
	first = le64_get(p + 4);
	last = le64_get(p + 12);
	/* Times past RECORD_MAX_TIME are corrupt, and would overflow sums. */
	if (first > RECORD_MAX_TIME || last > RECORD_MAX_TIME)
		return -EBADMSG;
	out->first_seen = (int64_t)first;
	out->last_seen = (int64_t)last;
	out->passes = le32_get(p + 20);
	return 0;
}
