/*
 * replay - run a simulated day of mail (replay_model.c) through one or
 * more deciders and print, side by side, what each costs legitimate
 * senders and what it stops.  A figure, not a test: nothing here fails
 * on a number (see tests/bench/README, "Replay").
 *
 * Each run opens its decider fresh (an empty store), then takes every
 * attempt in time order from a heap: the first attempt of every message
 * is queued at its time; an attempt that is deferred queues the sender's
 * next attempt, if it has one left; a pass delivers the message.  Runs
 * over several days measure the last day only, the earlier ones warm the
 * store up as a running server's would be.
 *
 * Usage: replay [--seed N] [--legit N] [--bots N] [--days N] [--delay S]
 *               [--horizon S] [--snowshoe-targets N] [--whitelist-clients FILE]
 *               [--whitelist-recipients FILE] [--tmpdir DIR] [--trace N]
 *               [--names] [--rules]
 * "rules on" is greyhold's default smart greylisting (the name identity
 * and the trusted-sender skip); --rules adds the name identity alone and
 * the opt-in SPF identity on top of the defaults (replay_identities.c).
 * With whitelist files a second run uses them ("+ lists").
 */
#include "replay.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"

#define MAX_RUNS 6
#define HOUR 3600

struct event {
	int64_t t;
	uint32_t msg;
	uint32_t k;
};

struct heap {
	struct event *e;
	size_t n, cap;
};

static bool
before(const struct event *a, const struct event *b)
{
	if (a->t != b->t)
		return a->t < b->t;
	if (a->msg != b->msg)
		return a->msg < b->msg;
	return a->k < b->k;
}

static int
heap_push(struct heap *h, struct event ev)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 4096;
		struct event *p = realloc(h->e, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		h->e = p;
		h->cap = cap;
	}
	i = h->n++;
	while (i > 0 && before(&ev, &h->e[(i - 1) / 2])) {
		h->e[i] = h->e[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->e[i] = ev;
	return 0;
}

static struct event
heap_pop(struct heap *h)
{
	struct event top = h->e[0], last = h->e[--h->n];
	size_t i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(&h->e[c + 1], &h->e[c]))
			c++;
		if (!before(&h->e[c], &last))
			break;
		h->e[i] = h->e[c];
		i = c;
	}
	if (h->n > 0)
		h->e[i] = last;
	return top;
}

/* Delay of each message: seconds from first attempt to pass, or -1. */
static int
run(const replay_model_t *m, struct replay_decider *d, int64_t *delay,
    long trace)
{
	struct heap h = {0};
	struct replay_fields f;
	struct replay_request rq;
	size_t i, n = replay_model_messages(m);
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		delay[i] = -1;
		rc = heap_push(&h, (struct event){replay_model_time(m, i, 0),
						  (uint32_t)i, 0});
	}
	while (rc == 0 && h.n > 0) {
		struct event ev = heap_pop(&h);
		bool pass = false;

		replay_model_request(m, ev.msg, ev.k, &f, &rq);
		rc = d->decide(d->ctx, &rq, &pass);
		if (rc != 0)
			break;
		if (trace-- > 0)
			printf("%" PRId64 " %-22s %-15s %-45s %-55s %s spf=%s %s\n",
			       rq.time, replay_class_name(rq.cls),
			       rq.client_address, rq.client_name, rq.sender,
			       rq.recipient, replay_spf_name(rq.spf),
			       pass ? "PASS" : "defer");
		if (pass)
			delay[ev.msg] = rq.time - replay_model_time(m, ev.msg, 0);
		else if (ev.k + 1 < replay_model_attempts(m, ev.msg))
			rc = heap_push(&h, (struct event){
				replay_model_time(m, ev.msg, ev.k + 1), ev.msg,
				ev.k + 1});
	}
	free(h.e);
	return rc;
}

/* ---- figures ----------------------------------------------------------- */

struct figures {
	size_t n, delayed, over10, over4h, passed;
	int64_t p50, p90, p99, median_delayed;
};

static int
cmp_delay(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Undelivered counts as longer than any delay. */
static int64_t
sort_key(int64_t d)
{
	return d < 0 ? INT64_MAX : d;
}

static int64_t
pct(const int64_t *v, size_t n, unsigned p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (n * p + 99) / 100;
	return v[i > 0 ? i - 1 : 0];
}

/* Figures over the measured day's messages that match want(). */
static void
figures(const replay_model_t *m, const int64_t *delay, unsigned day,
	bool (*want)(enum replay_class, int), int arg, int64_t *buf,
	struct figures *out)
{
	size_t i, n = replay_model_messages(m), k = 0, nd = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		int64_t d = delay[i];

		if (replay_model_day(m, i) != day ||
		    !want(replay_model_class(m, i), arg))
			continue;
		out->n++;
		out->passed += d >= 0;
		out->delayed += d != 0;
		out->over10 += d < 0 || d > 600;
		out->over4h += d < 0 || d > 4 * HOUR;
		buf[k++] = sort_key(d);
	}
	qsort(buf, k, sizeof(*buf), cmp_delay);
	out->p50 = pct(buf, k, 50);
	out->p90 = pct(buf, k, 90);
	out->p99 = pct(buf, k, 99);
	for (i = 0; i < k; i++)
		if (buf[i] > 0)
			buf[nd++] = buf[i];
	out->median_delayed = pct(buf, nd, 50);
}

