/*
 * loadgen - closed-loop load generator for Postfix policy servers.
 *
 * Each of N persistent connections behaves like one Postfix smtpd: it
 * sends one policy request, waits for the whole answer, checks it, and
 * only then sends the next.  Throughput therefore measures the server's
 * answer time under N concurrent clients, not how fast a socket buffer
 * fills.  One thread and plain epoll keep the generator's own cost per
 * request small (a write, a read and a share of one epoll_wait).
 *
 * Triplets.  Triplet i (client address, client name, sender, recipient) is
 * a pure function of (seed, i), and distinct i give distinct greylisting
 * keys even after sender normalisation (a letters-only tag unique to i
 * survives VERP, BATV and "+ext" folding).  Indices [0, pool) are the
 * retry pool; new triplets count up from pool.  Client addresses come
 * from 100.64.0.0/10 and 2001:db8::/32 and names end in ".example", which
 * no whitelist lists.
 *
 * Relay senders.  With --spf-fraction F a share F of the triplets (a pure
 * function of (seed, i)) come from a provider's relay instead: a verified
 * client name mtaN-XXXX.out.relay-bench.test and a sender in one of
 * --spf-domains customer domains dK.spf-bench.test, whose SPF record
 * includes the relay's (--spf-records prints the records a resolver
 * should serve).  With those records greyhold's smart rules evaluate SPF
 * fully (an include, then the probe) and give the request a name identity
 * (the relay authorised the sender) without trusting it (the sender's
 * domain is not the name's), so the expected answers stay those of plain
 * greylisting while the request takes the most expensive smart path.
 *
 * Phases.  With --new-fraction below 1 the generator first warms up:
 * "seed" sends every pool triplet once (each must be greylisted), waits
 * --delay + 1 seconds, and "pass" retries each once (each must pass).
 * "measure" then runs for --duration seconds (or --requests requests):
 * each request is a never-seen triplet with probability --new-fraction
 * (expected: a DEFER/greylist action) or else a retry of a pool triplet
 * that passed (expected: DUNNO).  Every answer is checked for framing
 * ("action=...\n\n", one line, nothing extra); --no-check skips only the
 * expected-class check (for the no-op server).
 *
 * Preloaded databases.  --write-dump writes a greyholdctl dump of triplets
 * [0, --preloaded) (see write_dump) and exits; the keys in it are built
 * here, from the same pieces as the requests, as greyhold is expected to
 * derive them.  A run with --preloaded N against a daemon whose database
 * holds that dump skips the warm-up: retries go to preloaded triplets of
 * the "passed" class (preload_class) and must get DUNNO, never-seen
 * triplets count up from --first-new.  Both modes use the preload layout
 * of client addresses (see make_triplet).
 *
 * Output: a human line and a machine line
 *   RESULT name=.. rps=.. p50_us=.. p99_us=.. p999_us=.. max_us=..
 *          cpu_us_per_req=.. rss_anon_kb=.. errors=.. mismatches=.. ...
 * Latency percentiles come from a log-linear histogram (32 sub-buckets per
 * power of two, so within 3 %).  Server CPU is utime+stime of --server-pid
 * over the measured window, from /proc/PID/stat; RssAnon from
 * /proc/PID/status at the end; the same for --store-pid.  --interval adds
 * INTERVAL lines (the answers of each interval alone); --window-cmd runs a
 * command right before the window opens and right after it closes.  Exit
 * status: 0 clean, 1 if any error or mismatch, 2 on bad usage or no
 * connection, 3 if the hard time bound hit.
 *
 * Loopback only: the target must be 127.0.0.0/8, ::1 or a unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SEND_MAX 4096
#define RECV_MAX 4096
#define MAX_CONNS 4096
#define MAX_EVENTS 256
/* How often timeouts are checked while waiting. */
#define TICK_MS 100
/* Mismatched answers shown on stderr, at most. */
#define SHOW_MAX 5

/* ---- options ------------------------------------------------------------ */

enum attr_set { ATTRS_MINIMAL, ATTRS_TYPICAL, ATTRS_FULL };

struct options {
	const char *target;
	const char *name;
	unsigned conns;
	double duration;
	bool duration_given;
	uint64_t requests;
	double new_fraction;
	double delay;
	unsigned pool;
	double ipv6_fraction;
	enum attr_set attrs;
	bool check;
	long server_pid;
	uint64_t seed;
	double wait;
	double timeout;
	double warmup_timeout;
	bool quiet;
	long store_pid;		/* a separate store process (redis-server) */
	double interval;	/* INTERVAL lines every S seconds; 0: none */
	/* Preloaded mode (see "Preloaded databases" above). */
	uint64_t preloaded;	/* triplets [0, preloaded) are in the database */
	double preload_old;
	double preload_pending;
	uint64_t first_new;
	bool first_new_given;
	const char *write_dump;	/* write the dump of the preload and exit */
	int64_t dump_now;
	/* Relay senders (see "Relay senders" above). */
	double spf_fraction;
	unsigned spf_domains;
	bool spf_records;	/* print the zone's records and exit */
	const char *window_cmd;	/* run with "start"/"end" around the window */
};

/* ---- time --------------------------------------------------------------- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
sec_to_ns(double s)
{
	return s <= 0 ? 0 : (uint64_t)(s * 1e9);
}

/* ---- deterministic pseudo-randomness ------------------------------------ */

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct rng {
	uint64_t state;
};

static uint64_t
rng_next(struct rng *r)
{
	r->state += 0x9e3779b97f4a7c15ULL;
	return mix64(r->state);
}

/* Uniform in [0, 1). */
static double
rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* A bijection on 36 bits, so distinct indices keep distinct tags. */
static uint64_t
perm36(uint64_t i)
{
	const uint64_t mask = (1ULL << 36) - 1;

	i &= mask;
	i = (i * 0x5bd1e995ULL) & mask;	/* odd multiplier: invertible */
	i ^= i >> 17;
	i = (i * 0x2545f491ULL) & mask;
	i ^= i >> 13;
	return i;
}

/* ---- request text -------------------------------------------------------- */

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

static void
put_mem(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap)
		n = b->cap - b->len;	/* cannot happen with SEND_MAX; stay safe */
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
put_str(struct buf *b, const char *s)
{
	put_mem(b, s, strlen(s));
}

static void
put_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	put_mem(b, tmp + sizeof(tmp) - n, n);
}

static void
put_hex(struct buf *b, uint64_t v, unsigned digits)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];

	for (unsigned i = 0; i < digits && i < 16; i++)
		tmp[digits - 1 - i] = hex[(v >> (4 * i)) & 15];
	put_mem(b, tmp, digits);
}

/* n lower-case letters encoding v in base 26. */
static void
put_letters(struct buf *b, uint64_t v, unsigned n)
{
	char tmp[16];

	for (unsigned i = 0; i < n && i < sizeof(tmp); i++) {
		tmp[n - 1 - i] = (char)('a' + v % 26);
		v /= 26;
	}
	put_mem(b, tmp, n);
}

static void
put_attr(struct buf *b, const char *name, const char *value)
{
	put_str(b, name);
	put_mem(b, "=", 1);
	put_str(b, value);
	put_mem(b, "\n", 1);
}

