/*
 * greyholdctl - administer greyhold's database while the daemon runs.
 *
 * Works directly on the LMDB environment (LMDB allows a second process;
 * writers take turns on LMDB's write lock, and the daemon never holds it
 * across an answer, so its answers do not wait on us beyond one commit).
 * Every command that changes many records does it in transactions of at
 * most DB_CHUNK records (db_walk(), db_merge()), so the daemon's store
 * thread gets the lock back within milliseconds.  Commands are found in
 * one table; each parses its own arguments.
 *
 * Reading commands open the database read-only and never create it;
 * changing commands need an existing database; load and import-postgrey
 * create one.  Files named on the command line are opened before the
 * process, when root, becomes the database's owner.  Keys are built as
 * the daemon builds them (triplet_build() with the config's network sizes,
 * then privacy_apply() with the daemon's key file when privacy = yes).
 *
 * Exit codes: 0 success; 1 the thing asked about is not there (or, for
 * check, the request would be deferred); 2 usage or database error.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "answer.h"
#include "config.h"
#include "db.h"
#include "engine.h"
#include "log.h"
#include "policy.h"
#include "privacy.h"
#include "record.h"
#include "triplet.h"
#include "whitelist.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2

#define DUMP_MAGIC "greyhold-dump"
#define DUMP_VERSION 1
#define DUMP_MAX_LINE 8192
/* Shown text of one key part: each byte may become four. */
#define SHOWN_MAX (4 * TRIPLET_MAX_ADDR + 8)

struct ctl {
	const char *dbdir;
	bool dbdir_given;	/* --db: whatever the configured store */
	uint64_t max_size;
	bool json;
	db_t *db;
	const struct config *cfg;
	struct triplet_opts topts;
	struct engine_params params;
	int64_t now;
	bool privacy_on;		/* keys are keyed hashes (privacy = yes) */
	struct privacy privacy;
};

