/*
 * cmd_import_postgrey - import-postgrey: postgrey's triplets and
 * auto-whitelisted clients, re-keyed as greyhold keys them.
 *
 * postgrey (1.3x) keeps two Berkeley DB files in its dbdir, which Debian's
 * db_dump prints ("-p": printable bytes as they are, a backslash doubled,
 * other bytes as \XX in hex; one line per key, then one per value, each
 * with a leading space, between "HEADER=END" and "DATA=END"):
 *   postgrey.db          "CLIENT/SENDER/RECIPIENT" -> "FIRST,LAST[,HOST]"
 *   postgrey_clients.db  "ADDRESS"                 -> "COUNT,LAST"
 * The key is lower case.  CLIENT is the client's network address
 * ("192.0.2.0", "2001:db8:0:0:0:0:0:0"), with --lookup-by-host the address
 * and its length ("192.0.2.7/32"), and in versions before 1.35 the first
 * three octets ("192.0.2").  A triplet has passed when LAST - FIRST is at
 * least postgrey's delay.  With --privacy keys are SHA-1 digests, which
 * cannot be turned back into keys.
 *
 * Files are prepared by postgrey_files.c; this reads db_dump's text,
 * re-keys each entry with this config's network size and normalising
 * (and privacy key), skips what has expired under this config, and merges
 * DB_CHUNK records at a time (batch.c) into the database, created when
 * missing.  Keys that cannot be read are counted and skipped, not errors.
 */
#include "cmd_import_postgrey.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "args.h"
#include "batch.h"
#include "keys.h"
#include "postgrey_files.h"

#define PG_MAX_LINE 4096

struct pg_import {
	struct ctl *ctl;
	int64_t delay;		/* postgrey's, to tell passed triplets */
	size_t pending, passed, clients;
	size_t expired, hashed, unreadable;
	struct batch b;
};

/* Decode one db_dump -p data line (after its leading space) in place. */
static bool
pg_unescape(char *s, size_t *len)
{
	size_t i, o = 0;

	for (i = 0; i < *len; i++) {
		if (s[i] != '\\') {
			s[o++] = s[i];
		} else if (i + 1 < *len && s[i + 1] == '\\') {
			s[o++] = '\\';
			i++;
		} else if (i + 2 < *len && hexval(s[i + 1]) >= 0 &&
			   hexval(s[i + 2]) >= 0) {
			s[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else {
			return false;
		}
	}
	*len = o;
	return true;
}

/* "FIRST,LAST" or "FIRST,LAST,HOST" (or, for clients, "COUNT,LAST"). */
static bool
pg_pair(const char *v, size_t len, uint64_t *a, uint64_t *b)
{
	char tmp[64], *comma, *rest;

	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, v, len);
	tmp[len] = '\0';
	comma = strchr(tmp, ',');
	if (comma == NULL)
		return false;
	*comma = '\0';
	rest = comma + 1;
	comma = strchr(rest, ',');
	if (comma != NULL)
		*comma = '\0';
	return parse_u64_arg(tmp, RECORD_MAX_TIME, a) &&
	       parse_u64_arg(rest, RECORD_MAX_TIME, b);
}

static bool
is_sha1_hex(const char *k, size_t len)
{
	if (len != 40)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)k[i]))
			return false;
	}
	return true;
}

/*
 * postgrey's client part as an address greyhold can key: "a.b.c" (old
 * postgrey) gets its missing octets as zeros.
 */
static bool
pg_client_addr(const char *c, size_t len, char *out, size_t outsz)
{
	struct addr a;
	size_t dots = 0;

	if (len == 0 || len + 7 > outsz)
		return false;
	memcpy(out, c, len);
	out[len] = '\0';
	if (addr_parse(&a, out, len) == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		if (c[i] == '.')
			dots++;
		else if (!isdigit((unsigned char)c[i]))
			return false;
	}
	if (dots > 2)
		return false;
	while (dots++ < 3)
		strcat(out, ".0");
	return addr_parse(&a, out, strlen(out)) == 0;
}

/*
 * Whether s could be a whole sender as postgrey keys it: with an '@', no
 * '/' after the last '@' (domains have none); without (a null or local
 * sender, rare), no '/' at all.
 */