static const char *const first_names[] = {
	"maria", "john", "wei", "fatima", "olga", "pierre", "aiko", "carlos",
	"news", "billing", "info", "support", "noreply", "orders", "alerts",
	"team",
};
static const char *const sender_domains[] = {
	"northwind.example", "contoso.example", "fabrikam.example",
	"tailspin.example", "adventure-works.example", "litware.example",
	"proseware.example", "wingtip.example", "lucerne.example",
	"fourthcoffee.example", "margie.example", "treyresearch.example",
	"alpineski.example", "woodgrove.example", "humongous.example",
	"blueyonder.example",
};
static const char *const rcpt_domains[] = {
	"mx-customer.test", "shop.test", "university.test", "city.test",
	"law-firm.test", "clinic.test", "hosting.test", "school.test",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define RCPT_USERS 50000

/*
 * Relay senders' zones.  The relay's addresses: every client address the
 * load uses, and not the documentation addresses greyhold's SPF probe
 * tries (192.0.2.1, 2001:db8::1), so a pass is proven.
 */
#define SPF_ZONE "spf-bench.test"
#define RELAY_ZONE "relay-bench.test"
#define RELAY_SPF "v=spf1 ip4:100.64.0.0/10 ip6:2001:db8:1000::/36 -all"
#define SPF_TTL 86400

struct triplet {
	char client_address[48];
	char client_name[96];
	char sender[128];
	char recipient[96];
	char helo[96];
	/*
	 * The greylisting key parts greyhold is expected to derive (client
	 * network, normalised sender), filled only when asked for: the dump
	 * of a preloaded database holds these.  They are built here from the
	 * same pieces, not by parsing, so a difference in greyhold's
	 * normalisation shows up as wrong answers.
	 */
	char client_key[64];
	char sender_key[128];
};

static void
terminate(struct buf *b)
{
	if (b->len >= b->cap)
		b->len = b->cap - 1;
	b->p[b->len] = '\0';
}

/*
 * preload_layout: IPv6 clients come from 4096 /64s (2001:db8:1XXX:1000::/64)
 * instead of about 4 million, so that a preloaded database can hold an
 * auto-whitelist record for every client network the load uses (16384
 * IPv4 /24s in 100.64.0.0/10 and those 4096 /64s).  Without them the first
 * pass of each client would be a write, and with millions of /64s most
 * IPv6 retries would be.  keys: also fill client_key and sender_key.
 */
static void
make_triplet(struct triplet *t, const struct options *o, uint64_t i,
	     bool preload_layout, bool keys)
{
	const double ipv6_fraction = o->ipv6_fraction;
	uint64_t h1 = mix64(o->seed ^ mix64(i));
	uint64_t h2 = mix64(h1);
	uint64_t h3 = mix64(h2);
	/* A fourth draw, so that the other triplets stay what they were. */
	uint64_t h4 = mix64(h3 ^ 0x73706672656c6179ULL);
	bool relay = (double)(h4 % 1000000) < o->spf_fraction * 1000000.0;
	uint64_t tag = perm36(i);
	char relay_domain[48];
	struct buf b, k;
	unsigned form;
	const char *name, *domain;

	/* Client: 100.64.0.0/10 or 2001:db8::/32, never whitelisted. */
	b = (struct buf){t->client_address, 0, sizeof(t->client_address)};
	k = (struct buf){t->client_key, 0, sizeof(t->client_key)};
	if ((double)(h1 % 1000000) < ipv6_fraction * 1000000.0) {
		put_str(&b, "2001:db8");
		for (int g = 0; g < 6; g++) {
			uint64_t v = ((h2 >> (g * 10)) & 0xfff) | 0x1000;

			if (g == 1 && preload_layout)
				v = 0x1000;
			put_mem(&b, ":", 1);
			/* Non-zero groups: the text is already canonical. */
			put_hex(&b, v, 4);
		}
		if (keys) {
			/* "2001:db8:G0:G1" is the first 18 bytes. */
			put_mem(&k, t->client_address, 18);
			put_str(&k, "::/64");
		}
	} else {
		put_str(&b, "100.");
		put_u64(&b, 64 + (h2 & 63));
		put_mem(&b, ".", 1);
		put_u64(&b, (h2 >> 8) & 255);
		if (keys) {
			put_mem(&k, b.p, b.len);
			put_str(&k, ".0/24");
		}
		put_mem(&b, ".", 1);
		put_u64(&b, 1 + (h2 >> 16) % 254);
	}
	terminate(&b);
	terminate(&k);

	/*
	 * Client name: 15 % without reverse DNS, as Postfix says "unknown";
	 * a relay's always verified.
	 */
	b = (struct buf){t->client_name, 0, sizeof(t->client_name)};
	if (h3 % 100 < 15 && !relay) {
		put_str(&b, "unknown");
	} else {
		put_str(&b, "mta");
		put_u64(&b, (h3 >> 8) % 10);
		put_mem(&b, "-", 1);
		put_letters(&b, h3 >> 16, 4);
		put_mem(&b, ".", 1);
		put_str(&b, relay ? "out." RELAY_ZONE :
			sender_domains[(h3 >> 40) % NELEM(sender_domains)]);
	}
	terminate(&b);
	b = (struct buf){t->helo, 0, sizeof(t->helo)};
	put_str(&b, strcmp(t->client_name, "unknown") == 0 ? "mail.invalid-helo.example"
							  : t->client_name);
	terminate(&b);

	/*
	 * Sender: plain, BATV, VERP-style or +ext; the tag keeps it unique.
	 * Its key: BATV "prvs=TAG=" dropped, the VERP number folded to '#',
	 * "+ext" dropped (all of it lower case already).
	 */
	b = (struct buf){t->sender, 0, sizeof(t->sender)};
	k = (struct buf){t->sender_key, 0, sizeof(t->sender_key)};
	form = (unsigned)(h1 >> 40) % 100;
	name = first_names[(h2 >> 50) % NELEM(first_names)];
	domain = sender_domains[(h2 >> 56) % NELEM(sender_domains)];
	if (relay) {
		snprintf(relay_domain, sizeof(relay_domain), "d%u." SPF_ZONE,
			 (unsigned)((h4 >> 24) % o->spf_domains));
		domain = relay_domain;
	}
	if (form < 15) {
		put_str(&b, "prvs=");
		put_u64(&b, (h1 >> 20) % 10);
		put_hex(&b, h1 >> 24, 9);
		put_mem(&b, "=", 1);
	} else if (form < 25) {
		put_str(&b, "bounce-");
		put_u64(&b, 100000 + (h1 >> 20) % 900000);
		put_mem(&b, "-", 1);
		if (keys)
			put_str(&k, "bounce-#-");
	}
	put_str(&b, name);
	put_mem(&b, ".", 1);
	put_letters(&b, tag, 8);
	if (keys) {
		put_str(&k, name);
		put_mem(&k, ".", 1);
		put_letters(&k, tag, 8);
		put_mem(&k, "@", 1);
		put_str(&k, domain);
	}
	if (form >= 25 && form < 30) {
		put_mem(&b, "+", 1);
		put_letters(&b, h3 >> 20, 5);
	}
	put_mem(&b, "@", 1);
	put_str(&b, domain);
	terminate(&b);
	terminate(&k);

	/* Recipient: one of the MX's users. */
	b = (struct buf){t->recipient, 0, sizeof(t->recipient)};
	{
		uint64_t user = (h3 >> 24) % RCPT_USERS;

		put_str(&b, first_names[user % 8]);
		put_mem(&b, ".", 1);
		put_letters(&b, user, 4);
		put_mem(&b, "@", 1);
		put_str(&b, rcpt_domains[user % NELEM(rcpt_domains)]);
	}
	terminate(&b);
}

/* ---- preloaded databases ------------------------------------------------- */

/*
 * The class of preloaded triplet i, a pure function of (seed, i), so that
 * the dump and the later runs agree without a file between them:
 *   PRE_OLD      passed, last seen 15 to 20 days ago: alive under the
 *                default max_age (35d), expired under max_age < 15d
 *   PRE_PENDING  greylisted, never retried, first seen within a day
 *   PRE_PASSED   passed, last seen at most 10 minutes before the dump's
 *                time, so a retry within the next 50 minutes costs no
 *                write (ENGINE_REFRESH is an hour); only these are retried
 */
enum pre_class { PRE_PASSED, PRE_PENDING, PRE_OLD };

#define DAY_S 86400

static enum pre_class
preload_class(const struct options *o, uint64_t i)
{
	double u = (double)(mix64(o->seed ^ 0x7072656c6f6164ULL ^ mix64(i + 7)) %
			    1000000) / 1000000.0;

	if (u < o->preload_old)
		return PRE_OLD;
	if (u < o->preload_old + o->preload_pending)
		return PRE_PENDING;
	return PRE_PASSED;
}

/*
 * Write a dump (greyholdctl's format, cmd_dump.h) of the preload: an
 * auto-whitelist record with one counted pass for every client network
 * of the preload layout (below auto_whitelist_clients, so no client is
 * listed, and recent, so no pass writes), then triplets [0, preloaded) in
 * index order, which is random key order, as a daemon inserts them.
 */
static int
write_dump(const struct options *o)
{
	const int64_t now = o->dump_now;
	uint64_t counts[3] = {0, 0, 0};
	FILE *out = stdout;
	static char iobuf[1 << 20];
	struct triplet t;
	int rc = 0;

	if (strcmp(o->write_dump, "-") != 0) {
		out = fopen(o->write_dump, "w");
		if (out == NULL) {
			fprintf(stderr, "loadgen: %s: %s\n", o->write_dump,
				strerror(errno));
			return 2;
		}
	}
	setvbuf(out, iobuf, _IOFBF, sizeof(iobuf));
	fprintf(out, "greyhold-dump 1\n# loadgen preload: seed %" PRIu64
		", %" PRIu64 " triplets, time %" PRId64 "\n", o->seed,
		o->preloaded, now);
	for (unsigned n = 0; n < 64 * 256; n++) {
		int64_t ts = now - (int64_t)(mix64(n ^ 0x636c69) % 600);

		fprintf(out, "C\t%" PRId64 "\t%" PRId64 "\t1\t100.%u.%u.0/24\n",
			ts, ts, 64 + n / 256, n % 256);
	}
	for (unsigned g = 0x1000; g < 0x2000; g++) {
		int64_t ts = now - (int64_t)(mix64(g ^ 0x636c6936) % 600);

		fprintf(out, "C\t%" PRId64 "\t%" PRId64 "\t1\t2001:db8:%x:1000::/64\n",
			ts, ts, g);
	}
	for (uint64_t i = 0; i < o->preloaded; i++) {
		uint64_t h = mix64(o->seed ^ mix64(i ^ 0x74696d65ULL));
		enum pre_class c = preload_class(o, i);
		int64_t first, last;
		uint64_t passes;

		switch (c) {
		case PRE_OLD:
			last = now - 15 * DAY_S - (int64_t)(h % (5 * DAY_S));
			first = last - 5 * DAY_S - (int64_t)((h >> 20) % (5 * DAY_S));
			passes = 1 + (h >> 40) % 20;
			break;
		case PRE_PENDING:
			first = last = now - (int64_t)(h % DAY_S);
			passes = 0;
			break;
		default:
			last = now - (int64_t)(h % 600);
			first = last - 3600 - (int64_t)((h >> 20) % (30 * DAY_S));
			passes = 1 + (h >> 40) % 20;
			break;
		}
		counts[c]++;
		make_triplet(&t, o, i, true, true);
		fprintf(out, "T\t%" PRId64 "\t%" PRId64 "\t%" PRIu64
			"\t%s\t%s\t%s\n", first, last, passes, t.client_key,
			t.sender_key, t.recipient);
	}
	if (fflush(out) != 0 || ferror(out)) {
		fprintf(stderr, "loadgen: writing the dump: %s\n", strerror(errno));
		rc = 2;
	}
	if (out != stdout && fclose(out) != 0 && rc == 0) {
		fprintf(stderr, "loadgen: writing the dump: %s\n", strerror(errno));
		rc = 2;
	}
	fprintf(stderr, "loadgen: dump of %" PRIu64 " triplets (%" PRIu64
		" passed, %" PRIu64 " pending, %" PRIu64 " old) and %u client "
		"records written\n", o->preloaded, counts[PRE_PASSED],
		counts[PRE_PENDING], counts[PRE_OLD], 64 * 256 + 4096);
	if (out != stdout)
		printf("DUMP triplets=%" PRIu64 " passed=%" PRIu64 " pending=%"
		       PRIu64 " old=%" PRIu64 " clients=%u time=%" PRId64 "\n",
		       o->preloaded, counts[PRE_PASSED], counts[PRE_PENDING],
		       counts[PRE_OLD], 64 * 256 + 4096, now);
	return rc;
}

/*
 * The records relay senders need, one per line in master-file form
 * ("NAME TTL IN TXT \"...\""), for a resolver on loopback to serve.
 */
static int
print_spf_records(const struct options *o)
{
	printf("_spf." RELAY_ZONE ". %d IN TXT \"" RELAY_SPF "\"\n", SPF_TTL);
	for (unsigned k = 0; k < o->spf_domains; k++)
		printf("d%u." SPF_ZONE ". %d IN TXT \"v=spf1 include:_spf."
		       RELAY_ZONE " -all\"\n", k, SPF_TTL);
	return fflush(stdout) == 0 ? 0 : 2;
}

/* The request Postfix's smtpd would send at RCPT TO for this triplet. */
static size_t
build_request(char *out, size_t cap, const struct triplet *t,
	      enum attr_set set, uint64_t serial, uint64_t seed)
{
	struct buf b = {out, 0, cap};
	uint64_t h = mix64(serial ^ seed);

	put_attr(&b, "request", "smtpd_access_policy");
	put_attr(&b, "protocol_state", "RCPT");
	if (set != ATTRS_MINIMAL) {
		put_attr(&b, "protocol_name", "ESMTP");
		put_attr(&b, "helo_name", t->helo);
		put_attr(&b, "queue_id", "");
	}
	put_attr(&b, "sender", t->sender);
	put_attr(&b, "recipient", t->recipient);
	if (set != ATTRS_MINIMAL)
		put_attr(&b, "recipient_count", "0");
	put_attr(&b, "client_address", t->client_address);
	put_attr(&b, "client_name", t->client_name);
	if (set != ATTRS_MINIMAL) {
		put_attr(&b, "reverse_client_name", t->client_name);
		/* Postfix's instance: hex pid.time.usec.counter, one per message. */
		put_str(&b, "instance=");
		put_hex(&b, h & 0xffff, 4);
		put_mem(&b, ".", 1);
		put_hex(&b, 0x66000000 + (serial >> 8), 8);
		put_mem(&b, ".", 1);
		put_hex(&b, (h >> 16) & 0xfffff, 5);
		put_mem(&b, ".0\n", 3);
		put_attr(&b, "sasl_method", "");
		put_attr(&b, "sasl_username", "");
		put_attr(&b, "sasl_sender", "");
		put_str(&b, "size=");
		put_u64(&b, (h >> 32) % 200000);
		put_mem(&b, "\n", 1);
	}
	if (set == ATTRS_FULL) {
		bool tls = (h >> 40) % 10 < 7;

		put_attr(&b, "ccert_subject", "");
		put_attr(&b, "ccert_issuer", "");
		put_attr(&b, "ccert_fingerprint", "");
		put_attr(&b, "ccert_pubkey_fingerprint", "");
		put_attr(&b, "encryption_protocol", tls ? "TLSv1.3" : "");
		put_attr(&b, "encryption_cipher", tls ? "TLS_AES_256_GCM_SHA384" : "");
		put_attr(&b, "encryption_keysize", tls ? "256" : "0");
		put_attr(&b, "etrn_domain", "");
		put_attr(&b, "stress", "");
		put_attr(&b, "server_address", "192.0.2.25");
		put_attr(&b, "server_port", "25");
		put_attr(&b, "policy_context", "");
		put_attr(&b, "compatibility_level", "3.6");
		put_attr(&b, "mail_version", "3.7.11");
		put_str(&b, "client_port=");
		put_u64(&b, 1024 + (h >> 48) % 64000);
		put_mem(&b, "\n", 1);
	}
	put_mem(&b, "\n", 1);
	return b.len;
}

/* ---- latency histogram (log-linear, nanoseconds) ------------------------ */

#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define HIST_SIZE (2 * SUB + 58 * SUB)

struct hist {
	uint64_t count[HIST_SIZE];
	uint64_t n;
	uint64_t max;
	uint64_t sum;
};

static unsigned
hist_index(uint64_t v)
{
	unsigned e;

	if (v < 2 * SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);	/* >= SUB_BITS + 1 */
	return 2 * SUB + (e - SUB_BITS - 1) * SUB +
	       (unsigned)((v >> (e - SUB_BITS)) - SUB);
}

/* The highest value that lands in bucket idx. */
static uint64_t
hist_upper(unsigned idx)
{
	unsigned e, top;

	if (idx < 2 * SUB)
		return idx;
	e = (idx - 2 * SUB) / SUB + SUB_BITS + 1;
	top = (idx - 2 * SUB) % SUB + SUB;
	return (((uint64_t)top + 1) << (e - SUB_BITS)) - 1;
}

static void
hist_add(struct hist *h, uint64_t v)
{
	unsigned i = hist_index(v);

	if (i >= HIST_SIZE)
		i = HIST_SIZE - 1;
	h->count[i]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)ceil(p * (double)h->n);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_SIZE; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			uint64_t v = hist_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* ---- /proc ---------------------------------------------------------------- */

/* utime + stime of a process in microseconds, or -1. */
static double
proc_cpu_us(long pid)
{
	char path[64], text[2048];
	const char *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	/* The command name may hold spaces: fields count from its ')'. */
	p = strrchr(text, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
				"%*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static long
proc_rss_anon_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *fp;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	}
	fclose(fp);
	return kb;
}

static double
self_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- target address ------------------------------------------------------ */

struct target {
	struct sockaddr_storage ss;
	socklen_t len;
	bool is_unix;
};

static int
parse_target(struct target *t, const char *spec)
{
	memset(t, 0, sizeof(*t));
	if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&t->ss;
		const char *path = spec[0] == '/' ? spec : spec + 5;

		if (strlen(path) >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		t->len = sizeof(*sun);
		t->is_unix = true;
		return 0;
	}
	{
		const char *colon = strrchr(spec, ':');
		const char *h = spec;
		char host[64];
		size_t hlen;
		char *end;
		long port;

		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - spec);
		if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
			h++;
			hlen -= 2;
		}
		if (hlen == 0 || hlen >= sizeof(host))
			return -1;
		memcpy(host, h, hlen);
		host[hlen] = '\0';
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
			return -1;
		if (strchr(host, ':') != NULL) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&t->ss;

			if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1 ||
			    !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
				return -2;
			a->sin6_family = AF_INET6;
			a->sin6_port = htons((uint16_t)port);
			t->len = sizeof(*a);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&t->ss;

			if (inet_pton(AF_INET, host, &a->sin_addr) != 1 ||
			    (ntohl(a->sin_addr.s_addr) >> 24) != 127)
				return -2;
			a->sin_family = AF_INET;
			a->sin_port = htons((uint16_t)port);
			t->len = sizeof(*a);
		}
	}
	return 0;
}

