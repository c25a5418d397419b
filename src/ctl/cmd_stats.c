/*
 * cmd_stats - stats and expire: the database's size and contents, the
 * daemon's live counters, and a whole expiry pass on demand.
 *
 * Counts come from walking both tables (db_walk(), read-only, DB_CHUNK
 * records per transaction); expiry is judged by the engine with the
 * config's parameters, as the daemon's sweep judges it.  expire deletes
 * through db_expire_all(), in transactions of DB_CHUNK records.
 */
#include "cmd_stats.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_metrics.h"
#include "identity.h"
#include "output.h"

struct tally {
	const struct ctl *ctl;
	bool clients;
	uint64_t total, pending, passed, listed, expired, undecodable;
	int64_t oldest;		/* earliest first_seen; 0 when none */
	/* Records of name and SPF identities (plain keys: a hashed key does
	   not say whose it is). */
	uint64_t by_name, by_spf;
};

/* Count a record under its identity, when its key says. */
static void
tally_identity(struct tally *t, const char *key, size_t len)
{
	const char *z = memchr(key, '\0', len);
	const char *kind = identity_kind(key, z != NULL ? (size_t)(z - key)
							 : len);

	if (kind == NULL)
		return;
	if (kind[0] == 'n')
		t->by_name++;
	else
		t->by_spf++;
}

static int
tally_one(const char *key, size_t len, const struct record *r, void *arg)
{
	struct tally *t = arg;
	const struct engine_params *p = &t->ctl->params;

	t->total++;
	tally_identity(t, key, len);
	if (r == NULL) {
		t->undecodable++;
		return DB_WALK_KEEP;
	}
	if (t->clients) {
		t->listed += engine_client_listed(r, t->ctl->now, p);
		t->expired += engine_client_expired(r, t->ctl->now, p);
		return DB_WALK_KEEP;
	}
	if (r->passes > 0)
		t->passed++;
	else
		t->pending++;
	t->expired += engine_triplet_expired(r, t->ctl->now, p);
	if (t->oldest == 0 || r->first_seen < t->oldest)
		t->oldest = r->first_seen;
	return DB_WALK_KEEP;
}

static void
sample_json(const char *name, const char *value, bool first)
{
	char *end;
	double v = strtod(value, &end);

	if (!first)
		putchar(',');
	json_string(stdout, name);
	if (*end == '\0' && end != value && isfinite(v))
		printf(":%.17g", v);
	else
		printf(":null");
}

static void
sample_human(const char *name, const char *value, bool first)
{
	(void)first;
	printf("  %-66s %s\n", name, value);
}

/* ,"daemon":{...}: the daemon's live counters, or why there are none. */
static void
print_daemon_json(struct daemon_metrics *m)
{
	printf(",\"daemon\":{\"metrics_configured\":%s,\"reachable\":%s",
	       m->configured ? "true" : "false", m->reachable ? "true" : "false");
	if (m->configured) {
		printf(",\"url\":");
		json_string(stdout, m->url);
	}
	if (m->reachable) {
		printf(",\"metrics\":{");
		each_sample(m->body, sample_json);
		printf("}");
	} else if (m->configured) {
		printf(",\"error\":");
		json_string(stdout, m->why);
	}
	printf("}");
}

static void
print_stats_json(const struct ctl *ctl, const struct db_stats *s,
		 const struct tally *t, const struct tally *c,
		 struct daemon_metrics *m)
{
	printf("{\"dbdir\":");
	json_string(stdout, ctl->dbdir);
	printf(",\"triplets\":{\"total\":%" PRIu64 ",\"pending\":%" PRIu64
	       ",\"passed\":%" PRIu64 ",\"expired\":%" PRIu64 ",\"undecodable\":%"
	       PRIu64 ",\"oldest_first_seen\":%" PRId64 ",\"name_identity\":%"
	       PRIu64 ",\"spf_identity\":%" PRIu64 "}", t->total, t->pending,
	       t->passed, t->expired, t->undecodable, t->oldest, t->by_name,
	       t->by_spf);
	printf(",\"clients\":{\"total\":%" PRIu64 ",\"auto_whitelisted\":%"
	       PRIu64 ",\"expired\":%" PRIu64 ",\"name_identity\":%" PRIu64
	       ",\"spf_identity\":%" PRIu64 "},\"live_whitelist_entries\":%"
	       PRIu64, c->total, c->listed, c->expired, c->by_name, c->by_spf,
	       s->whitelist);
	printf(",\"file_size\":%" PRIu64 ",\"map_size\":%" PRIu64 ",\"map_used\":%"
	       PRIu64 ",\"max_size\":%" PRIu64 ",\"readers\":%u",
	       s->file_size, s->map_size, s->map_used, s->max_size, s->readers);
	print_daemon_json(m);
	printf("}\n");
}

static void
print_daemon_human(struct daemon_metrics *m)
{
	if (!m->configured)
		printf("daemon:          metrics not enabled (set metrics_listen "
		       "in greyhold.conf to see live counters)\n");
	else if (!m->reachable)
		printf("daemon:          metrics not reachable at %s (%s); is "
		       "greyhold running?\n", m->url, m->why);
	else {
		printf("daemon:          live counters from %s\n", m->url);
		each_sample(m->body, sample_human);
	}
}

