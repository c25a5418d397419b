/*
 * cmd_whitelist - whitelist add|del|list: the live whitelist, entries an
 * administrator adds at run time beside the whitelist files.
 *
 * An entry is validated by whitelist_add(), exactly as the daemon will
 * check it when it loads the list, before anything is written.  The list
 * is kept where the daemons read it (live_wl.c): the LMDB database, or a
 * configured Redis store, and every daemon applies a change within about
 * a second.  Expired entries stay until deleted; the daemon ignores them.
 */
#include "cmd_whitelist.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "live_wl.h"
#include "output.h"
#include "whitelist.h"

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

int
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
	if (live_wl_open(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	rc = live_wl_put(ctl, &e);
	if (rc < 0)
		return live_wl_failed(ctl, "cannot add entry", rc);
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

int
cmd_whitelist_del(struct ctl *ctl, int argc, char **argv)
{
	enum whitelist_kind kind;
	int rc;

	if (argc != 3)
		return -1;
	if (parse_kind(argv[1], &kind) < 0)
		return EXIT_ERROR;
	if (live_wl_open(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	rc = live_wl_del(ctl, kind, argv[2]);
	if (rc < 0 && rc != -ENOENT)
		return live_wl_failed(ctl, "cannot delete entry", rc);
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

int
cmd_whitelist_list(struct ctl *ctl, int argc, char **argv)
{
	struct list_state st = {ctl, 0, (int64_t)time(NULL)};
	int rc;

	if (argc != 1)
		return -1;
	if (live_wl_open(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	if (ctl->json)
		printf("[");
	rc = live_wl_foreach(ctl, print_wl_entry, &st);
	if (ctl->json)
		printf("]\n");
	else if (st.n == 0)
		printf("no live whitelist entries\n");
	if (rc < 0)
		return live_wl_failed(ctl, "cannot list entries", rc);
	return 0;
}
