/*
 * config - parse and validate settings against one table.
 *
 * Every setting, from the file or the command line, goes through
 * set_value(), so both are checked by the same bounds.  Errors are
 * returned as text for the caller to print; nothing here logs or exits.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "answer.h"
#include "dnslist.h"
#include "engine.h"
#include "redis_endpoint.h"
#include "triplet.h"

enum key_type {
	KT_BOOL,
	KT_UINT,
	KT_DURATION,
	KT_SIZE,
	KT_MODE,
	KT_STRING,
	KT_LIST,
	KT_DURABILITY,
	KT_ACTION,	/* a deferring Postfix action, with optional text */
	KT_FAILURE,	/* KT_ACTION or DUNNO: the answer when the store fails */
	KT_TEXT,	/* greylist_text: printable, %s %r %% only */
	KT_HEADER,	/* "Name: value" with %t %v %h %d %% */
};

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;
	uint64_t min;
	uint64_t max;
};

#define OFF(field) offsetof(struct config, field)
#define DAY 86400ULL
static const struct key keys[] = {
	{"inet", KT_LIST, OFF(inet), "", 0, 0},
	{"unix", KT_LIST, OFF(unix_sockets), "", 0, 0},
	{"unix_mode", KT_MODE, OFF(unix_mode), "0660", 0, 0777},
	{"unix_group", KT_STRING, OFF(unix_group), "", 0, 0},
	{"dbdir", KT_STRING, OFF(dbdir), LOCALSTATEDIR "/lib/greyhold", 0, 0},
	{"user", KT_STRING, OFF(user), "", 0, 0},
	{"pidfile", KT_STRING, OFF(pidfile), "", 0, 0},
	{"delay", KT_DURATION, OFF(delay), "300s", 1, 7 * DAY},
	/* Both must exceed delay (at least 1s), hence at least 2s. */
	{"retry_window", KT_DURATION, OFF(retry_window), "2d", 2, 60 * DAY},
	{"max_age", KT_DURATION, OFF(max_age), "35d", 2, 3650 * DAY},
	{"auto_whitelist_clients", KT_UINT, OFF(auto_whitelist_clients), "5", 0, 1000000},
	{"lookup_by_host", KT_BOOL, OFF(lookup_by_host), "no", 0, 1},
	{"ipv4_cidr", KT_UINT, OFF(ipv4_cidr), "24", 1, 32},
	{"ipv6_cidr", KT_UINT, OFF(ipv6_cidr), "64", 1, 128},
	{"greylist_authenticated", KT_BOOL, OFF(greylist_authenticated), "no", 0, 1},
	{"greylist_action", KT_ACTION, OFF(greylist_action), "DEFER_IF_PERMIT", 0, 0},
	{"greylist_text", KT_TEXT, OFF(greylist_text),
	 "Greylisted, please try again in %s seconds", 0, 0},
	{"failure_action", KT_FAILURE, OFF(failure_action), "DUNNO", 0, 0},
	{"idle_timeout", KT_DURATION, OFF(idle_timeout), "600s", 1, DAY},
	{"max_connections", KT_UINT, OFF(max_connections), "1000", 1, 100000},
	{"durability", KT_DURABILITY, OFF(durability), "full", 0, 0},
	{"db_max_size", KT_SIZE, OFF(db_max_size), "4G", 1ULL << 20, 1ULL << 40},
	{"whitelist_clients", KT_LIST, OFF(whitelist_clients),
	 SYSCONFDIR "/greyhold/whitelist_clients", 0, 0},
	{"whitelist_recipients", KT_LIST, OFF(whitelist_recipients),
	 SYSCONFDIR "/greyhold/whitelist_recipients", 0, 0},
	{"x_greylist_header", KT_BOOL, OFF(x_greylist_header), "no", 0, 1},
	{"x_greylist_header_text", KT_HEADER, OFF(x_greylist_header_text),
	 ANSWER_DEFAULT_HEADER, 0, 0},
	{"hostname", KT_STRING, OFF(hostname), "", 0, 0},
	{"metrics_listen", KT_STRING, OFF(metrics_listen), "", 0, 0},
	{"store", KT_STRING, OFF(store), "lmdb", 0, 0},
	{"privacy", KT_BOOL, OFF(privacy), "no", 0, 1},
	{"privacy_key_file", KT_STRING, OFF(privacy_key_file), "", 0, 0},
	{"redis_user", KT_STRING, OFF(redis_user), "", 0, 0},
	{"redis_password", KT_STRING, OFF(redis_password), "", 0, 0},
	{"redis_sentinel_user", KT_STRING, OFF(redis_sentinel_user), "", 0, 0},
	{"redis_sentinel_password", KT_STRING, OFF(redis_sentinel_password), "",
	 0, 0},
	{"redis_prefix", KT_STRING, OFF(redis_prefix), "greyhold:", 0, 0},
	{"verbose", KT_BOOL, OFF(verbose), "no", 0, 1},
	{"resolver", KT_LIST, OFF(resolver), "", 0, 0},
	{"dns_timeout", KT_DURATION, OFF(dns_timeout), "2s", 1, 30},
	/* Far below Postfix's 100s policy timeout (smtpd_policy_service_timeout). */
	{"dns_budget", KT_DURATION, OFF(dns_budget), "3s", 1, 60},
	{"dns_cache_size", KT_UINT, OFF(dns_cache_size), "10000", 0, 1000000},
	{"dns_max_outstanding", KT_UINT, OFF(dns_max_outstanding), "500", 1, 100000},
	{"name_identity", KT_BOOL, OFF(name_identity), "yes", 0, 1},
	{"spf_identity", KT_BOOL, OFF(spf_identity), "no", 0, 1},
	{"trust_spf_aligned", KT_BOOL, OFF(trust_spf_aligned), "yes", 0, 1},
	{"dnswl", KT_LIST, OFF(dnswl), "", 0, 0},
	{"dnsbl", KT_LIST, OFF(dnsbl), "", 0, 0},
	{"dnsbl_delay", KT_DURATION, OFF(dnsbl_delay), "30m", 1, 7 * DAY},
	{"psl_file", KT_STRING, OFF(psl_file), "", 0, 0},
};
#undef OFF
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Longest greylist_text or action text accepted: the reply is one line. */
#define MAX_TEXT 400

