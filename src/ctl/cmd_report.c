/*
 * cmd_report - report: what the decision log says, as postgreyreport
 * tells it for postgrey: the triplets that were deferred and never
 * passed (mostly spam that never came back), the most deferred clients,
 * how long senders took to pass, and how many decisions of each kind.
 *
 * Reads log files (or standard input) line by line in the given order;
 * logline_parse() picks greyhold's and postgrey's decision lines, every
 * other line is skipped, and a decision line that does not parse is
 * counted and reported, never fatal.  A pass is matched to an earlier
 * deferral by the triplet as logged (client address, sender, recipient
 * as escaped in the log), not by the daemon's key (network, normalised
 * sender): the report tells what the log says.
 *
 * Memory is bounded whatever the input: at most REPORT_MAX_ENTRIES
 * triplets and as many clients are tracked, holding at most
 * REPORT_MAX_TEXT bytes of text; past that, deferrals of new triplets or
 * clients are counted but not tracked, and the report says so.  Pass
 * delays are counted per second below a day and per minute above, in
 * fixed arrays, so percentiles are exact below a day and to the minute
 * above.  Lines are read into a fixed buffer; a longer line is cut, and
 * counted as unparseable if it is a decision line.
 *
 * Exit: 0 with a report; EXIT_ERROR if a file cannot be read (no
 * report), or memory runs out.
 */
#include "cmd_report.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "logline.h"
#include "output.h"

#define REPORT_MAX_ENTRIES 1000000
#define REPORT_MAX_TEXT ((size_t)256 << 20)
#define REPORT_LINE_MAX 16384
#define REPORT_TOP_DEFAULT 10
#define REPORT_TOP_MAX 1000000000

/* Pass delays: per second below a day, per minute for 60 days more. */
#define DELAY_SECONDS 86400
#define DELAY_MINUTES (60 * 1440)

#define NO_CLIENT UINT32_MAX
#define BAR_WIDTH 40

/* ---- tracked triplets and clients -------------------------------------------- */

/*
 * A triplet (three key parts: address, sender, recipient; then the
 * stamp of its first deferral) or a client (one key part: the address;
 * then its name).  The text is the parts one after the other.
 */
struct entry {
	struct entry *next;	/* hash chain */
	uint64_t hash;
	uint64_t deferrals;
	uint64_t passes;	/* pass lines after the first deferral */
	uint64_t line;		/* triplet: of its first deferral */
	uint32_t file;		/* triplet: that line's file */
	uint32_t client;	/* triplet: index of its client, or NO_CLIENT */
	uint32_t index;		/* in its table's items */
	uint16_t len[4];	/* of the parts of text: key parts, then one */
	char text[];
};

struct table {
	struct entry **buckets;
	size_t nbuckets;	/* a power of two, or 0 */
	struct entry **items;	/* in order of first deferral */
	size_t n, cap;
	size_t nkey;		/* key parts: 3 or 1 */
};

/* The histogram's buckets: delays below each bound. */
static const struct {
	const char *label;
	int64_t below;
} buckets[] = {
	{"<5m", 300}, {"5-10m", 600}, {"10-30m", 1800}, {"30m-1h", 3600},
	{"1-4h", 14400}, {">4h", INT64_MAX},
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct delays {
	uint64_t *seconds;	/* [DELAY_SECONDS] */
	uint64_t *minutes;	/* [DELAY_MINUTES], from DELAY_SECONDS on */
	uint64_t count;
	int64_t min, max;
	uint64_t hist[NBUCKETS];
};

struct where {
	uint32_t file;
	uint64_t line;
};

struct report {
	char *const *files;	/* names as given; "-" is standard input */
	size_t nfiles;
	uint64_t lines, decisions, skipped, unparseable;
	uint64_t by_tag[3];	/* enum logline_tag */
	struct where first_unparseable;
	uint64_t totals[LOGLINE_NACTIONS][LOGLINE_NREASONS];
	struct table triplets, clients;
	size_t text_bytes;
	bool triplets_full, clients_full;
	uint64_t untracked_deferrals;	/* of triplets past the limit */
	uint64_t untracked_client_deferrals;
	uint64_t passed_later;		/* tracked triplets with a pass */
	uint64_t unmatched_first_passes;	/* delay= without a deferral */
	struct delays delays;
};

static uint64_t
hash_parts(const struct logline_span *parts, size_t n)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < parts[i].len; j++) {
			h ^= (unsigned char)parts[i].ptr[j];
			h *= 1099511628211ULL;
		}
		h ^= parts[i].len;	/* "ab","c" and "a","bc" differ */
		h *= 1099511628211ULL;
	}
	return h;
}