static bool
want_class(enum replay_class c, int arg)
{
	return (int)c == arg;
}

static bool
want_legit(enum replay_class c, int arg)
{
	return replay_class_legit(c);
}

static bool
want_pool(enum replay_class c, int arg)
{
	return replay_class_pool(c);
}

static bool
want_small(enum replay_class c, int arg)
{
	return replay_class_legit(c) && !replay_class_pool(c);
}

static bool
want_bot(enum replay_class c, int arg)
{
	return !replay_class_legit(c);
}

static char *
dur(char *out, size_t outsz, int64_t s)
{
	if (s == INT64_MAX)
		snprintf(out, outsz, "never");
	else if (s < 60)
		snprintf(out, outsz, "%" PRId64 "s", s);
	else if (s < 2 * HOUR)
		snprintf(out, outsz, "%" PRId64 "m", (s + 30) / 60);
	else
		snprintf(out, outsz, "%.1fh", (double)s / HOUR);
	return out;
}

static double
share(size_t part, size_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void
print_row(const char *name, const struct figures *f, bool bots)
{
	char a[16], b[16], c[16], d[16];

	if (bots) {
		printf("  %-24s %6zu  %38s stopped %5.1f %%\n", name, f->n, "",
		       share(f->n - f->passed, f->n));
		return;
	}
	printf("  %-24s %6zu  %6.1f %% %6.1f %%  %6s %6s %6s %6s  %5.1f %%\n",
	       name, f->n, share(f->delayed, f->n), share(f->over10, f->n),
	       dur(a, sizeof(a), f->median_delayed), dur(b, sizeof(b), f->p50),
	       dur(c, sizeof(c), f->p90), dur(d, sizeof(d), f->p99),
	       share(f->over4h, f->n));
}

static void
print_detail(const char *label, const replay_model_t *m, const int64_t *delay,
	     unsigned day, int64_t *buf)
{
	struct figures f;
	int c;

	printf("\n%s\n", label);
	printf("  %-24s %6s  %8s %8s  %6s %6s %6s %6s  %7s\n", "sender class",
	       "msgs", "delayed", ">10 min", "median", "p50", "p90", "p99",
	       ">4 h");
	for (c = 0; c < REPLAY_NCLASSES; c++) {
		if (c == REPLAY_O365) {
			figures(m, delay, day, want_small, 0, buf, &f);
			print_row("= small MTAs", &f, false);
		}
		if (c == REPLAY_BOT_DYNAMIC) {
			figures(m, delay, day, want_pool, 0, buf, &f);
			print_row("= provider pools", &f, false);
			figures(m, delay, day, want_legit, 0, buf, &f);
			print_row("= all legitimate", &f, false);
		}
		figures(m, delay, day, want_class, c, buf, &f);
		print_row(replay_class_name((enum replay_class)c), &f,
			  !replay_class_legit((enum replay_class)c));
	}
	figures(m, delay, day, want_bot, 0, buf, &f);
	print_row("= all non-retrying", &f, true);
	printf("  (median: of the delayed messages only; p50/p90/p99: of all; "
	       "\"never\": not delivered within the horizon)\n");
}

struct runinfo {
	const struct setup *setup;
	const char *label;
	int64_t *delay;
};

static void
print_summary(const struct runinfo *runs, size_t nruns,
	      const replay_model_t *m, unsigned day, int64_t *buf)
{
	struct figures legit[MAX_RUNS], pool[MAX_RUNS], bot[MAX_RUNS];
	struct figures mc[MAX_RUNS];
	char a[16], b[16], c[16];
	size_t r;

	for (r = 0; r < nruns; r++) {
		figures(m, runs[r].delay, day, want_legit, 0, buf, &legit[r]);
		figures(m, runs[r].delay, day, want_pool, 0, buf, &pool[r]);
		figures(m, runs[r].delay, day, want_bot, 0, buf, &bot[r]);
		figures(m, runs[r].delay, day, want_class, REPLAY_MAILCHIMP,
			buf, &mc[r]);
	}
	printf("\n%-36s", "summary");
	for (r = 0; r < nruns; r++)
		printf(" %20s", runs[r].label);
	printf("\n%-36s", "legitimate mail delayed");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(legit[r].delayed, legit[r].n));
	printf("\n%-36s", "  delayed over 10 minutes");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(legit[r].over10, legit[r].n));
	printf("\n%-36s", "  p50 / p90 / p99 delay");
	for (r = 0; r < nruns; r++) {
		char cell[64];

		snprintf(cell, sizeof(cell), "%s / %s / %s",
			 dur(a, sizeof(a), legit[r].p50),
			 dur(b, sizeof(b), legit[r].p90),
			 dur(c, sizeof(c), legit[r].p99));
		printf(" %20s", cell);
	}
	printf("\n%-36s", "pool mail delayed");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(pool[r].delayed, pool[r].n));
	printf("\n%-36s", "  median delay (all / delayed ones)");
	for (r = 0; r < nruns; r++) {
		char cell[64];

		snprintf(cell, sizeof(cell), "%s / %s", dur(a, sizeof(a), pool[r].p50),
			 dur(b, sizeof(b), pool[r].median_delayed));
		printf(" %20s", cell);
	}
	printf("\n%-36s", "  Mailchimp delayed");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(mc[r].delayed, mc[r].n));
	printf("\n%-36s", "undelivered after 4 h");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(legit[r].over4h, legit[r].n));
	printf("\n%-36s", "non-retrying senders stopped");
	for (r = 0; r < nruns; r++)
		printf(" %18.1f %%", share(bot[r].n - bot[r].passed, bot[r].n));
	printf("\n");
}