struct command {
	const char *name;
	const char *sub;	/* second word, or NULL */
	const char *usage;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

enum open_mode {
	OPEN_READ,	/* read-only; the database must exist */
	OPEN_WRITE,	/* the database must exist */
	OPEN_CREATE,	/* created when missing (load, import) */
};

/*
 * As root, become the owner of the database directory first, so files
 * LMDB creates (data.mdb, lock.mdb) stay usable by the daemon's user.
 */
static int
become_db_owner(const char *dir)
{
	struct stat st;

	if (getuid() != 0 || stat(dir, &st) < 0 || st.st_uid == 0)
		return 0;
	if (setgroups(0, NULL) < 0 || setgid(st.st_gid) < 0 ||
	    setuid(st.st_uid) < 0) {
		fprintf(stderr, "greyholdctl: cannot switch to the owner of %s: "
			"%s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* A database must already be in dir: say clearly what is missing. */
static int
check_db_present(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "greyholdctl: database directory %s does "
				"not exist (see --db, -c and dbdir)\n", dir);
		else
			fprintf(stderr, "greyholdctl: cannot access database "
				"directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "greyholdctl: %s is not a directory\n", dir);
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >=
	    sizeof(path)) {
		fprintf(stderr, "greyholdctl: database path too long\n");
		return -1;
	}
	if (stat(path, &st) == 0)
		return 0;
	if (errno == ENOENT)
		fprintf(stderr, "greyholdctl: no greyhold database in %s "
			"(data.mdb is missing; has greyhold run there?)\n", dir);
	else
		fprintf(stderr, "greyholdctl: cannot access %s: %s\n", path,
			strerror(errno));
	return -1;
}

/*
 * With privacy = yes, keys are hashed with the daemon's secret key, found
 * as the daemon finds it (beside the database unless privacy_key_file).
 * A new database (load, import) gets a new key, as on the daemon's start.
 */
static int
load_privacy(struct ctl *ctl, bool create, char *err, size_t errsz)
{
	char path[PATH_MAX];
	int rc;

	if (ctl->cfg->privacy_key_file[0] != '\0')
		snprintf(path, sizeof(path), "%s", ctl->cfg->privacy_key_file);
	else
		snprintf(path, sizeof(path), "%s/privacy.key", ctl->dbdir);
	rc = privacy_load_key(&ctl->privacy, path, create, err, errsz);
	ctl->privacy_on = rc == 0;
	return rc;
}

static int
open_db(struct ctl *ctl, enum open_mode mode)
{
	struct db_options o = {
		.dir = ctl->dbdir,
		.max_size = ctl->max_size,
		.readonly = mode == OPEN_READ,
	};
	char err[512];
	int rc;

	if (!ctl->dbdir_given && strcmp(ctl->cfg->store, "lmdb") != 0) {
		fprintf(stderr, "greyholdctl: store = %s: this command works on "
			"an LMDB database only (name one with --db)\n",
			ctl->cfg->store);
		return -1;
	}
	if (become_db_owner(ctl->dbdir) < 0)
		return -1;
	if (mode != OPEN_CREATE && check_db_present(ctl->dbdir) < 0)
		return -1;
	rc = db_open(&ctl->db, &o, err, sizeof(err));
	if (rc == 0 && ctl->cfg->privacy)
		rc = load_privacy(ctl, mode == OPEN_CREATE, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return -1;
	}
	return 0;
}

/* Report a database error; returns EXIT_ERROR. */
static int
db_failed(const char *what, int rc)
{
	fprintf(stderr, "greyholdctl: %s: %s\n", what, strerror(-rc));
	return EXIT_ERROR;
}

static int
parse_kind(const char *word, enum whitelist_kind *kind)
{
	if (strcmp(word, "client") == 0)
		*kind = WHITELIST_CLIENTS;
	else if (strcmp(word, "recipient") == 0)
		*kind = WHITELIST_RECIPIENTS;
	else {
		fprintf(stderr, "greyholdctl: expected 'client' or 'recipient', "
			"got '%s'\n", word);
		return -1;
	}
	return 0;
}

/* ---- output ---------------------------------------------------------------- */

/* JSON string of len bytes: escapes quotes, backslashes, control bytes. */
static void
json_mem(FILE *out, const char *s, size_t len)
{
	size_t i;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void
json_string(FILE *out, const char *s)
{
	json_mem(out, s, strlen(s));
}

static void
format_time(char *out, size_t outsz, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0) {
		snprintf(out, outsz, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "3d 4h", "12m 5s", "40s" */
static void
format_age(char *out, size_t outsz, int64_t secs)
{
	const char *sign = secs < 0 ? "-" : "";

	if (secs < 0)
		secs = -secs;
	if (secs >= 86400)
		snprintf(out, outsz, "%s%" PRId64 "d %" PRId64 "h", sign,
			 secs / 86400, secs % 86400 / 3600);
	else if (secs >= 3600)
		snprintf(out, outsz, "%s%" PRId64 "h %" PRId64 "m", sign,
			 secs / 3600, secs % 3600 / 60);
	else if (secs >= 60)
		snprintf(out, outsz, "%s%" PRId64 "m %" PRId64 "s", sign,
			 secs / 60, secs % 60);
	else
		snprintf(out, outsz, "%s%" PRId64 "s", sign, secs);
}

static void
format_bytes(char *out, size_t outsz, uint64_t n)
{
	if (n >= (1ULL << 30))
		snprintf(out, outsz, "%.1f GiB", (double)n / (1ULL << 30));
	else if (n >= (1ULL << 20))
		snprintf(out, outsz, "%.1f MiB", (double)n / (1ULL << 20));
	else if (n >= 1024)
		snprintf(out, outsz, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, outsz, "%" PRIu64 " B", n);
}

/* A keyed hash (privacy) as text: "h:" and its bytes in hex. */
static const char *
hash_text(char *out, size_t outsz, const char *s, size_t len)
{
	size_t o = (size_t)snprintf(out, outsz, "h:");

	for (size_t i = 0; i < len && o + 3 <= outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%02x",
				      (unsigned char)s[i]);
	return out;
}

/*
 * A key part for a terminal: untrusted text escaped, the null sender as
 * "<>", a hash as hash_text().
 */
static const char *
shown(char *out, size_t outsz, const char *s, size_t len, bool hashed)
{
	if (hashed)
		return hash_text(out, outsz, s, len);
	if (len == 0)
		return "<>";
	return log_escape(out, outsz, s, len, TRIPLET_MAX_ADDR);
}

static void
json_part(FILE *out, const char *s, size_t len, bool hashed)
{
	char hex[2 * PRIVACY_HASH_BYTES + 8];

	if (hashed)
		json_string(out, hash_text(hex, sizeof(hex), s, len));
	else
		json_mem(out, s, len);
}

/* ---- keys and arguments ------------------------------------------------------ */

/*
 * The parts of a stored key: a triplet key, CLIENT \0 SENDER \0 RECIPIENT
 * or with privacy 'h' and three keyed hashes; a client key (sender NULL),
 * CLIENT or 'h' and one hash.  Client keys in text never start with 'h'
 * (they are addresses, or Postfix's "unknown").
 */
struct key_parts {
	bool hashed;
	const char *client, *sender, *rcpt;
	size_t client_len, sender_len, rcpt_len;
};

static bool
split_hashed(const char *key, size_t len, struct key_parts *p)
{
	if (len != PRIVACY_KEY_LEN || key[0] != 'h')
		return false;
	p->hashed = true;
	p->client = key + 1;
	p->sender = p->client + PRIVACY_HASH_BYTES;
	p->rcpt = p->sender + PRIVACY_HASH_BYTES;
	p->client_len = p->sender_len = p->rcpt_len = PRIVACY_HASH_BYTES;
	return true;
}

static bool
split_key(const char *key, size_t len, struct key_parts *p)
{
	const char *z1 = memchr(key, '\0', len);
	const char *z2;

	if (split_hashed(key, len, p))
		return true;
	p->hashed = false;
	if (z1 == NULL)
		return false;
	z2 = memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - key));
	if (z2 == NULL || memchr(z2 + 1, '\0', len - (size_t)(z2 + 1 - key)))
		return false;
	p->client = key;
	p->client_len = (size_t)(z1 - key);
	p->sender = z1 + 1;
	p->sender_len = (size_t)(z2 - p->sender);
	p->rcpt = z2 + 1;
	p->rcpt_len = len - (size_t)(p->rcpt - key);
	return true;
}

static void
client_parts(const char *key, size_t len, struct key_parts *p)
{
	memset(p, 0, sizeof(*p));
	p->hashed = len == PRIVACY_CLIENT_LEN && key[0] == 'h';
	p->client = p->hashed ? key + 1 : key;
	p->client_len = p->hashed ? PRIVACY_HASH_BYTES : len;
}

static bool
hash_eq(const struct key_parts *p, const char *part, const uint8_t *hash)
{
	return p->hashed && memcmp(part, hash, PRIVACY_HASH_BYTES) == 0;
}

/* The null sender may be given as "" or "<>". */
static const char *
sender_arg(const char *s)
{
	return strcmp(s, "<>") == 0 ? "" : s;
}

/* A triplet's key as shown (text) and as stored (hashed with privacy). */
struct keyed {
	struct triplet_key plain;
	struct triplet_key stored;
};

static void
store_form(const struct ctl *ctl, struct keyed *kd)
{
	kd->stored = kd->plain;
	if (ctl->privacy_on)
		privacy_apply(&ctl->privacy, &kd->stored);
}

/* Build the key as the daemon does; call after open_db() (privacy). */
static void
build_key(const struct ctl *ctl, struct keyed *kd, const char *client,
	  const char *sender, const char *rcpt)
{
	sender = sender_arg(sender);
	triplet_build(&kd->plain, client, strlen(client), sender, strlen(sender),
		      rcpt, strlen(rcpt), &ctl->topts);
	store_form(ctl, kd);
}

/* The stored client key of a client text: itself, or 'h' and its hash. */
static size_t
client_store_key(const struct ctl *ctl, char *out, const char *client,
		 size_t len)
{
	if (!ctl->privacy_on) {
		memmove(out, client, len);
		return len;
	}
	privacy_hash(&ctl->privacy, PRIVACY_CLIENT, client, len,
		     (uint8_t *)out + 1);
	out[0] = 'h';
	return PRIVACY_CLIENT_LEN;
}

/* Parse "A/P" (a stored client key) into an address and prefix. */
static bool
parse_net(const char *s, size_t len, struct addr *a, unsigned *prefix)
{
	const char *slash = memchr(s, '/', len);
	char digits[4];
	size_t dlen;
	char *end;
	unsigned long p;

	if (slash == NULL) {
		if (addr_parse(a, s, len) < 0)
			return false;
		*prefix = addr_bits(a);
		return true;
	}
	dlen = len - (size_t)(slash + 1 - s);
	if (dlen == 0 || dlen >= sizeof(digits) ||
	    addr_parse(a, s, (size_t)(slash - s)) < 0)
		return false;
	memcpy(digits, slash + 1, dlen);
	digits[dlen] = '\0';
	if (!isdigit((unsigned char)digits[0]))
		return false;
	p = strtoul(digits, &end, 10);
	if (*end != '\0' || p > addr_bits(a))
		return false;
	*prefix = (unsigned)p;
	return true;
}

static bool
parse_u64_arg(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

/* Whether the state of a record is "passed" (a triplet) or "listed". */
static const char *
triplet_state(const struct record *r)
{
	return r->passes > 0 ? "passed" : "pending";
}

static const char *
client_state(const struct ctl *ctl, const struct record *r)
{
	return engine_client_listed(r, ctl->now, &ctl->params) ? "listed"
							       : "counting";
}
/* ---- whitelist ---------------------------------------------------------- */

static int
cmd_whitelist_add(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"expires", required_argument, NULL, 'e'},
		{"comment", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0},
	};
	struct db_wl_entry e;
	whitelist_t *check;
	int64_t ttl = 0;
	char err[300];
	int ch, rc;

	memset(&e, 0, sizeof(e));
	optind = 0;	/* glibc: restart scanning on this new argv */
	while ((ch = getopt_long(argc, argv, "e:m:", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			if (config_parse_duration(optarg, &ttl) < 0 || ttl <= 0) {
				fprintf(stderr, "greyholdctl: --expires takes a "
					"duration such as 12h or 30d\n");
				return EXIT_ERROR;
			}
			break;
		case 'm':
			if (strlen(optarg) > DB_WL_COMMENT_MAX) {
				fprintf(stderr, "greyholdctl: --comment is longer "
					"than %d bytes\n", DB_WL_COMMENT_MAX);
				return EXIT_ERROR;
			}
			snprintf(e.comment, sizeof(e.comment), "%s", optarg);
			break;
		default:
			return EXIT_ERROR;
		}
	}
	if (argc - optind != 2)
		return -1;
	if (parse_kind(argv[optind], &e.kind) < 0)
		return EXIT_ERROR;
	/* Validate exactly as the daemon will when it loads the entry. */
	if (whitelist_create(&check) < 0)
		return EXIT_ERROR;
	rc = whitelist_add(check, e.kind, argv[optind + 1], err, sizeof(err));
	whitelist_free(check);
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return EXIT_ERROR;
	}
	snprintf(e.entry, sizeof(e.entry), "%s", argv[optind + 1]);
	e.added = (int64_t)time(NULL);
	e.expires = ttl > 0 ? e.added + ttl : 0;
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	rc = db_wl_put(ctl->db, &e);
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: cannot add entry: %s\n", strerror(-rc));
		return EXIT_ERROR;
	}
	if (ctl->json) {
		printf("{\"added\":true,\"kind\":\"%s\",\"entry\":",
		       argv[optind]);
		json_string(stdout, e.entry);
		printf("}\n");
	} else {
		printf("added %s whitelist entry %s\n", argv[optind], e.entry);
	}
	return 0;
}

static int
cmd_whitelist_del(struct ctl *ctl, int argc, char **argv)
{
	enum whitelist_kind kind;
	int rc;

	if (argc != 3)
		return -1;
	if (parse_kind(argv[1], &kind) < 0)
		return EXIT_ERROR;
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	rc = db_wl_del(ctl->db, kind, argv[2]);
	if (rc < 0 && rc != -ENOENT) {
		fprintf(stderr, "greyholdctl: cannot delete entry: %s\n",
			strerror(-rc));
		return EXIT_ERROR;
	}
	if (ctl->json)
		printf("{\"deleted\":%s}\n", rc == 0 ? "true" : "false");
	else if (rc == 0)
		printf("deleted %s whitelist entry %s\n", argv[1], argv[2]);
	else
		fprintf(stderr, "greyholdctl: no %s whitelist entry %s\n",
			argv[1], argv[2]);
	return rc == 0 ? 0 : EXIT_NOTFOUND;
}

struct list_state {
	struct ctl *ctl;
	size_t n;
	int64_t now;
};

static int
print_wl_entry(const struct db_wl_entry *e, void *arg)
{
	struct list_state *st = arg;
	const char *kind = e->kind == WHITELIST_CLIENTS ? "client" : "recipient";
	bool expired = e->expires != 0 && e->expires <= st->now;
	char added[32], expires[32];

	format_time(added, sizeof(added), e->added);
	format_time(expires, sizeof(expires), e->expires);
	if (st->ctl->json) {
		printf("%s{\"kind\":\"%s\",\"entry\":", st->n > 0 ? "," : "", kind);
		json_string(stdout, e->entry);
		printf(",\"added\":%" PRId64 ",\"expires\":%" PRId64
		       ",\"expired\":%s,\"comment\":", e->added, e->expires,
		       expired ? "true" : "false");
		json_string(stdout, e->comment);
		printf("}");
	} else {
		if (st->n == 0)
			printf("%-9s %-40s %-20s %-20s %s\n", "KIND", "ENTRY",
			       "ADDED", "EXPIRES", "COMMENT");
		printf("%-9s %-40s %-20s %-20s %s%s\n", kind, e->entry, added,
		       expires, expired ? "(expired) " : "", e->comment);
	}
	st->n++;
	return 0;
}

static int
cmd_whitelist_list(struct ctl *ctl, int argc, char **argv)
{
	struct list_state st = {ctl, 0, (int64_t)time(NULL)};
	int rc;

	if (argc != 1)
		return -1;
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	if (ctl->json)
		printf("[");
	rc = db_wl_foreach(ctl->db, print_wl_entry, &st);
	if (ctl->json)
		printf("]\n");
	else if (st.n == 0)
		printf("no live whitelist entries\n");
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: cannot list entries: %s\n",
			strerror(-rc));
		return EXIT_ERROR;
	}
	return 0;
}


