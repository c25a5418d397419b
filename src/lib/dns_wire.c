/*
 * dns_wire - walk a DNS message's sections for their TTLs.
 *
 * Only skips names (labels or a compression pointer, which ends a name)
 * and reads fixed fields; it never follows pointers, so a hostile
 * message cannot make it loop.
 */
#include "dns_wire.h"

#include <errno.h>

#define HEADER_LEN 12
#define T_SOA 6
#define SOA_FIXED 20	/* serial, refresh, retry, expire, minimum */

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2181 8: a TTL with the top bit set is to be read as 0. */
static uint32_t
ttl_value(uint32_t v)
{
	return v > 0x7fffffffU ? 0 : v;
}

/* Advance *pos past the name there; -EBADMSG if it runs off the end. */
static int
skip_name(const uint8_t *msg, size_t len, size_t *pos)
{
	size_t p = *pos;

	while (p < len) {
		uint8_t l = msg[p];

		if (l == 0) {
			*pos = p + 1;
			return 0;
		}
		if ((l & 0xc0) == 0xc0) {
			if (p + 2 > len)
				return -EBADMSG;
			*pos = p + 2;
			return 0;
		}
		if ((l & 0xc0) != 0)
			return -EBADMSG;
		p += 1 + (size_t)l;
	}
	return -EBADMSG;
}

struct rr_view {
	uint16_t type;
	uint32_t ttl;
	size_t rdata;		/* offset of the data */
	uint16_t rdlen;
};

static int
read_rr(const uint8_t *msg, size_t len, size_t *pos, struct rr_view *rr)
{
	size_t p = *pos;

	if (skip_name(msg, len, &p) < 0 || p + 10 > len)
		return -EBADMSG;
	rr->type = get16(msg + p);
	rr->ttl = ttl_value(get32(msg + p + 4));
	rr->rdlen = get16(msg + p + 8);
	rr->rdata = p + 10;
	if (rr->rdata + rr->rdlen > len)
		return -EBADMSG;
	*pos = rr->rdata + rr->rdlen;
	return 0;
}

/* min(TTL, MINIMUM) of an SOA record, or -EBADMSG. */
static int64_t
soa_negative_ttl(const uint8_t *msg, size_t len, const struct rr_view *rr)
{
	size_t end = rr->rdata + rr->rdlen;
	size_t p = rr->rdata;
	uint32_t minimum;

	if (skip_name(msg, end, &p) < 0 || skip_name(msg, end, &p) < 0 ||
	    p + SOA_FIXED > end)
		return -EBADMSG;
	minimum = ttl_value(get32(msg + p + 16));
	return minimum < rr->ttl ? minimum : rr->ttl;
}

int
dns_wire_ttls(const uint8_t *msg, size_t len, struct dns_wire_ttls *out)
{
	size_t pos = HEADER_LEN;
	unsigned qd;
	unsigned an;
	unsigned ns;
	unsigned i;
	struct rr_view rr;

	out->answer_ttl = UINT32_MAX;
	out->soa_ttl = -1;
	if (len < HEADER_LEN)
		return -EBADMSG;
	qd = get16(msg + 4);
	an = get16(msg + 6);
	ns = get16(msg + 8);
	for (i = 0; i < qd; i++) {
		if (skip_name(msg, len, &pos) < 0 || pos + 4 > len)
			return -EBADMSG;
		pos += 4;
	}
	for (i = 0; i < an; i++) {
		if (read_rr(msg, len, &pos, &rr) < 0)
			return -EBADMSG;
		if (rr.ttl < out->answer_ttl)
			out->answer_ttl = rr.ttl;
	}
	for (i = 0; i < ns; i++) {
		if (read_rr(msg, len, &pos, &rr) < 0)
			return -EBADMSG;
		if (rr.type == T_SOA && out->soa_ttl < 0) {
			int64_t t = soa_negative_ttl(msg, len, &rr);

			if (t < 0)
				return -EBADMSG;
			out->soa_ttl = t;
		}
	}
	return 0;
}
