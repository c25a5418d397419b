/*
 * greyholdctl - administer greyhold's database while the daemon runs.
 *
 * This file: the global options, the command table and dispatch.  Each
 * command family is a cmd_*.c file and parses its own arguments; a
 * command returns an exit code, or -1 for a usage error (the table's
 * usage line is printed).  What commands share: ctl.c (settings from the
 * config, opening the database as its owner), keys.c (keys built as the
 * daemon builds them), output.c and record_view.c (tables and JSON),
 * args.c (argument parsing), batch.c (merging DB_CHUNK records at a time),
 * live_wl.c (the live whitelist in LMDB or Redis).
 *
 * Works directly on the LMDB environment (LMDB allows a second process;
 * writers take turns on LMDB's write lock, and the daemon never holds it
 * across an answer, so its answers do not wait on us beyond one commit).
 * Every command that changes many records does it in transactions of at
 * most DB_CHUNK records (db_walk(), db_merge()), so the daemon's store
 * thread gets the lock back within milliseconds.  With a Redis store only
 * the live whitelist commands work (on Redis); the others refuse.
 *
 * Exit codes: 0 success; 1 the thing asked about is not there (or, for
 * check, the request would be deferred); 2 usage or database error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd_check.h"
#include "cmd_dump.h"
#include "cmd_forget.h"
#include "cmd_import_postgrey.h"
#include "cmd_list.h"
#include "cmd_load.h"
#include "cmd_report.h"
#include "cmd_stats.h"
#include "cmd_triplet.h"
#include "cmd_whitelist.h"
#include "ctl.h"
#include "live_wl.h"
#include "log.h"

struct command {
	const char *name;
	const char *sub;	/* second word, or NULL */
	const char *usage;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
	{"list", NULL,
	 "list [--client ADDR|NET] [--sender S] [--recipient R] "
	 "[--state STATE] [--older-than DURATION] [--limit N] [--clients]",
	 cmd_list},
	{"show", NULL, "show CLIENT SENDER RECIPIENT", cmd_show},
	{"check", NULL,
	 "check CLIENT SENDER RECIPIENT [--client-name NAME] [--helo NAME] "
	 "[--sasl-username USER] [--no-dns]", cmd_check},
	{"delete", NULL, "delete CLIENT SENDER RECIPIENT", cmd_delete},
	{"pass", NULL, "pass CLIENT SENDER RECIPIENT | pass --client IP",
	 cmd_pass},
	{"forget", NULL, "forget ADDRESS|IP", cmd_forget},
	{"expire", NULL, "expire [--dry-run]", cmd_expire},
	{"stats", NULL, "stats", cmd_stats},
	{"report", NULL, "report [--json] [--top N] [FILE...]", cmd_report},
	{"dump", NULL, "dump [FILE]", cmd_dump},
	{"load", NULL, "load [--memory MIB] [FILE]", cmd_load},
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

	fprintf(out, "usage: greyholdctl [-c FILE] [-o KEY=VALUE] [--db DIR] "
		"[--json] COMMAND ...\n"
		"commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "See greyholdctl(8).\n");
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

/* Settings given with -o at most. */
#define MAX_OVERRIDES 32

/* "-o key=value": split in place, the key checked against the table. */
static int
add_override(struct config_override *ov, size_t *nov, char *arg)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL) {
		fprintf(stderr, "greyholdctl: -o expects KEY=VALUE, got '%s'\n",
			arg);
		return -1;
	}
	*eq = '\0';
	if (!config_key_exists(arg)) {
		fprintf(stderr, "greyholdctl: -o %s: unknown key (see "
			"greyhold.conf(5))\n", arg);
		return -1;
	}
	if (*nov >= MAX_OVERRIDES) {
		fprintf(stderr, "greyholdctl: too many -o settings\n");
		return -1;
	}
	ov[*nov].key = arg;
	ov[*nov].value = eq + 1;
	(*nov)++;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"db", required_argument, NULL, 'D'},
		{"json", no_argument, NULL, 'j'},
		{"set", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct ctl ctl;
	struct config_override ov[MAX_OVERRIDES];
	size_t nov = 0;
	const char *config_path = CONFIG_DEFAULT_PATH;
	bool config_given = false;
	const char *dbdir = NULL;
	struct config *cfg;
	char err[1024];
	int ch, rc;

	memset(&ctl, 0, sizeof(ctl));
	/* '+': options after the command word belong to the command. */
	while ((ch = getopt_long(argc, argv, "+c:D:jo:hV", opts, NULL)) != -1) {
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
		case 'o':
			if (add_override(ov, &nov, optarg) < 0)
				return EXIT_ERROR;
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
	if (config_load(&cfg, config_path, !config_given, ov, nov, err,
			sizeof(err)) < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return EXIT_ERROR;
	}
	log_open("greyholdctl", false);
	derive_settings(&ctl, cfg);
	ctl.dbdir = dbdir != NULL ? dbdir : cfg->dbdir;
	ctl.dbdir_given = dbdir != NULL;
	rc = run_command(&ctl, argc, argv);
	live_wl_close(&ctl);
	ident_close(ctl.ident);
	db_close(ctl.db);
	config_free(cfg);
	return rc;
}