/* Part i of an entry's text. */
static struct logline_span
entry_part(const struct entry *e, size_t i)
{
	struct logline_span s;
	size_t off = 0;

	for (size_t k = 0; k < i; k++)
		off += e->len[k];
	s.ptr = e->text + off;
	s.len = e->len[i];
	return s;
}

static bool
entry_is(const struct entry *e, uint64_t hash,
	 const struct logline_span *parts, size_t n)
{
	size_t off = 0;

	if (e->hash != hash)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (e->len[i] != parts[i].len ||
		    memcmp(e->text + off, parts[i].ptr, parts[i].len) != 0)
			return false;
		off += parts[i].len;
	}
	return true;
}

static struct entry *
table_find(const struct table *t, const struct logline_span *parts,
	   uint64_t hash)
{
	struct entry *e;

	if (t->nbuckets == 0)
		return NULL;
	for (e = t->buckets[hash & (t->nbuckets - 1)]; e != NULL; e = e->next) {
		if (entry_is(e, hash, parts, t->nkey))
			return e;
	}
	return NULL;
}

/* Double the buckets; on failure chains only grow longer. */
static void
table_grow_buckets(struct table *t)
{
	size_t n = t->nbuckets != 0 ? t->nbuckets * 2 : 1024;
	struct entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = t->items[i];
		size_t k = e->hash & (n - 1);

		e->next = b[k];
		b[k] = e;
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/*
 * Track a new entry: its key parts, then extra (stamp or name).
 * -ENOSPC past the limits, -ENOMEM.
 */
static int
table_add(struct report *r, struct table *t, const struct logline_span *parts,
	  struct logline_span extra, uint64_t hash, struct entry **out)
{
	size_t need = extra.len;
	struct entry *e;
	char *p;

	for (size_t i = 0; i < t->nkey; i++)
		need += parts[i].len;
	if (t->n >= REPORT_MAX_ENTRIES ||
	    need > REPORT_MAX_TEXT - r->text_bytes)
		return -ENOSPC;
	if (t->n == t->cap) {
		size_t cap = t->cap != 0 ? t->cap * 2 : 1024;
		struct entry **items = realloc(t->items, cap * sizeof(*items));

		if (items == NULL)
			return -ENOMEM;
		t->items = items;
		t->cap = cap;
	}
	e = calloc(1, sizeof(*e) + need);
	if (e == NULL)
		return -ENOMEM;
	p = e->text;
	/* Absent fields have a NULL pointer and no length: copy nothing. */
	for (size_t i = 0; i < t->nkey; i++) {
		if (parts[i].len > 0)
			memcpy(p, parts[i].ptr, parts[i].len);
		p += parts[i].len;
		e->len[i] = (uint16_t)parts[i].len;
	}
	if (extra.len > 0)
		memcpy(p, extra.ptr, extra.len);
	e->len[t->nkey] = (uint16_t)extra.len;
	e->hash = hash;
	e->client = NO_CLIENT;
	e->index = (uint32_t)t->n;
	t->items[t->n++] = e;
	r->text_bytes += need;
	if (t->n > t->nbuckets)
		table_grow_buckets(t);
	else {
		size_t k = hash & (t->nbuckets - 1);

		e->next = t->buckets[k];
		t->buckets[k] = e;
	}
	*out = e;
	return 0;
}

static void
table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->items[i]);
	free(t->items);
	free(t->buckets);
}

/* ---- pass delays --------------------------------------------------------------- */

static void
delays_add(struct delays *d, int64_t delay)
{
	size_t b = 0;

	if (delay < DELAY_SECONDS) {
		d->seconds[delay]++;
	} else {
		int64_t m = (delay - DELAY_SECONDS) / 60;

		d->minutes[m < DELAY_MINUTES ? m : DELAY_MINUTES - 1]++;
	}
	if (d->count == 0 || delay < d->min)
		d->min = delay;
	if (d->count == 0 || delay > d->max)
		d->max = delay;
	d->count++;
	while (delay >= buckets[b].below)
		b++;
	d->hist[b]++;
}