/* ---- list ------------------------------------------------------------------ */

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
	bool has_sender, has_rcpt;
	char sender[TRIPLET_MAX_ADDR];
	size_t sender_len;
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
	/* A client key that is not an address (Postfix's "unknown"). */
	for (size_t i = 0; i <= len; i++)
		f->client_text[i] = (char)tolower((unsigned char)text[i]);
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
 * the hash of its network, as the daemon keys it; a network or text
 * cannot be hashed into anything that matches), sender and recipient.
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
		return f->hashed && f->client_is_addr &&
		       hash_eq(p, client, f->client_hash);
	if (!f->client_is_net)
		return len == strlen(f->client_text) &&
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

static bool
key_matches(const struct filter *f, const struct key_parts *p)
{
	return client_matches(f, p) &&
	       (!f->has_sender || part_matches(f, p, p->sender, p->sender_len,
					       f->sender, f->sender_len,
					       f->sender_hash)) &&
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

static void
print_record_json(const struct ctl *ctl, const struct key_parts *p,
		  const struct record *r)
{
	printf("{\"client\":");
	json_part(stdout, p->client, p->client_len, p->hashed);
	if (p->sender != NULL) {
		printf(",\"sender\":");
		json_part(stdout, p->sender, p->sender_len, p->hashed);
		printf(",\"recipient\":");
		json_part(stdout, p->rcpt, p->rcpt_len, p->hashed);
	}
	printf(",\"state\":\"%s\",\"first_seen\":%" PRId64 ",\"last_seen\":%"
	       PRId64 ",\"passes\":%" PRIu32 "}",
	       p->sender != NULL ? triplet_state(r) : client_state(ctl, r),
	       r->first_seen, r->last_seen, r->passes);
}

static void
print_triplet_row(const struct key_parts *p, const struct record *r, bool head)
{
	char c[SHOWN_MAX], s[SHOWN_MAX], t[SHOWN_MAX];
	char first[32], last[32];

	if (head)
		printf("%-18s %-30s %-30s %-7s %-20s %-20s %s\n", "CLIENT",
		       "SENDER", "RECIPIENT", "STATE", "FIRST SEEN", "LAST SEEN",
		       "PASSES");
	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	printf("%-18s %-30s %-30s %-7s %-20s %-20s %" PRIu32 "\n",
	       shown(c, sizeof(c), p->client, p->client_len, p->hashed),
	       shown(s, sizeof(s), p->sender, p->sender_len, p->hashed),
	       shown(t, sizeof(t), p->rcpt, p->rcpt_len, p->hashed),
	       triplet_state(r),
	       first, last, r->passes);
}

static void
print_client_row(const struct ctl *ctl, const struct key_parts *p,
		 const struct record *r, bool head)
{
	char c[SHOWN_MAX], first[32], last[32];

	if (head)
		printf("%-43s %-8s %-20s %-20s %s\n", "CLIENT", "STATE",
		       "FIRST PASS", "LAST PASS", "PASSES");
	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	printf("%-43s %-8s %-20s %-20s %" PRIu32 "\n",
	       shown(c, sizeof(c), p->client, p->client_len, p->hashed),
	       client_state(ctl, r), first, last, r->passes);
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

static int
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

/* ---- show, delete, pass -------------------------------------------------- */

static void
key_parts_of(const struct triplet_key *k, struct key_parts *p)
{
	if (!split_key(k->key, k->key_len, p)) {
		/* cannot happen: triplet_build keeps NULs out of the parts */
		memset(p, 0, sizeof(*p));
	}
}

static void
print_key_human(const struct ctl *ctl, const struct keyed *kd)
{
	struct key_parts p;
	char c[SHOWN_MAX], s[SHOWN_MAX], t[SHOWN_MAX];

	key_parts_of(&kd->plain, &p);
	printf("key:        client %s, sender %s, recipient %s%s\n",
	       shown(c, sizeof(c), p.client, p.client_len, false),
	       shown(s, sizeof(s), p.sender, p.sender_len, false),
	       shown(t, sizeof(t), p.rcpt, p.rcpt_len, false),
	       ctl->privacy_on ? " (stored as keyed hashes)" : "");
}

static void
print_triplet_human(const struct ctl *ctl, const struct record *r)
{
	char first[32], last[32], age[32];

	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	format_age(age, sizeof(age), ctl->now - r->first_seen);
	printf("triplet:    %s, first seen %s (%s ago), last seen %s, "
	       "%" PRIu32 " pass%s\n", triplet_state(r), first, age, last,
	       r->passes, r->passes == 1 ? "" : "es");
}

static void
print_client_human(const struct ctl *ctl, const char *client,
		   const struct record *r)
{
	char last[32];

	if (r == NULL) {
		printf("client:     %s has no counted passes\n", client);
		return;
	}
	format_time(last, sizeof(last), r->last_seen);
	printf("client:     %s: %s, %" PRIu32 " counted pass%s (auto-whitelist "
	       "after %u), last %s\n", client, client_state(ctl, r), r->passes,
	       r->passes == 1 ? "" : "es", ctl->params.awl_passes, last);
}

/* Look a record up; *found false when absent.  Returns 0 or EXIT_ERROR. */
static int
lookup(struct ctl *ctl, enum db_table t, const char *key, size_t len,
       struct record *r, bool *found)
{
	int rc = db_record_get(ctl->db, t, key, len, r);

	*found = rc == 0;
	if (rc == 0 || rc == -ENOENT)
		return 0;
	if (rc == -EBADMSG) {
		fprintf(stderr, "greyholdctl: warning: the stored record cannot "
			"be decoded; greyhold treats it as absent\n");
		return 0;
	}
	return db_failed("cannot read the database", rc);
}

/* Opens an object: {"key":{...},"hashed":B */
static void
print_key_json(const struct ctl *ctl, const struct keyed *kd)
{
	struct key_parts p;

	key_parts_of(&kd->plain, &p);
	printf("{\"key\":{\"client\":");
	json_mem(stdout, p.client, p.client_len);
	printf(",\"sender\":");
	json_mem(stdout, p.sender, p.sender_len);
	printf(",\"recipient\":");
	json_mem(stdout, p.rcpt, p.rcpt_len);
	printf("},\"hashed\":%s", ctl->privacy_on ? "true" : "false");
}

/* A record under the plain (shown) key parts. */
static void
print_plain_json(const struct ctl *ctl, const struct keyed *kd, bool client,
		 const struct record *r)
{
	struct key_parts p;

	if (r == NULL) {
		printf("null");
		return;
	}
	key_parts_of(&kd->plain, &p);
	if (client)
		p.sender = NULL;
	print_record_json(ctl, &p, r);
}

static int
cmd_show(struct ctl *ctl, int argc, char **argv)
{
	struct keyed kd;
	struct record r, c;
	bool found, cfound;

	if (argc != 4)
		return -1;
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	build_key(ctl, &kd, argv[1], argv[2], argv[3]);
	if (lookup(ctl, DB_TRIPLETS, kd.stored.key, kd.stored.key_len, &r,
		   &found) != 0 ||
	    lookup(ctl, DB_CLIENTS, kd.stored.client, kd.stored.client_len, &c,
		   &cfound) != 0)
		return EXIT_ERROR;
	if (ctl->json) {
		print_key_json(ctl, &kd);
		printf(",\"triplet\":");
		print_plain_json(ctl, &kd, false, found ? &r : NULL);
		printf(",\"client\":");
		print_plain_json(ctl, &kd, true, cfound ? &c : NULL);
		printf("}\n");
	} else {
		print_key_human(ctl, &kd);
		if (found)
			print_triplet_human(ctl, &r);
		else
			printf("triplet:    not in the database\n");
		print_client_human(ctl, kd.plain.client, cfound ? &c : NULL);
	}
	return found ? 0 : EXIT_NOTFOUND;
}

static int
cmd_delete(struct ctl *ctl, int argc, char **argv)
{
	struct keyed kd;
	int rc;

	if (argc != 4)
		return -1;
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	build_key(ctl, &kd, argv[1], argv[2], argv[3]);
	rc = db_record_del(ctl->db, DB_TRIPLETS, kd.stored.key,
			   kd.stored.key_len);
	if (rc < 0 && rc != -ENOENT)
		return db_failed("cannot delete", rc);
	if (ctl->json)
		printf("{\"deleted\":%s}\n", rc == 0 ? "true" : "false");
	else if (rc == 0)
		printf("deleted the triplet\n");
	else
		fprintf(stderr, "greyholdctl: no such triplet\n");
	return rc == 0 ? 0 : EXIT_NOTFOUND;
}

struct pass_arg {
	int64_t now;
	uint32_t passes;	/* at least this many */
	bool was_present;
	struct record result;
};

static bool
mark_passed(const struct record *cur, struct record *out, void *arg)
{
	struct pass_arg *a = arg;

	a->was_present = cur != NULL;
	if (cur != NULL) {
		*out = *cur;
	} else {
		out->first_seen = a->now;
		out->passes = 0;
	}
	out->last_seen = a->now;
	if (out->passes < a->passes)
		out->passes = a->passes;
	a->result = *out;
	return true;
}

static int
pass_client(struct ctl *ctl, const char *ip)
{
	char client[TRIPLET_MAX_CLIENT], key[TRIPLET_MAX_CLIENT];
	size_t len, klen;
	struct pass_arg a = {ctl->now, ctl->params.awl_passes, false, {0, 0, 0}};
	int rc;

	if (ctl->params.awl_passes == 0) {
		fprintf(stderr, "greyholdctl: the auto-whitelist is off "
			"(auto_whitelist_clients = 0); use 'whitelist add "
			"client' instead\n");
		return EXIT_ERROR;
	}
	if (!triplet_client(client, sizeof(client), &len, ip, strlen(ip),
			    &ctl->topts)) {
		fprintf(stderr, "greyholdctl: '%s' is not an IP address\n", ip);
		return EXIT_ERROR;
	}
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	klen = client_store_key(ctl, key, client, len);
	rc = db_record_update(ctl->db, DB_CLIENTS, key, klen, mark_passed, &a);
	if (rc < 0)
		return db_failed("cannot update the client", rc);
	if (ctl->json)
		printf("{\"client\":\"%s\",\"passes\":%" PRIu32 "}\n", client,
		       a.result.passes);
	else
		printf("client %s auto-whitelisted (%" PRIu32 " passes)\n",
		       client, a.result.passes);
	return 0;
}

static int
pass_triplet(struct ctl *ctl, char **argv)
{
	struct keyed kd;
	struct pass_arg a = {ctl->now, 1, false, {0, 0, 0}};
	int rc;

	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	build_key(ctl, &kd, argv[0], argv[1], argv[2]);
	rc = db_record_update(ctl->db, DB_TRIPLETS, kd.stored.key,
			      kd.stored.key_len, mark_passed, &a);
	if (rc < 0)
		return db_failed("cannot update the triplet", rc);
	if (ctl->json)
		printf("{\"passed\":true,\"was_present\":%s}\n",
		       a.was_present ? "true" : "false");
	else
		printf("triplet marked passed%s\n",
		       a.was_present ? "" : " (it was not in the database)");
	return 0;
}

static int
cmd_pass(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"client", required_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	const char *client = NULL;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'C')
			return EXIT_ERROR;
		client = optarg;
	}
	if (client != NULL)
		return argc == optind ? pass_client(ctl, client) : -1;
	if (argc - optind != 3)
		return -1;
	return pass_triplet(ctl, argv + optind);
}

