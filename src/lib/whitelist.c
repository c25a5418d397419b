/*
 * whitelist - parsing and matching.
 *
 * Address entries become ranges [lo, hi] per family, sorted and merged at
 * finish, so a lookup is one binary search whatever the list's size.
 * Name entries are sorted string arrays searched once per label suffix of
 * the name.  Regexes are tried last, in file order, each bounded by
 * PCRE2's match and depth limits so a pathological pattern costs a capped
 * amount of work per request.
 *
 * Lists are built on two threads at once (the store thread's live list,
 * the loop thread's reload): a list's state lives in the list only, and
 * nothing in this file is shared between lists.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "whitelist.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"

struct range {
	uint8_t lo[16];
	uint8_t hi[16];
};

struct ranges {
	struct range *v;
	size_t n, cap;
};

struct strings {
	char **v;
	size_t n, cap;
};

struct regexes {
	pcre2_code **v;
	size_t n, cap;
};

struct whitelist {
	struct ranges v4, v6;
	struct strings client_names;	/* domain suffixes */
	struct regexes client_re;
	struct strings rcpt_users;	/* local parts */
	struct strings rcpt_addrs;	/* user@domain */
	struct strings rcpt_domains;
	struct regexes rcpt_re;
	size_t entries;
	bool finished;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
};

/* ---- growable arrays -------------------------------------------------- */

static int
grow(void **v, size_t *cap, size_t n, size_t elem)
{
	size_t next;
	void *p;

	if (n < *cap)
		return 0;
	next = *cap == 0 ? 16 : *cap * 2;
	p = realloc(*v, next * elem);
	if (p == NULL)
		return -ENOMEM;
	*v = p;
	*cap = next;
	return 0;
}