/* The p-th percentile by nearest rank (as in harness.percentile). */
static int64_t
delays_percentile(const struct delays *d, unsigned p)
{
	uint64_t rank = (d->count * p + 99) / 100, seen = 0;
	int64_t v = d->max;

	if (rank == 0)
		rank = 1;
	for (int64_t s = 0; s < DELAY_SECONDS; s++) {
		seen += d->seconds[s];
		if (seen >= rank)
			return s;
	}
	for (int64_t m = 0; m < DELAY_MINUTES; m++) {
		seen += d->minutes[m];
		if (seen >= rank) {
			v = DELAY_SECONDS + m * 60;
			break;
		}
	}
	/* A minute's start may lie below the smallest delay in it. */
	if (v < d->min)
		v = d->min;
	return v > d->max ? d->max : v;
}

/* ---- reading ------------------------------------------------------------------- */

static void
note_unparseable(struct report *r, uint32_t file, uint64_t line)
{
	if (r->unparseable++ == 0) {
		r->first_unparseable.file = file;
		r->first_unparseable.line = line;
	}
}

static int
count_deferral(struct report *r, const struct logline *l, struct where at)
{
	struct logline_span key[3] = {l->client_address, l->sender,
				      l->recipient};
	uint64_t th = hash_parts(key, 3), ch = hash_parts(key, 1);
	struct entry *c, *t;
	int rc;

	c = table_find(&r->clients, key, ch);
	if (c == NULL && !r->clients_full) {
		rc = table_add(r, &r->clients, key, l->client_name, ch, &c);
		if (rc == -ENOMEM)
			return rc;
		r->clients_full = rc == -ENOSPC;
	}
	if (c != NULL)
		c->deferrals++;
	else
		r->untracked_client_deferrals++;

	t = table_find(&r->triplets, key, th);
	if (t == NULL && !r->triplets_full) {
		rc = table_add(r, &r->triplets, key, l->stamp, th, &t);
		if (rc == -ENOMEM)
			return rc;
		r->triplets_full = rc == -ENOSPC;
		if (t != NULL) {
			t->file = at.file;
			t->line = at.line;
			t->client = c != NULL ? c->index : NO_CLIENT;
		}
	}
	if (t != NULL)
		t->deferrals++;
	else
		r->untracked_deferrals++;
	return 0;
}

static void
count_pass(struct report *r, const struct logline *l)
{
	struct logline_span key[3] = {l->client_address, l->sender,
				      l->recipient};
	bool first_pass = l->reason == LOGLINE_TRIPLET_FOUND && l->delay >= 0;
	struct entry *c, *t;

	c = table_find(&r->clients, key, hash_parts(key, 1));
	if (c != NULL)
		c->passes++;
	t = table_find(&r->triplets, key, hash_parts(key, 3));
	if (t != NULL) {
		if (t->passes++ == 0)
			r->passed_later++;
	} else if (first_pass) {
		r->unmatched_first_passes++;
	}
	if (first_pass)
		delays_add(&r->delays, l->delay);
}

/* One line; a cut line counts as unparseable if it is a decision. */
static int
report_line(struct report *r, const char *text, size_t len, bool cut,
	    struct where at)
{
	struct logline l;
	int rc = logline_parse(text, len, &l);

	r->lines++;
	if (rc == -ENOENT) {
		r->skipped++;
		return 0;
	}
	if (rc < 0 || cut) {
		note_unparseable(r, at.file, at.line);
		return 0;
	}
	r->decisions++;
	r->by_tag[l.tag]++;
	r->totals[l.action][l.reason]++;
	if (l.action == LOGLINE_GREYLIST)
		return count_deferral(r, &l, at);
	if (l.action == LOGLINE_PASS)
		count_pass(r, &l);
	return 0;
}

/*
 * One line into buf (without its newline), cut at bufsz bytes (*cut
 * set).  False at the end of the input.
 */