/* ---- check ----------------------------------------------------------------- */

/* What the daemon would do with one request, and why. */
struct explanation {
	bool pass;
	const char *reason;		/* as the daemon logs it */
	char rule[WHITELIST_MAX_ENTRY + DB_WL_COMMENT_MAX + 64];
	char reply[ANSWER_REPLY_MAX];
	struct keyed key;
	size_t live_entries;
	bool wl_checked;		/* reached the whitelists */
	bool awl_checked;		/* reached the auto-whitelist */
	bool awl_on;			/* auto-whitelist applies to this client */
	bool have_client;
	struct record client;
	bool triplet_looked_up;
	bool have_triplet;
	struct record triplet;
	struct engine_verdict verdict;
};

struct live_list {
	struct db_wl_entry *v;
	size_t n, cap;
	int64_t now;
};

static int
collect_live(const struct db_wl_entry *e, void *arg)
{
	struct live_list *l = arg;
	struct db_wl_entry *grown;

	if (e->expires != 0 && e->expires <= l->now)
		return 0;	/* the daemon ignores expired entries */
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		grown = realloc(l->v, l->cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->v = grown;
	}
	l->v[l->n++] = *e;
	return 0;
}

static struct policy_str
pstr(const char *s)
{
	struct policy_str p = {s, s != NULL ? strlen(s) : 0};
	return p;
}

/* Whether one live entry matches the request (built alone, as a list). */
static bool
live_entry_matches(const struct db_wl_entry *e, const struct policy_request *r)
{
	whitelist_t *wl;
	char err[300];
	bool hit = false;

	if (whitelist_create(&wl) < 0)
		return false;
	if (whitelist_add(wl, e->kind, e->entry, err, sizeof(err)) == 0 &&
	    whitelist_finish(wl) == 0) {
		hit = e->kind == WHITELIST_CLIENTS
		      ? whitelist_match_client(wl, r->client_address.ptr,
					       r->client_address.len,
					       r->client_name.ptr,
					       r->client_name.len)
		      : whitelist_match_recipient(wl, r->recipient.ptr,
						  r->recipient.len);
	}
	whitelist_free(wl);
	return hit;
}

static bool
live_match(const struct live_list *l, enum whitelist_kind kind,
	   const struct policy_request *r, struct explanation *x)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct db_wl_entry *e = &l->v[i];

		if (e->kind != kind || !live_entry_matches(e, r))
			continue;
		snprintf(x->rule, sizeof(x->rule), "live %s entry %s%s%s",
			 kind == WHITELIST_CLIENTS ? "client" : "recipient",
			 e->entry, e->comment[0] ? ": " : "", e->comment);
		return true;
	}
	return false;
}

/*
 * The whitelists in the daemon's order: static client, live client,
 * static recipient, live recipient.  Returns 0 or EXIT_ERROR.
 */
static int
check_whitelists(struct ctl *ctl, const struct policy_request *r,
		 struct explanation *x)
{
	struct live_list live = {NULL, 0, 0, ctl->now};
	whitelist_t *wl;
	char err[1024];
	int rc;