static bool
sender_shape(const char *s, size_t len, bool want_at)
{
	const char *at = NULL;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '@')
			at = s + i;
	}
	if (at == NULL)
		return !want_at && memchr(s, '/', len) == NULL;
	return memchr(at, '/', len - (size_t)(at - s)) == NULL;
}

/* The first '/' in rest that can end a sender of that shape, or NULL. */
static const char *
sender_end(const char *rest, const char *end, bool want_at)
{
	for (const char *s = rest; s < end; s++) {
		if (*s == '/' && sender_shape(rest, (size_t)(s - rest), want_at) &&
		    memchr(s + 1, '@', (size_t)(end - s - 1)) != NULL)
			return s;
	}
	return NULL;
}

/*
 * Split "CLIENT[/LEN]/SENDER/RECIPIENT".  Local parts may contain '/', so
 * the sender ends at a '/' followed by a recipient with an '@'; a sender
 * with an '@' is preferred to one without.
 */
static bool
pg_split(const char *k, size_t len, struct key_parts *p)
{
	const char *slash = memchr(k, '/', len);
	const char *rest, *end = k + len, *s;

	if (slash == NULL)
		return false;
	p->hashed = false;
	p->client = k;
	p->client_len = (size_t)(slash - k);
	rest = slash + 1;
	/* --lookup-by-host: "192.0.2.7/32/..." */
	if (rest < end && isdigit((unsigned char)*rest)) {
		const char *d = rest;

		while (d < end && isdigit((unsigned char)*d))
			d++;
		if (d < end && *d == '/' && d - rest <= 3)
			rest = d + 1;
	}
	s = sender_end(rest, end, true);
	if (s == NULL)
		s = sender_end(rest, end, false);
	if (s == NULL)
		return false;
	p->sender = rest;
	p->sender_len = (size_t)(s - rest);
	p->rcpt = s + 1;
	p->rcpt_len = (size_t)(end - s - 1);
	return true;
}

static int
pg_triplet(struct pg_import *im, const char *k, size_t klen, const char *v,
	   size_t vlen)
{
	struct key_parts p;
	struct keyed key;
	struct record r;
	char client[64];
	uint64_t first, last;

	if (is_sha1_hex(k, klen)) {
		im->hashed++;
		return 0;
	}
	if (!pg_split(k, klen, &p) || !pg_pair(v, vlen, &first, &last) ||
	    !pg_client_addr(p.client, p.client_len, client, sizeof(client))) {
		im->unreadable++;
		return 0;
	}
	r.first_seen = (int64_t)first;
	r.last_seen = (int64_t)last;
	r.passes = r.last_seen - r.first_seen >= im->delay ? 1 : 0;
	if (engine_triplet_expired(&r, im->ctl->now, &im->ctl->params)) {
		im->expired++;
		return 0;
	}
	/* Re-keyed as greyhold keys it: its network size, its normalising. */
	triplet_build(&key.plain, client, strlen(client), p.sender,
		      p.sender_len, p.rcpt, p.rcpt_len, &im->ctl->topts);
	store_form(im->ctl, &key);
	if (r.passes > 0)
		im->passed++;
	else
		im->pending++;
	return batch_add(&im->b, DB_TRIPLETS, key.stored.key, key.stored.key_len,
			 &r);
}

static int
pg_client(struct pg_import *im, const char *k, size_t klen, const char *v,
	  size_t vlen)
{
	char client[TRIPLET_MAX_CLIENT], stored[TRIPLET_MAX_CLIENT];
	size_t len;
	uint64_t count, last;
	struct record r;

	if (is_sha1_hex(k, klen)) {
		im->hashed++;
		return 0;
	}
	if (!pg_pair(v, vlen, &count, &last) || count > UINT32_MAX ||
	    !triplet_client(client, sizeof(client), &len, k, klen,
			    &im->ctl->topts)) {
		im->unreadable++;
		return 0;
	}
	r.first_seen = (int64_t)last;	/* postgrey keeps no first pass */
	r.last_seen = (int64_t)last;
	r.passes = (uint32_t)count;
	if (engine_client_expired(&r, im->ctl->now, &im->ctl->params)) {
		im->expired++;
		return 0;
	}
	im->clients++;
	len = client_store_key(im->ctl, stored, client, len);
	return batch_add(&im->b, DB_CLIENTS, stored, len, &r);
}

