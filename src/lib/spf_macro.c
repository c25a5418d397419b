/*
 * spf_macro - expand SPF macro-strings (RFC 7208 section 7).
 *
 * One walker serves both the syntax check and the expansion, so the two
 * cannot disagree about what a record means.  Every buffer is fixed and
 * every write is bounded: a hostile record can make an expansion fail
 * (-ENOSPC), never overflow or grow memory.
 */
#include "spf_macro.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Longest macro value before transformation (sender is at most ~320). */
#define VALUE_MAX 1024

/* Where expanded text goes; NULL when only checking syntax. */
struct out {
	char *buf;
	size_t size;
	size_t len;
	bool full;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
	if (o == NULL || o->full)
		return;
	if (n >= o->size - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static bool
is_literal(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '%';
}

static bool
is_delimiter(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static const char *
or_unknown(const char *s)
{
	return s == NULL || s[0] == '\0' ? "unknown" : s;
}

/* %{i}: dotted quad, or an IPv6 address as 32 dot-separated nibbles. */
static size_t
client_dotted(const struct addr *a, char *dst, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (a->family == ADDR_V4) {
		int w = snprintf(dst, size, "%u.%u.%u.%u", a->bytes[0],
				 a->bytes[1], a->bytes[2], a->bytes[3]);
		return w > 0 ? (size_t)w : 0;
	}
	for (unsigned i = 0; i < 16 && n + 4 < size; i++) {
		dst[n++] = hex[a->bytes[i] >> 4];
		dst[n++] = '.';
		dst[n++] = hex[a->bytes[i] & 0xf];
		dst[n++] = '.';
	}
	n = n > 0 ? n - 1 : 0;	/* no dot after the last nibble */
	dst[n] = '\0';
	return n;
}

/* The raw value of a (lower-case) macro letter; -ENOSPC if too long. */
static int
letter_value(const struct spf_macro_ctx *c, char letter, char *dst,
	     size_t *len)
{
	const char *s = NULL;
	size_t n;
	int w;

	switch (letter) {
	case 's': s = c->sender; break;
	case 'o': s = c->sender + c->local_len + 1; break;
	case 'd': s = c->domain; break;
	case 'h': s = c->helo; break;
	case 'r': s = or_unknown(c->receiver); break;
	case 'p': s = "unknown"; break;
	case 'v': s = c->client->family == ADDR_V4 ? "in-addr" : "ip6"; break;
	case 'l':
		if (c->local_len >= VALUE_MAX)
			return -ENOSPC;
		memcpy(dst, c->sender, c->local_len);
		dst[c->local_len] = '\0';
		*len = c->local_len;
		return 0;
	case 'i':
		*len = client_dotted(c->client, dst, VALUE_MAX);
		return 0;
	case 'c':
		if (inet_ntop(c->client->family == ADDR_V4 ? AF_INET : AF_INET6,
			      c->client->bytes, dst, VALUE_MAX) == NULL)
			return -EINVAL;
		*len = strlen(dst);
		return 0;
	case 't':
		w = snprintf(dst, VALUE_MAX, "%" PRId64, c->now);
		*len = w > 0 ? (size_t)w : 0;
		return 0;
	default:
		return -EINVAL;
	}
	n = strlen(s);
	if (n >= VALUE_MAX)
		return -ENOSPC;
	memcpy(dst, s, n + 1);
	*len = n;
	return 0;
}

/* The parsed inside of one %{...}. */
struct macro {
	char letter;		/* lower case */
	bool upper;
	unsigned keep;		/* rightmost parts to keep; 0 = all */
	bool reverse;
	char delims[8];		/* NUL-terminated; "" = "." */
};

/*
 * Split val on the macro's delimiters, reverse and keep the rightmost
 * parts as asked, join with '.', URL-escape for an upper-case letter.
 */
static void
transform(const struct macro *m, const char *val, size_t vlen, struct out *o)
{
	uint16_t start[VALUE_MAX + 1], end[VALUE_MAX + 1];
	const char *delims = m->delims[0] != '\0' ? m->delims : ".";
	size_t nparts = 0, first, i;

	start[0] = 0;
	for (i = 0; i <= vlen; i++) {
		if (i == vlen || strchr(delims, val[i]) != NULL) {
			end[nparts++] = (uint16_t)i;
			start[nparts] = (uint16_t)(i + 1);
		}
	}
	first = m->keep != 0 && m->keep < nparts ? nparts - m->keep : 0;
	for (i = first; i < nparts; i++) {
		/* The i-th part of the (possibly reversed) sequence. */
		size_t p = m->reverse ? nparts - 1 - i : i;
		const char *s = val + start[p];
		size_t n = end[p] - start[p];

		if (i > first)
			out_put(o, ".", 1);
		for (size_t k = 0; k < n; k++) {
			char esc[4];

			if (!m->upper || is_unreserved((unsigned char)s[k])) {
				out_put(o, s + k, 1);
				continue;
			}
			snprintf(esc, sizeof(esc), "%%%02X", (unsigned char)s[k]);
			out_put(o, esc, 3);
		}
	}
}

/* Parse "%{...}" starting at in[*pos] == '{'; advances *pos past '}'. */
static int
parse_macro(const char *in, size_t len, size_t *pos, unsigned flags,
	    struct macro *m)
{
	size_t i = *pos + 1, nd = 0;
	char c;

	memset(m, 0, sizeof(*m));
	if (i >= len)
		return -EINVAL;
	c = in[i++];
	m->upper = c >= 'A' && c <= 'Z';
	m->letter = m->upper ? (char)(c - 'A' + 'a') : c;
	if (m->letter == '\0' || strchr("slodiphv", m->letter) == NULL) {
		if (m->letter == '\0' || strchr("crt", m->letter) == NULL ||
		    !(flags & SPF_MACRO_EXP))
			return -EINVAL;
	}
	if (i < len && in[i] >= '0' && in[i] <= '9') {
		bool nonzero = false;

		for (; i < len && in[i] >= '0' && in[i] <= '9'; i++) {
			/* More parts than any value has means "all". */
			if (m->keep < 1000)
				m->keep = m->keep * 10 + (unsigned)(in[i] - '0');
			nonzero = nonzero || in[i] != '0';
		}
		if (!nonzero)
			return -EINVAL;	/* RFC 7208 7.1: DIGIT is nonzero */
	}
	if (i < len && (in[i] == 'r' || in[i] == 'R')) {
		m->reverse = true;
		i++;
	}
	for (; i < len && is_delimiter(in[i]); i++) {
		if (strchr(m->delims, in[i]) == NULL && nd < sizeof(m->delims) - 1)
			m->delims[nd++] = in[i];
	}
	if (i >= len || in[i] != '}')
		return -EINVAL;
	*pos = i + 1;
	return 0;
}

/* The walker: o == NULL (and ctx == NULL) checks syntax only. */
static int
walk(const struct spf_macro_ctx *ctx, const char *in, size_t len,
     unsigned flags, struct out *o, bool *ends_in_expand)
{
	char val[VALUE_MAX];
	size_t pos = 0, vlen;
	bool last_expand = false;
	int rc;

	while (pos < len) {
		struct macro m;
		unsigned char c = (unsigned char)in[pos];

		if (c != '%') {
			if (!is_literal(c))
				return -EINVAL;
			out_put(o, in + pos, 1);
			pos++;
			last_expand = false;
			continue;
		}
		if (pos + 1 >= len)
			return -EINVAL;
		last_expand = true;
		switch (in[pos + 1]) {
		case '%': out_put(o, "%", 1); pos += 2; continue;
		case '_': out_put(o, " ", 1); pos += 2; continue;
		case '-': out_put(o, "%20", 3); pos += 2; continue;
		case '{': break;
		default: return -EINVAL;
		}
		pos++;
		rc = parse_macro(in, len, &pos, flags, &m);
		if (rc < 0)
			return rc;
		if (o == NULL)
			continue;
		rc = letter_value(ctx, m.letter, val, &vlen);
		if (rc < 0)
			return rc;
		transform(&m, val, vlen, o);
	}
	if (ends_in_expand != NULL)
		*ends_in_expand = last_expand;
	if (o != NULL && o->full)
		return -ENOSPC;
	return 0;
}

int
spf_macro_check(const char *in, size_t len, unsigned flags,
		bool *ends_in_expand)
{
	return walk(NULL, in, len, flags, NULL, ends_in_expand);
}

int
spf_macro_expand(const struct spf_macro_ctx *ctx, const char *in, size_t len,
		 unsigned flags, char *out, size_t outsz, size_t *outlen)
{
	struct out o = {out, outsz, 0, false};
	int rc;

	if (outsz == 0)
		return -ENOSPC;
	rc = walk(ctx, in, len, flags, &o, NULL);
	out[rc == 0 ? o.len : 0] = '\0';
	*outlen = rc == 0 ? o.len : 0;
	return rc;
}
