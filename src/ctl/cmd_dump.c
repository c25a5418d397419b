/*
 * cmd_dump - dump: every record and live whitelist entry as text, in the
 * format that load reads.
 *
 * The dump format, version 1 (documented in greyholdctl(8)): a header
 * line "greyhold-dump 1", then one record per line, fields separated by
 * one tab:
 *   T FIRST LAST PASSES CLIENT SENDER RECIPIENT     a triplet
 *   C FIRST LAST PASSES CLIENT                      an auto-whitelist record
 *   W KIND ADDED EXPIRES ENTRY COMMENT              a live whitelist entry
 * Times are unix seconds.  In text fields every byte outside printable
 * ASCII, and tab, backslash and '%', is written %XX (two upper-case hex
 * digits).  Lines starting with '#' and empty lines are ignored.  Records
 * kept with privacy = yes are "TH" and "CH" lines whose key parts are the
 * keyed hashes in lower-case hex.
 *
 * The tables are read in DB_CHUNK-record slices, not as one snapshot.  A
 * dump file is created with mode 0600 (it holds addresses) before the
 * process gives up root, and emptied only once the database is open.
 */
#include "cmd_dump.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"

struct dumper {
	FILE *out;
	size_t triplets, clients, wl, skipped;
};

static void
dump_field(FILE *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e || c == '\\' || c == '%')
			fprintf(out, "%%%02X", c);
		else
			putc(c, out);
	}
}

/* A key part: escaped text, or a hash in hex. */
static void
dump_part(FILE *out, const char *s, size_t len, bool hashed)
{
	if (!hashed) {
		dump_field(out, s, len);
		return;
	}
	for (size_t i = 0; i < len; i++)
		fprintf(out, "%02x", (unsigned char)s[i]);
}

static void
dump_record_head(FILE *out, const char *type, bool hashed,
		 const struct record *r)
{
	fprintf(out, "%s%s\t%" PRId64 "\t%" PRId64 "\t%" PRIu32 "\t", type,
		hashed ? "H" : "", r->first_seen, r->last_seen, r->passes);
}

static int
dump_triplet(const char *key, size_t len, const struct record *r, void *arg)
{
	struct dumper *d = arg;
	struct key_parts p;

	if (r == NULL || !split_key(key, len, &p)) {
		d->skipped++;
		return DB_WALK_KEEP;
	}
	dump_record_head(d->out, "T", p.hashed, r);
	dump_part(d->out, p.client, p.client_len, p.hashed);
	putc('\t', d->out);
	dump_part(d->out, p.sender, p.sender_len, p.hashed);
	putc('\t', d->out);
	dump_part(d->out, p.rcpt, p.rcpt_len, p.hashed);
	putc('\n', d->out);
	d->triplets++;
	return ferror(d->out) ? -EIO : DB_WALK_KEEP;
}

static int
dump_client(const char *key, size_t len, const struct record *r, void *arg)
{
	struct dumper *d = arg;
	struct key_parts p;

	if (r == NULL) {
		d->skipped++;
		return DB_WALK_KEEP;
	}
	client_parts(key, len, &p);
	dump_record_head(d->out, "C", p.hashed, r);
	dump_part(d->out, p.client, p.client_len, p.hashed);
	putc('\n', d->out);
	d->clients++;
	return ferror(d->out) ? -EIO : DB_WALK_KEEP;
}

static int
dump_wl(const struct db_wl_entry *e, void *arg)
{
	struct dumper *d = arg;

	fprintf(d->out, "W\t%s\t%" PRId64 "\t%" PRId64 "\t",
		e->kind == WHITELIST_CLIENTS ? "client" : "recipient", e->added,
		e->expires);
	dump_field(d->out, e->entry, strlen(e->entry));
	putc('\t', d->out);
	dump_field(d->out, e->comment, strlen(e->comment));
	putc('\n', d->out);
	d->wl++;
	return ferror(d->out) ? -EIO : 0;
}

/* Open FILE for writing (mode 0600: a dump holds addresses), or stdout. */
static FILE *
open_output(const char *path)
{
	int fd;
	FILE *f;

	if (path == NULL || strcmp(path, "-") == 0)
		return stdout;
	/* Truncated only once the database is open (start_output()). */
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		fprintf(stderr, "greyholdctl: cannot write %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return f;
}

/* Empty an existing output file; returns 0 or -1 after saying why. */
static int
start_output(FILE *f, const char *path)
{
	if (f == stdout || ftruncate(fileno(f), 0) == 0)
		return 0;
	fprintf(stderr, "greyholdctl: cannot write %s: %s\n", path,
		strerror(errno));
	return -1;
}

/* Flush, sync and close; returns 0 or -1 after saying why. */
static int
close_output(FILE *f, const char *path)
{
	int rc = fflush(f) == 0 && !ferror(f) ? 0 : -1;

	if (rc == 0 && f != stdout && fsync(fileno(f)) < 0 && errno != EINVAL)
		rc = -1;
	if (f != stdout && fclose(f) != 0)
		rc = -1;
	if (rc < 0)
		fprintf(stderr, "greyholdctl: cannot write %s: %s\n",
			f == stdout ? "the dump" : path, strerror(errno));
	return rc;
}

int
cmd_dump(struct ctl *ctl, int argc, char **argv)
{
	const char *path = argc == 2 ? argv[1] : NULL;
	struct dumper d = {NULL, 0, 0, 0, 0};
	int rc;

	if (argc > 2)
		return -1;
	d.out = open_output(path);
	if (d.out == NULL)
		return EXIT_ERROR;
	if (open_db(ctl, OPEN_READ) < 0 || start_output(d.out, path) < 0) {
		if (d.out != stdout)
			fclose(d.out);
		return EXIT_ERROR;
	}
	fprintf(d.out, "%s %d\n", DUMP_MAGIC, DUMP_VERSION);
	rc = db_walk(ctl->db, DB_TRIPLETS, false, dump_triplet, &d);
	if (rc == 0)
		rc = db_walk(ctl->db, DB_CLIENTS, false, dump_client, &d);
	if (rc == 0)
		rc = db_wl_foreach(ctl->db, dump_wl, &d);
	if (close_output(d.out, path) < 0)
		return EXIT_ERROR;
	if (rc < 0)
		return db_failed("dump failed", rc);
	if (d.out != stdout && ctl->json)
		printf("{\"triplets\":%zu,\"clients\":%zu,\"whitelist\":%zu,"
		       "\"skipped\":%zu}\n", d.triplets, d.clients, d.wl,
		       d.skipped);
	else if (d.out != stdout)
		printf("dumped %zu triplets, %zu client records and %zu live "
		       "whitelist entries to %s\n", d.triplets, d.clients, d.wl,
		       path);
	if (d.skipped > 0)
		fprintf(stderr, "greyholdctl: skipped %zu undecodable record%s\n",
			d.skipped, d.skipped == 1 ? "" : "s");
	return 0;
}
