/*
 * cmd_load - load: merge a dump (cmd_dump.c, greyholdctl(8)) into the
 * database, creating it when missing.
 *
 * Every line is checked before its record is queued: field count,
 * %XX escapes, numbers in range, key parts without NUL, whitelist entries
 * as the daemon checks them.  Triplet and client records are not written
 * as they are read: they are queued in an external sort (extsort.h, in
 * --memory MiB, runs spilled to a nameless file in $TMPDIR or the
 * database directory) and, once the input ends or a bad line stops it,
 * merged in (database, key) order DB_CHUNK at a time (batch.c).  In key
 * order a transaction touches a few neighbouring leaf pages instead of
 * one page per record, which is what made loading a dump in random
 * order slow; equal keys keep the order of the file, so the result and
 * the counts are those of merging line by line.  A record already there
 * keeps the earlier first-seen time, the later last-seen time and the
 * larger count, so loading twice changes nothing.  Live whitelist
 * entries are few and written as their lines are read, as before.
 *
 * Loading stops at the first bad line with its file and number
 * (-EINVAL); every record before it is still merged, so everything
 * before it has been loaded.  A database error while merging leaves the
 * transactions committed so far: a prefix of the key order, not of the
 * file (loading again completes it).  When the sort itself fails (no
 * room for its temporary file), no triplet or client record is written.
 */
#include "cmd_load.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "batch.h"
#include "cmd_dump.h"
#include "extsort.h"
#include "whitelist.h"

#define DUMP_MAX_LINE 8192

/*
 * Memory for sorting, MiB: 64 MiB holds about 600k triplets of a typical
 * size (key, record and index about 110 bytes each).
 */
#define LOAD_MEMORY_MIB 64
#define LOAD_MAX_MEMORY_MIB (1024 * 1024)

#define LOAD_MAX_FIELDS 8

struct field {
	char buf[WHITELIST_MAX_ENTRY + DB_WL_COMMENT_MAX];
	size_t len;
};

struct loader {
	struct ctl *ctl;
	const char *name;
	unsigned long line;
	bool header_seen;
	size_t wl;
	struct field f[LOAD_MAX_FIELDS];
	size_t nf;
	extsort_t *sort;
	int sort_rc;		/* the sort failed: nothing is merged */
	int merge_rc;		/* merging what was sorted failed */
	struct batch b;
};