static const struct key *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

bool
config_key_exists(const char *key)
{
	return find_key(key) != NULL;
}

const char *
config_key_name(size_t i)
{
	return i < NKEYS ? keys[i].name : NULL;
}

static void *
field(struct config *cfg, const struct key *k)
{
	return (char *)cfg + k->offset;
}

/* Unsigned decimal with bounds; the whole string must be the number. */
static int
parse_u64(const char *text, int base, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, base);
	if (errno != 0)
		return -ERANGE;
	if (end == text)
		return -EINVAL;
	*out = v;
	return (int)(end - text);
}

static int
parse_scaled(const char *text, const char *units, const uint64_t *mult,
	     uint64_t *out)
{
	uint64_t v;
	int n = parse_u64(text, 10, &v);
	const char *u;

	if (n < 0)
		return n;
	if (text[n] == '\0') {
		*out = v;
		return 0;
	}
	if (text[n + 1] != '\0' || (u = strchr(units, text[n])) == NULL)
		return -EINVAL;
	if (v > UINT64_MAX / mult[u - units])
		return -ERANGE;
	*out = v * mult[u - units];
	return 0;
}

int
config_parse_duration(const char *text, int64_t *out)
{
	static const uint64_t mult[] = {1, 60, 3600, 86400, 7 * 86400};
	uint64_t v;
	int rc = parse_scaled(text, "smhdw", mult, &v);

	if (rc < 0)
		return rc;
	if (v > INT64_MAX / 2)
		return -ERANGE;
	*out = (int64_t)v;
	return 0;
}

static int
parse_size(const char *text, uint64_t *out)
{
	static const uint64_t mult[] = {1ULL << 10, 1ULL << 20, 1ULL << 30,
					1ULL << 40};
	return parse_scaled(text, "kMGT", mult, out);
}