/* A connected, non-blocking socket, or -errno. */
static int
dial(const struct target *t)
{
	int fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&t->ss, t->len) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	if (!t->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* ---- the run ------------------------------------------------------------- */

enum expect { EXPECT_ANY, EXPECT_GREYLIST, EXPECT_PASS, EXPECT_DUNNO };

enum phase { PHASE_SEED, PHASE_PASS, PHASE_MEASURE };
static const char *const phase_names[] = {"seed", "pass", "measure"};

struct conn {
	int fd;
	bool busy;		/* a request is in flight */
	bool want_out;		/* EPOLLOUT armed for a partial write */
	enum expect expect;
	bool counted;		/* issued inside the measured window */
	uint64_t index;		/* triplet */
	uint64_t sent_ns;
	size_t slen, soff;
	size_t rlen;
	char sbuf[SEND_MAX];
	char rbuf[RECV_MAX];
};

struct errors {
	uint64_t closed;	/* server closed or reset the connection */
	uint64_t malformed;	/* not "action=...\n\n" on one line */
	uint64_t extra;		/* bytes after the answer */
	uint64_t timeout;
	uint64_t io;		/* other socket errors */
};

struct stats {
	uint64_t done;		/* answers in the window */
	uint64_t new_sent, retry_sent;
	uint64_t mismatch_new;	/* never-seen triplet not greylisted */
	uint64_t mismatch_retry;	/* retry of a passed triplet not DUNNO */
	struct errors err;
	struct hist hist;
};

struct run {
	const struct options *o;
	struct target target;
	int ep;
	struct conn *conns;
	unsigned nconns;
	unsigned live;		/* connections still usable */
	struct rng rng;

	enum phase phase;
	uint64_t next_pool;	/* warm-up: next pool index to send */
	uint64_t next_new;	/* next never-seen index */
	uint64_t issued;	/* measure: requests issued */
	uint64_t window_end_ns;	/* measure: stop issuing after this */
	bool stop_issuing;
	unsigned in_flight;

	uint8_t *pool_ok;	/* per pool triplet: 1 seeded, 2 passed */
	uint64_t *passed;	/* pool triplets usable for retries */
	uint64_t npassed;
	uint64_t serial;	/* requests built, for per-message fields */
	unsigned shown;
	bool kick;		/* a connection was reopened and is idle */
	struct stats st;	/* current phase */
	/* --interval: answers and latencies since the last INTERVAL line */
	struct hist ihist;
	uint64_t interval_start_ns;
	double interval_start_wall;
	uint64_t interval_errors;	/* errors + mismatches at its start */
};

static uint64_t
total_errors(const struct errors *e)
{
	return e->closed + e->malformed + e->extra + e->timeout + e->io;
}

static void
show_mismatch(struct run *r, const struct conn *c, const char *want, size_t len)
{
	struct triplet t;

	if (r->shown >= SHOW_MAX || r->o->quiet)
		return;
	r->shown++;
	make_triplet(&t, r->o, c->index, r->o->preloaded > 0, false);
	fprintf(stderr, "loadgen: %s: expected %s for %s/%s/%s, got: %.*s\n",
		phase_names[r->phase], want, t.client_address, t.sender,
		t.recipient, (int)(len > 2 ? len - 2 : len), c->rbuf);
}

static void
conn_drop(struct run *r, struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	if (c->busy) {
		c->busy = false;
		r->in_flight--;
	}
	c->want_out = false;
	c->rlen = 0;
}

static int
conn_open(struct run *r, struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int fd = dial(&r->target);

	if (fd < 0)
		return fd;
	ev.data.ptr = c;
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return -errno;
	}
	c->fd = fd;
	c->rlen = 0;
	c->want_out = false;
	return 0;
}