static bool
read_line(FILE *in, char *buf, size_t bufsz, size_t *len, bool *cut)
{
	size_t n = 0;
	bool any = false;
	int c;

	*cut = false;
	while ((c = getc_unlocked(in)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (n < bufsz)
			buf[n++] = (char)c;
		else
			*cut = true;
	}
	*len = n;
	return any;
}

static const char *
file_name(const struct report *r, uint32_t file)
{
	return strcmp(r->files[file], "-") == 0 ? "stdin" : r->files[file];
}

static int
read_file(struct report *r, FILE *in, uint32_t file, char *buf)
{
	struct where at = {file, 0};
	size_t len;
	bool cut;
	int rc;

	while (read_line(in, buf, REPORT_LINE_MAX, &len, &cut)) {
		at.line++;
		if (at.line == 1 && len >= 2 && buf[0] == '\x1f' &&
		    buf[1] == '\x8b') {
			fprintf(stderr, "greyholdctl: %s is gzip-compressed; "
				"decompress it first (zcat FILE | greyholdctl "
				"report)\n", file_name(r, file));
			return -EINVAL;
		}
		rc = report_line(r, buf, len, cut, at);
		if (rc < 0) {
			fprintf(stderr, "greyholdctl: out of memory\n");
			return rc;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "greyholdctl: reading %s: %s\n",
			file_name(r, file), strerror(errno));
		return -EIO;
	}
	return 0;
}

static int
read_inputs(struct report *r)
{
	char *buf = malloc(REPORT_LINE_MAX);
	int rc = 0;

	if (buf == NULL) {
		fprintf(stderr, "greyholdctl: out of memory\n");
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nfiles && rc == 0; i++) {
		bool is_stdin = strcmp(r->files[i], "-") == 0;
		FILE *in = is_stdin ? stdin : fopen(r->files[i], "r");

		if (in == NULL) {
			rc = -errno;
			fprintf(stderr, "greyholdctl: cannot open %s: %s\n",
				r->files[i], strerror(-rc));
			break;
		}
		rc = read_file(r, in, (uint32_t)i, buf);
		if (!is_stdin)
			fclose(in);
	}
	free(buf);
	return rc;
}

/* ---- text output ---------------------------------------------------------------- */

/*
 * A logged value for a terminal, padded to width: printable ASCII as it
 * is (the daemon's escapes stay as they are), other bytes (postgrey
 * does not escape) as \xHH; empty as empty_text.
 */
static void
put_field(struct logline_span s, int width, const char *empty_text)
{
	int n = 0;

	if (s.len == 0)
		n = printf("%s", empty_text);
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];

		if (c >= 0x20 && c < 0x7f) {
			putchar(c);
			n++;
		} else {
			n += printf("\\x%02x", c);
		}
	}
	for (; n < width; n++)
		putchar(' ');
}

static void
put_where(const struct report *r, const struct entry *t, int width)
{
	struct logline_span stamp = entry_part(t, 3);
	int n;

	if (stamp.len > 0) {
		put_field(stamp, width, "");
		return;
	}
	n = printf("%s:%" PRIu64, file_name(r, t->file), t->line);
	for (; n < width; n++)
		putchar(' ');
}

static struct logline_span
client_name_of(const struct report *r, const struct entry *t)
{
	struct logline_span none = {"", 0};

	if (t->client == NO_CLIENT)
		return none;
	return entry_part(r->clients.items[t->client], 1);
}

/* The (action, reason) pairs greyhold logs, in the report's order. */
static const struct {
	enum logline_action action;
	enum logline_reason reason;
} known_rows[] = {
	{LOGLINE_GREYLIST, LOGLINE_NEW},
	{LOGLINE_GREYLIST, LOGLINE_RESTART},
	{LOGLINE_GREYLIST, LOGLINE_EARLY_RETRY},
	{LOGLINE_PASS, LOGLINE_TRIPLET_FOUND},
	{LOGLINE_PASS, LOGLINE_CLIENT_WHITELIST},
	{LOGLINE_PASS, LOGLINE_CLIENT_WHITELIST_LIVE},
	{LOGLINE_PASS, LOGLINE_RECIPIENT_WHITELIST},
	{LOGLINE_PASS, LOGLINE_RECIPIENT_WHITELIST_LIVE},
	{LOGLINE_PASS, LOGLINE_CLIENT_AWL},
	{LOGLINE_PASS, LOGLINE_AUTHENTICATED},
	{LOGLINE_ERROR, LOGLINE_STORE_FAILURE},
};
#define NKNOWN_ROWS (sizeof(known_rows) / sizeof(known_rows[0]))