static int load_error(const struct loader *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Say what is wrong where; returns -EINVAL. */
static int
load_error(const struct loader *l, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "greyholdctl: %s:%lu: ", l->name, l->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* Decode one %XX-escaped field; -1 on a bad escape, raw byte or length. */
static int
unescape(const char *in, size_t len, struct field *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (o == sizeof(out->buf))
			return -1;
		if (c == '%') {
			int hi = i + 2 < len ? hexval(in[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(in[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -1;
			out->buf[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c < 0x20 || c > 0x7e || c == '\\') {
			return -1;
		} else {
			out->buf[o++] = (char)c;
		}
	}
	out->len = o;
	return 0;
}

static int
split_fields(struct loader *l, const char *line, size_t len)
{
	const char *p = line, *end = line + len;

	l->nf = 0;
	for (;;) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));
		const char *stop = tab != NULL ? tab : end;

		if (l->nf == LOAD_MAX_FIELDS)
			return load_error(l, "too many fields");
		if (unescape(p, (size_t)(stop - p), &l->f[l->nf]) < 0)
			return load_error(l, "field %zu: bad %%XX escape, "
					  "unescaped byte, or too long",
					  l->nf + 1);
		l->nf++;
		if (tab == NULL)
			return 0;
		p = tab + 1;
	}
}

static bool
field_is(const struct field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->buf, s, f->len) == 0;
}

/* A number field within [0, max]; false otherwise. */
static bool
field_number(const struct field *f, uint64_t max, uint64_t *out)
{
	char tmp[24];

	if (f->len == 0 || f->len >= sizeof(tmp))
		return false;
	memcpy(tmp, f->buf, f->len);
	tmp[f->len] = '\0';
	return parse_u64_arg(tmp, max, out);
}

static int
load_record_fields(struct loader *l, struct record *r)
{
	uint64_t first, last, passes;

	if (!field_number(&l->f[1], RECORD_MAX_TIME, &first) ||
	    !field_number(&l->f[2], RECORD_MAX_TIME, &last) ||
	    !field_number(&l->f[3], UINT32_MAX, &passes))
		return load_error(l, "bad time or pass count");
	r->first_seen = (int64_t)first;
	r->last_seen = (int64_t)last;
	r->passes = (uint32_t)passes;
	return 0;
}

/*
 * Queue a triplet or client record for the sort, keyed by its table and
 * then its stored key: the order of the database's pages.
 */
static int
queue_record(struct loader *l, enum db_table table, const char *key,
	     size_t len, const struct record *r)
{
	char k[1 + TRIPLET_MAX_KEY];
	uint8_t v[RECORD_SIZE];
	int rc;

	if (len > TRIPLET_MAX_KEY)
		return -E2BIG;
	k[0] = (char)table;
	memcpy(k + 1, key, len);
	/* the stored encoding: no padding bytes go to the temporary file */
	record_encode(v, r);
	rc = extsort_add(l->sort, k, 1 + len, v, sizeof(v));
	if (rc < 0)
		l->sort_rc = rc;
	return rc;
}

static bool
key_field_ok(const struct field *f, size_t min, size_t max)
{
	return f->len >= min && f->len <= max &&
	       memchr(f->buf, '\0', f->len) == NULL;
}

static int
load_triplet(struct loader *l)
{
	char key[TRIPLET_MAX_KEY];
	struct field *c = &l->f[4], *s = &l->f[5], *t = &l->f[6];
	struct record r;
	size_t len;
	int rc;

	if (l->nf != 7)
		return load_error(l, "a T line has 7 fields");
	rc = load_record_fields(l, &r);
	if (rc < 0)
		return rc;
	if (!key_field_ok(c, 1, TRIPLET_MAX_CLIENT - 1) ||
	    !key_field_ok(s, 0, TRIPLET_MAX_ADDR) ||
	    !key_field_ok(t, 0, TRIPLET_MAX_ADDR))
		return load_error(l, "client, sender or recipient is "
				  "empty, too long or contains %%00");
	memcpy(key, c->buf, c->len);
	key[c->len] = '\0';
	memcpy(key + c->len + 1, s->buf, s->len);
	key[c->len + 1 + s->len] = '\0';
	memcpy(key + c->len + 2 + s->len, t->buf, t->len);
	len = c->len + 2 + s->len + t->len;
	return queue_record(l, DB_TRIPLETS, key, len, &r);
}

/* A hashed key part: exactly PRIVACY_HASH_BYTES bytes in hex. */
static bool
field_hash(const struct field *f, char *out)
{
	if (f->len != 2 * PRIVACY_HASH_BYTES)
		return false;
	for (size_t i = 0; i < PRIVACY_HASH_BYTES; i++) {
		int hi = hexval(f->buf[2 * i]), lo = hexval(f->buf[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (char)(hi << 4 | lo);
	}
	return true;
}

/* TH/CH: a record kept with privacy; nf parts of hashes from field 4. */
static int
load_hashed(struct loader *l, enum db_table table, size_t nparts)
{
	char key[PRIVACY_KEY_LEN];
	struct record r;
	int rc;

	if (l->nf != 4 + nparts)
		return load_error(l, "a %s line has %zu fields",
				  table == DB_TRIPLETS ? "TH" : "CH", 4 + nparts);
	rc = load_record_fields(l, &r);
	if (rc < 0)
		return rc;
	key[0] = 'h';
	for (size_t i = 0; i < nparts; i++) {
		if (!field_hash(&l->f[4 + i], key + 1 + i * PRIVACY_HASH_BYTES))
			return load_error(l, "field %zu: not %d hex digits",
					  5 + i, 2 * PRIVACY_HASH_BYTES);
	}
	return queue_record(l, table, key, 1 + nparts * PRIVACY_HASH_BYTES,
			    &r);
}

static int
load_client(struct loader *l)
{
	struct record r;
	int rc;

	if (l->nf != 5)
		return load_error(l, "a C line has 5 fields");
	rc = load_record_fields(l, &r);
	if (rc < 0)
		return rc;
	if (!key_field_ok(&l->f[4], 1, TRIPLET_MAX_CLIENT - 1))
		return load_error(l, "client is empty, too long or "
				  "contains %%00");
	return queue_record(l, DB_CLIENTS, l->f[4].buf, l->f[4].len, &r);
}

static int
load_wl(struct loader *l)
{
	struct db_wl_entry e;
	uint64_t added, expires;
	whitelist_t *check;
	char err[300];
	int rc;

	if (l->nf != 6)
		return load_error(l, "a W line has 6 fields");
	memset(&e, 0, sizeof(e));
	if (field_is(&l->f[1], "client"))
		e.kind = WHITELIST_CLIENTS;
	else if (field_is(&l->f[1], "recipient"))
		e.kind = WHITELIST_RECIPIENTS;
	else
		return load_error(l, "kind is neither client nor recipient");
	if (!field_number(&l->f[2], RECORD_MAX_TIME, &added) ||
	    !field_number(&l->f[3], RECORD_MAX_TIME, &expires))
		return load_error(l, "bad time");
	if (!key_field_ok(&l->f[4], 1, WHITELIST_MAX_ENTRY - 1) ||
	    !key_field_ok(&l->f[5], 0, DB_WL_COMMENT_MAX))
		return load_error(l, "entry or comment empty, too long or "
				  "contains %%00");
	memcpy(e.entry, l->f[4].buf, l->f[4].len);
	memcpy(e.comment, l->f[5].buf, l->f[5].len);
	e.added = (int64_t)added;
	e.expires = (int64_t)expires;
	if (whitelist_create(&check) < 0)
		return -ENOMEM;
	rc = whitelist_add(check, e.kind, e.entry, err, sizeof(err));
	whitelist_free(check);
	if (rc < 0)
		return load_error(l, "whitelist entry: %s", err);
	rc = db_wl_put(l->ctl->db, &e);
	if (rc == 0)
		l->wl++;
	return rc;
}

static int
load_header(struct loader *l, const char *line)
{
	char magic[32];
	int version;

	if (sscanf(line, "%31s %d", magic, &version) != 2 ||
	    strcmp(magic, DUMP_MAGIC) != 0)
		return load_error(l, "%s", "not a greyhold dump (the first line "
				  "must be \"" DUMP_MAGIC " 1\")");
	if (version != DUMP_VERSION)
		return load_error(l, "dump format version %d is not supported "
				  "(this greyholdctl reads version %d)", version,
				  DUMP_VERSION);
	l->header_seen = true;
	return 0;
}

static int
load_line(struct loader *l, char *line, size_t len)
{
	int rc;

	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len == 0 || line[0] == '#')
		return 0;
	if (!l->header_seen)
		return load_header(l, line);
	rc = split_fields(l, line, len);
	if (rc < 0)
		return rc;
	if (field_is(&l->f[0], "T"))
		return load_triplet(l);
	if (field_is(&l->f[0], "C"))
		return load_client(l);
	if (field_is(&l->f[0], "W"))
		return load_wl(l);
	if (field_is(&l->f[0], "TH"))
		return load_hashed(l, DB_TRIPLETS, 3);
	if (field_is(&l->f[0], "CH"))
		return load_hashed(l, DB_CLIENTS, 1);
	return load_error(l, "unknown record type (expected T, C, W, TH or "
			  "CH)");
}

/* Merge everything queued, in key order, DB_CHUNK records at a time. */
static int
merge_sorted(struct loader *l)
{
	struct extsort_item it;
	struct record r;
	int rc = extsort_finish(l->sort);

	while (rc == 0 && (rc = extsort_next(l->sort, &it)) == 1) {
		const unsigned char *k = it.key;

		rc = record_decode(&r, it.val, it.val_len);
		if (rc == 0)
			rc = batch_add(&l->b, (enum db_table)k[0],
				       (const char *)k + 1, it.key_len - 1, &r);
	}
	if (rc == 0)
		rc = batch_flush(&l->b);
	return rc;
}

/*
 * Read every line; what was queued before the end or the first bad line
 * is merged whatever happens, unless the sort failed.
 */
static int
load_stream(struct loader *l, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	while (rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
		l->line++;
		if ((size_t)len > DUMP_MAX_LINE)
			rc = load_error(l, "line too long");
		else
			rc = load_line(l, line, (size_t)len);
	}
	if (rc == 0 && ferror(in))
		rc = load_error(l, "read error: %s", strerror(errno));
	if (rc == 0 && !l->header_seen)
		rc = load_error(l, "empty input: no dump header");
	free(line);
	if (l->sort_rc != 0)
		return l->sort_rc;
	l->merge_rc = merge_sorted(l);
	return rc != 0 ? rc : l->merge_rc;
}

static FILE *
open_input(const char *path)
{
	FILE *f;

	if (path == NULL || strcmp(path, "-") == 0)
		return stdin;
	f = fopen(path, "re");
	if (f == NULL)
		fprintf(stderr, "greyholdctl: cannot read %s: %s\n", path,
			strerror(errno));
	return f;
}

static int
parse_load_options(int argc, char **argv, size_t *memory, const char **path)
{
	static const struct option opts[] = {
		{"memory", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0},
	};
	uint64_t mib;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'm' || !parse_u64_arg(optarg, LOAD_MAX_MEMORY_MIB,
						&mib) || mib == 0 ||
		    mib > SIZE_MAX >> 20) {
			if (ch == 'm')
				fprintf(stderr, "greyholdctl: --memory takes "
					"mebibytes, 1 to %d\n",
					LOAD_MAX_MEMORY_MIB);
			return EXIT_ERROR;
		}
		*memory = (size_t)mib << 20;
	}
	if (argc - optind > 1)
		return -1;
	*path = argc - optind == 1 ? argv[optind] : NULL;
	return 0;
}

/* Where the sort's runs go: $TMPDIR, else next to the database. */
static const char *
sort_dir(const struct ctl *ctl)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && t[0] != '\0' ? t : ctl->dbdir;
}

