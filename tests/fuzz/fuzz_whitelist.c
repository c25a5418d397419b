/*
 * fuzz_whitelist - whitelist entries, files and lookups.
 *
 * Input: lines.  Every line is added both as a client entry and as a
 * recipient entry (rejections are expected), the list is finished and
 * then probed with each line as an address, a client name and a
 * recipient, with values derived from the accepted entries, and with a
 * few fixed ones.  The input is also written to a temp file (created on
 * the first input, rewritten for each) and loaded as a client file, as a
 * recipient file, and through a config naming it for both.
 *
 * Invariants (abort() when broken):
 *   - a rejected entry says why in err; nothing is added after finish;
 *   - whitelist_size() counts exactly the accepted entries;
 *   - an address matches exactly when it lies in an accepted address or
 *     CIDR entry (checked by brute force against the entries, at each
 *     network's edges and just outside them);
 *   - an accepted name entry matches that name and its subdomains
 *     (except "unknown", which Postfix uses for no name at all);
 *   - an accepted "user@", "user@domain" or domain recipient entry
 *     matches recipients it names, also with a "+ext" local part when
 *     the entry itself has none.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "whitelist.h"

static char tmp_path[PATH_MAX];
static int tmp_fd = -1;
static struct config *cfg_files;	/* names tmp_path for both lists */

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
remove_tmp(void)
{
	if (tmp_fd >= 0)
		close(tmp_fd);
	unlink(tmp_path);
}

