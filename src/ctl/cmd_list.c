/*
 * cmd_list - list: triplets or auto-whitelist records, filtered.
 *
 * Filters combine: client (an address or a network that overlaps the
 * record's; an identity, "name:ORG" or "spf:ORG", or another client key
 * that is not an address matches as text), sender
 * and recipient (normalised as the daemon keys them), state, age, count.
 * With privacy = yes the filter's values are hashed the same way and
 * compared with the stored hashes; a network cannot be hashed, so it
 * matches no hashed record.  A sender filter also matches the records of
 * name and SPF identities under the sender with its organisational domain,
 * as the daemon keys them (not when hashed: a hash does not say whose
 * record it is).  The walk reads DB_CHUNK records per read
 * transaction (db_walk()), so records changed meanwhile may or may not
 * be listed.  Undecodable records are skipped.
 */
#include "cmd_list.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "args.h"
#include "identity.h"
#include "keys.h"
#include "record_view.h"

enum state_filter { STATE_ANY, STATE_PENDING, STATE_PASSED, STATE_LISTED,
		    STATE_COUNTING };

struct filter {
	bool clients;		/* list the auto-whitelist, not triplets */
	bool has_client;
	bool client_is_net;
	bool client_is_addr;	/* a single address: hashed keys match too */
	struct addr net;
	unsigned prefix;
	const char *client_arg;
	char client_text[TRIPLET_MAX_CLIENT];
	size_t client_text_len;
	bool has_sender, has_rcpt;
	char sender[TRIPLET_MAX_ADDR];
	size_t sender_len;
	/* The sender as identities' keys hold it (identity.h). */
	char sender_org[TRIPLET_MAX_ADDR];
	size_t sender_org_len;
	char rcpt[TRIPLET_MAX_ADDR];
	size_t rcpt_len;
	enum state_filter state;
	int64_t older_than;	/* -1: any age */
	uint64_t limit;		/* 0: no limit */
	/* With privacy: the hashes of the above (hashed_filter()). */
	bool hashed;
	uint8_t client_hash[PRIVACY_HASH_BYTES];
	uint8_t sender_hash[PRIVACY_HASH_BYTES];
	uint8_t rcpt_hash[PRIVACY_HASH_BYTES];
};

struct lister {
	struct ctl *ctl;
	const struct filter *f;
	uint64_t n;
};

static int
parse_client_filter(struct filter *f, const char *text)
{
	size_t len = strlen(text);
	const char *domain;
	char tag;

	f->has_client = true;
	f->client_arg = text;
	if (parse_net(text, len, &f->net, &f->prefix)) {
		f->client_is_net = true;
		f->client_is_addr = strchr(text, '/') == NULL;
		return 0;
	}
	if (strchr(text, '/') != NULL || len >= sizeof(f->client_text)) {
		fprintf(stderr, "greyholdctl: --client takes an address or a "
			"network such as 192.0.2.0/24, not '%s'\n", text);
		return -1;
	}
	/* An identity ("name:ORG", "spf:ORG"), or a client key that is not
	   an address (Postfix's "unknown"): matched as text. */
	if (identity_parse(text, f->client_text, &f->client_text_len, &tag,
			   &domain))
		return 0;
	for (size_t i = 0; i <= len; i++)
		f->client_text[i] = (char)tolower((unsigned char)text[i]);
	f->client_text_len = len;
	return 0;
}

static int
parse_state_filter(struct filter *f, const char *text)
{
	static const char *const names[] = {"any", "pending", "passed",
					    "listed", "counting"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i]) == 0) {
			f->state = (enum state_filter)i;
			return 0;
		}
	}
	fprintf(stderr, "greyholdctl: --state takes pending or passed (or, "
		"with --clients, listed or counting), not '%s'\n", text);
	return -1;
}