	if (whitelist_load_config(&wl, ctl->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return EXIT_ERROR;
	}
	rc = db_wl_foreach(ctl->db, collect_live, &live);
	if (rc < 0) {
		whitelist_free(wl);
		free(live.v);
		return db_failed("cannot read the live whitelist", rc);
	}
	x->live_entries = live.n;
	x->wl_checked = true;
	if (whitelist_match_client(wl, r->client_address.ptr,
				   r->client_address.len, r->client_name.ptr,
				   r->client_name.len)) {
		x->reason = "client whitelist";
		snprintf(x->rule, sizeof(x->rule), "a client entry of the "
			 "whitelist files");
	} else if (live_match(&live, WHITELIST_CLIENTS, r, x)) {
		x->reason = "client whitelist (live)";
	} else if (whitelist_match_recipient(wl, r->recipient.ptr,
					     r->recipient.len)) {
		x->reason = "recipient whitelist";
		snprintf(x->rule, sizeof(x->rule), "a recipient entry of the "
			 "whitelist files");
	} else if (live_match(&live, WHITELIST_RECIPIENTS, r, x)) {
		x->reason = "recipient whitelist (live)";
	}
	x->pass = x->reason != NULL;
	whitelist_free(wl);
	free(live.v);
	return 0;
}

static int
check_awl(struct ctl *ctl, struct explanation *x)
{
	x->awl_checked = true;
	x->awl_on = ctl->params.awl_passes > 0 && x->key.plain.client_is_net;
	if (!x->awl_on)
		return 0;
	if (lookup(ctl, DB_CLIENTS, x->key.stored.client,
		   x->key.stored.client_len,
		   &x->client, &x->have_client) != 0)
		return EXIT_ERROR;
	if (engine_client_listed(x->have_client ? &x->client : NULL, ctl->now,
				 &ctl->params)) {
		x->pass = true;
		x->reason = engine_reason_name(ENGINE_AWL);
	}
	return 0;
}

static void
hostname_for(const struct config *cfg, char *out, size_t outsz)
{
	if (cfg->hostname[0] != '\0')
		snprintf(out, outsz, "%s", cfg->hostname);
	else if (gethostname(out, outsz) < 0)
		snprintf(out, outsz, "localhost");
	out[outsz - 1] = '\0';
}

static int
check_triplet(struct ctl *ctl, const struct policy_request *r,
	      struct explanation *x)
{
	struct record updated;
	char domain[256], host[256];

	x->triplet_looked_up = true;
	if (lookup(ctl, DB_TRIPLETS, x->key.stored.key, x->key.stored.key_len,
		   &x->triplet, &x->have_triplet) != 0)
		return EXIT_ERROR;
	/* On copies: the result is shown, never stored. */
	engine_triplet(x->have_triplet ? &x->triplet : NULL, ctl->now,
		       &ctl->params, &updated, &x->verdict);
	x->pass = x->verdict.action == ENGINE_PASS;
	x->reason = engine_reason_name(x->verdict.reason);
	if (x->verdict.reason == ENGINE_PASSED && ctl->cfg->x_greylist_header) {
		hostname_for(ctl->cfg, host, sizeof(host));
		answer_prepend(x->reply, sizeof(x->reply), x->verdict.delay,
			       host, ctl->now);
	} else {
		answer_rcpt_domain(domain, sizeof(domain), r);
		answer_reply(x->reply, sizeof(x->reply), ctl->cfg, &x->verdict,
			     0, domain);
	}
	return 0;
}

static int
explain(struct ctl *ctl, const struct policy_request *r, struct explanation *x)
{
	int rc;

	triplet_build(&x->key.plain, r->client_address.ptr,
		      r->client_address.len, r->sender.ptr, r->sender.len,
		      r->recipient.ptr, r->recipient.len, &ctl->topts);
	store_form(ctl, &x->key);
	answer_dunno(x->reply, sizeof(x->reply));
	if (answer_classify(r, ctl->cfg) == ANSWER_AUTHENTICATED) {
		x->pass = true;
		x->reason = "authenticated";
		snprintf(x->rule, sizeof(x->rule), "sasl_username is set and "
			 "greylist_authenticated is no");
		return 0;
	}
	rc = check_whitelists(ctl, r, x);
	if (rc != 0 || x->pass)
		return rc;
	rc = check_awl(ctl, x);
	if (rc != 0 || x->pass)
		return rc;
	return check_triplet(ctl, r, x);
}

/* The reply without its final empty line, for display. */
static const char *
reply_line(struct explanation *x)
{
	char *nl = strchr(x->reply, '\n');

	if (nl != NULL)
		*nl = '\0';
	return x->reply;
}

static void
print_explanation_json(const struct ctl *ctl, struct explanation *x)
{
	print_key_json(ctl, &x->key);
	printf(",\"action\":\"%s\",\"reason\":", x->pass ? "pass" : "defer");
	json_string(stdout, x->reason);
	printf(",\"rule\":");
	json_string(stdout, x->rule);
	printf(",\"reply\":");
	json_string(stdout, reply_line(x));
	printf(",\"seconds_left\":%" PRId64 ",\"live_whitelist_entries\":%zu"
	       ",\"client\":", x->pass ? 0 : x->verdict.seconds_left,
	       x->live_entries);
	print_plain_json(ctl, &x->key, true,
			 x->have_client ? &x->client : NULL);
	printf(",\"triplet\":");
	print_plain_json(ctl, &x->key, false,
			 x->have_triplet ? &x->triplet : NULL);
	printf(",\"changed\":false}\n");
}

static void
print_verdict_human(const struct explanation *x)
{
	char left[32];

	if (x->pass) {
		printf("verdict:    pass (%s)%s%s\n", x->reason,
		       x->rule[0] ? ": " : "", x->rule);
		return;
	}
	format_age(left, sizeof(left), x->verdict.seconds_left);
	printf("verdict:    defer (%s): a retry can pass in %s\n", x->reason,
	       left);
}

static void
print_explanation_human(const struct ctl *ctl, struct explanation *x)
{
	print_key_human(ctl, &x->key);
	if (x->wl_checked && x->rule[0] == '\0')
		printf("whitelists: no entry matches (files and %zu live "
		       "entr%s)\n", x->live_entries,
		       x->live_entries == 1 ? "y" : "ies");
	if (x->awl_checked && !x->awl_on)
		printf("client:     auto-whitelist %s\n",
		       ctl->params.awl_passes == 0 ? "off" :
		       "not used for this client (no usable address)");
	else if (x->awl_checked)
		print_client_human(ctl, x->key.plain.client,
				   x->have_client ? &x->client : NULL);
	if (x->triplet_looked_up && x->have_triplet)
		print_triplet_human(ctl, &x->triplet);
	else if (x->triplet_looked_up)
		printf("triplet:    not in the database\n");
	print_verdict_human(x);
	printf("reply:      %s\n", reply_line(x));
	printf("(nothing was changed)\n");
}

static int
parse_check_options(int argc, char **argv, struct policy_request *r)
{
	static const struct option opts[] = {
		{"client-name", required_argument, NULL, 'n'},
		{"sasl-username", required_argument, NULL, 'u'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			r->client_name = pstr(optarg);
		else if (ch == 'u')
			r->sasl_username = pstr(optarg);
		else
			return EXIT_ERROR;
	}
	if (argc - optind != 3)
		return -1;
	r->client_address = pstr(argv[optind]);
	r->sender = pstr(sender_arg(argv[optind + 1]));
	r->recipient = pstr(argv[optind + 2]);
	return 0;
}

static int
cmd_check(struct ctl *ctl, int argc, char **argv)
{
	struct policy_request r;
	struct explanation x;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&x, 0, sizeof(x));
	r.request = pstr("smtpd_access_policy");
	r.protocol_state = pstr("RCPT");
	r.client_name = pstr("unknown");	/* as Postfix says it */
	rc = parse_check_options(argc, argv, &r);
	if (rc != 0)
		return rc;
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	rc = explain(ctl, &r, &x);
	if (rc != 0)
		return rc;
	if (ctl->json)
		print_explanation_json(ctl, &x);
	else
		print_explanation_human(ctl, &x);
	return x.pass ? 0 : EXIT_NOTFOUND;
}

/* ---- stats ----------------------------------------------------------------- */

struct tally {
	const struct ctl *ctl;
	bool clients;
	uint64_t total, pending, passed, listed, expired, undecodable;
	int64_t oldest;		/* earliest first_seen; 0 when none */
};

static int
tally_one(const char *key, size_t len, const struct record *r, void *arg)
{
	struct tally *t = arg;
	const struct engine_params *p = &t->ctl->params;

	(void)key;
	(void)len;
	t->total++;
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

/* The daemon's metrics, fetched from metrics_listen. */
struct daemon_metrics {
	bool configured;
	bool reachable;
	char url[128];
	char why[256];		/* when not reachable */
	char *body;		/* Prometheus text, owned */
};

/* Wait for a non-blocking connect; returns 0 or an errno. */
static int
connect_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLOUT, 0};
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return errno;
	return soerr;
}