static int
parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool
printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	}
	return true;
}

/* Whether s starts with word followed by the end or a space. */
static bool
starts_with_word(const char *s, const char *word)
{
	size_t n = strlen(word);
	return strncmp(s, word, n) == 0 && (s[n] == '\0' || s[n] == ' ');
}

/*
 * An access(5) action that defers: DEFER_IF_PERMIT, DEFER_IF_REJECT,
 * DEFER or a 4xx code, then optional text.  With allow_dunno, also DUNNO
 * (the failure answer that lets mail through).  Anything that could
 * reject or accept mail outright is refused: greylisting must not.
 */
static bool
valid_action(const char *s, bool allow_dunno)
{
	static const char *const words[] = {"DEFER_IF_PERMIT", "DEFER_IF_REJECT",
					    "DEFER"};

	if (!printable(s) || strlen(s) > MAX_TEXT)
		return false;
	if (s[0] == '4' && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && (s[3] == '\0' || s[3] == ' '))
		return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (starts_with_word(s, words[i]))
			return true;
	}
	return allow_dunno && strcmp(s, "DUNNO") == 0;
}

/* Printable, bounded, and '%' only before one of the letters in codes. */
static bool
valid_template(const char *s, const char *codes)
{
	if (!printable(s) || strlen(s) > MAX_TEXT)
		return false;
	for (; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		if (*s == '\0' || strchr(codes, *s) == NULL)
			return false;
	}
	return true;
}

/* A header line: a field name, ": ", then a template. */
static bool
valid_header(const char *s)
{
	size_t name = 0;

	while (s[name] != '\0' && s[name] != ':' && s[name] > 0x20 &&
	       s[name] < 0x7f)
		name++;
	return name > 0 && s[name] == ':' && valid_template(s, "tvhd%");
}

