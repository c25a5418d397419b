/*
 * dnsq - drive the daemon's resolver (src/daemon/dns.c) from the command
 * line, for tests/integration/test_dns.py.  Built by make check, never
 * installed.
 *
 *   dnsq [-o key=value]... ITEM...
 *
 * Options are greyhold.conf keys (resolver, dns_timeout, dns_cache_size,
 * dns_max_outstanding, ...) read through the real config table.  Items
 * run in order:
 *   TYPE:NAME   start a lookup (A, AAAA, MX, TXT, PTR); lookups between
 *               two barriers run concurrently
 *   wait        barrier: until every lookup started so far is answered
 *   sleep:MS    barrier, then sleep MS milliseconds
 *   close       dns_close() now, with whatever is outstanding
 *
 * Output, one line per answer, in the order answers arrive:
 *   answer SEQ TYPE NAME STATUS ttl=N us=MICROSECONDS [RECORD]...
 * records as 192.0.2.1, 2001:db8::1, 10:mx.example, name, or TXT as
 * "text" with \\, \" and \xHH escapes; "refused SEQ NAME rc=N" when
 * dns_lookup() returns an error; last a "counters" line.
 * Exit 0, or 1 on bad usage, 2 if a callback never came, 3 if the run
 * passed its watchdog (60 s); a callback that comes twice, or from
 * inside dns_lookup(), prints DOUBLE or SYNC and aborts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "config.h"
#include "dns.h"
#include "dns_result.h"
#include "metrics.h"

#define MAX_OVERRIDES 32
#define WATCHDOG_MS 60000

struct run;

struct lookup {
	struct run *run;
	uint64_t started_ns;
	unsigned seq;
	enum dns_type type;
	const char *name;
	unsigned answered;
	bool in_lookup;		/* inside dns_lookup(): no callback allowed */
};

struct run {
	uv_loop_t loop;
	uv_timer_t sleep_timer;
	uv_timer_t watchdog;
	struct dns_resolver *r;
	struct metrics_dns m;
	char **items;
	int nitems;
	int next;		/* next item to run */
	unsigned pending;	/* lookups not yet answered */
	unsigned seq;
	struct lookup *lookups;	/* one per item, by item index */
	bool sleeping;
	bool finished;
	int status;
};

static const struct {
	const char *name;
	enum dns_type type;
} types[] = {
	{"A", DNS_T_A}, {"AAAA", DNS_T_AAAA}, {"MX", DNS_T_MX},
	{"TXT", DNS_T_TXT}, {"PTR", DNS_T_PTR},
};

static const char *
type_name(enum dns_type t)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (types[i].type == t)
			return types[i].name;
	}
	return "?";
}

static const char *
status_name(enum dns_status s)
{
	static const char *const names[] = {"OK", "NXDOMAIN", "NODATA",
					    "TEMPFAIL", "PERMFAIL"};
	return (size_t)s < 5 ? names[s] : "?";
}

static void
print_record(enum dns_type t, const struct dns_rr *rr)
{
	char text[INET6_ADDRSTRLEN];
	size_t i;

	switch (t) {
	case DNS_T_A:
	case DNS_T_AAAA:
		if (inet_ntop(t == DNS_T_A ? AF_INET : AF_INET6, rr->data, text,
			      sizeof(text)) == NULL ||
		    rr->len != (t == DNS_T_A ? 4u : 16u))
			printf(" BADADDR");
		else
			printf(" %s", text);
		return;
	case DNS_T_MX:
		printf(" %u:%.*s", rr->pref, (int)rr->len, (const char *)rr->data);
		return;
	case DNS_T_PTR:
		printf(" %.*s", (int)rr->len, (const char *)rr->data);
		return;
	case DNS_T_TXT:
		putchar(' ');
		putchar('"');
		for (i = 0; i < rr->len; i++) {
			unsigned char c = rr->data[i];

			if (c == '"' || c == '\\')
				printf("\\%c", c);
			else if (c < 0x20 || c >= 0x7f)
				printf("\\x%02x", c);
			else
				putchar(c);
		}
		putchar('"');
		return;
	}
}

static void run_items(struct run *run);

static void
on_answer(void *arg, const struct dns_result *res)
{
	struct lookup *l = arg;
	struct run *run = l->run;
	size_t i;

	if (l->in_lookup) {
		printf("SYNC %u %s\n", l->seq, l->name);
		fflush(stdout);
		abort();
	}
	if (++l->answered > 1) {
		printf("DOUBLE %u %s\n", l->seq, l->name);
		fflush(stdout);
		abort();
	}
	printf("answer %u %s %s %s ttl=%" PRIu32 " us=%" PRIu64, l->seq,
	       type_name(l->type), l->name, status_name(res->status), res->ttl,
	       (uv_hrtime() - l->started_ns) / 1000);
	for (i = 0; i < res->n; i++)
		print_record(l->type, &res->rr[i]);
	putchar('\n');
	run->pending--;
	if (!run->sleeping)
		run_items(run);
}