/*
 * How ident judges the names the model gives (first attempts of the
 * measured day): the share of each class with a name identity, and why
 * the others have none.  A check of the model against ident, and a
 * preview of what the name identity can group.
 */
static int
print_names(const replay_model_t *m, unsigned day)
{
	size_t count[REPLAY_NCLASSES][IDENT_NAME_DYNAMIC + 1];
	size_t total[REPLAY_NCLASSES], i, n = replay_model_messages(m);
	struct replay_fields f;
	struct replay_request rq;
	char err[256];
	ident_t *id;
	int c, w, rc;

	rc = ident_open(&id, NULL, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "replay: %s\n", err);
		return rc;
	}
	memset(count, 0, sizeof(count));
	memset(total, 0, sizeof(total));
	for (i = 0; i < n; i++) {
		struct ident_name in;

		if (replay_model_day(m, i) != day)
			continue;
		replay_model_request(m, i, 0, &f, &rq);
		ident_name(id, rq.client_name, strlen(rq.client_name),
			   rq.client_address, strlen(rq.client_address), &in);
		count[rq.cls][in.why]++;
		total[rq.cls]++;
	}
	printf("\nname identity of the first attempts (ident, list: %s)\n",
	       ident_source(id));
	printf("  %-24s", "sender class");
	for (w = 0; w <= IDENT_NAME_DYNAMIC; w++)
		printf(" %13s", ident_name_why_str((enum ident_name_why)w));
	printf("\n");
	for (c = 0; c < REPLAY_NCLASSES; c++) {
		printf("  %-24s", replay_class_name((enum replay_class)c));
		for (w = 0; w <= IDENT_NAME_DYNAMIC; w++)
			printf(" %11.1f %%", share(count[c][w], total[c]));
		printf("\n");
	}
	ident_close(id);
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
		"usage: replay [--seed N] [--legit N] [--bots N] [--days N]\n"
		"              [--delay S] [--horizon S] [--snowshoe-targets N]\n"
		"              [--whitelist-clients FILE]\n"
		"              [--whitelist-recipients FILE] [--tmpdir DIR] [--trace N]\n"
		"              [--names] [--rules]\n");
}

static int
parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *out > max) {
		fprintf(stderr, "replay: bad number '%s'\n", s);
		return -1;
	}
	return 0;
}