static void
list_clear(struct config_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* Replace l with the comma- or space-separated items of text. */
static int
list_set(struct config_list *l, const char *text)
{
	const char *p = text;

	list_clear(l);
	while (*p != '\0') {
		size_t n;
		char **grown;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->items = grown;
		l->items[l->n] = strndup(p, n);
		if (l->items[l->n] == NULL)
			return -ENOMEM;
		l->n++;
		p += n;
	}
	return 0;
}

int
config_parse_inet(const char *text, char *host, size_t hostsz, unsigned *port)
{
	const char *colon = strrchr(text, ':');
	const char *port_text = colon != NULL ? colon + 1 : text;
	size_t hlen = colon != NULL ? (size_t)(colon - text) : 0;
	uint64_t v;
	struct addr a;
	int n;

	n = parse_u64(port_text, 10, &v);
	if (n < 0 || port_text[n] != '\0' || v == 0 || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	if (colon == NULL) {
		snprintf(host, hostsz, "127.0.0.1");
		return 0;
	}
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		text++;
		hlen -= 2;
	}
	if (hlen == 9 && strncmp(text, "localhost", 9) == 0) {
		snprintf(host, hostsz, "127.0.0.1");
		return 0;
	}
	if (hlen == 1 && text[0] == '*') {
		snprintf(host, hostsz, "0.0.0.0");
		return 0;
	}
	if (addr_parse(&a, text, hlen) < 0 || hlen + 1 > hostsz)
		return -EINVAL;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	return 0;
}

int
config_parse_nameserver(const char *text, char *host, size_t hostsz,
			unsigned *port)
{
	const char *h = text;
	const char *rest;
	size_t hlen;
	uint64_t v;
	struct addr a;
	int n;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return -EINVAL;
		h = text + 1;
		hlen = (size_t)(close - h);
		rest = close + 1;
	} else {
		const char *colon = strchr(text, ':');

		/* Two colons or more: a bare IPv6 address, no port. */
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;
		hlen = colon != NULL ? (size_t)(colon - text) : strlen(text);
		rest = text + hlen;
	}
	*port = 53;
	if (rest[0] == ':') {
		n = parse_u64(rest + 1, 10, &v);
		if (n < 0 || rest[1 + n] != '\0' || v == 0 || v > 65535)
			return -EINVAL;
		*port = (unsigned)v;
	} else if (rest[0] != '\0') {
		return -EINVAL;
	}
	if (addr_parse(&a, h, hlen) < 0 || hlen + 1 > hostsz)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

static int
check_range(const struct key *k, uint64_t v, char *why, size_t whysz)
{
	if (v < k->min || v > k->max) {
		snprintf(why, whysz, "out of range (%" PRIu64 "..%" PRIu64 ")",
			 k->min, k->max);
		return -ERANGE;
	}
	return 0;
}

/* Set one key from text; on error writes the reason into why. */
static int
set_value(struct config *cfg, const struct key *k, const char *value,
	  char *why, size_t whysz)
{
	void *f = field(cfg, k);
	uint64_t v;
	int64_t d;
	bool b;
	int n;

	switch (k->type) {
	case KT_BOOL:
		if (parse_bool(value, &b) < 0) {
			snprintf(why, whysz, "expected yes or no");
			return -EINVAL;
		}
		*(bool *)f = b;
		return 0;
	case KT_UINT:
	case KT_MODE:
		n = parse_u64(value, k->type == KT_MODE ? 8 : 10, &v);
		if (n < 0 || value[n] != '\0') {
			snprintf(why, whysz, k->type == KT_MODE ?
				 "expected an octal mode such as 0660" :
				 "expected a whole number");
			return -EINVAL;
		}
		if (check_range(k, v, why, whysz) < 0)
			return -ERANGE;
		*(unsigned *)f = (unsigned)v;
		return 0;
	case KT_DURATION:
		if (config_parse_duration(value, &d) < 0) {
			snprintf(why, whysz,
				 "expected a duration such as 300s, 5m, 2h, 35d");
			return -EINVAL;
		}
		if (check_range(k, (uint64_t)d, why, whysz) < 0)
			return -ERANGE;
		*(int64_t *)f = d;
		return 0;
	case KT_SIZE:
		if (parse_size(value, &v) < 0) {
			snprintf(why, whysz, "expected a size such as 512M or 4G");
			return -EINVAL;
		}
		if (check_range(k, v, why, whysz) < 0)
			return -ERANGE;
		*(uint64_t *)f = v;
		return 0;
	case KT_DURABILITY:
		if (strcasecmp(value, "full") == 0)
			*(unsigned *)f = DURABILITY_FULL;
		else if (strcasecmp(value, "relaxed") == 0)
			*(unsigned *)f = DURABILITY_RELAXED;
		else {
			snprintf(why, whysz, "expected full or relaxed");
			return -EINVAL;
		}
		return 0;
	case KT_ACTION:
	case KT_FAILURE:
		if (!valid_action(value, k->type == KT_FAILURE)) {
			snprintf(why, whysz, "expected %sDEFER_IF_PERMIT, "
				 "DEFER_IF_REJECT, DEFER or a 4xx code, optionally "
				 "followed by text (printable, at most %d bytes)",
				 k->type == KT_FAILURE ? "DUNNO, " : "", MAX_TEXT);
			return -EINVAL;
		}
		return set_string(f, value);
	case KT_HEADER:
		if (!valid_header(value)) {
			snprintf(why, whysz, "expected a header line 'Name: text' "
				 "(printable, at most %d bytes) using only %%t, %%v, "
				 "%%h, %%d and %%%%", MAX_TEXT);
			return -EINVAL;
		}
		return set_string(f, value);
	case KT_TEXT:
		if (!valid_template(value, "sr%")) {
			snprintf(why, whysz,
				 "expected printable text (at most %d bytes) using "
				 "only %%s, %%r and %%%%", MAX_TEXT);
			return -EINVAL;
		}
		return set_string(f, value);
	case KT_STRING:
		if (!printable(value)) {
			snprintf(why, whysz, "control characters are not allowed");
			return -EINVAL;
		}
		return set_string(f, value);
	case KT_LIST:
		if (!printable(value)) {
			snprintf(why, whysz, "control characters are not allowed");
			return -EINVAL;
		}
		return list_set(f, value);
	}
	return -EINVAL;
}

static int
error_at(char *err, size_t errsz, int rc, const char *where, const char *fmt,
	 ...) __attribute__((format(printf, 5, 6)));

static int
error_at(char *err, size_t errsz, int rc, const char *where, const char *fmt,
	 ...)
{
	va_list ap;
	int n = snprintf(err, errsz, "%s: ", where);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errsz)
		vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

/*
 * Where each key got its value ("FILE:LINE", "command line" or "built-in
 * default"), so that checks across keys blame the right line.
 */
struct origins {
	char where[NKEYS][300];
};

static const char *
origin_of(const struct origins *o, const char *key)
{
	return o->where[find_key(key) - keys];
}

/*
 * For a conflict between two keys, blame the one the admin set: a
 * built-in default is nobody's mistake.
 */
static const char *
origin_of_pair(const struct origins *o, const char *key, const char *other)
{
	const char *where = origin_of(o, key);

	if (strcmp(where, "built-in default") == 0)
		where = origin_of(o, other);
	return where;
}

static int
apply(struct config *cfg, struct origins *o, const char *key,
      const char *value, const char *where, char *err, size_t errsz)
{
	const struct key *k = find_key(key);
	char why[200];
	int rc;

	if (k == NULL)
		return error_at(err, errsz, -EINVAL, where, "unknown key '%s'", key);
	snprintf(o->where[k - keys], sizeof(o->where[0]), "%s", where);
	why[0] = '\0';
	rc = set_value(cfg, k, value, why, sizeof(why));
	if (rc == -ENOMEM)
		return error_at(err, errsz, rc, where, "out of memory");
	if (rc < 0)
		return error_at(err, errsz, rc, where, "%s = '%s': %s", key,
				value, why);
	return 0;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
load_file(struct config *cfg, struct origins *o, const char *path,
	  bool missing_ok, char *err, size_t errsz)
{
	FILE *fp = fopen(path, "r");
	char line[4096];
	char where[600];
	unsigned lineno = 0;
	int rc = 0;

	if (fp == NULL) {
		if (errno == ENOENT && missing_ok)
			return 0;
		rc = -errno;
		return error_at(err, errsz, rc, path, "cannot open: %s",
				strerror(errno));
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *s;
		char *eq;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			rc = error_at(err, errsz, -EINVAL, where, "line too long");
			break;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			rc = error_at(err, errsz, -EINVAL, where,
				      "expected 'name = value'");
			break;
		}
		*eq = '\0';
		rc = apply(cfg, o, trim(s), trim(eq + 1), where, err, errsz);
		if (rc < 0)
			break;
	}
	if (rc == 0 && ferror(fp))
		rc = error_at(err, errsz, -EIO, path, "read error");
	fclose(fp);
	return rc;
}

/* Checks across keys, and the inet listeners' syntax. */
/* A DNS list setting: the rules are dnslist_parse()'s (dnslist.h). */
static bool
dns_zone_ok(const char *spec, bool allow)
{
	struct dnslist_spec parsed;

	return dnslist_parse(&parsed, spec, allow) == 0;
}

static int
check_dns_lists(const struct config *cfg, const struct origins *o, char *err,
		size_t errsz)
{
	static const char *const keyname[2] = {"dnswl", "dnsbl"};
	const struct config_list *lists[2] = {&cfg->dnswl, &cfg->dnsbl};

	if (cfg->dnswl.n + cfg->dnsbl.n > CONFIG_MAX_DNS_LISTS)
		return error_at(err, errsz, -EINVAL, origin_of(o, "dnsbl"),
				"dnswl and dnsbl: at most %d lists together",
				CONFIG_MAX_DNS_LISTS);
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < lists[l]->n; i++)
			if (!dns_zone_ok(lists[l]->items[i], l == 0))
				return error_at(err, errsz, -EINVAL,
						origin_of(o, keyname[l]),
						"%s = '%s': expected a zone such "
						"as %s", keyname[l],
						lists[l]->items[i], l == 0 ?
						"list.dnswl.org or "
						"list.dnswl.org:2" :
						"zen.spamhaus.org");
	return 0;
}