/* Whether a row is shown: a known pair, or any pair that occurred. */
static bool
row_shown(const struct report *r, int a, int reason)
{
	for (size_t i = 0; i < NKNOWN_ROWS; i++) {
		if ((int)known_rows[i].action == a &&
		    (int)known_rows[i].reason == reason)
			return true;
	}
	return r->totals[a][reason] > 0;
}

static uint64_t
action_total(const struct report *r, int a)
{
	uint64_t n = 0;

	for (int reason = 0; reason < LOGLINE_NREASONS; reason++)
		n += r->totals[a][reason];
	return n;
}

static void
text_input(const struct report *r)
{
	printf("Input: %" PRIu64 " lines from %zu file%s\n", r->lines,
	       r->nfiles, r->nfiles == 1 ? "" : "s");
	printf("  decision lines:     %" PRIu64 " (greyhold %" PRIu64
	       ", postgrey %" PRIu64 ", untagged %" PRIu64 ")\n", r->decisions,
	       r->by_tag[LOGLINE_TAG_GREYHOLD], r->by_tag[LOGLINE_TAG_POSTGREY],
	       r->by_tag[LOGLINE_TAG_NONE]);
	printf("  other lines:        %" PRIu64 " (skipped)\n", r->skipped);
	printf("  unparseable:        %" PRIu64, r->unparseable);
	if (r->unparseable > 0)
		printf(" (decision lines that did not parse; the first at %s:%"
		       PRIu64 ")", file_name(r, r->first_unparseable.file),
		       r->first_unparseable.line);
	printf("\n\n");
}

static void
text_totals(const struct report *r)
{
	printf("Decisions by action and reason\n");
	for (int a = 0; a < LOGLINE_NACTIONS; a++) {
		for (int reason = 0; reason < LOGLINE_NREASONS; reason++) {
			if (!row_shown(r, a, reason))
				continue;
			printf("  %-9s %-28s %10" PRIu64 "\n",
			       logline_action_name((enum logline_action)a),
			       logline_reason_name((enum logline_reason)reason),
			       r->totals[a][reason]);
		}
	}
	printf("  total: %" PRIu64 " (greylist %" PRIu64 ", pass %" PRIu64
	       ", error %" PRIu64 ")\n\n", r->decisions,
	       action_total(r, LOGLINE_GREYLIST), action_total(r, LOGLINE_PASS),
	       action_total(r, LOGLINE_ERROR));
}

static uint64_t
never_passed(const struct report *r)
{
	uint64_t n = 0;

	for (size_t i = 0; i < r->triplets.n; i++)
		n += r->triplets.items[i]->passes == 0;
	return n;
}

static void
text_triplets(const struct report *r)
{
	printf("Triplets (client address, sender, recipient as logged)\n");
	printf("  deferred:           %zu\n", r->triplets.n);
	printf("  passed later:       %" PRIu64 "\n", r->passed_later);
	printf("  never passed:       %" PRIu64 "\n", never_passed(r));
	printf("  first passes whose deferral is not in the log: %" PRIu64 "\n",
	       r->unmatched_first_passes);
	if (r->triplets_full || r->clients_full)
		printf("  TRACKING LIMIT REACHED (%d triplets and clients, "
		       "%zu MiB of text): %" PRIu64 " deferrals of further "
		       "triplets and %" PRIu64 " of further clients were "
		       "counted but not tracked; the lists below miss them\n",
		       REPORT_MAX_ENTRIES, REPORT_MAX_TEXT >> 20,
		       r->untracked_deferrals, r->untracked_client_deferrals);
	printf("\n");
}