/* After an error: count it and try once to reconnect. */
static void
conn_fail(struct run *r, struct conn *c, uint64_t *counter)
{
	(*counter)++;
	conn_drop(r, c);
	r->kick = true;		/* run_phase gives it work; no recursion here */
	if (conn_open(r, c) < 0) {
		r->live--;
		if (!r->o->quiet)
			fprintf(stderr, "loadgen: a connection could not reconnect; "
				"%u left\n", r->live);
	}
}

static void
set_out_interest(struct run *r, struct conn *c, bool want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0)};

	if (c->want_out == want)
		return;
	ev.data.ptr = c;
	epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_out = want;
}

static void
conn_write(struct run *r, struct conn *c)
{
	while (c->soff < c->slen) {
		ssize_t n = write(c->fd, c->sbuf + c->soff, c->slen - c->soff);

		if (n > 0) {
			c->soff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			set_out_interest(r, c, true);
			return;
		}
		conn_fail(r, c, errno == EPIPE || errno == ECONNRESET ?
			  &r->st.err.closed : &r->st.err.io);
		return;
	}
	set_out_interest(r, c, false);
}

/* Pick the next request for a connection; false if there is none. */
static bool
next_job(struct run *r, uint64_t *index, enum expect *expect)
{
	const struct options *o = r->o;

	switch (r->phase) {
	case PHASE_SEED:
	case PHASE_PASS:
		if (r->next_pool >= o->pool)
			return false;
		*index = r->next_pool++;
		*expect = r->phase == PHASE_SEED ? EXPECT_GREYLIST : EXPECT_PASS;
		return true;
	case PHASE_MEASURE:
		if (r->stop_issuing ||
		    (o->requests > 0 && r->issued >= o->requests))
			return false;
		r->issued++;
		if (o->preloaded > 0 && rng_unit(&r->rng) >= o->new_fraction) {
			/* A retry of a preloaded triplet that passed. */
			do
				*index = rng_next(&r->rng) % o->preloaded;
			while (preload_class(o, *index) != PRE_PASSED);
			*expect = EXPECT_DUNNO;
			r->st.retry_sent++;
		} else if (o->preloaded > 0 || r->npassed == 0 ||
			   rng_unit(&r->rng) < o->new_fraction) {
			*index = r->next_new++;
			*expect = EXPECT_GREYLIST;
			r->st.new_sent++;
		} else {
			*index = r->passed[rng_next(&r->rng) % r->npassed];
			*expect = EXPECT_DUNNO;
			r->st.retry_sent++;
		}
		return true;
	}
	return false;
}

