/*
 * dnslist - list settings, query names and answers of DNS allow- and
 * blocklists.  The contract is in dnslist.h.
 */
#include "dnslist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LABEL_MAX 63

/* Whether zone (len bytes) is a multi-label domain name of host chars. */
static bool
zone_ok(const char *zone, size_t len)
{
	static const char host_chars[] = "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789-.";
	size_t label = 0, labels = 1;

	if (len == 0 || len > DNSLIST_ZONE_MAX ||
	    strspn(zone, host_chars) < len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (zone[i] != '.') {
			if (++label > LABEL_MAX)
				return false;
			continue;
		}
		/* An empty label: leading, trailing or doubled dot. */
		if (label == 0 || i + 1 == len)
			return false;
		label = 0;
		labels++;
	}
	return labels >= 2;
}

/* MIN of "ZONE:MIN": 1-3 decimal digits, 0-255; -1 when not one. */
static int
parse_min(const char *s)
{
	size_t n = strspn(s, "0123456789");
	int v = 0;

	if (n == 0 || n > 3 || s[n] != '\0')
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v <= 255 ? v : -1;
}

int
dnslist_parse(struct dnslist_spec *out, const char *spec, bool allowlist)
{
	/* Only an allowlist takes a minimum; in a blocklist ':' is simply
	   not a zone character. */
	const char *colon = allowlist ? strrchr(spec, ':') : NULL;
	size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);

	if (!zone_ok(spec, len))
		return -EINVAL;
	out->min_last = -1;
	if (colon != NULL) {
		out->min_last = parse_min(colon + 1);
		if (out->min_last < 0)
			return -EINVAL;
	}
	memcpy(out->zone, spec, len);
	out->zone[len] = '\0';
	return 0;
}

/* The reversed address with a trailing dot into out; its length. */
static size_t
reversed(char out[64 + 1], const struct addr *a)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (a->family == ADDR_V4)
		return (size_t)snprintf(out, 64 + 1, "%u.%u.%u.%u.",
					a->bytes[3], a->bytes[2], a->bytes[1],
					a->bytes[0]);
	for (int i = 15; i >= 0; i--) {
		out[o++] = hex[a->bytes[i] & 15];
		out[o++] = '.';
		out[o++] = hex[a->bytes[i] >> 4];
		out[o++] = '.';
	}
	out[o] = '\0';
	return o;
}

int
dnslist_query_name(char *out, size_t outsz, const struct addr *a,
		   const char *zone)
{
	char rev[64 + 1];
	size_t rlen, zlen = strlen(zone);

	if ((a->family != ADDR_V4 && a->family != ADDR_V6) || zlen == 0)
		return -EINVAL;
	rlen = reversed(rev, a);
	if (rlen + zlen > DNS_NAME_MAX || rlen + zlen + 1 > outsz)
		return -ENAMETOOLONG;
	memcpy(out, rev, rlen);
	memcpy(out + rlen, zone, zlen + 1);
	return 0;
}

bool
dnslist_answer_counts(const uint8_t a[4], bool allowlist, int min_last)
{
	if (a[0] != 127)
		return false;
	if (a[1] == 255 && a[2] == 255)
		return false;
	if (!allowlist)
		return true;
	if (a[1] == 0 && a[2] == 0 && a[3] == 255)
		return false;
	return min_last < 0 || a[3] >= min_last;
}