static void
text_delays(const struct report *r)
{
	const struct delays *d = &r->delays;
	static const unsigned pct[] = {50, 90, 99};
	char v[32];
	uint64_t top = 0;

	printf("Pass delays (delay= of first passes)\n");
	if (d->count == 0) {
		printf("  none\n\n");
		return;
	}
	format_age(v, sizeof(v), d->min);
	printf("  count %" PRIu64 ", min %s", d->count, v);
	for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
		format_age(v, sizeof(v), delays_percentile(d, pct[i]));
		printf(", p%u %s", pct[i], v);
	}
	format_age(v, sizeof(v), d->max);
	printf(", max %s\n", v);
	for (size_t b = 0; b < NBUCKETS; b++)
		top = d->hist[b] > top ? d->hist[b] : top;
	for (size_t b = 0; b < NBUCKETS; b++) {
		uint64_t bar = (d->hist[b] * BAR_WIDTH + top - 1) / top;

		printf("  %-7s %10" PRIu64 "%s", buckets[b].label, d->hist[b],
		       bar > 0 ? "  " : "");
		for (uint64_t i = 0; i < bar; i++)
			putchar('#');
		printf("\n");
	}
	printf("\n");
}

/* Most deferrals first, then fewest passes, then by address. */
static int
cmp_clients(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a;
	const struct entry *y = *(struct entry *const *)b;
	struct logline_span sx = entry_part(x, 0), sy = entry_part(y, 0);
	size_t n = sx.len < sy.len ? sx.len : sy.len;
	int c;

	if (x->deferrals != y->deferrals)
		return x->deferrals > y->deferrals ? -1 : 1;
	if (x->passes != y->passes)
		return x->passes < y->passes ? -1 : 1;
	c = memcmp(sx.ptr, sy.ptr, n);
	if (c != 0)
		return c;
	return sx.len < sy.len ? -1 : sx.len > sy.len;
}