static void
conn_send_next(struct run *r, struct conn *c)
{
	struct triplet t;

	if (c->fd < 0 || c->busy || !next_job(r, &c->index, &c->expect))
		return;
	if (!r->o->check)
		c->expect = EXPECT_ANY;
	make_triplet(&t, r->o, c->index, r->o->preloaded > 0, false);
	c->slen = build_request(c->sbuf, sizeof(c->sbuf), &t, r->o->attrs,
				r->serial++, r->o->seed);
	c->soff = 0;
	c->busy = true;
	c->counted = r->phase != PHASE_MEASURE || !r->stop_issuing;
	r->in_flight++;
	c->sent_ns = now_ns();
	conn_write(r, c);
}

/* The first word of the action, e.g. "DEFER_IF_PERMIT" or "450". */
static bool
action_is(const char *a, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && memcmp(a, word, n) == 0 &&
	       (len == n || a[n] == ' ' || a[n] == '\t');
}

static bool
is_greylist_action(const char *a, size_t len)
{
	if (action_is(a, len, "DEFER_IF_PERMIT") || action_is(a, len, "DEFER") ||
	    action_is(a, len, "DEFER_IF_REJECT"))
		return true;
	/* A 4xx SMTP code is a temporary failure too. */
	return len >= 3 && a[0] == '4' && a[1] >= '0' && a[1] <= '9' &&
	       a[2] >= '0' && a[2] <= '9';
}

static void
check_answer(struct run *r, struct conn *c, size_t len)
{
	const char *a = c->rbuf + 7;	/* after "action=" */
	size_t alen = len - 2 - 7;

	switch (c->expect) {
	case EXPECT_ANY:
		return;
	case EXPECT_GREYLIST:
		if (!is_greylist_action(a, alen)) {
			r->st.mismatch_new++;
			show_mismatch(r, c, "a greylist (DEFER) action", len);
		}
		return;
	case EXPECT_PASS:
		/* The first pass may carry an X-Greylist header. */
		if (!action_is(a, alen, "DUNNO") && !action_is(a, alen, "PREPEND") &&
		    !action_is(a, alen, "OK")) {
			r->st.mismatch_retry++;
			show_mismatch(r, c, "a pass (DUNNO or PREPEND)", len);
		} else if (r->pool_ok[c->index] == 1) {
			r->pool_ok[c->index] = 2;
		}
		return;
	case EXPECT_DUNNO:
		if (!action_is(a, alen, "DUNNO")) {
			r->st.mismatch_retry++;
			show_mismatch(r, c, "DUNNO", len);
		}
		return;
	}
}

/* A whole answer is in rbuf[0..len): account for it. */
static void
conn_answered(struct run *r, struct conn *c, size_t len, uint64_t t)
{
	if (len < 9 || memcmp(c->rbuf, "action=", 7) != 0 ||
	    memchr(c->rbuf, '\n', len - 2) != NULL || c->rbuf[7] == '\n') {
		if (!r->o->quiet && r->shown++ < SHOW_MAX)
			fprintf(stderr, "loadgen: malformed answer: %.*s\n",
				(int)len, c->rbuf);
		conn_fail(r, c, &r->st.err.malformed);
		return;
	}
	if (c->rlen > len) {
		conn_fail(r, c, &r->st.err.extra);
		return;
	}
	if (r->phase == PHASE_SEED && c->expect != EXPECT_ANY &&
	    is_greylist_action(c->rbuf + 7, len - 9))
		r->pool_ok[c->index] = 1;
	else if (r->phase == PHASE_SEED && c->expect == EXPECT_ANY)
		r->pool_ok[c->index] = 2;
	check_answer(r, c, len);
	if (c->counted) {
		r->st.done++;
		hist_add(&r->st.hist, t > c->sent_ns ? t - c->sent_ns : 0);
		if (r->o->interval > 0 && r->phase == PHASE_MEASURE)
			hist_add(&r->ihist, t > c->sent_ns ? t - c->sent_ns : 0);
	}
	c->busy = false;
	c->rlen = 0;
	r->in_flight--;
	conn_send_next(r, c);
}

static void
conn_read(struct run *r, struct conn *c, uint64_t t)
{
	ssize_t n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
	const char *end;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->busy || n < 0)
			conn_fail(r, c, n == 0 || errno == ECONNRESET ?
				  &r->st.err.closed : &r->st.err.io);
		else
			conn_fail(r, c, &r->st.err.closed);
		return;
	}
	c->rlen += (size_t)n;
	if (!c->busy) {
		conn_fail(r, c, &r->st.err.extra);	/* unasked-for bytes */
		return;
	}
	end = memmem(c->rbuf, c->rlen, "\n\n", 2);
	if (end != NULL) {
		conn_answered(r, c, (size_t)(end - c->rbuf) + 2, t);
		return;
	}
	if (c->rlen == sizeof(c->rbuf)) {
		if (!r->o->quiet && r->shown++ < SHOW_MAX)
			fprintf(stderr, "loadgen: answer longer than %d bytes\n",
				RECV_MAX);
		conn_fail(r, c, &r->st.err.malformed);
	}
}

static void
check_timeouts(struct run *r, uint64_t t)
{
	uint64_t limit = sec_to_ns(r->o->timeout);

	for (unsigned i = 0; i < r->nconns; i++) {
		struct conn *c = &r->conns[i];

		if (c->fd >= 0 && c->busy && t > c->sent_ns &&
		    t - c->sent_ns > limit) {
			if (!r->o->quiet && r->shown++ < SHOW_MAX)
				fprintf(stderr, "loadgen: no answer within %.1f s\n",
					r->o->timeout);
			conn_fail(r, c, &r->st.err.timeout);
		}
	}
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
interval_start(struct run *r, uint64_t t)
{
	memset(&r->ihist, 0, sizeof(r->ihist));
	r->interval_start_ns = t;
	r->interval_start_wall = wall_now();
}

/*
 * One INTERVAL line: the answers of the last --interval seconds, with the
 * wall-clock times of its start and end (to line it up with other
 * observations of the server, e.g. its metrics), then a new interval.
 */
static void
interval_emit(struct run *r, uint64_t t)
{
	const struct hist *h = &r->ihist;
	double secs = (double)(t - r->interval_start_ns) / 1e9;
	double end = wall_now();

	printf("INTERVAL name=%s start=%.3f end=%.3f seconds=%.3f answers=%"
	       PRIu64 " rps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f "
	       "max_us=%.0f bad=%" PRIu64 "\n", r->o->name, r->interval_start_wall,
	       end, secs, h->n, secs > 0 ? (double)h->n / secs : 0,
	       (double)hist_percentile(h, 0.50) / 1000.0,
	       (double)hist_percentile(h, 0.99) / 1000.0,
	       (double)hist_percentile(h, 0.999) / 1000.0,
	       (double)h->max / 1000.0,
	       total_errors(&r->st.err) + r->st.mismatch_new + r->st.mismatch_retry);
	fflush(stdout);
	interval_start(r, t);
}

/*
 * Drive the connections until the phase has no more work and nothing is
 * in flight, or until hard_end.  Returns false if hard_end was hit.
 */
static bool
run_phase(struct run *r, uint64_t hard_end)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t last_tick = now_ns();

	for (unsigned i = 0; i < r->nconns; i++)
		conn_send_next(r, &r->conns[i]);
	for (;;) {
		uint64_t t = now_ns();
		int timeout_ms = TICK_MS;
		int n;

		if (r->phase == PHASE_MEASURE && !r->stop_issuing) {
			if (t >= r->window_end_ns) {
				r->stop_issuing = true;
				return true;	/* the caller records, then drains */
			}
			if ((r->window_end_ns - t) / 1000000 < (uint64_t)timeout_ms)
				timeout_ms = (int)((r->window_end_ns - t) / 1000000) + 1;
		}
		if (r->in_flight == 0) {
			bool more = false;

			for (unsigned i = 0; i < r->nconns; i++) {
				conn_send_next(r, &r->conns[i]);
				more = more || r->conns[i].busy;
			}
			if (!more)
				return true;
		}
		if (r->live == 0 || t >= hard_end)
			return false;
		n = epoll_wait(r->ep, ev, MAX_EVENTS, timeout_ms);
		t = now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (c->fd < 0)
				continue;
			if (ev[i].events & EPOLLOUT)
				conn_write(r, c);
			if (c->fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				conn_read(r, c, t);
		}
		if (t - last_tick >= (uint64_t)TICK_MS * 1000000u) {
			last_tick = t;
			check_timeouts(r, now_ns());
		}
		if (r->o->interval > 0 && r->phase == PHASE_MEASURE &&
		    !r->stop_issuing &&
		    t - r->interval_start_ns >= sec_to_ns(r->o->interval))
			interval_emit(r, t);
		if (r->kick) {
			r->kick = false;
			for (unsigned i = 0; i < r->nconns; i++)
				conn_send_next(r, &r->conns[i]);
		}
		if (r->phase == PHASE_MEASURE && r->o->requests > 0 &&
		    r->issued >= r->o->requests && r->in_flight == 0)
			return true;
	}
}