static void
setup(void)
{
	const char *dir = getenv("TMPDIR");
	struct config_override ov[2];
	char err[512];

	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	snprintf(tmp_path, sizeof(tmp_path), "%s/fuzz_whitelist.XXXXXX", dir);
	tmp_fd = mkstemp(tmp_path);
	if (tmp_fd < 0) {
		perror("fuzz_whitelist: mkstemp");
		abort();
	}
	atexit(remove_tmp);
	ov[0].key = "whitelist_clients";
	ov[0].value = tmp_path;
	ov[1].key = "whitelist_recipients";
	ov[1].value = tmp_path;
	if (config_load(&cfg_files, NULL, false, ov, 2, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_whitelist: config: %s\n", err);
		abort();
	}
}

static void
write_tmp(const uint8_t *data, size_t size)
{
	size_t off = 0;

	check(ftruncate(tmp_fd, 0) == 0);
	while (off < size) {
		ssize_t n = pwrite(tmp_fd, data + off, size - off, (off_t)off);

		check(n > 0);
		off += (size_t)n;
	}
}

static void
check_error(int rc, const char *err, size_t errsz)
{
	check(rc == -EINVAL || rc == -ENOMEM);
	check(err[0] != '\0' && strnlen(err, errsz) < errsz);
}

/* ---- probes derived from accepted entries ------------------------------ */

static bool
is_regex(const char *s, size_t len)
{
	return len >= 2 && s[0] == '/' && s[len - 1] == '/';
}

/* Mirrors whitelist.c: a ':' or only digits, dots and slashes. */
static bool
looks_like_address(const char *s, size_t len)
{
	if (memchr(s, ':', len) != NULL)
		return true;
	return strspn(s, "0123456789./") >= len;
}

static bool
match_name(const whitelist_t *wl, const char *name, size_t len)
{
	return whitelist_match_client(wl, NULL, 0, name, len);
}

static bool
match_rcpt_text(const whitelist_t *wl, const char *text)
{
	return whitelist_match_recipient(wl, text, strlen(text));
}

static void
probe_client_entry(const whitelist_t *wl, const char *s, size_t len)
{
	char sub[300];
	struct addr a;

	if (is_regex(s, len))
		return;
	if (looks_like_address(s, len)) {
		const char *slash = memchr(s, '/', len);
		size_t alen = slash != NULL ? (size_t)(slash - s) : len;

		/* Partial IPv4 ("10.1") is not an address by itself. */
		if (addr_parse(&a, s, alen) == 0)
			check(whitelist_match_client(wl, s, alen, NULL, 0));
		return;
	}
	while (len > 0 && s[0] == '.') {
		s++;
		len--;
	}
	if (len == 7 && strncasecmp(s, "unknown", 7) == 0)
		return;
	check(match_name(wl, s, len));
	if (len + 3 < 256) {
		snprintf(sub, sizeof(sub), "Mx.%.*s", (int)len, s);
		check(match_name(wl, sub, len + 3));
	}
}

static void
probe_recipient_entry(const whitelist_t *wl, const char *s, size_t len)
{
	char probe[WHITELIST_MAX_ENTRY + 64];
	const char *at = memchr(s, '@', len);
	size_t user_len;

	if (is_regex(s, len) || len + 20 >= WHITELIST_MAX_ENTRY)
		return;
	if (at == NULL || at == s) {
		const char *dom = at == NULL ? s : s + 1;

		snprintf(probe, sizeof(probe), "Someone@%s", dom);
		check(match_rcpt_text(wl, probe));
		snprintf(probe, sizeof(probe), "someone@Sub.%s", dom);
		check(match_rcpt_text(wl, probe));
		return;
	}
	user_len = (size_t)(at - s);
	if (at == s + len - 1) {
		/* "user@": that local part at any domain. */
		snprintf(probe, sizeof(probe), "%.*s@example.org", (int)user_len, s);
		if (memchr(s, '+', user_len) == NULL) {
			check(match_rcpt_text(wl, probe));
			snprintf(probe, sizeof(probe), "%.*s+ext@example.org",
				 (int)user_len, s);
			check(match_rcpt_text(wl, probe));
		} else {
			/*
			 * Not checked: lookups cut the local part at its first
			 * '+' before asking the "user@" entries, so an entry
			 * "a+b@" matches no recipient at all.
			 */
			(void)match_rcpt_text(wl, probe);
		}
		return;
	}
	snprintf(probe, sizeof(probe), "%.*s", (int)len, s);
	check(match_rcpt_text(wl, probe));
	if (memchr(s, '+', user_len) == NULL) {
		snprintf(probe, sizeof(probe), "%.*s+ext%.*s", (int)user_len, s,
			 (int)(len - user_len), at);
		check(match_rcpt_text(wl, probe));
	}
}

static void
probe_fixed(const whitelist_t *wl)
{
	static const char *const addrs[] = {
		"192.0.2.7", "10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3",
		"::", "255.255.255.255", "unknown", "0.0.0.0",
	};
	static const char *const rcpts[] = {
		"postmaster@example.org", "user+tag@example.net", "@", "a@",
		"@b", "", "x@y@z", "list-announce@lists.example.com",
	};

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
		(void)whitelist_match_client(wl, addrs[i], strlen(addrs[i]),
					     addrs[i], strlen(addrs[i]));
	(void)whitelist_match_client(wl, NULL, 0, NULL, 0);
	for (size_t i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++)
		(void)match_rcpt_text(wl, rcpts[i]);
	(void)whitelist_match_recipient(wl, NULL, 0);
}

/* ---- a model of the address entries ------------------------------------ */

/*
 * Accepted address and CIDR entries kept as (address, prefix), so every
 * probe's answer can be computed by brute force with addr_in_net() and
 * compared with the sorted, merged ranges the whitelist searches.
 * Partial IPv4 entries ("10.1") are not modelled; with one of them in the
 * list only the "must match" half of the comparison holds.
 */
#define MODEL_NETS 64

struct net {
	struct addr a;
	unsigned prefix;
};

struct nets {
	struct net v[MODEL_NETS];
	size_t n;
	bool complete;		/* every accepted address entry is in v */
};

static void
nets_add(struct nets *m, const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	struct net *net = &m->v[m->n];

	if (m->n == MODEL_NETS || addr_parse(&net->a, s, alen) < 0) {
		m->complete = false;
		return;
	}
	net->prefix = slash != NULL ? (unsigned)strtoul(slash + 1, NULL, 10)
				    : addr_bits(&net->a);
	m->n++;
}

/* Ask for a as text, the way Postfix sends client_address. */
static void
probe_address(const whitelist_t *wl, const struct nets *m,
	      const struct addr *raw)
{
	char text[64];
	struct addr a;
	bool expected = false;
	bool got;

	check(inet_ntop(raw->family == ADDR_V4 ? AF_INET : AF_INET6, raw->bytes,
			text, sizeof(text)) != NULL);
	/* Parsed again: an IPv4-mapped address counts as IPv4. */
	check(addr_parse(&a, text, strlen(text)) == 0);
	for (size_t i = 0; i < m->n && !expected; i++)
		expected = addr_in_net(&a, &m->v[i].a, m->v[i].prefix);
	got = whitelist_match_client(wl, text, strlen(text), NULL, 0);
	if (expected)
		check(got);
	else if (m->complete)
		check(!got);
}

/* Add one (+1) or subtract one (-1); false when it wraps around. */
static bool
addr_step(struct addr *a, int step)
{
	for (int i = (int)addr_bits(a) / 8 - 1; i >= 0; i--) {
		uint8_t before = a->bytes[i];

		a->bytes[i] = (uint8_t)(before + step);
		if ((step > 0 && before != 0xff) || (step < 0 && before != 0))
			return true;
	}
	return false;
}

/* Each network's first and last address and the ones just outside. */
static void
probe_nets(const whitelist_t *wl, const struct nets *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct net *net = &m->v[i];
		struct addr lo = net->a, hi;
		unsigned bits = addr_bits(&lo);

		addr_mask(&lo, net->prefix);
		hi = lo;
		for (unsigned b = net->prefix; b < bits; b++)
			hi.bytes[b / 8] |= (uint8_t)(0x80 >> (b % 8));
		probe_address(wl, m, &net->a);
		probe_address(wl, m, &lo);
		probe_address(wl, m, &hi);
		if (addr_step(&lo, -1))
			probe_address(wl, m, &lo);
		if (addr_step(&hi, +1))
			probe_address(wl, m, &hi);
	}
}

/* ---- the input as entries ------------------------------------------------ */

struct lines {
	char *buf;		/* the input with each LF made a NUL */
	size_t size;
	size_t n;		/* NUL-ended pieces in buf[0..size] */
};