static int
strings_add(struct strings *s, const char *text, size_t len)
{
	char *copy;

	if (grow((void **)&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
		return -ENOMEM;
	copy = strndup(text, len);
	if (copy == NULL)
		return -ENOMEM;
	s->v[s->n++] = copy;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
strings_has(const struct strings *s, const char *key)
{
	return s->n > 0 &&
	       bsearch(&key, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

/* ---- life cycle ------------------------------------------------------- */

int
whitelist_create(whitelist_t **out)
{
	whitelist_t *wl = calloc(1, sizeof(*wl));

	*out = NULL;
	if (wl == NULL)
		return -ENOMEM;
	wl->md = pcre2_match_data_create(1, NULL);
	wl->mctx = pcre2_match_context_create(NULL);
	if (wl->md == NULL || wl->mctx == NULL) {
		whitelist_free(wl);
		return -ENOMEM;
	}
	pcre2_set_match_limit(wl->mctx, WHITELIST_MATCH_LIMIT);
	pcre2_set_depth_limit(wl->mctx, WHITELIST_DEPTH_LIMIT);
	*out = wl;
	return 0;
}

static void
strings_free(struct strings *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

static void
regexes_free(struct regexes *r)
{
	for (size_t i = 0; i < r->n; i++)
		pcre2_code_free(r->v[i]);
	free(r->v);
}

void
whitelist_free(whitelist_t *wl)
{
	if (wl == NULL)
		return;
	free(wl->v4.v);
	free(wl->v6.v);
	strings_free(&wl->client_names);
	strings_free(&wl->rcpt_users);
	strings_free(&wl->rcpt_addrs);
	strings_free(&wl->rcpt_domains);
	regexes_free(&wl->client_re);
	regexes_free(&wl->rcpt_re);
	pcre2_match_data_free(wl->md);
	pcre2_match_context_free(wl->mctx);
	free(wl);
}

size_t
whitelist_size(const whitelist_t *wl)
{
	return wl->entries;
}

/* ---- entries ------------------------------------------------------------ */

/*
 * "/.../" with something between the slashes: an empty pattern would
 * match everyone, so "//" is refused by the callers' other checks.
 */
static bool
is_regex(const char *s, size_t len)
{
	return len > 2 && s[0] == '/' && s[len - 1] == '/';
}

static int
add_regex(struct regexes *r, const char *entry, size_t len, char *err,
	  size_t errsz)
{
	int code;
	PCRE2_SIZE offset;
	pcre2_code *re;

	/* postgrey matches its /regex/ entries case-insensitively. */
	re = pcre2_compile((PCRE2_SPTR)entry + 1, len - 2, PCRE2_CASELESS,
			   &code, &offset, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[160];

		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errsz, "bad regex %s: %s at offset %zu", entry,
			 (char *)msg, (size_t)offset);
		return -EINVAL;
	}
	if (grow((void **)&r->v, &r->cap, r->n, sizeof(*r->v)) < 0) {
		pcre2_code_free(re);
		return -ENOMEM;
	}
	r->v[r->n++] = re;
	return 0;
}

/* "a", "a.b", "a.b.c" (postgrey's partial addresses) or "a.b.c.d". */
static int
parse_ipv4_partial(const char *s, size_t len, struct addr *a, unsigned *bits)
{
	unsigned octets = 0;
	size_t i = 0;

	memset(a, 0, sizeof(*a));
	a->family = ADDR_V4;
	while (i < len) {
		unsigned v = 0;
		size_t digits = 0;

		while (i < len && isdigit((unsigned char)s[i]) && digits < 4) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255 || octets == 4)
			return -EINVAL;
		a->bytes[octets++] = (uint8_t)v;
		if (i == len)
			break;
		if (s[i] != '.' || i + 1 == len)
			return -EINVAL;
		i++;
	}
	if (octets == 0)
		return -EINVAL;
	*bits = octets * 8;
	return 0;
}

static int
add_range(whitelist_t *wl, const struct addr *a, unsigned prefix)
{
	struct ranges *r = a->family == ADDR_V4 ? &wl->v4 : &wl->v6;
	struct addr lo = *a;
	struct range *rg;
	unsigned nbytes = addr_bits(a) / 8;

	if (grow((void **)&r->v, &r->cap, r->n, sizeof(*r->v)) < 0)
		return -ENOMEM;
	addr_mask(&lo, prefix);
	rg = &r->v[r->n++];
	memset(rg, 0, sizeof(*rg));
	memcpy(rg->lo, lo.bytes, nbytes);
	for (unsigned i = 0; i < nbytes; i++) {
		unsigned start = i * 8;
		uint8_t host = start >= prefix ? 0xff :
			       start + 8 > prefix ? (uint8_t)(0xff >> (prefix - start)) : 0;
		rg->hi[i] = lo.bytes[i] | host;
	}
	return 0;
}

static bool
looks_like_address(const char *s, size_t len)
{
	bool colon = memchr(s, ':', len) != NULL;

	if (colon)
		return true;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]) && s[i] != '.' && s[i] != '/')
			return false;
	}
	return true;
}

static int
add_client_address(whitelist_t *wl, const char *s, size_t len, char *err,
		   size_t errsz)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	struct addr a;
	unsigned implied;
	unsigned long prefix;
	unsigned mapped_bits = 0;	/* ::ffff:a.b.c.d/N means a.b.c.d/(N-96) */

	if (memchr(s, ':', alen) != NULL) {
		if (addr_parse(&a, s, alen) < 0)
			goto bad;
		implied = addr_bits(&a);
		if (a.family == ADDR_V4)
			mapped_bits = 96;
	} else if (parse_ipv4_partial(s, alen, &a, &implied) < 0) {
		goto bad;
	}
	if (slash != NULL) {
		char *end;

		if (slash + 1 == s + len || !isdigit((unsigned char)slash[1]))
			goto bad;
		prefix = strtoul(slash + 1, &end, 10);
		if (end != s + len || prefix < mapped_bits ||
		    prefix > addr_bits(&a) + mapped_bits)
			goto bad;
		implied = (unsigned)(prefix - mapped_bits);
	}
	return add_range(wl, &a, implied);
bad:
	snprintf(err, errsz, "'%.*s' is not an address, CIDR block or partial "
		 "IPv4 address", (int)len, s);
	return -EINVAL;
}

