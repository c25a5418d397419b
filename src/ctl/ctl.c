/*
 * ctl - what every greyholdctl command shares: the settings taken from
 * the daemon's config, and the database opened as the daemon would.
 *
 * Works directly on the LMDB environment (LMDB allows a second process;
 * writers take turns on LMDB's write lock, and the daemon never holds it
 * across an answer, so its answers do not wait on us beyond one commit).
 * Reading commands open the database read-only and never create it;
 * changing commands need an existing database; load and import-postgrey
 * create one.  As root, open_db() first becomes the owner of the database
 * directory, so that files LMDB creates stay usable by the daemon; files
 * named on the command line are opened before, with the invoking user's
 * rights.  With privacy = yes the daemon's secret key is loaded here too,
 * found where the daemon finds it.
 *
 * A configured Redis store is refused here unless --db names an LMDB
 * database: only the live whitelist is managed in Redis (live_wl.c).
 *
 * Ownership: open_db() sets ctl->db and open_ident() ctl->ident once per
 * run; main closes both.  Every function here says what went wrong on
 * stderr itself; callers only turn the failure into EXIT_ERROR.
 */
#include "ctl.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

int
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
			"an LMDB database only (name one with --db); with a "
			"Redis store only 'whitelist add', 'whitelist del', "
			"'whitelist list' and 'stats' work\n", ctl->cfg->store);
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

int
open_ident(struct ctl *ctl)
{
	const char *file = ctl->cfg->psl_file;
	char err[512];

	if (ctl->ident != NULL)
		return 0;
	if (ident_open(&ctl->ident, file[0] != '\0' ? file : NULL, err,
		       sizeof(err)) < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		ctl->ident = NULL;
		return -1;
	}
	return 0;
}

/* Report a database error; returns EXIT_ERROR. */
int
db_failed(const char *what, int rc)
{
	fprintf(stderr, "greyholdctl: %s: %s\n", what, strerror(-rc));
	return EXIT_ERROR;
}

/* Look a record up; *found false when absent.  Returns 0 or EXIT_ERROR. */
int
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

void
derive_settings(struct ctl *ctl, const struct config *cfg)
{
	ctl->cfg = cfg;
	ctl->max_size = cfg->db_max_size;
	config_triplet_opts(cfg, &ctl->topts);
	config_engine_params(cfg, &ctl->params);
	ctl->now = (int64_t)time(NULL);
}