static int
parse_filter_option(struct filter *f, int ch, const char *arg)
{
	int64_t age;

	switch (ch) {
	case 'C':
		return parse_client_filter(f, arg);
	case 's':
		arg = sender_arg(arg);
		f->has_sender = true;
		f->sender_len = triplet_normalise_sender(f->sender, arg,
							 strlen(arg));
		return 0;
	case 'r':
		f->has_rcpt = true;
		f->rcpt_len = triplet_normalise_recipient(f->rcpt, arg,
							  strlen(arg));
		return 0;
	case 'S':
		return parse_state_filter(f, arg);
	case 'o':
		if (config_parse_duration(arg, &age) < 0) {
			fprintf(stderr, "greyholdctl: --older-than takes a "
				"duration such as 3d or 12h\n");
			return -1;
		}
		f->older_than = age;
		return 0;
	case 'l':
		if (!parse_u64_arg(arg, UINT32_MAX, &f->limit) || f->limit == 0) {
			fprintf(stderr, "greyholdctl: --limit takes a positive "
				"number\n");
			return -1;
		}
		return 0;
	case 'c':
		f->clients = true;
		return 0;
	}
	return -1;
}

/*
 * Hash what the filter names, for hashed keys: the client (an address:
 * the hash of its network, as the daemon keys it; an identity or other
 * text: the hash of its stored form; a network cannot be hashed into
 * anything that matches), sender and recipient.
 */
static void
hashed_filter(const struct ctl *ctl, struct filter *f)
{
	char client[TRIPLET_MAX_CLIENT];
	size_t len;

	if (!ctl->privacy_on)
		return;
	f->hashed = true;
	if (f->client_is_addr) {
		triplet_client(client, sizeof(client), &len, f->client_arg,
			       strlen(f->client_arg), &ctl->topts);
		privacy_hash(&ctl->privacy, PRIVACY_CLIENT, client, len,
			     f->client_hash);
	} else if (f->has_client && !f->client_is_net) {
		privacy_hash(&ctl->privacy, PRIVACY_CLIENT, f->client_text,
			     f->client_text_len, f->client_hash);
	}
	privacy_hash(&ctl->privacy, PRIVACY_SENDER, f->sender, f->sender_len,
		     f->sender_hash);
	privacy_hash(&ctl->privacy, PRIVACY_RECIPIENT, f->rcpt, f->rcpt_len,
		     f->rcpt_hash);
}

static bool
client_matches(const struct filter *f, const struct key_parts *p)
{
	const char *client = p->client;
	size_t len = p->client_len;
	struct addr a;
	unsigned prefix;

	if (!f->has_client)
		return true;
	if (p->hashed)
		return f->hashed && (f->client_is_addr || !f->client_is_net) &&
		       hash_eq(p, client, f->client_hash);
	if (!f->client_is_net)
		return len == f->client_text_len &&
		       memcmp(client, f->client_text, len) == 0;
	if (!parse_net(client, len, &a, &prefix) || a.family != f->net.family)
		return false;
	/* Overlap: the record's network and the filter share a prefix. */
	return addr_in_net(&a, &f->net, prefix < f->prefix ? prefix : f->prefix);
}

static bool
part_matches(const struct filter *f, const struct key_parts *p,
	     const char *part, size_t len, const char *text, size_t tlen,
	     const uint8_t *hash)
{
	if (p->hashed)
		return f->hashed && hash_eq(p, part, hash);
	return len == tlen && memcmp(part, text, len) == 0;
}

/* An identity's record holds the sender with its organisational domain. */
static bool
sender_matches(const struct filter *f, const struct key_parts *p)
{
	if (!f->has_sender ||
	    part_matches(f, p, p->sender, p->sender_len, f->sender,
			 f->sender_len, f->sender_hash))
		return true;
	return !p->hashed && identity_kind(p->client, p->client_len) != NULL &&
	       p->sender_len == f->sender_org_len &&
	       memcmp(p->sender, f->sender_org, p->sender_len) == 0;
}