static bool
valid_hostname(const char *s, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return false;
	}
	return true;
}

static void
lower(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		s[i] = (char)tolower((unsigned char)s[i]);
}

static int
add_client(whitelist_t *wl, const char *s, size_t len, char *err, size_t errsz)
{
	char name[WHITELIST_MAX_ENTRY];

	if (is_regex(s, len))
		return add_regex(&wl->client_re, s, len, err, errsz);
	if (looks_like_address(s, len))
		return add_client_address(wl, s, len, err, errsz);
	/* ".example.com" means the same as "example.com". */
	while (len > 0 && s[0] == '.') {
		s++;
		len--;
	}
	if (!valid_hostname(s, len)) {
		snprintf(err, errsz, "'%.*s' is not an address, hostname or "
			 "/regex/", (int)len, s);
		return -EINVAL;
	}
	memcpy(name, s, len);
	lower(name, len);
	return strings_add(&wl->client_names, name, len);
}

static int
add_recipient(whitelist_t *wl, const char *s, size_t len, char *err,
	      size_t errsz)
{
	char entry[WHITELIST_MAX_ENTRY];
	const char *at;

	if (is_regex(s, len))
		return add_regex(&wl->rcpt_re, s, len, err, errsz);
	memcpy(entry, s, len);
	lower(entry, len);
	at = memchr(entry, '@', len);
	if (at == NULL || at == entry) {
		const char *dom = at == NULL ? entry : entry + 1;
		size_t dlen = at == NULL ? len : len - 1;

		if (!valid_hostname(dom, dlen))
			goto bad;
		return strings_add(&wl->rcpt_domains, dom, dlen);
	}
	if (at == entry + len - 1)
		return strings_add(&wl->rcpt_users, entry, len - 1);
	if (memchr(at + 1, '@', (size_t)(entry + len - at - 1)) != NULL ||
	    !valid_hostname(at + 1, (size_t)(entry + len - at - 1)))
		goto bad;
	return strings_add(&wl->rcpt_addrs, entry, len);
bad:
	snprintf(err, errsz, "'%.*s' is not user@, user@domain, domain or "
		 "/regex/", (int)len, s);
	return -EINVAL;
}

int
whitelist_add(whitelist_t *wl, enum whitelist_kind kind, const char *entry,
	      char *err, size_t errsz)
{
	size_t len = strlen(entry);
	int rc;

	if (wl->finished)
		return -EBUSY;
	if (len == 0 || len >= WHITELIST_MAX_ENTRY) {
		snprintf(err, errsz, "entry empty or longer than %d bytes",
			 WHITELIST_MAX_ENTRY - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)entry[i];
		if (c <= 0x20 || c >= 0x7f) {
			snprintf(err, errsz, "entry contains white space or a "
				 "control character");
			return -EINVAL;
		}
	}
	rc = kind == WHITELIST_CLIENTS ? add_client(wl, entry, len, err, errsz)
				       : add_recipient(wl, entry, len, err, errsz);
	if (rc == 0)
		wl->entries++;
	else if (rc == -ENOMEM)
		snprintf(err, errsz, "out of memory");
	return rc;
}

int
whitelist_load_file(whitelist_t *wl, enum whitelist_kind kind,
		    const char *path, char *err, size_t errsz)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	char why[300];
	unsigned lineno = 0;
	int rc = 0;

	if (fp == NULL) {
		rc = -errno;
		snprintf(err, errsz, "cannot read whitelist %s: %s", path,
			 strerror(errno));
		return rc;
	}
	/* Any line length is read; only an entry's length is limited. */
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *s = line;
		char *end;

		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errsz, "%s:%u: NUL byte in line", path, lineno);
			rc = -EINVAL;
			break;
		}
		/* '#' starts a comment at the start of a line or after space. */
		for (end = s; *end != '\0'; end++) {
			if (*end == '#' && (end == s || isspace((unsigned char)end[-1]))) {
				*end = '\0';
				break;
			}
		}
		while (isspace((unsigned char)*s))
			s++;
		end = s + strlen(s);
		while (end > s && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*s == '\0')
			continue;
		rc = whitelist_add(wl, kind, s, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errsz, "%s:%u: %s", path, lineno, why);
			break;
		}
	}
	free(line);
	if (rc == 0 && ferror(fp)) {
		snprintf(err, errsz, "%s: read error", path);
		rc = -EIO;
	}
	fclose(fp);
	return rc;
}