static void
report_load(const struct ctl *ctl, const struct loader *l, int rc)
{
	if (l->sort_rc != 0) {
		fprintf(stderr, "greyholdctl: cannot sort the dump in %s: %s; "
			"no triplet or client record was loaded\n",
			sort_dir(ctl), strerror(-l->sort_rc));
		return;
	}
	if (l->merge_rc < 0) {
		db_failed("load failed", l->merge_rc);
		fprintf(stderr, "greyholdctl: the transactions committed before "
			"the error stay (records in key order, not the file's "
			"first lines); loading again completes the load\n");
		return;
	}
	if (rc == -EINVAL) {
		fprintf(stderr, "greyholdctl: stopped at line %lu; the %zu "
			"records before it were loaded\n", l->line,
			l->b.records);
		return;
	}
	if (rc < 0) {
		db_failed("load failed", rc);
		return;
	}
	print_merge_summary(ctl, "loaded", &l->b, l->wl, l->name);
	if (ctl->json)
		printf("}\n");
}

int
cmd_load(struct ctl *ctl, int argc, char **argv)
{
	size_t memory = (size_t)LOAD_MEMORY_MIB << 20;
	const char *path;
	struct loader *l;
	FILE *in;
	int rc = parse_load_options(argc, argv, &memory, &path);

	if (rc != 0)
		return rc;
	in = open_input(path);
	if (in == NULL)
		return EXIT_ERROR;
	l = calloc(1, sizeof(*l));
	if (l == NULL || extsort_create(sort_dir(ctl), memory, &l->sort) < 0) {
		fprintf(stderr, "greyholdctl: no memory to sort the dump\n");
		rc = EXIT_ERROR;
	} else if (open_db(ctl, OPEN_CREATE) < 0) {
		rc = EXIT_ERROR;
	} else {
		l->ctl = ctl;
		l->name = path != NULL && strcmp(path, "-") != 0 ? path :
			  "stdin";
		l->b.db = ctl->db;
		rc = load_stream(l, in);
		report_load(ctl, l, rc);
		rc = rc < 0 ? EXIT_ERROR : 0;
	}
	if (in != stdin)
		fclose(in);
	if (l != NULL)
		extsort_free(l->sort);
	free(l);
	return rc;
}