static int
connect_with_timeout(const char *host, unsigned port, int timeout_ms,
		     char *why, size_t whysz)
{
	struct addrinfo hints, *ai = NULL;
	char portstr[8];
	int fd, err = 0, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		snprintf(why, whysz, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err = errno;
	else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		err = errno == EINPROGRESS ? connect_wait(fd, timeout_ms) : errno;
	freeaddrinfo(ai);
	if (err != 0) {
		snprintf(why, whysz, "%s", strerror(err));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read until EOF, at most cap bytes, for at most timeout_ms. */
static char *
read_all(int fd, size_t cap, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char *buf = malloc(cap + 1);
	size_t n = 0;
	ssize_t got;

	if (buf == NULL)
		return NULL;
	while (n < cap && poll(&pfd, 1, timeout_ms) == 1) {
		got = read(fd, buf + n, cap - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	return buf;
}

static void
fetch_metrics(const struct config *cfg, struct daemon_metrics *m)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n"
				  "User-Agent: greyholdctl\r\n\r\n";
	char host[64];
	unsigned port;
	char *resp, *body;
	int fd;

	m->configured = cfg->metrics_listen[0] != '\0';
	if (!m->configured ||
	    config_parse_inet(cfg->metrics_listen, host, sizeof(host), &port) < 0)
		return;
	/* A wildcard listener is reached on loopback. */
	if (strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "::") == 0)
		snprintf(host, sizeof(host), "::1");
	snprintf(m->url, sizeof(m->url), strchr(host, ':') ?
		 "http://[%s]:%u/metrics" : "http://%s:%u/metrics", host, port);
	fd = connect_with_timeout(host, port, 1000, m->why, sizeof(m->why));
	if (fd < 0)
		return;
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		snprintf(m->why, sizeof(m->why), "%s", strerror(errno));
		close(fd);
		return;
	}
	resp = read_all(fd, 1 << 20, 2000);
	close(fd);
	body = resp != NULL ? strstr(resp, "\r\n\r\n") : NULL;
	if (body == NULL || strncmp(resp, "HTTP/1.", 7) != 0 ||
	    strncmp(resp + 8, " 200", 4) != 0) {
		snprintf(m->why, sizeof(m->why), "no valid HTTP answer");
		free(resp);
		return;
	}
	memmove(resp, body + 4, strlen(body + 4) + 1);
	m->body = resp;
	m->reachable = true;
}

/*
 * Call fn(name, value) for each sample line ("name{labels} value"),
 * skipping comments and histogram buckets.
 */
static void
each_sample(char *body, void (*fn)(const char *name, const char *value,
				   bool first))
{
	bool first = true;
	char *save = NULL;

	for (char *line = strtok_r(body, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(line, ' ');

		if (line[0] == '#' || sp == NULL || strstr(line, "_bucket{"))
			continue;
		*sp = '\0';
		fn(line, sp + 1, first);
		first = false;
	}
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

static void
print_stats_json(const struct ctl *ctl, const struct db_stats *s,
		 const struct tally *t, const struct tally *c,
		 struct daemon_metrics *m)
{
	printf("{\"dbdir\":");
	json_string(stdout, ctl->dbdir);
	printf(",\"triplets\":{\"total\":%" PRIu64 ",\"pending\":%" PRIu64
	       ",\"passed\":%" PRIu64 ",\"expired\":%" PRIu64 ",\"undecodable\":%"
	       PRIu64 ",\"oldest_first_seen\":%" PRId64 "}", t->total, t->pending,
	       t->passed, t->expired, t->undecodable, t->oldest);
	printf(",\"clients\":{\"total\":%" PRIu64 ",\"auto_whitelisted\":%"
	       PRIu64 ",\"expired\":%" PRIu64 "},\"live_whitelist_entries\":%"
	       PRIu64, c->total, c->listed, c->expired, s->whitelist);
	printf(",\"file_size\":%" PRIu64 ",\"map_size\":%" PRIu64 ",\"map_used\":%"
	       PRIu64 ",\"max_size\":%" PRIu64 ",\"readers\":%u",
	       s->file_size, s->map_size, s->map_used, s->max_size, s->readers);
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
	printf("}}\n");
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
	printf("live whitelist:  %" PRIu64 " entr%s\n", s->whitelist,
	       s->whitelist == 1 ? "y" : "ies");
	if (t->oldest != 0) {
		format_time(oldest, sizeof(oldest), t->oldest);
		format_age(age, sizeof(age), ctl->now - t->oldest);
		printf("oldest record:   first seen %s (%s ago)\n", oldest, age);
	}
	print_daemon_human(m);
}

static int
cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	struct tally t = {ctl, false, 0, 0, 0, 0, 0, 0, 0};
	struct tally c = {ctl, true, 0, 0, 0, 0, 0, 0, 0};
	struct daemon_metrics m;
	struct db_stats s;
	int rc;

	(void)argv;
	if (argc != 1)
		return -1;
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

/* ---- expire ---------------------------------------------------------------- */

static int
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

/* ---- forget ---------------------------------------------------------------- */

struct forget {
	bool by_ip;
	struct addr ip;
	char base[TRIPLET_MAX_ADDR];	/* lower case, no +extension */
	size_t base_len;
	char sender[TRIPLET_MAX_ADDR];	/* normalised as a sender */
	size_t sender_len;
	size_t triplets, clients, wl_entries;
	/*
	 * With privacy: hashes of the forms that can be hashed (a hash has
	 * no case or +extension to compare): the client network of the IP;
	 * the address normalised as a sender and without +extension; as a
	 * recipient as given (lower case) and without +extension.
	 */
	bool hashed;
	uint8_t client_h[PRIVACY_HASH_BYTES];
	uint8_t sender_h[2][PRIVACY_HASH_BYTES];
	uint8_t rcpt_h[2][PRIVACY_HASH_BYTES];
};

static bool
mem_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/*
 * An address in lower case without its +extension, into out
 * (TRIPLET_MAX_ADDR bytes): every variant of one mailbox gives one text.
 */
static size_t
mailbox_base(char *out, const char *addr, size_t len)
{
	size_t n = triplet_normalise_recipient(out, addr, len);
	char *at = memchr(out, '@', n);
	size_t local = at != NULL ? (size_t)(at - out) : n;
	char *plus = local > 1 ? memchr(out + 1, '+', local - 1) : NULL;

	if (plus == NULL)
		return n;
	if (at == NULL)
		return (size_t)(plus - out);
	memmove(plus, at, (size_t)(out + n - at));
	return n - (size_t)(at - plus);
}

static bool
net_contains(const char *client, size_t len, const struct addr *ip)
{
	struct addr net;
	unsigned prefix;

	return parse_net(client, len, &net, &prefix) &&
	       net.family == ip->family && addr_in_net(ip, &net, prefix);
}

static bool
mailbox_is(const struct forget *f, const char *addr, size_t len)
{
	char base[TRIPLET_MAX_ADDR];
	size_t n = mailbox_base(base, addr, len);

	return mem_eq(base, n, f->base, f->base_len);
}

static void
forget_hashes(const struct ctl *ctl, struct forget *f, const char *arg)
{
	const struct privacy *pv = &ctl->privacy;
	char text[TRIPLET_MAX_ADDR];
	size_t len;

	if (!ctl->privacy_on)
		return;
	f->hashed = true;
	if (f->by_ip) {
		triplet_client(text, sizeof(text), &len, arg, strlen(arg),
			       &ctl->topts);
		privacy_hash(pv, PRIVACY_CLIENT, text, len, f->client_h);
		return;
	}
	len = triplet_normalise_recipient(text, arg, strlen(arg));
	privacy_hash(pv, PRIVACY_SENDER, f->sender, f->sender_len, f->sender_h[0]);
	privacy_hash(pv, PRIVACY_SENDER, f->base, f->base_len, f->sender_h[1]);
	privacy_hash(pv, PRIVACY_RECIPIENT, text, len, f->rcpt_h[0]);
	privacy_hash(pv, PRIVACY_RECIPIENT, f->base, f->base_len, f->rcpt_h[1]);
}

static bool
forget_hashed(const struct forget *f, const struct key_parts *p)
{
	if (!f->hashed)
		return false;
	if (f->by_ip)
		return hash_eq(p, p->client, f->client_h);
	for (int i = 0; i < 2; i++) {
		if (hash_eq(p, p->sender, f->sender_h[i]) ||
		    hash_eq(p, p->rcpt, f->rcpt_h[i]))
			return true;
	}
	return false;
}

static int
forget_triplet(const char *key, size_t len, const struct record *r, void *arg)
{
	struct forget *f = arg;
	struct key_parts p;
	bool hit;

	(void)r;
	if (!split_key(key, len, &p))
		return DB_WALK_KEEP;
	if (p.hashed)
		hit = forget_hashed(f, &p);
	else if (f->by_ip)
		hit = net_contains(p.client, p.client_len, &f->ip);
	else
		hit = mem_eq(p.sender, p.sender_len, f->sender, f->sender_len) ||
		      mailbox_is(f, p.sender, p.sender_len) ||
		      mailbox_is(f, p.rcpt, p.rcpt_len);
	if (!hit)
		return DB_WALK_KEEP;
	f->triplets++;
	return DB_WALK_DELETE;
}

static int
forget_client(const char *key, size_t len, const struct record *r, void *arg)
{
	struct forget *f = arg;
	struct key_parts p;

	(void)r;
	client_parts(key, len, &p);
	if (p.hashed ? !forget_hashed(f, &p) : !net_contains(key, len, &f->ip))
		return DB_WALK_KEEP;
	f->clients++;
	return DB_WALK_DELETE;
}

static int
count_wl_mentions(const struct db_wl_entry *e, void *arg)
{
	struct forget *f = arg;

	if (mailbox_is(f, e->entry, strlen(e->entry)))
		f->wl_entries++;
	return 0;
}

static int
parse_forget_target(struct forget *f, const char *arg)
{
	size_t len = strlen(arg);

	if (addr_parse(&f->ip, arg, len) == 0) {
		f->by_ip = true;
	} else if (strchr(arg, '@') == NULL || len > TRIPLET_MAX_ADDR) {
		fprintf(stderr, "greyholdctl: forget takes an email address or "
			"an IP address, not '%s'\n", arg);
		return -1;
	}
	f->base_len = mailbox_base(f->base, arg, len);
	f->sender_len = triplet_normalise_sender(f->sender, arg, len);
	return 0;
}

static int
cmd_forget(struct ctl *ctl, int argc, char **argv)
{
	struct forget f;
	int rc;

	if (argc != 2)
		return -1;
	memset(&f, 0, sizeof(f));
	if (parse_forget_target(&f, argv[1]) < 0)
		return EXIT_ERROR;
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	forget_hashes(ctl, &f, argv[1]);
	rc = db_walk(ctl->db, DB_TRIPLETS, true, forget_triplet, &f);
	if (rc == 0 && f.by_ip)
		rc = db_walk(ctl->db, DB_CLIENTS, true, forget_client, &f);
	if (rc == 0)
		rc = db_wl_foreach(ctl->db, count_wl_mentions, &f);
	if (rc < 0)
		return db_failed("forget failed (records removed so far stay "
				 "removed; run it again)", rc);
	if (ctl->json) {
		printf("{\"forgotten\":");
		json_string(stdout, argv[1]);
		printf(",\"triplets\":%zu,\"clients\":%zu,"
		       "\"live_whitelist_entries\":%zu}\n", f.triplets, f.clients,
		       f.wl_entries);
	} else {
		printf("removed %zu triplet%s and %zu client record%s about %s\n",
		       f.triplets, f.triplets == 1 ? "" : "s", f.clients,
		       f.clients == 1 ? "" : "s", argv[1]);
		if (f.wl_entries > 0)
			printf("%zu live whitelist entr%s name%s it; remove them "
			       "with 'whitelist del' if they should go too\n",
			       f.wl_entries, f.wl_entries == 1 ? "y" : "ies",
			       f.wl_entries == 1 ? "s" : "");
	}
	return f.triplets + f.clients > 0 ? 0 : EXIT_NOTFOUND;
}

/* ---- batches of merged records (load, import-postgrey) ------------------ */

struct batch {
	db_t *db;
	size_t n;
	size_t records;		/* handed to db_merge() */
	size_t added, changed;
	struct db_item items[DB_CHUNK];
	char keys[DB_CHUNK][TRIPLET_MAX_KEY];
};

static int
batch_flush(struct batch *b)
{
	int rc = db_merge(b->db, b->items, b->n, &b->added, &b->changed);

	b->records += b->n;
	b->n = 0;
	return rc;
}

static int
batch_add(struct batch *b, enum db_table table, const char *key, size_t len,
	  const struct record *r)
{
	struct db_item *it = &b->items[b->n];

	if (len > sizeof(b->keys[0]))
		return -E2BIG;
	memcpy(b->keys[b->n], key, len);
	it->table = table;
	it->key = b->keys[b->n];
	it->key_len = len;
	it->rec = *r;
	if (++b->n == DB_CHUNK)
		return batch_flush(b);
	return 0;
}

/* ---- dump -------------------------------------------------------------------- */

/*
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
 */
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

static int
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

/* ---- load -------------------------------------------------------------------- */

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

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
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
	return batch_add(&l->b, DB_TRIPLETS, key, len, &r);
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
	return batch_add(&l->b, table, key, 1 + nparts * PRIVACY_HASH_BYTES, &r);
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
	return batch_add(&l->b, DB_CLIENTS, l->f[4].buf, l->f[4].len, &r);
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

/* Read every line; the batch is flushed whatever happens. */
static int
load_stream(struct loader *l, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0, frc;

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
	frc = batch_flush(&l->b);
	return rc != 0 ? rc : frc;
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

static void
print_merge_summary(const struct ctl *ctl, const char *verb,
		    const struct batch *b, size_t wl, const char *from)
{
	size_t same = b->records - b->added - b->changed;

	if (ctl->json) {
		printf("{\"records\":%zu,\"added\":%zu,\"merged\":%zu,"
		       "\"unchanged\":%zu,\"whitelist\":%zu", b->records,
		       b->added, b->changed, same, wl);
		return;	/* the caller closes the object */
	}
	printf("%s %zu records from %s: %zu added, %zu merged into existing "
	       "ones, %zu unchanged", verb, b->records, from, b->added,
	       b->changed, same);
	if (wl > 0)
		printf("; %zu live whitelist entr%s", wl, wl == 1 ? "y" : "ies");
	printf("\n");
}

static int
cmd_load(struct ctl *ctl, int argc, char **argv)
{
	const char *path = argc == 2 ? argv[1] : NULL;
	struct loader *l;
	FILE *in;
	int rc;

	if (argc > 2)
		return -1;
	in = open_input(path);
	if (in == NULL)
		return EXIT_ERROR;
	l = calloc(1, sizeof(*l));
	if (l == NULL || open_db(ctl, OPEN_CREATE) < 0) {
		free(l);
		if (in != stdin)
			fclose(in);
		return EXIT_ERROR;
	}
	l->ctl = ctl;
	l->name = path != NULL && strcmp(path, "-") != 0 ? path : "stdin";
	l->b.db = ctl->db;
	rc = load_stream(l, in);
	if (in != stdin)
		fclose(in);
	if (rc == -EINVAL)
		fprintf(stderr, "greyholdctl: stopped at line %lu; the %zu "
			"records before it were loaded\n", l->line,
			l->b.records);
	else if (rc < 0)
		db_failed("load failed", rc);
	else {
		print_merge_summary(ctl, "loaded", &l->b, l->wl, l->name);
		if (ctl->json)
			printf("}\n");
	}
	free(l);
	return rc < 0 ? EXIT_ERROR : 0;
}

/* ---- import-postgrey ------------------------------------------------------- */

/*
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
 * postgrey writes through a transactional environment: what it did last
 * may be only in its log files (always, if it was killed).  So the files
 * are copied to a private directory, recovered there with db_recover, and
 * dumped to text files there, all before this process gives up root; the
 * directory is removed and the open text files read afterwards.  postgrey's
 * own files are only read.
 */
#define PG_MAX_LINE 4096

struct pg_import {
	struct ctl *ctl;
	int64_t delay;		/* postgrey's, to tell passed triplets */
	size_t pending, passed, clients;
	size_t expired, hashed, unreadable;
	struct batch b;
};

/* db_dump's text of each database; unlinked, read after the switch. */
struct pg_source {
	FILE *triplets;
	FILE *clients;		/* NULL when postgrey kept none */
};

/*
 * Run a Berkeley DB tool (Debian names it both "db_NAME" and
 * "db5.3_NAME") and wait for it.  Returns 0, or -1 after saying why.
 */
static int
run_db_tool(const char *name, const char *const args[])
{
	char cmd[32], alt[32];
	char *argv[8];
	pid_t pid;
	int status = 0, i;

	snprintf(cmd, sizeof(cmd), "db_%s", name);
	snprintf(alt, sizeof(alt), "db5.3_%s", name);
	argv[0] = cmd;
	for (i = 0; i < 6 && args[i] != NULL; i++)
		argv[i + 1] = (char *)args[i];	/* exec's classic signature */
	argv[i + 1] = NULL;
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "greyholdctl: cannot run %s: %s\n", cmd,
			strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execvp(cmd, argv);
		argv[0] = alt;
		execvp(alt, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		fprintf(stderr, "greyholdctl: %s not found: install Berkeley DB's "
			"utilities (Debian: apt-get install db-util)\n", cmd);
	else
		fprintf(stderr, "greyholdctl: %s failed\n", cmd);
	return -1;
}

/* Copy a file into dir; 0, -ENOENT when there is none, or -1 (said why). */
static int
copy_into(const char *dir, const char *from_dir, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX], buf[65536];
	ssize_t n = 0;
	int in, out, rc = 0;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 && errno == ENOENT)
		return -ENOENT;
	out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				 0600);
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0 && rc == 0)
		rc = write(out, buf, (size_t)n) == n ? 0 : -1;
	if (in < 0 || out < 0 || n < 0 || rc < 0) {
		fprintf(stderr, "greyholdctl: cannot copy %s: %s\n", from,
			strerror(errno));
		rc = -1;
	}
	if (out >= 0 && close(out) < 0)
		rc = -1;
	if (in >= 0)
		close(in);
	return rc;
}

static bool
is_log_file(const char *name)
{
	if (strncmp(name, "log.", 4) != 0 || name[4] == '\0')
		return false;
	for (name += 4; *name != '\0'; name++) {
		if (!isdigit((unsigned char)*name))
			return false;
	}
	return true;
}

/* Copy postgrey's log files; returns how many, or -1. */
static int
copy_logs(const char *tmp, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL) {
		fprintf(stderr, "greyholdctl: cannot read %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	while (n >= 0 && (e = readdir(d)) != NULL) {
		if (is_log_file(e->d_name))
			n = copy_into(tmp, dir, e->d_name) == 0 ? n + 1 : -1;
	}
	closedir(d);
	return n;
}

/* Remove the private directory and everything in it. */
static void
remove_tmp(const char *tmp)
{
	char path[PATH_MAX];
	DIR *d = opendir(tmp);
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp,
				     e->d_name) < sizeof(path))
			unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(tmp);
}

