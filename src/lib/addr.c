/*
 * addr - parse, mask and format client addresses.
 *
 * Postfix sends client_address as numeric text, IPv6 without brackets.
 * Anything else is not an address here; callers decide what that means.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
addr_parse(struct addr *out, const char *text, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];

	memset(out, 0, sizeof(*out));
	if (len == 0 || len >= sizeof(buf) || memchr(text, '\0', len) != NULL)
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';

	if (inet_pton(AF_INET, buf, out->bytes) == 1) {
		out->family = ADDR_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
		if (memcmp(out->bytes, v4mapped_prefix, 12) == 0) {
			memmove(out->bytes, out->bytes + 12, 4);
			memset(out->bytes + 4, 0, 12);
			out->family = ADDR_V4;
		} else {
			out->family = ADDR_V6;
		}
		return 0;
	}
	return -EINVAL;
}

unsigned
addr_bits(const struct addr *a)
{
	return a->family == ADDR_V4 ? 32 : 128;
}

void
addr_mask(struct addr *a, unsigned prefix)
{
	unsigned bits = addr_bits(a);
	unsigned i;

	if (prefix >= bits)
		return;
	for (i = 0; i < bits / 8; i++) {
		unsigned start = i * 8;
		if (start >= prefix)
			a->bytes[i] = 0;
		else if (start + 8 > prefix)
			a->bytes[i] &= (uint8_t)(0xff << (8 - (prefix - start)));
	}
}

bool
addr_in_net(const struct addr *a, const struct addr *net, unsigned prefix)
{
	struct addr masked, masked_net;

	if (a->family != net->family)
		return false;
	masked = *a;
	masked_net = *net;
	addr_mask(&masked, prefix);
	addr_mask(&masked_net, prefix);
	return memcmp(masked.bytes, masked_net.bytes, addr_bits(a) / 8) == 0;
}

void
addr_format_net(char *out, size_t outsz, const struct addr *a, unsigned prefix)
{
	char text[INET6_ADDRSTRLEN];
	int af = a->family == ADDR_V4 ? AF_INET : AF_INET6;

	if (inet_ntop(af, a->bytes, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "invalid");
	snprintf(out, outsz, "%s/%u", text, prefix);
}