/* The clients sorted for the top list (caller frees), or NULL. */
static struct entry **
sorted_clients(const struct report *r)
{
	struct entry **v = malloc((r->clients.n + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	if (r->clients.n > 0)
		memcpy(v, r->clients.items, r->clients.n * sizeof(*v));
	qsort(v, r->clients.n, sizeof(*v), cmp_clients);
	return v;
}

static size_t
top_count(const struct report *r, uint64_t top)
{
	return top == 0 || top > r->clients.n ? r->clients.n : (size_t)top;
}

static void
text_clients(const struct report *r, struct entry **sorted, uint64_t top)
{
	size_t n = top_count(r, top);

	printf("Top deferred clients (%zu of %zu)\n", n, r->clients.n);
	if (n == 0) {
		printf("  none\n\n");
		return;
	}
	printf("  %9s %9s  %-39s %s\n", "DEFERRALS", "PASSES",
	       "CLIENT ADDRESS", "CLIENT NAME");
	for (size_t i = 0; i < n; i++) {
		const struct entry *c = sorted[i];

		printf("  %9" PRIu64 " %9" PRIu64 "  ", c->deferrals,
		       c->passes);
		put_field(entry_part(c, 0), 39, "-");
		putchar(' ');
		put_field(entry_part(c, 1), 0, "-");
		putchar('\n');
	}
	printf("\n");
}

static void
text_never_passed(const struct report *r)
{
	uint64_t n = never_passed(r);

	printf("Never passed: %" PRIu64 " triplet%s deferred and not passed "
	       "later (likely spam)\n", n, n == 1 ? "" : "s");
	if (n == 0)
		return;
	printf("  %-24s %9s  %-18s %-28s %-32s %s\n", "FIRST DEFERRAL",
	       "DEFERRALS", "CLIENT ADDRESS", "CLIENT NAME", "SENDER",
	       "RECIPIENT");
	for (size_t i = 0; i < r->triplets.n; i++) {
		const struct entry *t = r->triplets.items[i];

		if (t->passes > 0)
			continue;
		printf("  ");
		put_where(r, t, 24);
		printf(" %9" PRIu64 "  ", t->deferrals);
		put_field(entry_part(t, 0), 18, "-");
		putchar(' ');
		put_field(client_name_of(r, t), 28, "-");
		putchar(' ');
		put_field(entry_part(t, 1), 32, "<>");
		putchar(' ');
		put_field(entry_part(t, 2), 0, "-");
		putchar('\n');
	}
}

static void
print_text(const struct report *r, struct entry **sorted, uint64_t top)
{
	text_input(r);
	text_totals(r);
	text_triplets(r);
	text_delays(r);
	text_clients(r, sorted, top);
	text_never_passed(r);
}

/* ---- JSON output ------------------------------------------------------------------ */

static void
json_span(struct logline_span s)
{
	json_mem(stdout, s.ptr, s.len);
}

static void
json_input(const struct report *r)
{
	printf("\"input\":{\"files\":[");
	for (size_t i = 0; i < r->nfiles; i++) {
		if (i > 0)
			putchar(',');
		json_string(stdout, r->files[i]);
	}
	printf("],\"lines\":%" PRIu64 ",\"decision_lines\":%" PRIu64
	       ",\"greyhold_lines\":%" PRIu64 ",\"postgrey_lines\":%" PRIu64
	       ",\"untagged_lines\":%" PRIu64 ",\"skipped_lines\":%" PRIu64
	       ",\"unparseable_lines\":%" PRIu64 ",\"first_unparseable\":",
	       r->lines, r->decisions, r->by_tag[LOGLINE_TAG_GREYHOLD],
	       r->by_tag[LOGLINE_TAG_POSTGREY], r->by_tag[LOGLINE_TAG_NONE],
	       r->skipped, r->unparseable);
	if (r->unparseable == 0) {
		printf("null}");
		return;
	}
	printf("{\"file\":");
	json_string(stdout, r->files[r->first_unparseable.file]);
	printf(",\"line\":%" PRIu64 "}}", r->first_unparseable.line);
}

static void
json_totals(const struct report *r)
{
	printf("\"totals\":{\"decisions\":%" PRIu64, r->decisions);
	for (int a = 0; a < LOGLINE_NACTIONS; a++) {
		bool first = true;

		printf(",\"%s\":{\"total\":%" PRIu64 ",\"reasons\":{",
		       logline_action_name((enum logline_action)a),
		       action_total(r, a));
		for (int reason = 0; reason < LOGLINE_NREASONS; reason++) {
			if (!row_shown(r, a, reason))
				continue;
			printf("%s\"%s\":%" PRIu64, first ? "" : ",",
			       logline_reason_name((enum logline_reason)reason),
			       r->totals[a][reason]);
			first = false;
		}
		printf("}}");
	}
	printf("}");
}

static void
json_triplets(const struct report *r)
{
	printf("\"triplets\":{\"deferred\":%zu,\"passed_later\":%" PRIu64
	       ",\"never_passed\":%" PRIu64 ",\"unmatched_first_passes\":%"
	       PRIu64 ",\"limit\":%d,\"limit_reached\":%s"
	       ",\"untracked_deferrals\":%" PRIu64
	       ",\"untracked_client_deferrals\":%" PRIu64 "}",
	       r->triplets.n, r->passed_later, never_passed(r),
	       r->unmatched_first_passes, REPORT_MAX_ENTRIES,
	       r->triplets_full || r->clients_full ? "true" : "false",
	       r->untracked_deferrals, r->untracked_client_deferrals);
}

static void
json_delays(const struct report *r)
{
	const struct delays *d = &r->delays;

	printf("\"pass_delays\":{\"count\":%" PRIu64, d->count);
	if (d->count == 0)
		printf(",\"min\":null,\"p50\":null,\"p90\":null,\"p99\":null,"
		       "\"max\":null");
	else
		printf(",\"min\":%" PRId64 ",\"p50\":%" PRId64 ",\"p90\":%"
		       PRId64 ",\"p99\":%" PRId64 ",\"max\":%" PRId64, d->min,
		       delays_percentile(d, 50), delays_percentile(d, 90),
		       delays_percentile(d, 99), d->max);
	printf(",\"histogram\":[");
	for (size_t b = 0; b < NBUCKETS; b++) {
		printf("%s{\"label\":\"%s\",\"from\":%" PRId64 ",\"to\":",
		       b > 0 ? "," : "", buckets[b].label,
		       b > 0 ? buckets[b - 1].below : 0);
		if (buckets[b].below == INT64_MAX)
			printf("null");
		else
			printf("%" PRId64, buckets[b].below);
		printf(",\"count\":%" PRIu64 "}", d->hist[b]);
	}
	printf("]}");
}

static void
json_clients(const struct report *r, struct entry **sorted, uint64_t top)
{
	size_t n = top_count(r, top);

	printf("\"top_clients\":[");
	for (size_t i = 0; i < n; i++) {
		const struct entry *c = sorted[i];

		printf("%s{\"client_address\":", i > 0 ? "," : "");
		json_span(entry_part(c, 0));
		printf(",\"client_name\":");
		json_span(entry_part(c, 1));
		printf(",\"deferrals\":%" PRIu64 ",\"passes\":%" PRIu64 "}",
		       c->deferrals, c->passes);
	}
	printf("]");
}

static void
json_never_passed(const struct report *r)
{
	bool first = true;

	printf("\"never_passed\":[");
	for (size_t i = 0; i < r->triplets.n; i++) {
		const struct entry *t = r->triplets.items[i];
		struct logline_span stamp = entry_part(t, 3);

		if (t->passes > 0)
			continue;
		printf("%s{\"client_address\":", first ? "" : ",");
		json_span(entry_part(t, 0));
		printf(",\"client_name\":");
		json_span(client_name_of(r, t));
		printf(",\"sender\":");
		json_span(entry_part(t, 1));
		printf(",\"recipient\":");
		json_span(entry_part(t, 2));
		printf(",\"deferrals\":%" PRIu64
		       ",\"first_deferral\":{\"time\":", t->deferrals);
		if (stamp.len > 0)
			json_span(stamp);
		else
			printf("null");
		printf(",\"file\":");
		json_string(stdout, r->files[t->file]);
		printf(",\"line\":%" PRIu64 "}}", t->line);
		first = false;
	}
	printf("]");
}

static void
print_json(const struct report *r, struct entry **sorted, uint64_t top)
{
	putchar('{');
	json_input(r);
	putchar(',');
	json_totals(r);
	putchar(',');
	json_triplets(r);
	putchar(',');
	json_delays(r);
	putchar(',');
	json_clients(r, sorted, top);
	putchar(',');
	json_never_passed(r);
	printf("}\n");
}

/* ---- the command ------------------------------------------------------------------ */

static int
report_init(struct report *r)
{
	memset(r, 0, sizeof(*r));
	r->triplets.nkey = 3;
	r->clients.nkey = 1;
	r->delays.seconds = calloc(DELAY_SECONDS, sizeof(uint64_t));
	r->delays.minutes = calloc(DELAY_MINUTES, sizeof(uint64_t));
	if (r->delays.seconds == NULL || r->delays.minutes == NULL) {
		fprintf(stderr, "greyholdctl: out of memory\n");
		return -ENOMEM;
	}
	return 0;
}

static void
report_free(struct report *r)
{
	table_free(&r->triplets);
	table_free(&r->clients);
	free(r->delays.seconds);
	free(r->delays.minutes);
}

static int
parse_report_args(int argc, char **argv, bool *json, uint64_t *top)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"top", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'j')
			*json = true;
		else if (ch != 't' ||
			 !parse_u64_arg(optarg, REPORT_TOP_MAX, top))
			return -1;
	}
	return 0;
}

int
cmd_report(struct ctl *ctl, int argc, char **argv)
{
	static char dash[] = "-";
	static char *const std_input[] = {dash};
	struct report *r;
	struct entry **sorted = NULL;
	bool json = ctl->json;
	uint64_t top = REPORT_TOP_DEFAULT;
	int rc = EXIT_ERROR;

	if (parse_report_args(argc, argv, &json, &top) < 0)
		return -1;
	r = malloc(sizeof(*r));
	if (r == NULL || report_init(r) < 0) {
		if (r != NULL)
			report_free(r);
		free(r);
		return EXIT_ERROR;
	}
	r->files = optind < argc ? argv + optind : std_input;
	r->nfiles = optind < argc ? (size_t)(argc - optind) : 1;
	if (read_inputs(r) < 0)
		goto out;
	sorted = sorted_clients(r);
	if (sorted == NULL) {
		fprintf(stderr, "greyholdctl: out of memory\n");
		goto out;
	}
	if (json)
		print_json(r, sorted, top);
	else
		print_text(r, sorted, top);
	rc = fflush(stdout) == 0 ? 0 : EXIT_ERROR;
out:
	free(sorted);
	report_free(r);
	free(r);
	return rc;
}
