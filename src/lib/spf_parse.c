/*
 * spf_parse - SPF record syntax (RFC 7208 4.5, 4.6, 5, 6, 12) and names.
 *
 * Works on (pointer, length) text that may hold any byte: a byte outside
 * printable ASCII in a term is a syntax error, so a NUL or a control
 * byte from DNS ends in permerror and never reaches a log or a query.
 * Errors are -EINVAL with a static explanation in *why.
 */
#include "spf_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "dns_result.h"
#include "spf_macro.h"

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
	return is_alpha(c) || is_digit(c);
}

bool
spf_record_is_spf(const uint8_t *txt, size_t len)
{
	return len >= SPF_VERSION_LEN &&
	       strncasecmp((const char *)txt, "v=spf1", SPF_VERSION_LEN) == 0 &&
	       (len == SPF_VERSION_LEN || txt[SPF_VERSION_LEN] == ' ');
}

/* RFC 7208 toplabel: alphanumerics with a letter, or inner hyphens. */
static bool
toplabel_ok(const char *s, size_t n)
{
	bool alpha = false, hyphen = false;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-')
			hyphen = true;
		else if (!is_alnum(s[i]))
			return false;
		alpha = alpha || is_alpha(s[i]);
	}
	if (hyphen)
		return is_alnum(s[0]) && is_alnum(s[n - 1]);
	return alpha;
}

/* domain-spec = macro-string domain-end (RFC 7208 7.1). */
static bool
domain_spec_ok(const char *s, size_t n)
{
	bool ends_in_expand = false;
	size_t dot;

	if (n == 0 || spf_macro_check(s, n, 0, &ends_in_expand) < 0)
		return false;
	if (ends_in_expand)
		return true;
	if (s[n - 1] == '.')
		n--;
	for (dot = n; dot > 0 && s[dot - 1] != '.'; dot--)
		;
	if (dot == 0)
		return false;	/* domain-end needs a "." before its toplabel */
	return toplabel_ok(s + dot, n - dot);
}

/*
 * Take a trailing "/N" (or "//N" when dbl) off r[0..*rlen).  1 = taken,
 * 0 = none there, -1 = malformed (leading zero, too many digits, > max).
 */
static int
take_cidr(const char *r, size_t *rlen, bool dbl, unsigned max, unsigned *out)
{
	size_t end = *rlen, d = end, nd;
	unsigned v = 0;

	while (d > 0 && is_digit(r[d - 1]))
		d--;
	nd = end - d;
	if (nd == 0 || d == 0 || r[d - 1] != '/')
		return 0;
	if (dbl && (d < 2 || r[d - 2] != '/'))
		return 0;
	if (nd > 3 || (nd > 1 && r[d] == '0'))
		return -1;
	for (size_t i = d; i < end; i++)
		v = v * 10 + (unsigned)(r[i] - '0');
	if (v > max)
		return -1;
	*out = v;
	*rlen = d - (dbl ? 2 : 1);
	return 1;
}

/* ":" domain-spec, optional or required. */
static int
parse_spec(const char *r, size_t rlen, bool required, struct spf_term *t,
	   const char **why)
{
	if (rlen == 0) {
		if (!required)
			return 0;
		*why = "mechanism needs a domain";
		return -EINVAL;
	}
	if (r[0] != ':' || !domain_spec_ok(r + 1, rlen - 1)) {
		*why = "malformed domain-spec";
		return -EINVAL;
	}
	t->spec = r + 1;
	t->spec_len = rlen - 1;
	return 0;
}

/* ip4:net[/n] or ip6:net[/n]. */
static int
parse_ip(const char *r, size_t rlen, bool v6, struct spf_term *t,
	 const char **why)
{
	char text[64];
	size_t alen;
	int rc;

	*why = v6 ? "malformed ip6 network" : "malformed ip4 network";
	if (rlen < 2 || r[0] != ':')
		return -EINVAL;
	r++;
	rlen--;
	rc = take_cidr(r, &rlen, false, v6 ? 128 : 32, v6 ? &t->cidr6 : &t->cidr4);
	if (rc < 0)
		return -EINVAL;
	alen = rlen;
	if (alen == 0 || alen >= sizeof(text) || memchr(r, '/', alen) != NULL)
		return -EINVAL;
	memcpy(text, r, alen);
	text[alen] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, text, t->net) != 1)
		return -EINVAL;
	return 0;
}

static const struct {
	const char *name;
	enum spf_term_kind kind;
} mechanisms[] = {
	{"all", SPF_TERM_ALL},
	{"include", SPF_TERM_INCLUDE},
	{"a", SPF_TERM_A},
	{"mx", SPF_TERM_MX},
	{"ptr", SPF_TERM_PTR},
	{"ip4", SPF_TERM_IP4},
	{"ip6", SPF_TERM_IP6},
	{"exists", SPF_TERM_EXISTS},
};

static int
parse_mechanism(const char *name, size_t nlen, const char *r, size_t rlen,
		struct spf_term *t, const char **why)
{
	size_t i;

