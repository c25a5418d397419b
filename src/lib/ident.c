/*
 * ident - organisational domains (libpsl), dynamic-looking names, and the
 * name and sender parts of the identity keys.
 *
 * The ident_t owns its libpsl context (or borrows libpsl's built-in one,
 * which must not be freed) and is never written after ident_open(), so it
 * is shared between threads without locks.  Every buffer here is the
 * caller's or on the stack; nothing is allocated per lookup.
 *
 * Why "looks dynamic" matters: an ISP or a hoster names its customers'
 * addresses after the address itself (c-73-15-22-101.hsd1.ca.comcast.net,
 * static.89.67.45.123.clients.your-server.de).  Grouping such names by
 * their organisational domain would make every customer of comcast.net one
 * client, so a few retrying customers would open the door for the bots
 * among the rest.  A mail operator's names (a provider's pool included)
 * are numbered after the operator's own scheme, carrying at most a
 * fragment of the address.
 */
#include "ident.h"

#include <errno.h>
#include <libpsl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "suffix_memo.h"

struct ident {
	const psl_ctx_t *psl;	/* what lookups use */
	psl_ctx_t *owned;	/* freed at close; NULL for the built-in list */
	/* The lookups' answers, remembered (locked inside: logically the
	   handle stays read-only). */
	suffix_memo_t *memo;
	char source[128];
};

/* Most digit runs of a name looked at; a name has at most 127 labels. */
#define IDENT_MAX_RUNS 128

static const char hex_digits[] = "0123456789abcdef";

int
ident_open(ident_t **out, const char *psl_file, char *err, size_t errsz)
{
	ident_t *id;

	*out = NULL;
	id = calloc(1, sizeof(*id));
	if (id == NULL)
		return -ENOMEM;
	if (psl_file != NULL) {
		id->owned = psl_load_file(psl_file);
		if (id->owned == NULL) {
			snprintf(err, errsz, "%s: not a Public Suffix List libpsl can load",
				 psl_file);
			free(id);
			return -ENOENT;
		}
		snprintf(id->source, sizeof(id->source), "%s", psl_file);
	} else {
		/* Newest of the distribution file and libpsl's built-in list. */
		id->owned = psl_latest(NULL);
		snprintf(id->source, sizeof(id->source), "newest of %s and libpsl's own",
			 psl_dist_filename());
	}
	id->psl = id->owned;
	if (id->psl == NULL) {
		id->psl = psl_builtin();
		snprintf(id->source, sizeof(id->source), "libpsl's built-in list");
	}
	if (id->psl == NULL) {
		snprintf(err, errsz, "no Public Suffix List: install the package publicsuffix");
		free(id);
		return -ENOENT;
	}
	if (suffix_memo_new(&id->memo, id->psl) < 0) {
		psl_free(id->owned);
		free(id);
		return -ENOMEM;
	}
	*out = id;
	return 0;
}

void
ident_close(ident_t *id)
{
	if (id == NULL)
		return;
	suffix_memo_free(id->memo);
	psl_free(id->owned);
	free(id);
}

const char *
ident_source(const ident_t *id)
{
	return id->source;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return c >= 'a' && c <= 'z';
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Lower-cased copy of a valid name, trailing dot dropped.  Labels are
 * letters, digits, '-' and '_' (some PTR records carry '_'), 1-63 bytes,
 * not starting or ending in '-'; the top label is not all digits, which
 * also rejects IPv4 literals.
 */
static int
name_canon(char *out, size_t outsz, const char *name, size_t len,
	   size_t *outlen)
{
	size_t i, label = 0;
	bool top_digits = true;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > IDENT_MAX_NAME || len >= outsz)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = lower(name[i]);

		if (c == '.') {
			if (label == 0 || out[i - 1] == '-')
				return -EINVAL;
			label = 0;
			top_digits = true;
		} else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
			if (c == '-' && label == 0)
				return -EINVAL;
			if (++label > 63)
				return -EINVAL;
			if (!is_digit(c))
				top_digits = false;
		} else {
			return -EINVAL;
		}
		out[i] = c;
	}
	if (out[len - 1] == '-' || top_digits)
		return -EINVAL;
	out[len] = '\0';
	*outlen = len;
	return 0;
}

/* Organisational domain of an already canonical name. */
static int
org_of_canon(const ident_t *id, const char *canon, const char **org)
{
	*org = suffix_memo_registrable(id->memo, canon);
	return *org == NULL ? -ENOENT : 0;
}