static void
lines_split(struct lines *l, const uint8_t *data, size_t size)
{
	l->buf = malloc(size + 1);
	check(l->buf != NULL);
	memcpy(l->buf, data, size);
	l->buf[size] = '\0';
	l->size = size;
	l->n = 1;
	for (size_t i = 0; i < size; i++) {
		if (l->buf[i] == '\n')
			l->buf[i] = '\0';
		l->n += l->buf[i] == '\0';
	}
}

/* Calls fn for each NUL-ended piece: a line, cut where it holds a NUL. */
static void
lines_each(const struct lines *l,
	   void (*fn)(const whitelist_t *, const char *, size_t),
	   const whitelist_t *wl)
{
	size_t off;

	for (off = 0; off <= l->size; off += strlen(l->buf + off) + 1)
		fn(wl, l->buf + off, strlen(l->buf + off));
}

static void
probe_line(const whitelist_t *wl, const char *s, size_t len)
{
	(void)whitelist_match_client(wl, s, len, s, len);
	(void)whitelist_match_recipient(wl, s, len);
}

static void
fuzz_entries(const struct lines *l)
{
	whitelist_t *wl;
	char err[600];
	size_t accepted = 0;
	size_t off = 0;
	bool *client_ok, *rcpt_ok;
	size_t nlines = l->n, i;
	static struct nets model;

	model.n = 0;
	model.complete = true;
	check(whitelist_create(&wl) == 0);
	client_ok = calloc(nlines, sizeof(*client_ok));
	rcpt_ok = calloc(nlines, sizeof(*rcpt_ok));
	check(client_ok != NULL && rcpt_ok != NULL);

	/* Each NUL-ended piece is an entry (a line cut at a NUL, or its tail). */
	for (i = 0, off = 0; i < nlines; i++) {
		const char *s = l->buf + off;
		int rc;

		err[0] = '\0';
		rc = whitelist_add(wl, WHITELIST_CLIENTS, s, err, sizeof(err));
		if (rc < 0)
			check_error(rc, err, sizeof(err));
		client_ok[i] = rc == 0;
		if (rc == 0 && !is_regex(s, strlen(s)) &&
		    looks_like_address(s, strlen(s)))
			nets_add(&model, s, strlen(s));
		err[0] = '\0';
		rc = whitelist_add(wl, WHITELIST_RECIPIENTS, s, err, sizeof(err));
		if (rc < 0)
			check_error(rc, err, sizeof(err));
		rcpt_ok[i] = rc == 0;
		accepted += client_ok[i] + rcpt_ok[i];
		off += strlen(s) + 1;
	}
	check(whitelist_size(wl) == accepted);
	check(whitelist_finish(wl) == 0);
	check(whitelist_add(wl, WHITELIST_CLIENTS, "192.0.2.1", err,
			    sizeof(err)) == -EBUSY);

	probe_nets(wl, &model);
	for (i = 0, off = 0; i < nlines; i++) {
		const char *s = l->buf + off;
		size_t len = strlen(s);
		const char *slash = memchr(s, '/', len);
		struct addr a;

		if (addr_parse(&a, s, slash != NULL ? (size_t)(slash - s) : len) == 0)
			probe_address(wl, &model, &a);
		if (client_ok[i])
			probe_client_entry(wl, s, len);
		if (rcpt_ok[i])
			probe_recipient_entry(wl, s, len);
		probe_line(wl, s, len);
		off += len + 1;
	}
	probe_fixed(wl);
	free(client_ok);
	free(rcpt_ok);
	whitelist_free(wl);
}

/* ---- the input as a file ---------------------------------------------------- */

static void
fuzz_file(const struct lines *l, enum whitelist_kind kind)
{
	whitelist_t *wl;
	char err[PATH_MAX + 700];
	int rc;

	check(whitelist_create(&wl) == 0);
	err[0] = '\0';
	rc = whitelist_load_file(wl, kind, tmp_path, err, sizeof(err));
	if (rc < 0) {
		check(rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
		check(strncmp(err, tmp_path, strlen(tmp_path)) == 0);
	} else {
		check(rc == 0);
		check(whitelist_size(wl) <= l->n);
		check(whitelist_finish(wl) == 0);
		lines_each(l, probe_line, wl);
		probe_fixed(wl);
	}
	whitelist_free(wl);
}

static void
fuzz_config_files(void)
{
	whitelist_t *wl = NULL;
	char err[PATH_MAX + 700];
	int rc;

	err[0] = '\0';
	rc = whitelist_load_config(&wl, cfg_files, err, sizeof(err));
	if (rc < 0) {
		check(wl == NULL);
		check(err[0] != '\0');
		return;
	}
	check(wl != NULL);
	probe_fixed(wl);
	whitelist_free(wl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lines l;

	if (tmp_fd < 0)
		setup();
	lines_split(&l, data, size);
	fuzz_entries(&l);
	write_tmp(data, size);
	fuzz_file(&l, WHITELIST_CLIENTS);
	fuzz_file(&l, WHITELIST_RECIPIENTS);
	fuzz_config_files();
	free(l.buf);
	return 0;
}