/* db_dump one copied database into a text file there, and open it. */
static FILE *
dump_copy(const char *tmp, const char *db, const char *txt)
{
	char dbpath[PATH_MAX], txtpath[PATH_MAX];
	const char *const args[] = {"-p", "-f", txtpath, dbpath, NULL};
	FILE *f;

	snprintf(dbpath, sizeof(dbpath), "%s/%s", tmp, db);
	snprintf(txtpath, sizeof(txtpath), "%s/%s", tmp, txt);
	if (run_db_tool("dump", args) < 0)
		return NULL;
	f = fopen(txtpath, "re");
	if (f == NULL)
		fprintf(stderr, "greyholdctl: cannot read %s: %s\n", txtpath,
			strerror(errno));
	return f;
}

/* Copy, recover and dump postgrey's databases in the private dir tmp. */
static int
pg_dump_in(const char *tmp, const char *dir, struct pg_source *src)
{
	const char *const recover[] = {"-h", tmp, NULL};
	int rc = copy_into(tmp, dir, "postgrey.db");
	int clients, logs;

	if (rc == -ENOENT)
		fprintf(stderr, "greyholdctl: no postgrey.db in %s\n", dir);
	if (rc != 0)
		return -1;
	clients = copy_into(tmp, dir, "postgrey_clients.db");
	if (clients == -1)
		return -1;
	logs = copy_logs(tmp, dir);
	if (logs < 0 || (logs > 0 && run_db_tool("recover", recover) < 0))
		return -1;
	src->triplets = dump_copy(tmp, "postgrey.db", "triplets.txt");
	if (src->triplets == NULL)
		return -1;
	if (clients == 0) {
		src->clients = dump_copy(tmp, "postgrey_clients.db",
					 "clients.txt");
		if (src->clients == NULL)
			return -1;
	}
	return 0;
}

