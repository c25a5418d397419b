/*
 * ctl - the state every greyholdctl command shares, and opening the
 * database as the daemon would (see ctl.c).
 *
 * A command is int cmd_NAME(struct ctl *ctl, int argc, char **argv), with
 * argv[0] its last command word; it returns 0, EXIT_NOTFOUND or
 * EXIT_ERROR (after saying why on stderr), or -1 for a usage error, on
 * which main prints the command's usage line and exits with EXIT_ERROR.
 */
#ifndef GREYHOLD_CTL_H
#define GREYHOLD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db_admin.h"
#include "db_expire.h"
#include "db_wl.h"
#include "engine.h"
#include "ident.h"
#include "privacy.h"
#include "record.h"
#include "triplet.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR 2

struct redis_admin;

struct ctl {
	const char *dbdir;
	bool dbdir_given;	/* --db: whatever the configured store */
	uint64_t max_size;
	bool json;
	db_t *db;
	struct redis_admin *redis;	/* the live whitelist's Redis (live_wl) */
	const struct config *cfg;
	struct triplet_opts topts;
	struct engine_params params;
	int64_t now;
	bool privacy_on;		/* keys are keyed hashes (privacy = yes) */
	struct privacy privacy;
	ident_t *ident;			/* the Public Suffix List (open_ident()) */
};

enum open_mode {
	OPEN_READ,	/* read-only; the database must exist */
	OPEN_WRITE,	/* the database must exist */
	OPEN_CREATE,	/* created when missing (load, import) */
};

/* Take the network sizes and greylisting parameters from cfg; now. */
void derive_settings(struct ctl *ctl, const struct config *cfg);

/*
 * Open ctl->dbdir as its owner (as root), and the privacy key when the
 * config has privacy = yes.  0, or -1 after saying why on stderr.
 */
int open_db(struct ctl *ctl, enum open_mode mode);

/*
 * Load the Public Suffix List as the daemon does (psl_file), once per run,
 * for the keys of name and SPF identities.  0, or -1 after saying why.
 */
int open_ident(struct ctl *ctl);

/* Report a database error; returns EXIT_ERROR. */
int db_failed(const char *what, int rc);

/* Look a record up; *found false when absent.  Returns 0 or EXIT_ERROR. */
int lookup(struct ctl *ctl, enum db_table t, const char *key, size_t len,
	   struct record *r, bool *found);

#endif