static int
validate(struct config *cfg, const struct origins *o, char *err, size_t errsz)
{
	char host[64];
	unsigned port;
	size_t i;
	int rc;

	if (cfg->retry_window <= cfg->delay)
		return error_at(err, errsz, -EINVAL,
				origin_of_pair(o, "retry_window", "delay"),
				"retry_window (%" PRId64 "s) must be longer than "
				"delay (%" PRId64 "s)", cfg->retry_window, cfg->delay);
	/* A listed client that could never pass would be blocked, not delayed. */
	if (cfg->dnsbl.n > 0 && cfg->retry_window <= cfg->dnsbl_delay)
		return error_at(err, errsz, -EINVAL,
				origin_of_pair(o, "retry_window", "dnsbl_delay"),
				"retry_window (%" PRId64 "s) must be longer than "
				"dnsbl_delay (%" PRId64 "s), or a listed client "
				"could never pass", cfg->retry_window,
				cfg->dnsbl_delay);
	if (cfg->max_age < cfg->retry_window)
		return error_at(err, errsz, -EINVAL,
				origin_of_pair(o, "max_age", "retry_window"),
				"max_age (%" PRId64 "s) must not be shorter than "
				"retry_window (%" PRId64 "s)", cfg->max_age,
				cfg->retry_window);
	for (i = 0; i < cfg->inet.n; i++) {
		if (config_parse_inet(cfg->inet.items[i], host, sizeof(host),
				      &port) < 0)
			return error_at(err, errsz, -EINVAL, origin_of(o, "inet"),
					"inet = '%s': expected [HOST:]PORT with a "
					"numeric HOST, e.g. 127.0.0.1:10023 or "
					"[::1]:10023", cfg->inet.items[i]);
	}
	for (i = 0; i < cfg->unix_sockets.n; i++) {
		if (cfg->unix_sockets.items[i][0] != '/')
			return error_at(err, errsz, -EINVAL, origin_of(o, "unix"),
					"unix = '%s': expected an absolute path",
					cfg->unix_sockets.items[i]);
	}
	if (cfg->metrics_listen[0] != '\0' &&
	    config_parse_inet(cfg->metrics_listen, host, sizeof(host), &port) < 0)
		return error_at(err, errsz, -EINVAL,
				origin_of(o, "metrics_listen"),
				"metrics_listen = '%s': expected [HOST:]PORT with a "
				"numeric HOST, e.g. 127.0.0.1:9464",
				cfg->metrics_listen);
	if (strcmp(cfg->store, "lmdb") != 0) {
		struct redis_endpoint ep;
		char why[300];

		if (redis_endpoint_parse(cfg->store, &ep, why, sizeof(why)) < 0)
			return error_at(err, errsz, -EINVAL, origin_of(o, "store"),
					"%s (or store = lmdb)", why);
	}
	/* Braces would pin every key to one Redis Cluster slot. */
	if (strlen(cfg->redis_prefix) > REDIS_PREFIX_MAX ||
	    strpbrk(cfg->redis_prefix, "{}") != NULL)
		return error_at(err, errsz, -EINVAL, origin_of(o, "redis_prefix"),
				"redis_prefix: at most %d bytes, without '{' or '}'",
				REDIS_PREFIX_MAX);
	if (cfg->redis_user[0] != '\0' && cfg->redis_password[0] == '\0')
		return error_at(err, errsz, -EINVAL, origin_of(o, "redis_user"),
				"redis_user is set but redis_password is not: Redis "
				"authenticates a user with a password");
	if (cfg->redis_sentinel_user[0] != '\0' &&
	    cfg->redis_sentinel_password[0] == '\0')
		return error_at(err, errsz, -EINVAL,
				origin_of(o, "redis_sentinel_user"),
				"redis_sentinel_user is set but redis_sentinel_password "
				"is not: a sentinel authenticates a user with a password");
#ifndef HAVE_HIREDIS
	if (strcmp(cfg->store, "lmdb") != 0)
		return error_at(err, errsz, -EINVAL, origin_of(o, "store"),
				"store = '%s': this greyhold was built without "
				"Redis support (configure --with-redis)", cfg->store);
#endif
#ifndef HAVE_SODIUM
	if (cfg->privacy)
		return error_at(err, errsz, -EINVAL, origin_of(o, "privacy"),
				"privacy = yes: this greyhold was built without "
				"libsodium (install libsodium-dev and rebuild)");
#endif
	for (i = 0; i < cfg->resolver.n; i++) {
		if (config_parse_nameserver(cfg->resolver.items[i], host,
					    sizeof(host), &port) < 0)
			return error_at(err, errsz, -EINVAL,
					origin_of(o, "resolver"),
					"resolver = '%s': expected a numeric address "
					"with an optional port, e.g. 127.0.0.1, "
					"127.0.0.1:5353 or [::1]:53",
					cfg->resolver.items[i]);
	}
	/* One lookup that may outlast the whole budget would be cut anyway. */
	if (cfg->dns_timeout > cfg->dns_budget)
		return error_at(err, errsz, -EINVAL,
				origin_of_pair(o, "dns_timeout", "dns_budget"),
				"dns_timeout (%" PRId64 "s) must not be longer than "
				"dns_budget (%" PRId64 "s)", cfg->dns_timeout,
				cfg->dns_budget);
	rc = check_dns_lists(cfg, o, err, errsz);
	if (rc < 0)
		return rc;
	if (cfg->dbdir[0] == '\0')
		return error_at(err, errsz, -EINVAL, origin_of(o, "dbdir"),
				"dbdir is empty");
	if (cfg->inet.n == 0 && cfg->unix_sockets.n == 0)
		return list_set(&cfg->inet, "127.0.0.1:10023");
	return 0;
}