/* ---- finishing and lookups ------------------------------------------- */

/*
 * One comparator per address width, so a sort needs nothing outside its
 * arguments: the store thread and the loop thread may each be finishing
 * a whitelist at the same moment.
 */
static int
cmp_range_v4(const void *a, const void *b)
{
	return memcmp(((const struct range *)a)->lo, ((const struct range *)b)->lo,
		      4);
}

static int
cmp_range_v6(const void *a, const void *b)
{
	return memcmp(((const struct range *)a)->lo, ((const struct range *)b)->lo,
		      16);
}

static void
sort_merge(struct ranges *r, size_t nbytes)
{
	size_t out = 0;

	if (r->n == 0)
		return;
	qsort(r->v, r->n, sizeof(*r->v),
	      nbytes == 4 ? cmp_range_v4 : cmp_range_v6);
	for (size_t i = 1; i < r->n; i++) {
		struct range *cur = &r->v[out];

		/* Overlapping or nested: extend; disjoint: keep apart. */
		if (memcmp(r->v[i].lo, cur->hi, nbytes) <= 0) {
			if (memcmp(r->v[i].hi, cur->hi, nbytes) > 0)
				memcpy(cur->hi, r->v[i].hi, nbytes);
		} else {
			r->v[++out] = r->v[i];
		}
	}
	r->n = out + 1;
}

static void
sort_strings(struct strings *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

int
whitelist_finish(whitelist_t *wl)
{
	sort_merge(&wl->v4, 4);
	sort_merge(&wl->v6, 16);
	sort_strings(&wl->client_names);
	sort_strings(&wl->rcpt_users);
	sort_strings(&wl->rcpt_addrs);
	sort_strings(&wl->rcpt_domains);
	wl->finished = true;
	return 0;
}

static bool
ranges_contain(const struct ranges *r, const uint8_t *a, size_t nbytes)
{
	size_t lo = 0, hi = r->n;

	/* Find the last range whose start is <= a. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(r->v[mid].lo, a, nbytes) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && memcmp(a, r->v[lo - 1].hi, nbytes) <= 0;
}

static bool
regex_any(const whitelist_t *wl, const struct regexes *r, const char *s,
	  size_t len)
{
	for (size_t i = 0; i < r->n; i++) {
		int rc = pcre2_match(r->v[i], (PCRE2_SPTR)s, len, 0, 0, wl->md,
				     wl->mctx);
		if (rc >= 0)
			return true;
		/* A limit hit counts as no match: never stall on a pattern. */
	}
	return false;
}

/* Whether name or any of its parent domains is in s. */
static bool
suffix_match(const struct strings *s, const char *name)
{
	const char *p = name;

	if (s->n == 0)
		return false;
	for (;;) {
		if (strings_has(s, p))
			return true;
		p = strchr(p, '.');
		if (p == NULL)
			return false;
		p++;
	}
}

bool
whitelist_match_client(const whitelist_t *wl, const char *addr,
		       size_t addr_len, const char *name, size_t name_len)
{
	struct addr a;

	if (addr == NULL || addr_parse(&a, addr, addr_len) < 0)
		a.family = ADDR_NONE;
	return whitelist_match_client_addr(wl, &a, name, name_len);
}