int
ident_org_domain(const ident_t *id, const char *name, size_t len, char *out,
		 size_t outsz, size_t *outlen)
{
	char canon[IDENT_MAX_NAME + 1];
	const char *org;
	size_t canon_len, n;
	int rc;

	rc = name_canon(canon, sizeof(canon), name, len, &canon_len);
	if (rc != 0)
		return rc;
	rc = org_of_canon(id, canon, &org);
	if (rc != 0)
		return rc;
	n = strlen(org);
	if (n >= outsz)
		return -ENOSPC;
	memcpy(out, org, n + 1);
	*outlen = n;
	return 0;
}

/* ---- does the name carry the address? ------------------------------------ */

struct runs {
	unsigned long value[IDENT_MAX_RUNS];	/* ULONG_MAX: too long to matter */
	size_t len[IDENT_MAX_RUNS];
	const char *start[IDENT_MAX_RUNS];
	size_t n;
};

/* Every maximal run of decimal digits in the name, in order. */
static void
digit_runs(const char *s, size_t len, struct runs *r)
{
	size_t i = 0, j;

	r->n = 0;
	while (i < len && r->n < IDENT_MAX_RUNS) {
		if (!is_digit(s[i])) {
			i++;
			continue;
		}
		for (j = i; j < len && is_digit(s[j]); j++)
			;
		r->start[r->n] = s + i;
		r->len[r->n] = j - i;
		r->value[r->n] = j - i > 10 ? (unsigned long)-1
					    : strtoul(s + i, NULL, 10);
		r->n++;
		i = j;
	}
}

/* Whether runs [at, at + n) hold the octets o[first], o[first + step], ... */
static bool
runs_match(const struct runs *r, size_t at, const uint8_t *o, int first,
	   int step, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		if (r->len[at + k] > 3 ||
		    r->value[at + k] != o[first + step * (int)k])
			return false;
	}
	return true;
}

/* Runs [at, at + 4) hold the four octets in some other order (d.a.b.c). */
static bool
runs_permute(const struct runs *r, size_t at, const uint8_t *o)
{
	bool used[4] = {false, false, false, false};
	size_t k, j;

	for (k = 0; k < 4; k++) {
		for (j = 0; j < 4; j++) {
			if (!used[j] && r->len[at + k] <= 3 &&
			    r->value[at + k] == o[j])
				break;
		}
		if (j == 4)
			return false;
		used[j] = true;
	}
	return true;
}

/* A run that is the whole address written without separators. */
static bool
run_is_packed(const struct runs *r, size_t i, const uint8_t *o)
{
	char fwd[16], rev[16], pfwd[16], prev[16], u32[16];
	const char *forms[] = {fwd, rev, pfwd, prev, u32};
	unsigned long v;
	size_t k;

	/* Every form below is 7 bytes or more when it counts: most runs
	   are shorter, and need no formatting. */
	if (r->len[i] < 7)
		return false;
	snprintf(fwd, sizeof(fwd), "%u%u%u%u", o[0], o[1], o[2], o[3]);
	snprintf(rev, sizeof(rev), "%u%u%u%u", o[3], o[2], o[1], o[0]);
	snprintf(pfwd, sizeof(pfwd), "%03u%03u%03u%03u", o[0], o[1], o[2], o[3]);
	snprintf(prev, sizeof(prev), "%03u%03u%03u%03u", o[3], o[2], o[1], o[0]);
	v = ((unsigned long)o[0] << 24) | ((unsigned long)o[1] << 16) |
	    ((unsigned long)o[2] << 8) | o[3];
	snprintf(u32, sizeof(u32), "%lu", v);

	for (k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
		size_t n = strlen(forms[k]);

		/* Short packings (1.2.3.4 -> "1234") say too little. */
		if (n < 7 || n != r->len[i])
			continue;
		if (memcmp(r->start[i], forms[k], n) == 0)
			return true;
	}
	return false;
}

static bool
has_hex(const char *s, size_t len, const uint8_t *b, size_t nbytes,
	bool reverse)
{
	char hex[64];
	size_t k;

	for (k = 0; k < nbytes; k++) {
		uint8_t v = b[reverse ? nbytes - 1 - k : k];

		hex[2 * k] = hex_digits[v >> 4];
		hex[2 * k + 1] = hex_digits[v & 15];
	}
	hex[2 * nbytes] = '\0';
	return memmem(s, len, hex, 2 * nbytes) != NULL;
}

