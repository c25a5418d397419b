/*
 * redis_admin - greyholdctl's blocking access to a Redis store.
 *
 * For a config whose store is redis://HOST[:PORT][/DB],
 * unix:///PATH[?db=N] or sentinel://HOSTS/MASTER[?db=N] (the sentinels
 * asked for the primary, with redis_sentinel_user/_password): connect
 * (AUTH with redis_user and redis_password when a password is set, then
 * SELECT DB) and manage the live whitelist
 * that every greyhold daemon on that Redis reads.  The keys, each after
 * redis_prefix (default "greyhold:"):
 *
 *   whitelist      hash: "c:ENTRY" (client) or "r:ENTRY" (recipient) ->
 *                  "ADDED,EXPIRES,COMMENT" (redis_codec.h)
 *   wl_generation  integer, incremented with every change, in the same
 *                  atomic step (a server-side script)
 *
 * The daemons poll wl_generation once a second and reload the list when
 * it moved or an entry expired.  Entries are the same as for the LMDB live
 * whitelist (db.h's struct db_wl_entry), so a command can use either store
 * with the same code: redis_admin_wl_put/del/foreach mirror db_wl_put/
 * del/foreach.
 *
 * Every call waits at most REDIS_ADMIN_TIMEOUT_MS for Redis.  Errors are
 * negative errnos; redis_admin_error() then says what Redis or the network
 * said (e.g. "WRONGPASS invalid username-password pair").
 *
 * Ownership: the handle owns its connection; redis_admin_close() frees
 * both.  Entries handed to a foreach callback live only during the call.
 */
#ifndef GREYHOLD_REDIS_ADMIN_H
#define GREYHOLD_REDIS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db_wl.h"
#include "whitelist.h"

#define REDIS_ADMIN_TIMEOUT_MS 5000

typedef struct redis_admin redis_admin_t;

/* Whether cfg->store names Redis (anything but "lmdb"). */
bool redis_admin_wanted(const struct config *cfg);

/*
 * Connect to cfg->store, authenticate and select the database.  On error
 * returns a negative errno with a one-line reason in err (no credentials
 * in it) and *out NULL.
 */
int redis_admin_open(redis_admin_t **out, const struct config *cfg,
		     char *err, size_t errsz);

/* Disconnect and free; NULL is fine. */
void redis_admin_close(redis_admin_t *ra);

/* What the last failing call ran into ("" if nothing failed). */
const char *redis_admin_error(const redis_admin_t *ra);

/*
 * Add or replace an entry and bump the generation, atomically.  Validate
 * the entry with whitelist_add() first, as for db_wl_put().  -E2BIG if the
 * entry is WHITELIST_MAX_ENTRY bytes or longer; a comment longer than
 * DB_WL_COMMENT_MAX is cut.
 */
int redis_admin_wl_put(redis_admin_t *ra, const struct db_wl_entry *e);

/*
 * Remove an entry: 0, or -ENOENT when there was none.  The generation
 * moves (atomically with the removal) only when something was removed.
 */
int redis_admin_wl_del(redis_admin_t *ra, enum whitelist_kind kind,
		       const char *entry);

/* The current generation (0 when none was ever written). */
int redis_admin_wl_generation(redis_admin_t *ra, uint64_t *out);

/*
 * Call fn for every entry (expired ones too: the caller decides how to
 * show them), sorted clients first, then by entry.  Stops at fn's nonzero
 * result and returns it; malformed entries are skipped with a warning.
 */
int redis_admin_wl_foreach(redis_admin_t *ra,
			   int (*fn)(const struct db_wl_entry *, void *),
			   void *arg);

#endif