int
config_load(struct config **out, const char *path, bool missing_ok,
	    const struct config_override *ov, size_t nov, char *err,
	    size_t errsz)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct origins *o = calloc(1, sizeof(*o));
	size_t i;
	int rc = 0;

	*out = NULL;
	if (cfg == NULL || o == NULL) {
		free(cfg);
		free(o);
		return error_at(err, errsz, -ENOMEM, "config", "out of memory");
	}
	for (i = 0; i < NKEYS && rc == 0; i++)
		rc = apply(cfg, o, keys[i].name, keys[i].def, "built-in default",
			   err, errsz);
	if (rc == 0 && path != NULL)
		rc = load_file(cfg, o, path, missing_ok, err, errsz);
	for (i = 0; i < nov && rc == 0; i++)
		rc = apply(cfg, o, ov[i].key, ov[i].value, "command line", err,
			   errsz);
	if (rc == 0)
		rc = validate(cfg, o, err, errsz);
	free(o);
	if (rc < 0) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < NKEYS; i++) {
		void *f = field(cfg, &keys[i]);

		if (keys[i].type == KT_LIST)
			list_clear(f);
		else if (keys[i].type == KT_STRING || keys[i].type == KT_ACTION ||
			 keys[i].type == KT_FAILURE || keys[i].type == KT_TEXT ||
			 keys[i].type == KT_HEADER)
			free(*(char **)f);
	}
	free(cfg);
}

void
config_engine_params(const struct config *cfg, struct engine_params *out)
{
	out->delay = cfg->delay;
	out->retry_window = cfg->retry_window;
	out->max_age = cfg->max_age;
	out->awl_passes = cfg->auto_whitelist_clients;
}

void
config_triplet_opts(const struct config *cfg, struct triplet_opts *out)
{
	out->by_host = cfg->lookup_by_host;
	out->ipv4_prefix = cfg->ipv4_cidr;
	out->ipv6_prefix = cfg->ipv6_cidr;
}