static void
print_errors(const struct errors *e, char *out, size_t outsz)
{
	snprintf(out, outsz, "closed %" PRIu64 ", malformed %" PRIu64 ", extra %"
		 PRIu64 ", timeout %" PRIu64 ", io %" PRIu64, e->closed,
		 e->malformed, e->extra, e->timeout, e->io);
}

static int
warm_up(struct run *r, uint64_t *bad)
{
	const struct options *o = r->o;
	uint64_t start, wait_until;
	double seed_s, pass_s;
	struct stats seed_st;
	char errtext[160];

	r->pool_ok = calloc(o->pool, 1);
	r->passed = calloc(o->pool, sizeof(*r->passed));
	if (r->pool_ok == NULL || r->passed == NULL)
		return -1;

	r->phase = PHASE_SEED;
	r->next_pool = 0;
	start = now_ns();
	if (!run_phase(r, start + sec_to_ns(o->warmup_timeout)))
		return -1;
	seed_s = (double)(now_ns() - start) / 1e9;
	seed_st = r->st;

	/* Every seed must be older than the delay at the server's second. */
	wait_until = now_ns() + sec_to_ns(o->check ? o->delay + 1.0 : 0);
	while (now_ns() < wait_until) {
		uint64_t left = wait_until - now_ns();
		struct timespec ts = {(time_t)(left / 1000000000u),
				      (long)(left % 1000000000u)};
		nanosleep(&ts, NULL);
	}

	memset(&r->st, 0, sizeof(r->st));
	r->phase = PHASE_PASS;
	r->next_pool = 0;
	start = now_ns();
	if (!run_phase(r, start + sec_to_ns(o->warmup_timeout)))
		return -1;
	pass_s = (double)(now_ns() - start) / 1e9;

	for (uint64_t i = 0; i < o->pool; i++) {
		if (r->pool_ok[i] == 2)
			r->passed[r->npassed++] = i;
	}
	seed_st.err.closed += r->st.err.closed;
	seed_st.err.malformed += r->st.err.malformed;
	seed_st.err.extra += r->st.err.extra;
	seed_st.err.timeout += r->st.err.timeout;
	seed_st.err.io += r->st.err.io;
	*bad = total_errors(&seed_st.err) + seed_st.mismatch_new +
	       seed_st.mismatch_retry + r->st.mismatch_new + r->st.mismatch_retry;
	print_errors(&seed_st.err, errtext, sizeof(errtext));
	if (!o->quiet)
		printf("loadgen %s: warm-up: %u triplets seeded at %.0f req/s "
		       "(%" PRIu64 " not greylisted), retried at %.0f req/s (%"
		       PRIu64 " not passed); %" PRIu64 " usable; errors: %s\n",
		       o->name, o->pool, o->pool / (seed_s > 0 ? seed_s : 1),
		       seed_st.mismatch_new, o->pool / (pass_s > 0 ? pass_s : 1),
		       r->st.mismatch_retry, r->npassed, errtext);
	printf("WARMUP name=%s pool=%u seed_rps=%.0f pass_rps=%.0f usable=%" PRIu64
	       " errors=%" PRIu64 " mismatches=%" PRIu64 "\n", o->name, o->pool,
	       o->pool / (seed_s > 0 ? seed_s : 1),
	       o->pool / (pass_s > 0 ? pass_s : 1), r->npassed,
	       total_errors(&seed_st.err),
	       seed_st.mismatch_new + r->st.mismatch_retry);
	fflush(stdout);
	if (r->npassed == 0) {
		fprintf(stderr, "loadgen: no triplet passed the warm-up; cannot "
			"measure retries (is --delay the server's delay?)\n");
		return -1;
	}
	return 0;
}

static void
report(struct run *r, double seconds, double cpu_us, long rss_kb,
       double store_cpu_us, long store_rss_kb, double self_us,
       uint64_t warm_bad)
{
	const struct options *o = r->o;
	const struct stats *s = &r->st;
	double rps = seconds > 0 ? (double)s->done / seconds : 0;
	double p50 = (double)hist_percentile(&s->hist, 0.50) / 1000.0;
	double p99 = (double)hist_percentile(&s->hist, 0.99) / 1000.0;
	double p999 = (double)hist_percentile(&s->hist, 0.999) / 1000.0;
	double max = (double)s->hist.max / 1000.0;
	double cpu_req = cpu_us >= 0 && s->done > 0 ? cpu_us / (double)s->done : -1;
	double store_req = store_cpu_us >= 0 && s->done > 0 ?
			   store_cpu_us / (double)s->done : -1;
	double self_req = s->done > 0 ? self_us / (double)s->done : -1;
	uint64_t errs = total_errors(&s->err);
	uint64_t mism = s->mismatch_new + s->mismatch_retry;
	char errtext[160];
	char cpu_text[32], rss_text[32];

	print_errors(&s->err, errtext, sizeof(errtext));
	if (cpu_req >= 0)
		snprintf(cpu_text, sizeof(cpu_text), "%.1f us/req", cpu_req);
	else
		snprintf(cpu_text, sizeof(cpu_text), "n/a");
	if (rss_kb >= 0)
		snprintf(rss_text, sizeof(rss_text), "%ld kB", rss_kb);
	else
		snprintf(rss_text, sizeof(rss_text), "n/a");
	if (!o->quiet) {
		printf("loadgen %s: %u conns, %.2f s, %" PRIu64 " answers (%" PRIu64
		       " new, %" PRIu64 " retries): %.0f req/s; latency p50 %.0f us, "
		       "p99 %.0f us, p99.9 %.0f us, max %.0f us; server CPU %s, "
		       "RssAnon %s; loadgen CPU %.1f us/req; mismatches %" PRIu64
		       " (new %" PRIu64 ", retry %" PRIu64 "); errors %" PRIu64
		       " (%s)\n", o->name, r->nconns, seconds, s->done,
		       s->new_sent, s->retry_sent, rps, p50, p99, p999, max,
		       cpu_text, rss_text, self_req, mism, s->mismatch_new,
		       s->mismatch_retry, errs, errtext);
		if (o->store_pid > 0)
			printf("loadgen %s: store process %ld: CPU %.1f us/req, "
			       "RssAnon %ld kB\n", o->name, o->store_pid,
			       store_req, store_rss_kb);
	}
	printf("RESULT name=%s conns=%u seconds=%.2f requests=%" PRIu64
	       " new=%" PRIu64 " retries=%" PRIu64 " rps=%.0f p50_us=%.0f "
	       "p99_us=%.0f p999_us=%.0f max_us=%.0f cpu_us_per_req=%.2f "
	       "rss_anon_kb=%ld loadgen_cpu_us_per_req=%.2f errors=%" PRIu64
	       " mismatches=%" PRIu64 " warmup_bad=%" PRIu64
	       " store_cpu_us_per_req=%.2f store_rss_anon_kb=%ld\n", o->name,
	       r->nconns, seconds, s->done, s->new_sent, s->retry_sent, rps, p50,
	       p99, p999, max, cpu_req, rss_kb, self_req, errs, mism, warm_bad,
	       store_req, store_rss_kb);
	fflush(stdout);
}