static bool
carries_v4(const char *s, size_t len, const uint8_t *o)
{
	struct runs r;
	size_t i;

	digit_runs(s, len, &r);
	for (i = 0; i < r.n; i++) {
		if (i + 4 <= r.n && (runs_match(&r, i, o, 0, 1, 4) ||
				     runs_match(&r, i, o, 3, -1, 4) ||
				     runs_permute(&r, i, o)))
			return true;
		/* The host's three low octets: the ISP's naming left off the first. */
		if (i + 3 <= r.n && (runs_match(&r, i, o, 1, 1, 3) ||
				     runs_match(&r, i, o, 3, -1, 3)))
			return true;
		if (run_is_packed(&r, i, o))
			return true;
	}
	return has_hex(s, len, o, 4, false) || has_hex(s, len, o, 4, true);
}

/* A label that is the IPv6 address with '-' for ':' (2001-db8--5). */
static bool
label_is_v6(const char *label, size_t len, const struct addr *a)
{
	char text[64];
	struct addr parsed;
	size_t k;

	if (len == 0 || len >= sizeof(text))
		return false;
	for (k = 0; k < len; k++)
		text[k] = label[k] == '-' ? ':' : label[k];
	return addr_parse(&parsed, text, len) == 0 &&
	       parsed.family == ADDR_V6 && memcmp(parsed.bytes, a->bytes, 16) == 0;
}

static bool
carries_v6(const char *s, size_t len, const struct addr *a)
{
	char packed[IDENT_MAX_NAME + 1], nibbles[33];
	size_t i, n = 0, start = 0;

	/* Separators dropped: hex written whole, or nibble by nibble reversed. */
	for (i = 0; i < len; i++) {
		if (s[i] != '.' && s[i] != '-')
			packed[n++] = s[i];
	}
	if (has_hex(packed, n, a->bytes, 16, false))
		return true;
	for (i = 0; i < 16; i++) {
		nibbles[31 - 2 * i] = hex_digits[a->bytes[i] >> 4];
		nibbles[30 - 2 * i] = hex_digits[a->bytes[i] & 15];
	}
	if (memmem(packed, n, nibbles, 32) != NULL)
		return true;
	/* Dashed text, alone in a label or after a word ("ip6-2001-db8--5"). */
	for (i = 0; i <= len; i++) {
		const char *label = s + start, *dash;
		size_t llen = i - start;

		if (i < len && s[i] != '.')
			continue;
		dash = memchr(label, '-', llen);
		if (label_is_v6(label, llen, a))
			return true;
		if (dash != NULL &&
		    label_is_v6(dash + 1, llen - (size_t)(dash + 1 - label), a))
			return true;
		start = i + 1;
	}
	return false;
}

/* ---- words ISPs put in customers' names ------------------------------------ */

struct word {
	const char *text;
	size_t len;
};

/* Lengths counted once, here: every letter run of a name is checked. */
#define WORD(s) {s, sizeof(s) - 1}
static const struct word dynamic_words[] = {
	WORD("abo"), WORD("adsl"), WORD("broadband"), WORD("cable"),
	WORD("cablemodem"), WORD("client"), WORD("clients"), WORD("cpe"),
	WORD("cust"), WORD("customer"), WORD("customers"), WORD("dhcp"),
	WORD("dial"), WORD("dialin"), WORD("dialup"), WORD("dip"), WORD("dsl"),
	WORD("dyn"), WORD("dynamic"), WORD("dynip"), WORD("fttb"),
	WORD("fttc"), WORD("ftth"), WORD("pool"), WORD("ppp"), WORD("pppoe"),
	WORD("residential"), WORD("sdsl"), WORD("vdsl"), WORD("xdsl"),
};
#undef WORD

/*
 * A word, or a letter run starting with one of the longer words
 * ("dynamicip", "cablemodem"): short words must stand alone, since "dsl"
 * or "dyn" may begin an unrelated word.
 */
static bool
is_dynamic_word(const char *w, size_t len)
{
	size_t k, n;

	for (k = 0; k < sizeof(dynamic_words) / sizeof(dynamic_words[0]); k++) {
		n = dynamic_words[k].len;
		if (n > len || (n < len && n < 5) ||
		    w[0] != dynamic_words[k].text[0])
			continue;
		if (memcmp(dynamic_words[k].text, w, n) == 0)
			return true;
	}
	return false;
}

