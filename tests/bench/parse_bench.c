/*
 * parse_bench - the loop thread's per-request parsing cost, without I/O.
 *
 * Times, in thread CPU nanoseconds per request (the least of several
 * rounds, so other work on a shared machine inflates nothing):
 *   policy_feed   one 31-attribute request as Postfix 3.x sends it
 *                 (loadgen's "full" set), fed in one piece;
 *   client text   what handle_request() did before issue 13: each
 *                 whitelist (static, then live) matched from the client
 *                 address text, then triplet_build() from the text again;
 *   client parsed what it does now: the address parsed once, then
 *                 whitelist_match_client_addr() and triplet_build_addr().
 * The requests come from a pool of 256 (80 % IPv4 in 100.64.0.0/10, 20 %
 * IPv6 in 2001:db8::/32, 15 % "unknown" names, senders plain, BATV, VERP
 * and +ext), none of them whitelisted: the retry path's shape.
 *
 *   parse_bench [-n REQUESTS] [-r ROUNDS] [-c WHITELIST_CLIENTS]
 *               [-t WHITELIST_RECIPIENTS] [-m feed|text|parsed]
 *
 * -m times only that one (for perf stat or perf record).
 * Without -c/-t the static whitelist is empty.  Prints one human line and
 * one machine line ("PARSE what=... ns_per_request=...") per measurement.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "policy.h"
#include "triplet.h"
#include "whitelist.h"

#define POOL 256
#define REQUEST_MAX 2048

struct pool {
	char text[POOL][REQUEST_MAX];
	size_t len[POOL];
};

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static const char *const domains[] = {
	"northwind.example", "contoso.example", "fabrikam.example",
	"tailspin.example", "adventure-works.example", "litware.example",
};

/* One request of the pool, attribute for attribute as Postfix sends it. */
static size_t
build_request(char *out, size_t cap, uint64_t i)
{
	uint64_t h = mix64(i);
	uint64_t h2 = mix64(h);
	const char *dom = domains[(h >> 8) % 6];
	char client[64], name[64], sender[128];
	bool tls = (h >> 40) % 10 < 7;
	int n;

	if (h % 100 < 20)
		snprintf(client, sizeof(client),
			 "2001:db8:%" PRIx64 ":%" PRIx64 ":%" PRIx64 ":%" PRIx64
			 ":%" PRIx64 ":%" PRIx64, (h2 & 0xfff) | 0x1000,
			 ((h2 >> 12) & 0xfff) | 0x1000,
			 ((h2 >> 24) & 0xfff) | 0x1000,
			 ((h2 >> 36) & 0xfff) | 0x1000,
			 ((h2 >> 48) & 0xfff) | 0x1000, (h2 >> 60) | 0x1000);
	else
		snprintf(client, sizeof(client), "100.%u.%u.%u",
			 (unsigned)(64 + (h2 & 63)), (unsigned)((h2 >> 8) & 255),
			 (unsigned)(1 + (h2 >> 16) % 254));
	if ((h >> 16) % 100 < 15)
		snprintf(name, sizeof(name), "unknown");
	else
		snprintf(name, sizeof(name), "mta%u-out.%s",
			 (unsigned)((h >> 20) % 10), dom);
	switch ((h >> 24) % 4) {
	case 0:
		snprintf(sender, sizeof(sender), "prvs=%09" PRIx64 "=anna.%u@%s",
			 h2 >> 28, (unsigned)i, dom);
		break;
	case 1:
		snprintf(sender, sizeof(sender), "bounce-%u-%u@%s",
			 (unsigned)(100000 + (h2 >> 8) % 900000), (unsigned)i, dom);
		break;
	case 2:
		snprintf(sender, sizeof(sender), "bert.%u+news@%s", (unsigned)i,
			 dom);
		break;
	default:
		snprintf(sender, sizeof(sender), "Carla.%u@%s", (unsigned)i, dom);
		break;
	}
	n = snprintf(out, cap,
		     "request=smtpd_access_policy\n"
		     "protocol_state=RCPT\n"
		     "protocol_name=ESMTP\n"
		     "helo_name=%s\n"
		     "queue_id=\n"
		     "sender=%s\n"
		     "recipient=user%u@mx.example.org\n"
		     "recipient_count=0\n"
		     "client_address=%s\n"
		     "client_name=%s\n"
		     "reverse_client_name=%s\n"
		     "instance=%04x.%08x.%05x.0\n"
		     "sasl_method=\n"
		     "sasl_username=\n"
		     "sasl_sender=\n"
		     "size=%u\n"
		     "ccert_subject=\n"
		     "ccert_issuer=\n"
		     "ccert_fingerprint=\n"
		     "ccert_pubkey_fingerprint=\n"
		     "encryption_protocol=%s\n"
		     "encryption_cipher=%s\n"
		     "encryption_keysize=%s\n"
		     "etrn_domain=\n"
		     "stress=\n"
		     "server_address=192.0.2.25\n"
		     "server_port=25\n"
		     "policy_context=\n"
		     "compatibility_level=3.6\n"
		     "mail_version=3.7.11\n"
		     "client_port=%u\n"
		     "\n",
		     name, sender, (unsigned)(h2 % 1000), client, name, name,
		     (unsigned)(h & 0xffff), (unsigned)(0x66000000 + i),
		     (unsigned)((h >> 16) & 0xfffff), (unsigned)((h >> 32) % 200000),
		     tls ? "TLSv1.3" : "", tls ? "TLS_AES_256_GCM_SHA384" : "",
		     tls ? "256" : "0", (unsigned)(1024 + (h >> 48) % 64000));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static uint64_t
thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Parse request i of the pool; exits on a parse failure (a bench bug). */
static const struct policy_request *
parse(struct policy_parser *p, const struct pool *pl, size_t i)
{
	const struct policy_request *r;
	size_t used;

	if (policy_feed(p, pl->text[i], pl->len[i], &used, &r) != POLICY_REQUEST ||
	    used != pl->len[i]) {
		fprintf(stderr, "parse_bench: request %zu did not parse: %s\n", i,
			p->error != NULL ? p->error : "incomplete");
		exit(2);
	}
	return r;
}

/* Copies of the parsed requests, so the client paths time only themselves. */
struct parsed {
	struct policy_request req[POOL];
};

static bool
whitelisted_text(whitelist_t *const lists[2], const struct policy_request *r)
{
	for (int i = 0; i < 2; i++) {
		if (whitelist_match_client(lists[i], r->client_address.ptr,
					   r->client_address.len,
					   r->client_name.ptr, r->client_name.len))
			return true;
	}
	for (int i = 0; i < 2; i++) {
		if (whitelist_match_recipient(lists[i], r->recipient.ptr,
					      r->recipient.len))
			return true;
	}
	return false;
}

static bool
whitelisted_parsed(whitelist_t *const lists[2], const struct policy_request *r,
		   const struct addr *a)
{
	for (int i = 0; i < 2; i++) {
		if (whitelist_match_client_addr(lists[i], a, r->client_name.ptr,
						r->client_name.len))
			return true;
	}
	for (int i = 0; i < 2; i++) {
		if (whitelist_match_recipient(lists[i], r->recipient.ptr,
					      r->recipient.len))
			return true;
	}
	return false;
}

enum what { FEED, CLIENT_TEXT, CLIENT_PARSED };

/* One round of n requests; returns thread CPU ns per request. */
static double
round_ns(enum what w, uint64_t n, const struct pool *pl, struct parsed *pr,
	 struct policy_parser *p, whitelist_t *const lists[2],
	 uint64_t *sink)
{
	static const struct triplet_opts topts = {false, 24, 64};
	struct triplet_key key;
	uint64_t start = thread_ns();

	for (uint64_t k = 0; k < n; k++) {
		size_t i = (size_t)(k % POOL);
		const struct policy_request *r = &pr->req[i];
		struct addr a;

		switch (w) {
		case FEED:
			*sink += parse(p, pl, i)->nattrs;
			break;
		case CLIENT_TEXT:
			if (whitelisted_text(lists, r))
				break;
			triplet_build(&key, r->client_address.ptr,
				      r->client_address.len, r->sender.ptr,
				      r->sender.len, r->recipient.ptr,
				      r->recipient.len, &topts);
			*sink += key.key_len;
			break;
		case CLIENT_PARSED:
			if (addr_parse(&a, r->client_address.ptr,
				       r->client_address.len) < 0)
				a.family = ADDR_NONE;
			if (whitelisted_parsed(lists, r, &a))
				break;
			triplet_build_addr(&key, &a, r->client_address.ptr,
					   r->client_address.len, r->sender.ptr,
					   r->sender.len, r->recipient.ptr,
					   r->recipient.len, &topts);
			*sink += key.key_len;
			break;
		}
	}
	return (double)(thread_ns() - start) / (double)n;
}

static void
measure(const char *label, const char *tag, enum what w, uint64_t n,
	unsigned rounds, const struct pool *pl, struct parsed *pr,
	struct policy_parser *p, whitelist_t *const lists[2])
{
	double best = 0;
	uint64_t sink = 0;

	for (unsigned i = 0; i < rounds; i++) {
		double ns = round_ns(w, n, pl, pr, p, lists, &sink);

		if (i == 0 || ns < best)
			best = ns;
	}
	printf("%-14s %8.1f ns/request  (best of %u rounds of %" PRIu64
	       ", check %" PRIu64 ")\n", label, best, rounds, n, sink % 1000);
	printf("PARSE what=%s ns_per_request=%.1f\n", tag, best);
}

static int
load_list(whitelist_t *wl, enum whitelist_kind kind, const char *path)
{
	char err[512];
	int rc;

	if (path == NULL)
		return 0;
	rc = whitelist_load_file(wl, kind, path, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "parse_bench: %s\n", err);
	return rc;
}

static void
usage(void)
{
	fprintf(stderr, "usage: parse_bench [-n REQUESTS] [-r ROUNDS] "
		"[-c WHITELIST_CLIENTS] [-t WHITELIST_RECIPIENTS] "
		"[-m feed|text|parsed]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	uint64_t n = 1000000;
	unsigned rounds = 5;
	const char *clients = NULL, *rcpts = NULL, *only = NULL;
	struct policy_parser *p = malloc(sizeof(*p));
	struct pool *pl = malloc(sizeof(*pl));
	struct parsed *pr = malloc(sizeof(*pr));
	whitelist_t *lists[2] = {NULL, NULL};
	int opt;

	while ((opt = getopt(argc, argv, "n:r:c:t:m:")) != -1) {
		switch (opt) {
		case 'n':
			n = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			clients = optarg;
			break;
		case 't':
			rcpts = optarg;
			break;
		case 'm':
			only = optarg;
			break;
		default:
			usage();
		}
	}
	if (n == 0 || rounds == 0 || p == NULL || pl == NULL || pr == NULL)
		usage();
	if (whitelist_create(&lists[0]) < 0 || whitelist_create(&lists[1]) < 0 ||
	    load_list(lists[0], WHITELIST_CLIENTS, clients) < 0 ||
	    load_list(lists[0], WHITELIST_RECIPIENTS, rcpts) < 0)
		return 2;
	whitelist_finish(lists[0]);
	whitelist_finish(lists[1]);	/* the live list, empty */

	policy_init(p);
	for (size_t i = 0; i < POOL; i++) {
		pl->len[i] = build_request(pl->text[i], REQUEST_MAX, i);
		if (pl->len[i] == 0)
			return 2;
	}
	/* Each request parsed into a parser of its own that stays put. */
	for (size_t i = 0; i < POOL; i++) {
		struct policy_parser *own = malloc(sizeof(*own));

		if (own == NULL)
			return 2;
		policy_init(own);
		pr->req[i] = *parse(own, pl, i);
	}
	printf("%zu-attribute requests, %zu bytes for the first; whitelist "
	       "entries: %zu\n", (size_t)pr->req[0].nattrs, pl->len[0],
	       whitelist_size(lists[0]));
	if (only == NULL || strcmp(only, "feed") == 0)
		measure("policy_feed", "policy_feed", FEED, n, rounds, pl, pr, p,
			lists);
	if (only == NULL || strcmp(only, "text") == 0)
		measure("client text", "client_text", CLIENT_TEXT, n, rounds, pl,
			pr, p, lists);
	if (only == NULL || strcmp(only, "parsed") == 0)
		measure("client parsed", "client_parsed", CLIENT_PARSED, n, rounds,
			pl, pr, p, lists);
	return 0;
}