static int
pg_prepare(const char *dir, struct pg_source *src)
{
	const char *base = getenv("TMPDIR");
	char tmp[PATH_MAX];
	int rc;

	if (base == NULL || base[0] != '/')
		base = "/tmp";
	snprintf(tmp, sizeof(tmp), "%s/greyholdctl-postgrey.XXXXXX", base);
	if (mkdtemp(tmp) == NULL) {
		fprintf(stderr, "greyholdctl: cannot create a directory in %s: "
			"%s\n", base, strerror(errno));
		return -1;
	}
	rc = pg_dump_in(tmp, dir, src);
	remove_tmp(tmp);
	return rc;
}

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

static void
pg_close(struct pg_source *src)
{
	if (src->triplets != NULL)
		fclose(src->triplets);
	if (src->clients != NULL)
		fclose(src->clients);
}

static int
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

/* ---- main ----------------------------------------------------------------- */

static const struct command commands[] = {
	{"list", NULL,
	 "list [--client ADDR|NET] [--sender S] [--recipient R] "
	 "[--state STATE] [--older-than DURATION] [--limit N] [--clients]",
	 cmd_list},
	{"show", NULL, "show CLIENT SENDER RECIPIENT", cmd_show},
	{"check", NULL,
	 "check CLIENT SENDER RECIPIENT [--client-name NAME] "
	 "[--sasl-username USER]", cmd_check},
	{"delete", NULL, "delete CLIENT SENDER RECIPIENT", cmd_delete},
	{"pass", NULL, "pass CLIENT SENDER RECIPIENT | pass --client IP",
	 cmd_pass},
	{"forget", NULL, "forget ADDRESS|IP", cmd_forget},
	{"expire", NULL, "expire [--dry-run]", cmd_expire},
	{"stats", NULL, "stats", cmd_stats},
	{"dump", NULL, "dump [FILE]", cmd_dump},
	{"load", NULL, "load [FILE]", cmd_load},
	{"import-postgrey", NULL, "import-postgrey [--delay SECONDS] DIR",
	 cmd_import_postgrey},
	{"whitelist", "add",
	 "whitelist add client|recipient ENTRY [--expires DURATION] [--comment TEXT]",
	 cmd_whitelist_add},
	{"whitelist", "del", "whitelist del client|recipient ENTRY",
	 cmd_whitelist_del},
	{"whitelist", "list", "whitelist list", cmd_whitelist_list},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: greyholdctl [-c FILE] [--db DIR] [--json] COMMAND ...\n"
		"commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "See greyholdctl(8).\n");
}

static void
derive_settings(struct ctl *ctl, const struct config *cfg)
{
	ctl->cfg = cfg;
	ctl->max_size = cfg->db_max_size;
	ctl->topts.by_host = cfg->lookup_by_host;
	ctl->topts.ipv4_prefix = cfg->ipv4_cidr;
	ctl->topts.ipv6_prefix = cfg->ipv6_cidr;
	ctl->params.delay = cfg->delay;
	ctl->params.retry_window = cfg->retry_window;
	ctl->params.max_age = cfg->max_age;
	ctl->params.awl_passes = cfg->auto_whitelist_clients;
	ctl->now = (int64_t)time(NULL);
}

static int
run_command(struct ctl *ctl, int argc, char **argv)
{
	size_t i;
	int rc;

	for (i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
		int skip = c->sub != NULL ? 2 : 1;

		if (strcmp(argv[0], c->name) != 0)
			continue;
		if (c->sub != NULL && (argc < 2 || strcmp(argv[1], c->sub) != 0))
			continue;
		rc = c->run(ctl, argc - skip + 1, argv + skip - 1);
		if (rc < 0) {
			fprintf(stderr, "usage: greyholdctl %s\n", c->usage);
			rc = EXIT_ERROR;
		}
		return rc;
	}
	fprintf(stderr, "greyholdctl: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return EXIT_ERROR;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"db", required_argument, NULL, 'D'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct ctl ctl;
	const char *config_path = CONFIG_DEFAULT_PATH;
	bool config_given = false;
	const char *dbdir = NULL;
	struct config *cfg;
	char err[1024];
	int ch, rc;

	memset(&ctl, 0, sizeof(ctl));
	/* '+': options after the command word belong to the command. */
	while ((ch = getopt_long(argc, argv, "+c:D:jhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			config_given = true;
			break;
		case 'D':
			dbdir = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("greyholdctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_ERROR;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_ERROR;
	}
	if (config_load(&cfg, config_path, !config_given, NULL, 0, err,
			sizeof(err)) < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return EXIT_ERROR;
	}
	log_open("greyholdctl", false);
	derive_settings(&ctl, cfg);
	ctl.dbdir = dbdir != NULL ? dbdir : cfg->dbdir;
	ctl.dbdir_given = dbdir != NULL;
	rc = run_command(&ctl, argc, argv);
	db_close(ctl.db);
	config_free(cfg);
	return rc;
}
