/*
 * addr - parse, mask and format client addresses.
 *
 * Postfix sends client_address as numeric text, IPv6 without brackets.
 * Anything else is not an address here; callers decide what that means.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
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

	/* IPv4 text has no ':'; IPv6 text does: try only the one it can be. */
	if (memchr(buf, ':', len) == NULL) {
		if (inet_pton(AF_INET, buf, out->bytes) != 1)
			return -EINVAL;
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

/* Decimal text of v (0..255) at out; returns its length. */
static size_t
put_dec8(char *out, unsigned v)
{
	size_t n = 0;

	if (v >= 100)
		out[n++] = (char)('0' + v / 100);
	if (v >= 10)
		out[n++] = (char)('0' + v / 10 % 10);
	out[n++] = (char)('0' + v % 10);
	return n;
}

/* Lower-case hex text of v (0..0xffff) without leading zeros. */
static size_t
put_hex16(char *out, unsigned v)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 0;

	for (int shift = 12; shift >= 0; shift -= 4) {
		unsigned d = (v >> shift) & 0xf;

		if (d != 0 || n > 0 || shift == 0)
			out[n++] = digits[d];
	}
	return n;
}

static size_t
format_v4(char *out, const uint8_t *b)
{
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		if (i > 0)
			out[n++] = '.';
		n += put_dec8(out + n, b[i]);
	}
	return n;
}

/*
 * The text inet_ntop() gives, rule for rule, so keys stay what they were
 * when they were made with it: the first longest run of two or more zero
 * groups becomes "::"; "::a.b.c.d" and "::ffff:a.b.c.d" when the first
 * six groups are zero, or five and then ffff.
 */
static size_t
format_v6(char *out, const uint8_t *b)
{
	unsigned words[8];
	int best = -1, best_len = 0;
	size_t n = 0;

	for (int i = 0; i < 8; i++)
		words[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	for (int i = 0; i < 8;) {
		int run = 0;

		while (i + run < 8 && words[i + run] == 0)
			run++;
		if (run > best_len) {
			best = i;
			best_len = run;
		}
		i += run > 0 ? run : 1;
	}
	if (best_len < 2)
		best = -1;

	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				out[n++] = ':';
			continue;
		}
		if (i > 0)
			out[n++] = ':';
		if (i == 6 && best == 0 &&
		    (best_len == 6 || (best_len == 5 && words[5] == 0xffff)))
			return n + format_v4(out + n, b + 12);
		n += put_hex16(out + n, words[i]);
	}
	if (best >= 0 && best + best_len == 8)
		out[n++] = ':';
	return n;
}

size_t
addr_format(char *out, const struct addr *a)
{
	size_t n = a->family == ADDR_V4 ? format_v4(out, a->bytes)
					: format_v6(out, a->bytes);

	out[n] = '\0';
	return n;
}

size_t
addr_format_net(char *out, size_t outsz, const struct addr *a, unsigned prefix)
{
	char text[ADDR_NET_STRLEN];
	size_t n = addr_format(text, a);

	text[n++] = '/';
	if (prefix >= 100)
		text[n++] = (char)('0' + prefix / 100 % 10);
	if (prefix >= 10)
		text[n++] = (char)('0' + prefix / 10 % 10);
	text[n++] = (char)('0' + prefix % 10);
	if (outsz == 0)
		return 0;
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, text, n);
	out[n] = '\0';
	return n;
}
