/*
 * cmd_triplet - show, delete and pass: one triplet, or one client network
 * of the auto-whitelist, named as Postfix would send it.
 *
 * The key is built as the daemon builds it (keys.c), so any address of the
 * client's network, any +extension of the sender and any case name the
 * same record; a client "name:ORG" or "spf:ORG" names that identity's
 * record (identity.h).  pass changes a record in one short write transaction
 * (db_record_update()): a triplet becomes passed, a client network gets
 * auto_whitelist_clients counted passes.
 */
#include "cmd_triplet.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "record_view.h"

int
cmd_show(struct ctl *ctl, int argc, char **argv)
{
	struct keyed kd;
	struct record r, c;
	bool found, cfound;

	if (argc != 4)
		return -1;
	if (open_db(ctl, OPEN_READ) < 0 ||
	    build_key(ctl, &kd, argv[1], argv[2], argv[3]) != 0)
		return EXIT_ERROR;
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

int
cmd_delete(struct ctl *ctl, int argc, char **argv)
{
	struct keyed kd;
	int rc;

	if (argc != 4)
		return -1;
	if (open_db(ctl, OPEN_WRITE) < 0 ||
	    build_key(ctl, &kd, argv[1], argv[2], argv[3]) != 0)
		return EXIT_ERROR;
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

	if (open_db(ctl, OPEN_WRITE) < 0 ||
	    build_key(ctl, &kd, argv[0], argv[1], argv[2]) != 0)
		return EXIT_ERROR;
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

int
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
