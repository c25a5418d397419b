/*
 * record - encode and decode stored records.  See record.h for the layout.
 */
#include "record.h"

#include <errno.h>
#include <string.h>

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
record_encode(uint8_t out[RECORD_SIZE], const struct record *r)
{
	memset(out, 0, RECORD_SIZE);
	out[0] = RECORD_VERSION;
	put_u64(out + 4, (uint64_t)r->first_seen);
	put_u64(out + 12, (uint64_t)r->last_seen);
	put_u32(out + 20, r->passes);
}

int
record_decode(struct record *out, const void *data, size_t len)
{
	const uint8_t *p = data;

	uint64_t first, last;

	if (len < 1 || p[0] != RECORD_VERSION || len != RECORD_SIZE)
		return -EBADMSG;
	first = get_u64(p + 4);
	last = get_u64(p + 12);
	/* Times past RECORD_MAX_TIME are corrupt, and would overflow sums. */
	if (first > RECORD_MAX_TIME || last > RECORD_MAX_TIME)
		return -EBADMSG;
	out->first_seen = (int64_t)first;
	out->last_seen = (int64_t)last;
	out->passes = get_u32(p + 20);
	return 0;
}