bool
whitelist_match_client_addr(const whitelist_t *wl, const struct addr *a,
			    const char *name, size_t name_len)
{
	char lname[256];

	if (a->family == ADDR_V4 && ranges_contain(&wl->v4, a->bytes, 4))
		return true;
	if (a->family == ADDR_V6 && ranges_contain(&wl->v6, a->bytes, 16))
		return true;
	/* The live list often holds no names: skip copying this one. */
	if (wl->client_names.n == 0 && wl->client_re.n == 0)
		return false;
	if (name == NULL || name_len == 0 || name_len >= sizeof(lname) ||
	    (name_len == 7 && strncmp(name, "unknown", 7) == 0))
		return false;
	memcpy(lname, name, name_len);
	lname[name_len] = '\0';
	lower(lname, name_len);
	if (suffix_match(&wl->client_names, lname))
		return true;
	return regex_any(wl, &wl->client_re, lname, name_len);
}

/*
 * Whether a "user@" or "user@domain" entry names r, whose local part ends
 * at at.  The entry may name the local part whole or up to any '+'
 * (postgrey: "user@" also covers "user+anything@"), and with the domain
 * ("user@example.org" also covers "user+x@example.org").
 */
static bool
user_match(const whitelist_t *wl, char *r, char *at)
{
	char addr[WHITELIST_MAX_ENTRY];
	size_t dlen = strlen(at);
	char *end;

	for (end = r; end <= at; end++) {
		char saved;

		if (end != at && (*end != '+' || end == r))
			continue;
		saved = *end;
		*end = '\0';
		if (strings_has(&wl->rcpt_users, r)) {
			*end = saved;
			return true;
		}
		*end = saved;
		memcpy(addr, r, (size_t)(end - r));
		memcpy(addr + (end - r), at, dlen + 1);
		if (strings_has(&wl->rcpt_addrs, addr))
			return true;
	}
	return false;
}

bool
whitelist_match_recipient(const whitelist_t *wl, const char *rcpt, size_t len)
{
	char r[WHITELIST_MAX_ENTRY];
	char *at;

	if (rcpt == NULL || len == 0 || len >= sizeof(r))
		return false;
	if (wl->rcpt_users.n == 0 && wl->rcpt_addrs.n == 0 &&
	    wl->rcpt_domains.n == 0 && wl->rcpt_re.n == 0)
		return false;	/* an empty list: nothing to lower-case for */
	memcpy(r, rcpt, len);
	r[len] = '\0';
	lower(r, len);
	at = strrchr(r, '@');
	if (at != NULL) {
		if (user_match(wl, r, at))
			return true;
		if (suffix_match(&wl->rcpt_domains, at + 1))
			return true;
	}
	return regex_any(wl, &wl->rcpt_re, r, len);
}

/* ---- from a config ---------------------------------------------------- */

static int
load_with_local(whitelist_t *wl, enum whitelist_kind kind, const char *path,
		char *err, size_t errsz)
{
	char local[1100];
	int rc = whitelist_load_file(wl, kind, path, err, errsz);

	if (rc == -ENOENT)
		log_msg(LOG_LEVEL_WARN, "whitelist %s does not exist, skipped", path);
	else if (rc < 0)
		return rc;
	snprintf(local, sizeof(local), "%s.local", path);
	rc = whitelist_load_file(wl, kind, local, err, errsz);
	return rc == -ENOENT ? 0 : rc;
}

int
whitelist_load_config(whitelist_t **out, const struct config *cfg, char *err,
		      size_t errsz)
{
	whitelist_t *wl;
	size_t i;
	int rc;

	rc = whitelist_create(&wl);
	if (rc < 0) {
		snprintf(err, errsz, "out of memory");
		return rc;
	}
	for (i = 0; i < cfg->whitelist_clients.n && rc == 0; i++)
		rc = load_with_local(wl, WHITELIST_CLIENTS,
				     cfg->whitelist_clients.items[i], err, errsz);
	for (i = 0; i < cfg->whitelist_recipients.n && rc == 0; i++)
		rc = load_with_local(wl, WHITELIST_RECIPIENTS,
				     cfg->whitelist_recipients.items[i], err,
				     errsz);
	if (rc < 0) {
		whitelist_free(wl);
		return rc;
	}
	whitelist_finish(wl);
	*out = wl;
	return 0;
}