static void
finish(struct run *run)
{
	const struct metrics_dns *m;

	if (run->finished)
		return;
	run->finished = true;
	m = &run->m;
	printf("counters lookups=%" PRIu64 " hits=%" PRIu64 " sent=%" PRIu64
	       " timeouts=%" PRIu64 " failures=%" PRIu64 " overflows=%" PRIu64
	       " outstanding=%" PRIu64 " cache_entries=%" PRIu64 "\n",
	       m->lookups, m->cache_hits, m->queries_sent, m->timeouts,
	       m->failures, m->overflows, m->outstanding, m->cache_entries);
	dns_close(run->r);
	uv_close((uv_handle_t *)&run->sleep_timer, NULL);
	uv_close((uv_handle_t *)&run->watchdog, NULL);
}

static void
on_sleep_done(uv_timer_t *h)
{
	struct run *run = h->data;

	run->sleeping = false;
	run_items(run);
}

static int
parse_lookup(const char *item, enum dns_type *type, const char **name)
{
	const char *colon = strchr(item, ':');

	if (colon == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strlen(types[i].name) == (size_t)(colon - item) &&
		    strncasecmp(item, types[i].name, (size_t)(colon - item)) == 0) {
			*type = types[i].type;
			*name = colon + 1;
			return 0;
		}
	}
	return -EINVAL;
}

static void
start_lookup(struct run *run, int idx, enum dns_type type, const char *name)
{
	struct lookup *l = &run->lookups[idx];
	int rc;

	l->run = run;
	l->seq = ++run->seq;
	l->type = type;
	l->name = name;
	l->started_ns = uv_hrtime();
	run->pending++;
	l->in_lookup = true;
	rc = dns_lookup(run->r, type, name, on_answer, l);
	l->in_lookup = false;
	if (rc < 0) {
		run->pending--;
		l->answered = 1;	/* no callback is due */
		printf("refused %u %s rc=%d\n", l->seq, name, rc);
	}
}

/* Run items until a barrier must wait or the list ends. */
static void
run_items(struct run *run)
{
	while (run->next < run->nitems) {
		const char *item = run->items[run->next];
		enum dns_type type;
		const char *name;

		if (strcmp(item, "wait") == 0 || strncmp(item, "sleep:", 6) == 0) {
			if (run->pending > 0)
				return;
			run->next++;
			if (item[0] == 's') {
				run->sleeping = true;
				uv_timer_start(&run->sleep_timer, on_sleep_done,
					       strtoull(item + 6, NULL, 10), 0);
				return;
			}
			continue;
		}
		run->next++;
		if (strcmp(item, "close") == 0) {
			dns_close(run->r);
			continue;
		}
		if (parse_lookup(item, &type, &name) < 0) {
			printf("bad item %s\n", item);
			continue;
		}
		start_lookup(run, run->next - 1, type, name);
	}
	if (run->pending == 0)
		finish(run);
}

static void
on_watchdog(uv_timer_t *h)
{
	struct run *run = h->data;

	printf("watchdog: %u lookups still pending\n", run->pending);
	fflush(stdout);
	exit(3);
}

int
main(int argc, char **argv)
{
	struct config_override ov[MAX_OVERRIDES];
	size_t nov = 0;
	struct config *cfg;
	struct dns_options o;
	struct run run;
	char err[512];
	int i;

	memset(&run, 0, sizeof(run));
	for (i = 1; i + 1 < argc && strcmp(argv[i], "-o") == 0; i += 2) {
		char *eq = strchr(argv[i + 1], '=');

		if (eq == NULL || nov == MAX_OVERRIDES) {
			fprintf(stderr, "dnsq: -o key=value\n");
			return 1;
		}
		*eq = '\0';
		ov[nov++] = (struct config_override){argv[i + 1], eq + 1};
	}
	if (config_load(&cfg, NULL, false, ov, nov, err, sizeof(err)) < 0) {
		fprintf(stderr, "dnsq: %s\n", err);
		return 1;
	}
	uv_loop_init(&run.loop);
	dns_options_from_config(&o, cfg);
	if (dns_open(&run.r, &run.loop, &o, &run.m, err, sizeof(err)) < 0) {
		fprintf(stderr, "dnsq: %s\n", err);
		return 1;
	}
	run.items = argv + i;
	run.nitems = argc - i;
	run.lookups = calloc((size_t)run.nitems + 1, sizeof(*run.lookups));
	uv_timer_init(&run.loop, &run.sleep_timer);
	run.sleep_timer.data = &run;
	uv_timer_init(&run.loop, &run.watchdog);
	run.watchdog.data = &run;
	uv_timer_start(&run.watchdog, on_watchdog, WATCHDOG_MS, 0);
	uv_unref((uv_handle_t *)&run.watchdog);
	run_items(&run);
	uv_run(&run.loop, UV_RUN_DEFAULT);
	for (i = 0; i < run.nitems; i++) {
		if (run.lookups[i].name != NULL && run.lookups[i].answered != 1) {
			printf("MISSING %u %s\n", run.lookups[i].seq,
			       run.lookups[i].name);
			run.status = 2;
		}
	}
	fflush(stdout);
	uv_loop_close(&run.loop);
	free(run.lookups);
	config_free(cfg);
	return run.status;
}
