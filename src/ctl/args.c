/*
 * args - small parsers for what commands are given: numbers, client
 * networks, the null sender, hex digits.
 *
 * Pure: no output, no state.  The parsers return whether the text was
 * valid, with the result in out-parameters the caller owns; the caller
 * says what was wrong.
 */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The null sender may be given as "" or "<>". */
const char *
sender_arg(const char *s)
{
	return strcmp(s, "<>") == 0 ? "" : s;
}

/* Parse "A/P" (a stored client key) into an address and prefix. */
bool
parse_net(const char *s, size_t len, struct addr *a, unsigned *prefix)
{
	const char *slash = memchr(s, '/', len);
	char digits[4];
	size_t dlen;
	char *end;
	unsigned long p;

	if (slash == NULL) {
		if (addr_parse(a, s, len) < 0)
			return false;
		*prefix = addr_bits(a);
		return true;
	}
	dlen = len - (size_t)(slash + 1 - s);
	if (dlen == 0 || dlen >= sizeof(digits) ||
	    addr_parse(a, s, (size_t)(slash - s)) < 0)
		return false;
	memcpy(digits, slash + 1, dlen);
	digits[dlen] = '\0';
	if (!isdigit((unsigned char)digits[0]))
		return false;
	p = strtoul(digits, &end, 10);
	if (*end != '\0' || p > addr_bits(a))
		return false;
	*prefix = (unsigned)p;
	return true;
}

bool
parse_u64_arg(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}