static bool
key_matches(const struct filter *f, const struct key_parts *p)
{
	return client_matches(f, p) && sender_matches(f, p) &&
	       (!f->has_rcpt || part_matches(f, p, p->rcpt, p->rcpt_len,
					     f->rcpt, f->rcpt_len,
					     f->rcpt_hash));
}

static bool
state_matches(const struct lister *l, const struct record *r)
{
	switch (l->f->state) {
	case STATE_ANY:
		return true;
	case STATE_PENDING:
		return r->passes == 0;
	case STATE_PASSED:
		return r->passes > 0;
	case STATE_LISTED:
		return engine_client_listed(r, l->ctl->now, &l->ctl->params);
	case STATE_COUNTING:
		return !engine_client_listed(r, l->ctl->now, &l->ctl->params);
	}
	return false;
}

static bool
record_matches(const struct lister *l, const struct record *r)
{
	return state_matches(l, r) &&
	       (l->f->older_than < 0 ||
		l->ctl->now - r->last_seen >= l->f->older_than);
}

static int
list_one(const char *key, size_t len, const struct record *r, void *arg)
{
	struct lister *l = arg;
	const struct filter *f = l->f;
	struct key_parts p;

	client_parts(key, len, &p);
	if (r == NULL || (!f->clients && !split_key(key, len, &p)))
		return DB_WALK_KEEP;	/* undecodable: the sweep removes it */
	if (!key_matches(f, &p) || !record_matches(l, r))
		return DB_WALK_KEEP;
	if (l->ctl->json) {
		if (l->n > 0)
			putchar(',');
		print_record_json(l->ctl, &p, r);
	} else if (f->clients) {
		print_client_row(l->ctl, &p, r, l->n == 0);
	} else {
		print_triplet_row(&p, r, l->n == 0);
	}
	l->n++;
	return f->limit > 0 && l->n >= f->limit ? DB_WALK_STOP : DB_WALK_KEEP;
}

static bool
filter_consistent(const struct filter *f)
{
	bool client_state_filter = f->state == STATE_LISTED ||
				   f->state == STATE_COUNTING;

	if (f->clients && (f->has_sender || f->has_rcpt)) {
		fprintf(stderr, "greyholdctl: --clients lists client records, "
			"which have no sender or recipient\n");
		return false;
	}
	if (f->clients != client_state_filter && f->state != STATE_ANY) {
		fprintf(stderr, "greyholdctl: --state pending|passed is for "
			"triplets, listed|counting for --clients\n");
		return false;
	}
	return true;
}

int
cmd_list(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"client", required_argument, NULL, 'C'},
		{"sender", required_argument, NULL, 's'},
		{"recipient", required_argument, NULL, 'r'},
		{"state", required_argument, NULL, 'S'},
		{"older-than", required_argument, NULL, 'o'},
		{"limit", required_argument, NULL, 'l'},
		{"clients", no_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	struct filter f;
	struct lister l = {ctl, &f, 0};
	int ch, rc;

	memset(&f, 0, sizeof(f));
	f.older_than = -1;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == '?' || parse_filter_option(&f, ch, optarg) < 0)
			return EXIT_ERROR;
	}
	if (optind != argc)
		return -1;
	if (!filter_consistent(&f))
		return EXIT_ERROR;
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	if (f.has_sender) {
		if (open_ident(ctl) < 0)
			return EXIT_ERROR;
		f.sender_org_len = ident_sender_org(ctl->ident, f.sender_org,
						    f.sender, f.sender_len);
	}
	hashed_filter(ctl, &f);
	if (ctl->json)
		putchar('[');
	rc = db_walk(ctl->db, f.clients ? DB_CLIENTS : DB_TRIPLETS, false,
		     list_one, &l);
	if (ctl->json)
		printf("]\n");
	else if (l.n == 0)
		printf("no %s match\n", f.clients ? "client records" : "triplets");
	if (rc < 0)
		return db_failed("cannot list", rc);
	return 0;
}