/*
 * --window-cmd: run "CMD start" just before the measured window opens and
 * "CMD end" just after it closes (e.g. to read the server's metrics), and
 * wait for it; its failure is reported, not fatal.
 */
static void
window_hook(const struct options *o, const char *phase)
{
	char cmd[4096];
	int rc;

	if (o->window_cmd == NULL)
		return;
	snprintf(cmd, sizeof(cmd), "%s %s", o->window_cmd, phase);
	fflush(stdout);
	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "loadgen: --window-cmd %s: exit status %d\n",
			phase, rc);
}

static int
run(const struct options *o)
{
	struct run r = {.o = o};
	uint64_t start, give_up, window_start, warm_bad = 0;
	double cpu0, cpu1, scpu0, scpu1, self0, self1, seconds;
	long rss, store_rss;
	int rc;

	rc = parse_target(&r.target, o->target);
	if (rc < 0) {
		fprintf(stderr, "loadgen: %s: %s\n", o->target, rc == -2 ?
			"not a loopback address (loopback only)" :
			"expected HOST:PORT, [IPV6]:PORT, unix:PATH or /PATH");
		return 2;
	}
	r.rng.state = mix64(o->seed ^ 0x6c6f616467656eULL);
	r.nconns = o->conns;
	r.conns = calloc(o->conns, sizeof(*r.conns));
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.conns == NULL || r.ep < 0) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 2;
	}
	/* Wait for the server to come up, then open every connection. */
	start = now_ns();
	give_up = start + sec_to_ns(o->wait);
	for (unsigned i = 0; i < r.nconns; i++) {
		r.conns[i].fd = -1;
		while ((rc = conn_open(&r, &r.conns[i])) < 0 && now_ns() < give_up) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (rc < 0) {
			fprintf(stderr, "loadgen: cannot connect to %s: %s\n",
				o->target, strerror(-rc));
			return 2;
		}
	}
	r.live = r.nconns;

	/* Preloaded: no warm-up, retries go to the preloaded passed triplets. */
	r.next_new = o->first_new_given ? o->first_new :
		     o->preloaded > 0 ? o->preloaded : o->pool;
	if (o->preloaded == 0 && o->new_fraction < 1.0 &&
	    warm_up(&r, &warm_bad) < 0) {
		fprintf(stderr, "loadgen: warm-up failed\n");
		return 1;
	}

	memset(&r.st, 0, sizeof(r.st));
	r.phase = PHASE_MEASURE;
	cpu0 = proc_cpu_us(o->server_pid);
	scpu0 = proc_cpu_us(o->store_pid);
	self0 = self_cpu_us();
	window_hook(o, "start");
	window_start = now_ns();
	interval_start(&r, window_start);
	r.window_end_ns = window_start + sec_to_ns(o->duration);
	if (!run_phase(&r, r.window_end_ns + sec_to_ns(1))) {
		fprintf(stderr, "loadgen: all connections lost\n");
		r.stop_issuing = true;
	}
	/* The window closes here; answers still in flight are only checked. */
	seconds = (double)(now_ns() - window_start) / 1e9;
	cpu1 = proc_cpu_us(o->server_pid);
	scpu1 = proc_cpu_us(o->store_pid);
	self1 = self_cpu_us();
	window_hook(o, "end");
	if (o->interval > 0 && r.ihist.n > 0)
		interval_emit(&r, now_ns());
	r.stop_issuing = true;
	for (unsigned i = 0; i < r.nconns; i++)
		r.conns[i].counted = false;
	if (r.in_flight > 0 && !run_phase(&r, now_ns() + sec_to_ns(o->timeout))) {
		r.st.err.timeout += r.in_flight;
	}
	rss = proc_rss_anon_kb(o->server_pid);
	store_rss = proc_rss_anon_kb(o->store_pid);

	report(&r, seconds, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1, rss,
	       scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1, store_rss,
	       self1 - self0, warm_bad);
	for (unsigned i = 0; i < r.nconns; i++)
		conn_drop(&r, &r.conns[i]);
	close(r.ep);
	rc = total_errors(&r.st.err) + r.st.mismatch_new + r.st.mismatch_retry +
	     warm_bad > 0 ? 1 : 0;
	free(r.conns);
	free(r.pool_ok);
	free(r.passed);
	return rc;
}

/* ---- command line ------------------------------------------------------- */

static void
usage(FILE *out)
{
	fprintf(out,
"usage: loadgen [options] TARGET\n"
"  TARGET                 HOST:PORT, [IPV6]:PORT, unix:PATH or /PATH (loopback only)\n"
"  -c, --connections N    persistent connections, one request in flight each (64)\n"
"  -d, --duration S       measured seconds (10)\n"
"  -n, --requests N       stop after N measured requests instead\n"
"      --new-fraction F   share of never-seen triplets; the rest retry passed\n"
"                         triplets after a warm-up (default 1.0)\n"
"      --delay S          the server's greylisting delay, for the warm-up (1)\n"
"      --pool N           triplets seeded and passed in the warm-up (10000)\n"
"      --ipv6-fraction F  share of IPv6 clients (0.2)\n"
"      --attrs SET        minimal (6 attributes), typical (16) or full (31,\n"
"                         Postfix 3.x) (full)\n"
"      --no-check         check framing only, not the expected action\n"
"      --server-pid PID   report this process's CPU per request and RssAnon\n"
"      --name NAME        label for the output lines (run)\n"
"      --seed N           seed for the triplets (1)\n"
"      --wait S           keep trying to connect for S seconds (10)\n"
"      --timeout S        an answer later than this is an error (10)\n"
"      --warmup-timeout S bound on each warm-up pass (300)\n"
"      --store-pid PID    also report this process's CPU per request and\n"
"                         RssAnon (a separate store, e.g. redis-server)\n"
"      --interval S       an INTERVAL line (req/s, latency) every S seconds\n"
"      --window-cmd CMD   run \"CMD start\" before the measured window and\n"
"                         \"CMD end\" after it (through /bin/sh)\n"
"      --spf-fraction F   share of triplets from a relay: verified name in\n"
"                         " RELAY_ZONE ", sender in a domain of " SPF_ZONE "\n"
"                         whose SPF includes the relay's (0)\n"
"      --spf-domains N    customer domains of the relay senders (256)\n"
"      --spf-records      print the TXT records of those domains and exit\n"
"  -q, --quiet            only the machine lines\n"
"preloaded databases (see the comment at the top of loadgen.c):\n"
"      --preloaded N      triplets 0..N-1 of --seed are in the database: no\n"
"                         warm-up; retries go to those that passed\n"
"      --preload-old F    share of them last seen 15-20 days ago (0.2)\n"
"      --preload-pending F  share of them greylisted, not retried (0.05)\n"
"      --first-new I      first never-seen triplet index (N, or --pool)\n"
"      --write-dump FILE  write the greyholdctl dump of the preload (- for\n"
"                         standard output) and exit\n"
"      --now T            the dump's time, unix seconds (now)\n");
}

static bool
parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

enum {
	OPT_NEW = 256, OPT_DELAY, OPT_POOL, OPT_V6, OPT_ATTRS, OPT_NOCHECK,
	OPT_PID, OPT_NAME, OPT_SEED, OPT_WAIT, OPT_TIMEOUT, OPT_WARMUP,
	OPT_STORE_PID, OPT_INTERVAL, OPT_PRELOADED, OPT_PRE_OLD, OPT_PRE_PENDING,
	OPT_FIRST_NEW, OPT_WRITE_DUMP, OPT_NOW, OPT_SPF_FRACTION,
	OPT_SPF_DOMAINS, OPT_SPF_RECORDS, OPT_WINDOW_CMD,
};