static void
print_stats_human(const struct ctl *ctl, const struct db_stats *s,
		  const struct tally *t, const struct tally *c,
		  struct daemon_metrics *m)
{
	char file[32], map[32], used[32], cap[32], oldest[32], age[32];

	format_bytes(file, sizeof(file), s->file_size);
	format_bytes(map, sizeof(map), s->map_size);
	format_bytes(used, sizeof(used), s->map_used);
	format_bytes(cap, sizeof(cap), s->max_size);
	printf("database:        %s\n", ctl->dbdir);
	printf("size:            data.mdb %s; %s of the %s map in use (%.0f%%), "
	       "map cap %s\n", file, used, map,
	       s->map_size ? 100.0 * (double)s->map_used / (double)s->map_size
			   : 0.0, cap);
	printf("triplets:        %" PRIu64 " (%" PRIu64 " pending, %" PRIu64
	       " passed; %" PRIu64 " expired, awaiting the sweep)\n", t->total,
	       t->pending, t->passed, t->expired);
	if (t->undecodable > 0)
		printf("                 %" PRIu64 " undecodable (the sweep "
		       "removes them)\n", t->undecodable);
	printf("clients:         %" PRIu64 " (%" PRIu64 " auto-whitelisted, "
	       "after %u passes)\n", c->total, c->listed, ctl->params.awl_passes);
	if (t->by_name + t->by_spf + c->by_name + c->by_spf > 0)
		printf("identities:      %" PRIu64 " triplets and %" PRIu64
		       " client records by name, %" PRIu64 " and %" PRIu64
		       " by SPF domain (counted above)\n", t->by_name,
		       c->by_name, t->by_spf, c->by_spf);
	printf("live whitelist:  %" PRIu64 " entr%s\n", s->whitelist,
	       s->whitelist == 1 ? "y" : "ies");
	if (t->oldest != 0) {
		format_time(oldest, sizeof(oldest), t->oldest);
		format_age(age, sizeof(age), ctl->now - t->oldest);
		printf("oldest record:   first seen %s (%s ago)\n", oldest, age);
	}
	print_daemon_human(m);
}

/*
 * A Redis store: its records are the server's to count (INFO, DBSIZE);
 * what greyholdctl shows is the daemon's live counters, the current
 * primary and failovers among them with sentinel://.
 */
static int
stats_redis(struct ctl *ctl)
{
	struct daemon_metrics m;

	memset(&m, 0, sizeof(m));
	fetch_metrics(ctl->cfg, &m);
	if (ctl->json) {
		printf("{\"store\":");
		json_string(stdout, ctl->cfg->store);
		print_daemon_json(&m);
		printf("}\n");
	} else {
		printf("store:           %s (records are counted by the Redis "
		       "server: redis-cli INFO keyspace)\n", ctl->cfg->store);
		print_daemon_human(&m);
	}
	free(m.body);
	return 0;
}

int
cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	struct tally t = {.ctl = ctl, .clients = false};
	struct tally c = {.ctl = ctl, .clients = true};
	struct daemon_metrics m;
	struct db_stats s;
	int rc;

	(void)argv;
	if (argc != 1)
		return -1;
	if (!ctl->dbdir_given && strcmp(ctl->cfg->store, "lmdb") != 0)
		return stats_redis(ctl);
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	rc = db_stats(ctl->db, &s);
	if (rc == 0)
		rc = db_walk(ctl->db, DB_TRIPLETS, false, tally_one, &t);
	if (rc == 0)
		rc = db_walk(ctl->db, DB_CLIENTS, false, tally_one, &c);
	if (rc < 0)
		return db_failed("cannot read the database", rc);
	memset(&m, 0, sizeof(m));
	fetch_metrics(ctl->cfg, &m);
	if (ctl->json)
		print_stats_json(ctl, &s, &t, &c, &m);
	else
		print_stats_human(ctl, &s, &t, &c, &m);
	free(m.body);
	return 0;
}

int
cmd_expire(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	struct db_expire_counts n;
	bool dry = false;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'n')
			return EXIT_ERROR;
		dry = true;
	}
	if (optind != argc)
		return -1;
	if (open_db(ctl, dry ? OPEN_READ : OPEN_WRITE) < 0)
		return EXIT_ERROR;
	rc = db_expire_all(ctl->db, ctl->now, &ctl->params, dry, &n);
	if (rc < 0)
		return db_failed("expiry failed", rc);
	if (ctl->json)
		printf("{\"dry_run\":%s,\"triplets\":%zu,\"clients\":%zu}\n",
		       dry ? "true" : "false", n.triplets, n.clients);
	else
		printf("%s %zu triplet%s and %zu client record%s\n",
		       dry ? "would expire" : "expired", n.triplets,
		       n.triplets == 1 ? "" : "s", n.clients,
		       n.clients == 1 ? "" : "s");
	return 0;
}