/* Letter runs of the host part ("cust456" gives "cust"), one by one. */
static bool
has_dynamic_word(const char *s, size_t len)
{
	size_t i = 0, j;

	while (i < len) {
		if (!is_alpha(s[i])) {
			i++;
			continue;
		}
		for (j = i; j < len && is_alpha(s[j]); j++)
			;
		if (is_dynamic_word(s + i, j - i))
			return true;
		i = j;
	}
	return false;
}

static bool
canon_looks_dynamic(const ident_t *id, const char *canon, size_t len,
		    const char *addr, size_t addr_len)
{
	struct addr a;
	const char *org;
	size_t host_len = len;

	if (addr != NULL && addr_parse(&a, addr, addr_len) == 0) {
		if (a.family == ADDR_V4 && carries_v4(canon, len, a.bytes))
			return true;
		if (a.family == ADDR_V6 && carries_v6(canon, len, &a))
			return true;
	}
	/* Words count left of the organisational domain only. */
	if (org_of_canon(id, canon, &org) == 0)
		host_len = (size_t)(org - canon);
	return has_dynamic_word(canon, host_len);
}

bool
ident_looks_dynamic(const ident_t *id, const char *name, size_t len,
		    const char *addr, size_t addr_len)
{
	char canon[IDENT_MAX_NAME + 1];
	size_t canon_len;

	if (name_canon(canon, sizeof(canon), name, len, &canon_len) != 0)
		return false;
	return canon_looks_dynamic(id, canon, canon_len, addr, addr_len);
}

/* ---- identities ---------------------------------------------------------- */

static bool
is_unverified(const char *name, size_t len)
{
	return len == 0 || (len == 7 && strncasecmp(name, "unknown", 7) == 0) ||
	       (len == 13 && memcmp(name, "[UNAVAILABLE]", 13) == 0);
}

int
ident_name(const ident_t *id, const char *client_name, size_t name_len,
	   const char *client_addr, size_t addr_len, struct ident_name *out)
{
	char canon[IDENT_MAX_NAME + 1];
	const char *org;
	size_t canon_len;

	out->org[0] = '\0';
	out->org_len = 0;
	out->why = IDENT_NAME_OK;
	if (is_unverified(client_name, name_len))
		out->why = IDENT_NAME_UNKNOWN;
	else if (name_canon(canon, sizeof(canon), client_name, name_len,
			    &canon_len) != 0)
		out->why = IDENT_NAME_INVALID;
	else if (canon_looks_dynamic(id, canon, canon_len, client_addr, addr_len))
		out->why = IDENT_NAME_DYNAMIC;
	else if (org_of_canon(id, canon, &org) != 0)
		out->why = IDENT_NAME_SUFFIX;
	if (out->why != IDENT_NAME_OK)
		return -ENOENT;
	out->org_len = strlen(org);
	memcpy(out->org, org, out->org_len + 1);
	return 0;
}

const char *
ident_name_why_str(enum ident_name_why why)
{
	switch (why) {
	case IDENT_NAME_OK:
		return "ok";
	case IDENT_NAME_UNKNOWN:
		return "unknown";
	case IDENT_NAME_INVALID:
		return "invalid";
	case IDENT_NAME_SUFFIX:
		return "public-suffix";
	case IDENT_NAME_DYNAMIC:
		return "dynamic";
	}
	return "?";
}

size_t
ident_sender_org(const ident_t *id, char *out, const char *sender, size_t len)
{
	char org[IDENT_MAX_NAME + 1];
	const char *at = NULL;
	size_t i, local, org_len;

	for (i = len; i > 0; i--) {
		if (sender[i - 1] == '@') {
			at = sender + i - 1;
			break;
		}
	}
	if (at == NULL ||
	    ident_org_domain(id, at + 1, len - (size_t)(at + 1 - sender), org,
			     sizeof(org), &org_len) != 0) {
		memcpy(out, sender, len);
		return len;
	}
	/* org is a suffix of the domain (less any trailing dot): it fits. */
	local = (size_t)(at - sender) + 1;
	memcpy(out, sender, local);
	memcpy(out + local, org, org_len);
	return local + org_len;
}