struct opts {
	struct replay_model_opts model;
	struct replay_greyhold_opts gh;
	long trace;
	bool names;
	bool variants;
};

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"seed", required_argument, NULL, 's'},
		{"legit", required_argument, NULL, 'l'},
		{"bots", required_argument, NULL, 'b'},
		{"days", required_argument, NULL, 'd'},
		{"delay", required_argument, NULL, 'D'},
		{"horizon", required_argument, NULL, 'H'},
		{"whitelist-clients", required_argument, NULL, 'c'},
		{"whitelist-recipients", required_argument, NULL, 'r'},
		{"tmpdir", required_argument, NULL, 't'},
		{"trace", required_argument, NULL, 'T'},
		{"names", no_argument, NULL, 'n'},
		{"rules", no_argument, NULL, 'p'},
		{"snowshoe-targets", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch == 'n' || ch == 'p') {
			*(ch == 'n' ? &o->names : &o->variants) = true;
			continue;
		}
		if (ch == 'c' || ch == 'r' || ch == 't') {
			*(ch == 'c' ? &o->gh.whitelist_clients : ch == 'r'
			  ? &o->gh.whitelist_recipients : &o->gh.tmpdir) = optarg;
			continue;
		}
		if (ch == '?' || parse_num(optarg, 100000000ULL, &v) != 0)
			return -1;
		switch (ch) {
		case 's': o->model.seed = v; break;
		case 'l': o->model.legit = (unsigned)v; break;
		case 'b': o->model.bots = (unsigned)v; break;
		case 'd': o->model.days = v > 0 && v <= 30 ? (unsigned)v : 0; break;
		case 'D': o->gh.delay = (int64_t)v; break;
		case 'H': o->model.horizon = (int64_t)v; break;
		case 'S': o->model.snow_targets = v > 0 && v <= 3000 ? (unsigned)v : 0; break;
		default: o->trace = (long)v; break;
		}
	}
	if (optind != argc || o->model.days == 0 || o->model.horizon < 60 ||
	    o->model.snow_targets == 0) {
		usage();
		return -1;
	}
	return 0;
}

typedef int (*open_fn)(struct replay_decider *d, const char *label,
		       const struct replay_greyhold_opts *o, char *err,
		       size_t errsz);

/*
 * The runs, in column order.  A decider joins by its open function; a
 * run marked with_lists gets the whitelist files and runs only when some
 * are given.
 */
static const struct setup {
	const char *label;
	bool with_lists;
	bool variant;		/* only with --rules */
	open_fn open;
} setups[] = {
	{"rules off", false, false, replay_greyhold_open},
	{"rules off + lists", true, false, replay_greyhold_open},
	{"name identity", false, true, replay_identities_open},
	{"rules on", false, false, replay_identities_trusted_open},
	{"+ spf identity", false, true, replay_identities_spf_open},
};

int
main(int argc, char **argv)
{
	struct opts o = {
		.model = {1, 5000, 15000, 1, 1767571200 /* Mon 2026-01-05 */,
			  12 * HOUR, 300},
	};
	struct replay_greyhold_opts nolists;
	struct runinfo runs[MAX_RUNS];
	size_t nruns = 0, r, n;
	replay_model_t *m;
	int64_t *buf;
	char err[512];
	int rc;

	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (replay_model_create(&m, &o.model) != 0) {
		fprintf(stderr, "replay: out of memory\n");
		return 1;
	}
	n = replay_model_messages(m);
	buf = calloc(n, sizeof(*buf));
	nolists = o.gh;
	nolists.whitelist_clients = nolists.whitelist_recipients = NULL;

	printf("greyhold replay: seed %" PRIu64 ", %u legitimate and %u "
	       "non-retrying messages a day, %u day(s), the last measured; "
	       "senders give up after %s\n", o.model.seed, o.model.legit,
	       o.model.bots, o.model.days, dur(err, sizeof(err), o.model.horizon));
	for (r = 0; r < sizeof(setups) / sizeof(setups[0]); r++) {
		if (setups[r].with_lists && o.gh.whitelist_clients == NULL &&
		    o.gh.whitelist_recipients == NULL)
			continue;
		if (setups[r].variant && !o.variants)
			continue;
		if (nruns < MAX_RUNS)
			runs[nruns++].setup = &setups[r];
	}
	for (r = 0; r < nruns; r++) {
		const struct setup *s = runs[r].setup;
		struct replay_decider d;

		runs[r].label = s->label;
		runs[r].delay = calloc(n, sizeof(int64_t));
		rc = buf == NULL || runs[r].delay == NULL ? -ENOMEM
		     : s->open(&d, s->label, s->with_lists ? &o.gh : &nolists,
			       err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "replay: %s: %s\n", runs[r].label,
				rc == -ENOMEM ? "out of memory" : err);
			return 1;
		}
		rc = run(m, &d, runs[r].delay, r == 0 ? o.trace : 0);
		d.close(d.ctx);
		if (rc != 0) {
			fprintf(stderr, "replay: %s: decision failed: %s\n",
				runs[r].label, strerror(-rc));
			return 1;
		}
		print_detail(runs[r].label, m, runs[r].delay, o.model.days - 1, buf);
	}
	print_summary(runs, nruns, m, o.model.days - 1, buf);
	if (o.names && print_names(m, o.model.days - 1) != 0)
		return 1;
	for (r = 0; r < nruns; r++)
		free(runs[r].delay);
	free(buf);
	replay_model_free(m);
	return 0;
}