typedef int (*pg_entry_fn)(struct pg_import *im, const char *k, size_t klen,
			   const char *v, size_t vlen);

/* One key or value line of db_dump's data; *ok false when undecodable. */
struct pg_line {
	char *text;
	size_t len;
	bool ok;
};

static int
pg_keep_key(struct pg_line *key, const char *text, size_t len, bool ok)
{
	free(key->text);
	key->text = malloc(len + 1);
	if (key->text == NULL)
		return -ENOMEM;
	memcpy(key->text, text, len);
	key->len = len;
	key->ok = ok;
	return 0;
}

/* Read db_dump's output: key and value lines between HEADER= and DATA=END. */
static int
pg_read(struct pg_import *im, FILE *in, pg_entry_fn fn)
{
	struct pg_line key = {NULL, 0, false};
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool data = false, have_key = false;
	int rc = 0;

	while (rc == 0 && (len = getline(&line, &cap, in)) > 0) {
		size_t n = (size_t)len - (line[len - 1] == '\n');
		bool ok;

		line[n] = '\0';
		if (!data || line[0] != ' ') {	/* header lines, DATA=END */
			data = strcmp(line, "HEADER=END") == 0;
			have_key = false;
			continue;
		}
		n--;
		ok = n <= PG_MAX_LINE && pg_unescape(line + 1, &n);
		if (!have_key) {
			rc = pg_keep_key(&key, line + 1, n, ok);
			have_key = true;
			continue;
		}
		have_key = false;
		if (ok && key.ok)
			rc = fn(im, key.text, key.len, line + 1, n);
		else
			im->unreadable++;
	}
	free(key.text);
	free(line);
	if (rc == 0 && ferror(in))
		rc = -EIO;
	return rc;
}

static int
parse_import_options(int argc, char **argv, struct pg_import *im)
{
	static const struct option opts[] = {
		{"delay", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'd' || config_parse_duration(optarg, &im->delay) < 0 ||
		    im->delay <= 0) {
			if (ch == 'd')
				fprintf(stderr, "greyholdctl: --delay takes "
					"postgrey's delay, such as 300 or 5m\n");
			return EXIT_ERROR;
		}
	}
	return argc - optind == 1 ? 0 : -1;
}

static void
print_import_summary(const struct ctl *ctl, const struct pg_import *im,
		     const char *dir)
{
	print_merge_summary(ctl, "imported", &im->b, 0, dir);
	if (ctl->json) {
		printf(",\"pending\":%zu,\"passed\":%zu,\"clients\":%zu,"
		       "\"skipped_expired\":%zu,\"skipped_hashed\":%zu,"
		       "\"skipped_unreadable\":%zu}\n", im->pending, im->passed,
		       im->clients, im->expired, im->hashed, im->unreadable);
		return;
	}
	printf("  %zu pending and %zu passed triplets, %zu auto-whitelist "
	       "clients\n", im->pending, im->passed, im->clients);
	if (im->expired + im->hashed + im->unreadable > 0)
		printf("  skipped: %zu expired, %zu hashed by postgrey's "
		       "--privacy (cannot be converted), %zu unreadable\n",
		       im->expired, im->hashed, im->unreadable);
}

int
cmd_import_postgrey(struct ctl *ctl, int argc, char **argv)
{
	struct pg_source src = {NULL, NULL};
	struct pg_import *im = calloc(1, sizeof(*im));
	int rc;

	if (im == NULL)
		return EXIT_ERROR;
	im->ctl = ctl;
	im->delay = ctl->params.delay;
	rc = parse_import_options(argc, argv, im);
	if (rc != 0)
		goto out;
	rc = EXIT_ERROR;
	if (pg_prepare(argv[optind], &src) < 0 || open_db(ctl, OPEN_CREATE) < 0)
		goto out;
	im->b.db = ctl->db;
	rc = pg_read(im, src.triplets, pg_triplet);
	if (rc == 0 && src.clients != NULL)
		rc = pg_read(im, src.clients, pg_client);
	if (rc == 0)
		rc = batch_flush(&im->b);
	if (rc < 0) {
		rc = db_failed("import failed", rc);
		goto out;
	}
	print_import_summary(ctl, im, argv[optind]);
out:
	pg_close(&src);
	free(im);
	return rc;
}