static int
parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"connections", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"requests", required_argument, NULL, 'n'},
		{"new-fraction", required_argument, NULL, OPT_NEW},
		{"delay", required_argument, NULL, OPT_DELAY},
		{"pool", required_argument, NULL, OPT_POOL},
		{"ipv6-fraction", required_argument, NULL, OPT_V6},
		{"attrs", required_argument, NULL, OPT_ATTRS},
		{"no-check", no_argument, NULL, OPT_NOCHECK},
		{"server-pid", required_argument, NULL, OPT_PID},
		{"name", required_argument, NULL, OPT_NAME},
		{"seed", required_argument, NULL, OPT_SEED},
		{"wait", required_argument, NULL, OPT_WAIT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"warmup-timeout", required_argument, NULL, OPT_WARMUP},
		{"store-pid", required_argument, NULL, OPT_STORE_PID},
		{"interval", required_argument, NULL, OPT_INTERVAL},
		{"preloaded", required_argument, NULL, OPT_PRELOADED},
		{"preload-old", required_argument, NULL, OPT_PRE_OLD},
		{"preload-pending", required_argument, NULL, OPT_PRE_PENDING},
		{"first-new", required_argument, NULL, OPT_FIRST_NEW},
		{"write-dump", required_argument, NULL, OPT_WRITE_DUMP},
		{"now", required_argument, NULL, OPT_NOW},
		{"spf-fraction", required_argument, NULL, OPT_SPF_FRACTION},
		{"spf-domains", required_argument, NULL, OPT_SPF_DOMAINS},
		{"spf-records", no_argument, NULL, OPT_SPF_RECORDS},
		{"window-cmd", required_argument, NULL, OPT_WINDOW_CMD},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t u;
	bool ok = true;
	int ch;

	while (ok && (ch = getopt_long(argc, argv, "c:d:n:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ok = parse_u64(optarg, 1, MAX_CONNS, &u);
			o->conns = (unsigned)u;
			break;
		case 'd':
			ok = parse_double(optarg, 0.1, 86400, &o->duration);
			o->duration_given = true;
			break;
		case 'n':
			ok = parse_u64(optarg, 1, UINT64_MAX / 2, &o->requests);
			break;
		case OPT_NEW:
			ok = parse_double(optarg, 0, 1, &o->new_fraction);
			break;
		case OPT_DELAY:
			ok = parse_double(optarg, 0, 3600, &o->delay);
			break;
		case OPT_POOL:
			ok = parse_u64(optarg, 1, 100000000, &u);
			o->pool = (unsigned)u;
			break;
		case OPT_V6:
			ok = parse_double(optarg, 0, 1, &o->ipv6_fraction);
			break;
		case OPT_ATTRS:
			if (strcmp(optarg, "minimal") == 0)
				o->attrs = ATTRS_MINIMAL;
			else if (strcmp(optarg, "typical") == 0)
				o->attrs = ATTRS_TYPICAL;
			else if (strcmp(optarg, "full") == 0)
				o->attrs = ATTRS_FULL;
			else
				ok = false;
			break;
		case OPT_NOCHECK:
			o->check = false;
			break;
		case OPT_PID:
			ok = parse_u64(optarg, 1, INT32_MAX, &u);
			o->server_pid = (long)u;
			break;
		case OPT_NAME:
			o->name = optarg;
			ok = strpbrk(optarg, " \t\n=") == NULL && optarg[0] != '\0';
			break;
		case OPT_SEED:
			ok = parse_u64(optarg, 0, UINT64_MAX, &o->seed);
			break;
		case OPT_WAIT:
			ok = parse_double(optarg, 0, 3600, &o->wait);
			break;
		case OPT_TIMEOUT:
			ok = parse_double(optarg, 0.01, 3600, &o->timeout);
			break;
		case OPT_WARMUP:
			ok = parse_double(optarg, 1, 86400, &o->warmup_timeout);
			break;
		case OPT_STORE_PID:
			ok = parse_u64(optarg, 1, INT32_MAX, &u);
			o->store_pid = (long)u;
			break;
		case OPT_INTERVAL:
			ok = parse_double(optarg, 0.1, 3600, &o->interval);
			break;
		case OPT_PRELOADED:
			/* Indices stay far below 2^36, where tags stay unique. */
			ok = parse_u64(optarg, 1, 1ULL << 32, &o->preloaded);
			break;
		case OPT_PRE_OLD:
			ok = parse_double(optarg, 0, 0.9, &o->preload_old);
			break;
		case OPT_PRE_PENDING:
			ok = parse_double(optarg, 0, 0.9, &o->preload_pending);
			break;
		case OPT_FIRST_NEW:
			ok = parse_u64(optarg, 0, 1ULL << 35, &o->first_new);
			o->first_new_given = true;
			break;
		case OPT_WRITE_DUMP:
			o->write_dump = optarg;
			break;
		case OPT_NOW:
			ok = parse_u64(optarg, 100 * DAY_S, 1ULL << 40, &u);
			o->dump_now = (int64_t)u;
			break;
		case OPT_SPF_FRACTION:
			ok = parse_double(optarg, 0, 1, &o->spf_fraction);
			break;
		case OPT_SPF_DOMAINS:
			ok = parse_u64(optarg, 1, 1000000, &u);
			o->spf_domains = (unsigned)u;
			break;
		case OPT_SPF_RECORDS:
			o->spf_records = true;
			break;
		case OPT_WINDOW_CMD:
			o->window_cmd = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (!ok)
			fprintf(stderr, "loadgen: bad value for an option: '%s'\n",
				optarg != NULL ? optarg : "");
	}
	if (!ok)
		return -1;
	if (o->preload_old + o->preload_pending > 0.9) {
		fprintf(stderr, "loadgen: --preload-old plus --preload-pending "
			"must leave at least 10 %% passed\n");
		return -1;
	}
	if (o->spf_records) {
		if (optind != argc) {
			fprintf(stderr, "loadgen: --spf-records takes no TARGET\n");
			return -1;
		}
		return 0;
	}
	if (o->write_dump != NULL) {
		if (o->preloaded == 0 || optind != argc) {
			fprintf(stderr, "loadgen: --write-dump needs --preloaded N "
				"and no TARGET\n");
			return -1;
		}
		if (o->dump_now == 0)
			o->dump_now = (int64_t)time(NULL);
		return 0;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -1;
	}
	o->target = argv[optind];
	if (o->requests > 0 && !o->duration_given)
		o->duration = 600;	/* the count ends the run; this bounds it */
	return 0;
}

static void
on_alarm(int sig)
{
	static const char msg[] = "loadgen: hard time bound reached, giving up\n";

	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(3);
}

int
main(int argc, char **argv)
{
	struct options o = {
		.name = "run",
		.conns = 64,
		.duration = 10,
		.new_fraction = 1.0,
		.delay = 1,
		.pool = 10000,
		.ipv6_fraction = 0.2,
		.attrs = ATTRS_FULL,
		.check = true,
		.seed = 1,
		.wait = 10,
		.timeout = 10,
		.warmup_timeout = 300,
		.preload_old = 0.2,
		.preload_pending = 0.05,
		.spf_domains = 256,
	};
	double bound;

	if (parse_options(&o, argc, argv) < 0)
		return 2;
	if (o.spf_records)
		return print_spf_records(&o);
	if (o.write_dump != NULL)
		return write_dump(&o);
	signal(SIGPIPE, SIG_IGN);
	/* Whatever the server does, the run ends by itself. */
	bound = o.wait + o.duration + 2 * o.timeout + 10;
	if (o.window_cmd != NULL)
		bound += 20;	/* two short commands, e.g. a metrics scrape */
	if (o.new_fraction < 1.0 && o.preloaded == 0)
		bound += 2 * o.warmup_timeout + o.delay + 1;
	signal(SIGALRM, on_alarm);
	alarm((unsigned)ceil(bound));
	return run(&o);
}