	for (i = 0; i < sizeof(mechanisms) / sizeof(mechanisms[0]); i++) {
		if (strlen(mechanisms[i].name) == nlen &&
		    strncasecmp(mechanisms[i].name, name, nlen) == 0)
			break;
	}
	if (i == sizeof(mechanisms) / sizeof(mechanisms[0])) {
		*why = "unknown mechanism";
		return -EINVAL;
	}
	t->kind = mechanisms[i].kind;
	switch (t->kind) {
	case SPF_TERM_ALL:
		*why = "\"all\" takes no argument";
		return rlen == 0 ? 0 : -EINVAL;
	case SPF_TERM_INCLUDE:
	case SPF_TERM_EXISTS:
		return parse_spec(r, rlen, true, t, why);
	case SPF_TERM_PTR:
		return parse_spec(r, rlen, false, t, why);
	case SPF_TERM_IP4:
	case SPF_TERM_IP6:
		return parse_ip(r, rlen, t->kind == SPF_TERM_IP6, t, why);
	default:	/* a, mx: [":" domain-spec] [ip4-cidr] ["//" ip6-cidr] */
		*why = "malformed CIDR length";
		if (take_cidr(r, &rlen, true, 128, &t->cidr6) < 0 ||
		    take_cidr(r, &rlen, false, 32, &t->cidr4) < 0)
			return -EINVAL;
		return parse_spec(r, rlen, false, t, why);
	}
}

static int
parse_modifier(const char *name, size_t nlen, const char *v, size_t vlen,
	       struct spf_term *t, const char **why)
{
	t->spec = v;
	t->spec_len = vlen;
	if (nlen == 8 && strncasecmp(name, "redirect", 8) == 0)
		t->kind = SPF_TERM_REDIRECT;
	else if (nlen == 3 && strncasecmp(name, "exp", 3) == 0)
		t->kind = SPF_TERM_EXP;
	else
		t->kind = SPF_TERM_UNKNOWN_MODIFIER;
	if (t->kind != SPF_TERM_UNKNOWN_MODIFIER) {
		*why = "malformed domain-spec";
		return domain_spec_ok(v, vlen) ? 0 : -EINVAL;
	}
	*why = "malformed macro in a modifier";
	return spf_macro_check(v, vlen, SPF_MACRO_EXP, NULL) < 0 ? -EINVAL : 0;
}

static int
parse_term(const char *s, size_t n, struct spf_term *t, const char **why)
{
	size_t i = 0, j;
	bool qualified = false;

	memset(t, 0, sizeof(*t));
	t->text = s;
	t->len = n;
	t->cidr4 = 32;
	t->cidr6 = 128;
	for (j = 0; j < n; j++) {
		if ((unsigned char)s[j] < 0x21 || (unsigned char)s[j] > 0x7e) {
			*why = "control or non-ASCII byte in record";
			return -EINVAL;
		}
	}
	switch (s[0]) {
	case '+': t->qual = SPF_QUAL_PASS; qualified = true; break;
	case '-': t->qual = SPF_QUAL_FAIL; qualified = true; break;
	case '~': t->qual = SPF_QUAL_SOFTFAIL; qualified = true; break;
	case '?': t->qual = SPF_QUAL_NEUTRAL; qualified = true; break;
	default: t->qual = SPF_QUAL_PASS; break;
	}
	i = qualified ? 1 : 0;
	j = i;
	if (j < n && is_alpha(s[j])) {
		for (j++; j < n && (is_alnum(s[j]) || s[j] == '-' ||
				    s[j] == '_' || s[j] == '.'); j++)
			;
	}
	if (j == i) {
		*why = "term does not start with a name";
		return -EINVAL;
	}
	if (j < n && s[j] == '=') {
		if (qualified) {
			*why = "qualifier on a modifier";
			return -EINVAL;
		}
		return parse_modifier(s, j, s + j + 1, n - j - 1, t, why);
	}
	return parse_mechanism(s + i, j - i, s + j, n - j, t, why);
}

int
spf_term_next(const char *rec, size_t len, size_t *pos, struct spf_term *t,
	      const char **why)
{
	size_t i = *pos, end;

	while (i < len && rec[i] == ' ')
		i++;
	if (i >= len) {
		*pos = len;
		return 0;
	}
	for (end = i; end < len && rec[end] != ' '; end++)
		;
	*pos = end;
	return parse_term(rec + i, end - i, t, why) < 0 ? -EINVAL : 1;
}

int
spf_record_check(const char *rec, size_t len, struct spf_record_info *info,
		 const char **why)
{
	struct spf_term t;
	size_t pos = SPF_VERSION_LEN;
	bool has_exp = false;
	int rc;

	memset(info, 0, sizeof(*info));
	if (!spf_record_is_spf((const uint8_t *)rec, len)) {
		*why = "not an SPF record";
		return -EINVAL;
	}
	while ((rc = spf_term_next(rec, len, &pos, &t, why)) > 0) {
		if (t.kind == SPF_TERM_ALL)
			info->has_all = true;
		if (t.kind == SPF_TERM_REDIRECT) {
			if (info->has_redirect) {
				*why = "more than one redirect=";
				return -EINVAL;
			}
			info->has_redirect = true;
			info->redirect = t;
		}
		if (t.kind == SPF_TERM_EXP) {
			if (has_exp) {
				*why = "more than one exp=";
				return -EINVAL;
			}
			has_exp = true;
		}
	}
	return rc < 0 ? -EINVAL : 0;
}

bool
spf_name_valid(const char *name, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '\\' || ++label > 63)
			return false;
	}
	return label > 0;
}

size_t
spf_name_fit(char *name, size_t len)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	while (len > DNS_NAME_MAX) {
		char *dot = memchr(name, '.', len);
		size_t cut;

		if (dot == NULL)
			break;	/* one huge label: spf_name_valid() refuses it */
		cut = (size_t)(dot - name) + 1;
		memmove(name, name + cut, len - cut);
		len -= cut;
	}
	name[len] = '\0';
	return len;
}

bool
spf_name_within(const char *name, size_t nlen, const char *domain, size_t dlen)
{
	if (nlen == dlen)
		return strncasecmp(name, domain, dlen) == 0;
	return nlen > dlen && name[nlen - dlen - 1] == '.' &&
	       strncasecmp(name + nlen - dlen, domain, dlen) == 0;
}
