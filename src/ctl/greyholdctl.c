/*
 * greyholdctl - administer greyhold's database while the daemon runs.
 *
 * Works directly on the LMDB environment (LMDB allows a second process;
 * writers take turns on LMDB's write lock, and the daemon never holds it
 * across an answer, so its answers do not wait on us beyond one commit).
 * Commands are found in one table; each parses its own arguments.
 *
 * Exit codes: 0 success; 1 the thing asked about is not there (or, for
 * check, the request would be deferred); 2 usage or database error.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "whitelist.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2

struct ctl {
	const char *dbdir;
	uint64_t max_size;
	bool json;
	db_t *db;
};

struct command {
	const char *name;
	const char *sub;	/* second word, or NULL */
	const char *usage;
	int (*run)(struct ctl *ctl, int argc, char **argv);
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

static int
open_db(struct ctl *ctl)
{
	struct db_options o = {
		.dir = ctl->dbdir,
		.max_size = ctl->max_size,
	};
	char err[512];
	int rc;

	if (become_db_owner(ctl->dbdir) < 0)
		return -1;
	rc = db_open(&ctl->db, &o, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return -1;
	}
	return 0;
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

/* JSON string body: escapes quotes, backslashes and control bytes. */
static void
json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

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
	if (open_db(ctl) < 0)
		return EXIT_ERROR;
	rc = db_wl_put(ctl->db, &e);
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: cannot add entry: %s\n", strerror(-rc));
		return EXIT_ERROR;
	}
	printf("added %s whitelist entry %s\n", argv[optind], e.entry);
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
	if (open_db(ctl) < 0)
		return EXIT_ERROR;
	rc = db_wl_del(ctl->db, kind, argv[2]);
	if (rc == -ENOENT) {
		fprintf(stderr, "greyholdctl: no %s whitelist entry %s\n", argv[1],
			argv[2]);
		return EXIT_NOTFOUND;
	}
	if (rc < 0) {
		fprintf(stderr, "greyholdctl: cannot delete entry: %s\n",
			strerror(-rc));
		return EXIT_ERROR;
	}
	printf("deleted %s whitelist entry %s\n", argv[1], argv[2]);
	return 0;
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
	if (open_db(ctl) < 0)
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

/* ---- main ----------------------------------------------------------------- */

static const struct command commands[] = {
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

	fprintf(out, "usage: greyholdctl [-c FILE | --db DIR] [--json] COMMAND ...\n"
		"commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "See greyholdctl(8).\n");
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
	struct ctl ctl = {0};
	const char *config_path = CONFIG_DEFAULT_PATH;
	bool config_given = false;
	const char *dbdir = NULL;
	struct config *cfg;
	char err[1024];
	int ch, rc = -1;
	size_t i;

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
	ctl.dbdir = dbdir != NULL ? dbdir : cfg->dbdir;
	ctl.max_size = cfg->db_max_size;

	for (i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];
		int skip = c->sub != NULL ? 2 : 1;

		if (strcmp(argv[0], c->name) != 0)
			continue;
		if (c->sub != NULL && (argc < 2 || strcmp(argv[1], c->sub) != 0))
			continue;
		rc = c->run(&ctl, argc - skip + 1, argv + skip - 1);
		if (rc < 0) {
			fprintf(stderr, "usage: greyholdctl %s\n", c->usage);
			rc = EXIT_ERROR;
		}
		break;
	}
	if (i == NCOMMANDS) {
		fprintf(stderr, "greyholdctl: unknown command '%s'\n", argv[0]);
		usage(stderr);
		rc = EXIT_ERROR;
	}
	db_close(ctl.db);
	config_free(cfg);
	return rc;
}
