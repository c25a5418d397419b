/*
 * addr - IP addresses as Postfix sends them: parse, mask, format.
 *
 * Pure value code.  IPv4 addresses are kept apart from IPv6 ones;
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is treated as the IPv4
 * address it carries, so a dual-stack listener keys it like IPv4.
 */
#ifndef GREYHOLD_ADDR_H
#define GREYHOLD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum addr_family { ADDR_NONE = 0, ADDR_V4 = 4, ADDR_V6 = 6 };

struct addr {
	enum addr_family family;
	uint8_t bytes[16];	/* network order; IPv4 uses the first 4 */
};

/* Longest text addr_format() writes, NUL included (as INET6_ADDRSTRLEN). */
#define ADDR_STRLEN 46
/* Longest text addr_format_net() writes, NUL included. */
#define ADDR_NET_STRLEN 48

/*
 * Parse a numeric IPv4 or IPv6 address; 0 or -EINVAL.  On failure *out
 * is family ADDR_NONE, so callers that parse once may pass the result on
 * either way.
 */
int addr_parse(struct addr *out, const char *text, size_t len);

/* Number of address bits for the family: 32 or 128. */
unsigned addr_bits(const struct addr *a);

/* Clear every bit past the first prefix bits (prefix <= addr_bits()). */
void addr_mask(struct addr *a, unsigned prefix);

/* Whether a lies inside net/prefix (same family). */
bool addr_in_net(const struct addr *a, const struct addr *net, unsigned prefix);

/*
 * The address as inet_ntop() writes it, byte for byte (these texts are
 * database keys), into out (ADDR_STRLEN bytes), NUL-terminated; returns
 * its length.  ADDR_NONE formats as IPv6.
 */
size_t addr_format(char *out, const struct addr *a);

/*
 * "192.0.2.0/24" or "2001:db8::/64" (prefix <= 128) into out
 * (ADDR_NET_STRLEN bytes; a smaller outsz cuts the text), NUL-terminated;
 * returns the length written.
 */
size_t addr_format_net(char *out, size_t outsz, const struct addr *a,
		       unsigned prefix);

#endif
