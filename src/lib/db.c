/*
 * db - LMDB environment, batch decisions, expiry, map growth.
 *
 * Contract with LMDB (lmdb.h): one MDB_env per process; MDB_NOTLS because
 * transactions are not tied to the thread that opened the env; the map
 * size is changed only while this process has no transaction open (this
 * handle is used by one thread, so "between transactions" suffices); a
 * transaction whose put failed is aborted, never committed; MDB_val data
 * is copied before its transaction ends.
 */
#include "db.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "le.h"
#include "log.h"

struct db {
	MDB_env *env;
	MDB_dbi triplets;
	MDB_dbi clients;
	MDB_dbi meta;
	MDB_dbi whitelist;
	uint64_t max_size;
	uint64_t map_size;

	/*
	 * The read snapshot another thread (the daemon's loop) decides from
	 * with db_peek().  LMDB forbids changing the map size while any
	 * transaction of the process is open, so the snapshot holds
	 * resize_lock for reading and map changes take it for writing.
	 */
	pthread_rwlock_t resize_lock;
	MDB_txn *snapshot;
	bool snapshot_open;

	/* Expiry sweep position: which database, and the next key. */
	int sweep_db;
	size_t sweep_key_len;
	char sweep_key[512];
};

/* The one place LMDB's codes become errnos. */
static int
db_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_MAP_RESIZED:
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_TXN_FULL:
	case MDB_BAD_VALSIZE:
		return -E2BIG;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return -EBADMSG;
	case MDB_DBS_FULL:
		return -EMFILE;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static uint64_t
usec_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - start->tv_sec) * 1000000u +
	       (uint64_t)((now.tv_nsec - start->tv_nsec) / 1000);
}

static int
open_dbis(db_t *db, bool readonly, char *err, size_t errsz)
{
	unsigned flags = readonly ? 0 : MDB_CREATE;
	MDB_txn *txn;
	static char schema_key[] = "schema";
	MDB_val k = {6, schema_key};
	MDB_val v;
	uint8_t version[4] = {DB_SCHEMA_VERSION, 0, 0, 0};
	int rc;

	rc = mdb_txn_begin(db->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", flags, &db->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "triplets", flags, &db->triplets)) != 0 ||
	    (rc = mdb_dbi_open(txn, "clients", flags, &db->clients)) != 0 ||
	    (rc = mdb_dbi_open(txn, "whitelist", flags, &db->whitelist)) != 0)
		goto fail_txn;

	rc = mdb_get(txn, db->meta, &k, &v);
	if (rc == MDB_NOTFOUND && !readonly) {
		v.mv_size = sizeof(version);
		v.mv_data = version;
		rc = mdb_put(txn, db->meta, &k, &v, 0);
	} else if (rc == 0) {
		const uint8_t *p = v.mv_data;
		unsigned found = v.mv_size == 4 ? p[0] | p[1] << 8 | p[2] << 16 |
						  (unsigned)p[3] << 24 : 0;
		if (found != DB_SCHEMA_VERSION) {
			mdb_txn_abort(txn);
			snprintf(err, errsz,
				 "database schema version %u is not the version "
				 "this greyhold knows (%u): use a matching greyhold "
				 "or restore a dump", found, DB_SCHEMA_VERSION);
			return -EPROTO;
		}
	}
	if (rc != 0)
		goto fail_txn;
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto fail;
	return 0;

fail_txn:
	mdb_txn_abort(txn);
fail:
	snprintf(err, errsz, "cannot open databases in the environment: %s "
		 "(a damaged data.mdb: restore it from a backup, or move it away "
		 "to start with an empty database)", mdb_strerror(rc));
	return db_errno(rc);
}

/*
 * A data.mdb shorter than the pages its meta page says are in use was
 * truncated (a full disk during a copy, a bad restore): LMDB would map
 * past its end and the process would die of SIGBUS on first access.
 */
static int
check_file_size(db_t *db, const char *dir, const MDB_envinfo *info, char *err,
		size_t errsz)
{
	char path[4096];
	struct stat st;
	MDB_stat ms;
	uint64_t need;

	if (mdb_env_stat(db->env, &ms) != 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >= sizeof(path) ||
	    stat(path, &st) < 0)
		return 0;
	need = ((uint64_t)info->me_last_pgno + 1) * ms.ms_psize;
	if ((uint64_t)st.st_size >= need)
		return 0;
	snprintf(err, errsz, "%s is truncated (%lld bytes, %llu in use): restore "
		 "it from a backup, or move it away to start with an empty "
		 "database", path, (long long)st.st_size,
		 (unsigned long long)need);
	return -EBADMSG;
}

int
db_open(db_t **out, const struct db_options *opts, char *err, size_t errsz)
{
	db_t *db;
	MDB_envinfo info;
	unsigned flags = MDB_NOTLS;
	int dead = 0;
	int rc;

	*out = NULL;
	if (mkdir(opts->dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errsz, "cannot create database directory %s: %s",
			 opts->dir, strerror(errno));
		return rc;
	}
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	db->max_size = opts->max_size;
	pthread_rwlock_init(&db->resize_lock, NULL);
	if (opts->relaxed)
		flags |= MDB_NOSYNC;
	if (opts->readonly)
		flags |= MDB_RDONLY;

	rc = mdb_env_create(&db->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(db->env, 8);
	if (rc == 0)
		rc = mdb_env_set_mapsize(db->env, opts->max_size < DB_INITIAL_MAP ?
					 opts->max_size : DB_INITIAL_MAP);
	if (rc == 0)
		rc = mdb_env_open(db->env, opts->dir, flags, 0600);
	if (rc != 0) {
		snprintf(err, errsz, "cannot open LMDB environment in %s: %s",
			 opts->dir, mdb_strerror(rc));
		goto fail;
	}
	/* Reader slots left by a killed process would pin old pages. */
	if (mdb_reader_check(db->env, &dead) == 0 && dead > 0)
		log_msg(LOG_LEVEL_WARN, "cleared %d stale LMDB reader slot(s) in %s",
			dead, opts->dir);
	mdb_env_info(db->env, &info);
	db->map_size = info.me_mapsize;
	rc = check_file_size(db, opts->dir, &info, err, errsz);
	if (rc < 0) {
		mdb_env_close(db->env);
		pthread_rwlock_destroy(&db->resize_lock);
		free(db);
		return rc;
	}

	rc = open_dbis(db, opts->readonly, err, errsz);
	if (rc != 0) {
		mdb_env_close(db->env);
		free(db);
		return rc;
	}
	*out = db;
	return 0;

fail:
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db);
	return db_errno(rc);
}

void
db_close(db_t *db)
{
	if (db == NULL)
		return;
	db_snapshot_end(db);
	if (db->snapshot != NULL)
		mdb_txn_abort(db->snapshot);
	mdb_env_close(db->env);
	pthread_rwlock_destroy(&db->resize_lock);
	free(db);
}

uint64_t
db_map_size(db_t *db)
{
	return db->map_size;
}

int
db_sync(db_t *db)
{
	return db_errno(mdb_env_sync(db->env, 1));
}

/* Double the map, up to limit.  No transaction may be open. */
static int
grow_map_to(db_t *db, uint64_t limit)
{
	uint64_t next = db->map_size * 2;
	int rc;

	if (db->map_size >= limit)
		return MDB_MAP_FULL;
	if (next > limit)
		next = limit;
	pthread_rwlock_wrlock(&db->resize_lock);
	rc = mdb_env_set_mapsize(db->env, next);
	pthread_rwlock_unlock(&db->resize_lock);
	if (rc != 0)
		return rc;
	db->map_size = next;
	log_msg(LOG_LEVEL_INFO, "database map grown to %llu MiB (cap %llu MiB)",
		(unsigned long long)(next >> 20),
		(unsigned long long)(db->max_size >> 20));
	return 0;
}

static int
grow_map(db_t *db)
{
	return grow_map_to(db, db->max_size);
}

/*
 * Deleting needs free pages too (LMDB copies on write), so a map full at
 * its cap could never be emptied.  Expiry may use a small reserve above
 * the cap: a sixteenth of it, at least 1 MiB.
 */
static int
grow_map_for_deletes(db_t *db)
{
	uint64_t reserve = db->max_size / 16;

	if (reserve < (1ULL << 20))
		reserve = 1ULL << 20;
	return grow_map_to(db, db->max_size + reserve);
}

/* Another process grew the map: adopt its size. */
static void
adopt_map_size(db_t *db)
{
	MDB_envinfo info;

	pthread_rwlock_wrlock(&db->resize_lock);
	mdb_env_set_mapsize(db->env, 0);
	pthread_rwlock_unlock(&db->resize_lock);
	mdb_env_info(db->env, &info);
	db->map_size = info.me_mapsize;
}

/*
 * Read and decode one record into *out and set *found.  A corrupt or
 * unknown-version value is deleted and logged, and reads as absent.
 * Returns an LMDB code.
 */
static int
read_record(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len,
	    struct record *out, bool *found, bool *wrote, const char *what)
{
	MDB_val k = {key_len, (void *)key};
	MDB_val v;
	char shown[128];
	int rc = mdb_get(txn, dbi, &k, &v);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (record_decode(out, v.mv_data, v.mv_size) == 0) {
		*found = true;
		return 0;
	}
	log_msg(LOG_LEVEL_WARN, "deleting corrupt %s record (%zu bytes) for %s",
		what, v.mv_size, log_escape(shown, sizeof(shown), key, key_len, 80));
	*wrote = true;	/* the deletion must be committed */
	return mdb_del(txn, dbi, &k, NULL);
}

static int
write_record(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len,
	     const struct record *r)
{
	uint8_t buf[RECORD_SIZE];
	MDB_val k = {key_len, (void *)key};
	MDB_val v = {sizeof(buf), buf};

	record_encode(buf, r);
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Count a pass for the job's client in the auto-whitelist. */
static int
count_client_pass(db_t *db, MDB_txn *txn, const struct store_job *job,
		  const struct record *crec, int64_t now, bool *wrote)
{
	struct record updated;

	if (!engine_client_count(crec, now, &updated))
		return 0;
	*wrote = true;
	return write_record(txn, db->clients, job->key.client, job->key.client_len,
			    &updated);
}

static int
decide_one(db_t *db, MDB_txn *txn, struct store_job *job,
	   const struct engine_params *p, bool *wrote)
{
	struct record crec, rec, updated;
	bool have_client = false, have_rec;
	bool awl = p->awl_passes > 0 && job->key.client_is_net;
	int rc;

	if (awl) {
		rc = read_record(txn, db->clients, job->key.client,
				 job->key.client_len, &crec, &have_client, wrote,
				 "client");
		if (rc != 0)
			return rc;
	}

	if (awl && engine_client_listed(have_client ? &crec : NULL, job->now, p)) {
		job->verdict.action = ENGINE_PASS;
		job->verdict.reason = ENGINE_AWL;
		job->verdict.seconds_left = 0;
		job->verdict.delay = 0;
		return count_client_pass(db, txn, job, &crec, job->now, wrote);
	}

	rc = read_record(txn, db->triplets, job->key.key, job->key.key_len, &rec,
			 &have_rec, wrote, "triplet");
	if (rc != 0)
		return rc;

	if (engine_triplet(have_rec ? &rec : NULL, job->now, p, &updated,
			   &job->verdict)) {
		rc = write_record(txn, db->triplets, job->key.key, job->key.key_len,
				  &updated);
		if (rc != 0)
			return rc;
		*wrote = true;
	}
	if (job->verdict.action == ENGINE_PASS && awl)
		return count_client_pass(db, txn, job,
					 have_client ? &crec : NULL, job->now,
					 wrote);
	return 0;
}

int
db_decide_batch(db_t *db, struct store_job **jobs, size_t n,
		const struct engine_params *p, bool *committed,
		uint64_t *commit_usec)
{
	MDB_txn *txn;
	struct timespec start;
	bool wrote;
	size_t i;
	int rc;

	*committed = false;
	*commit_usec = 0;
	for (;;) {
		wrote = false;
		rc = mdb_txn_begin(db->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			adopt_map_size(db);
			continue;
		}
		if (rc != 0)
			break;
		for (i = 0; i < n && rc == 0; i++)
			rc = decide_one(db, txn, jobs[i], p, &wrote);
		if (rc != 0 || !wrote) {
			mdb_txn_abort(txn);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &start);
			rc = mdb_txn_commit(txn);
			*commit_usec = usec_since(&start);
			*committed = rc == 0;
		}
		if (rc == MDB_MAP_FULL && grow_map(db) == 0)
			continue;	/* replay the whole batch */
		break;
	}
	rc = db_errno(rc);
	for (i = 0; i < n; i++)
		jobs[i]->err = rc;
	return rc;
}

static MDB_dbi
sweep_dbi(db_t *db)
{
	return db->sweep_db == 0 ? db->triplets : db->clients;
}

static bool
is_expired(db_t *db, const MDB_val *v, int64_t now,
	   const struct engine_params *p)
{
	struct record r;

	if (record_decode(&r, v->mv_data, v->mv_size) < 0)
		return true;	/* corrupt: nothing can use it */
	return db->sweep_db == 0 ? engine_triplet_expired(&r, now, p)
				 : engine_client_expired(&r, now, p);
}

static int expire_slice_once(db_t *db, int64_t now,
			     const struct engine_params *p, size_t budget,
			     size_t *removed, bool *wrapped);

int
db_expire_slice(db_t *db, int64_t now, const struct engine_params *p,
		size_t budget, size_t *removed, bool *wrapped)
{
	int saved_db = db->sweep_db;
	size_t saved_len = db->sweep_key_len;
	char saved_key[sizeof(db->sweep_key)];
	int rc;

	memcpy(saved_key, db->sweep_key, saved_len);
	rc = expire_slice_once(db, now, p, budget, removed, wrapped);
	if (rc == -ENOSPC && grow_map_for_deletes(db) == 0) {
		/* Same slice again, from the same place, with room to delete. */
		db->sweep_db = saved_db;
		db->sweep_key_len = saved_len;
		memcpy(db->sweep_key, saved_key, saved_len);
		rc = expire_slice_once(db, now, p, budget, removed, wrapped);
	}
	return rc;
}

static int
expire_slice_once(db_t *db, int64_t now, const struct engine_params *p,
		  size_t budget, size_t *removed, bool *wrapped)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t examined = 0;
	int rc;

	*removed = 0;
	*wrapped = false;
	rc = mdb_txn_begin(db->env, NULL, 0, &txn);
	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(db);
		rc = mdb_txn_begin(db->env, NULL, 0, &txn);
	}
	if (rc != 0)
		return db_errno(rc);
	rc = mdb_cursor_open(txn, sweep_dbi(db), &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	if (db->sweep_key_len > 0) {
		k.mv_size = db->sweep_key_len;
		k.mv_data = db->sweep_key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (rc == 0 && examined < budget) {
		examined++;
		if (is_expired(db, &v, now, p)) {
			rc = mdb_cursor_del(cur, 0);
			if (rc != 0)
				break;
			(*removed)++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == 0) {
		/* Budget used up: resume at the next unexamined key. */
		db->sweep_key_len = k.mv_size <= sizeof(db->sweep_key) ? k.mv_size : 0;
		memcpy(db->sweep_key, k.mv_data, db->sweep_key_len);
	} else if (rc == MDB_NOTFOUND) {
		db->sweep_key_len = 0;
		db->sweep_db = (db->sweep_db + 1) % 2;
		*wrapped = db->sweep_db == 0;
		rc = 0;
	}
	mdb_cursor_close(cur);
	if (rc == 0 && *removed > 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc != 0)
		*removed = 0;
	return db_errno(rc);
}

static int
get_one(db_t *db, MDB_dbi dbi, const void *key, size_t key_len,
	struct record *out)
{
	MDB_txn *txn;
	MDB_val k = {key_len, (void *)key};
	MDB_val v;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(db);
		rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	}
	if (rc != 0)
		return db_errno(rc);
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0 && record_decode(out, v.mv_data, v.mv_size) < 0)
		rc = MDB_CORRUPTED;
	mdb_txn_abort(txn);
	return db_errno(rc);
}

int
db_get_triplet(db_t *db, const char *key, size_t key_len, struct record *out)
{
	return get_one(db, db->triplets, key, key_len, out);
}

int
db_get_client(db_t *db, const char *client, struct record *out)
{
	return get_one(db, db->clients, client, strlen(client), out);
}

int
db_put_triplet(db_t *db, const char *key, size_t key_len,
	       const struct record *r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

	if (rc != 0)
		return db_errno(rc);
	rc = write_record(txn, db->triplets, key, key_len, r);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	return db_errno(mdb_txn_commit(txn));
}

/* ---- live whitelist ---------------------------------------------------- */

#define WL_VALUE_HEAD 20	/* version, 3 reserved, added, expires */
static char wl_generation_key[] = "wl_generation";

static size_t
wl_key(char *out, enum whitelist_kind kind, const char *entry)
{
	size_t n = strlen(entry);

	out[0] = kind == WHITELIST_CLIENTS ? 'c' : 'r';
	out[1] = ':';
	memcpy(out + 2, entry, n);
	return n + 2;
}

static int
bump_generation(db_t *db, MDB_txn *txn)
{
	MDB_val k = {sizeof(wl_generation_key) - 1, wl_generation_key};
	MDB_val v;
	uint8_t buf[8];
	uint64_t gen = 0;
	int rc = mdb_get(txn, db->meta, &k, &v);

	if (rc == 0 && v.mv_size == 8)
		gen = le64_get(v.mv_data);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	le64_put(buf, gen + 1);
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	return mdb_put(txn, db->meta, &k, &v, 0);
}

/* Run fn(db, txn, arg) in a write transaction, growing the map if needed. */
static int
write_txn(db_t *db, int (*fn)(db_t *, MDB_txn *, const void *), const void *arg)
{
	MDB_txn *txn;
	int rc;

	for (;;) {
		rc = mdb_txn_begin(db->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			adopt_map_size(db);
			continue;
		}
		if (rc != 0)
			return db_errno(rc);
		rc = fn(db, txn, arg);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL && grow_map(db) == 0)
			continue;
		return db_errno(rc);
	}
}

static int
wl_put_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct db_wl_entry *e = arg;
	char key[WHITELIST_MAX_ENTRY + 2];
	uint8_t val[WL_VALUE_HEAD + DB_WL_COMMENT_MAX];
	size_t clen = strnlen(e->comment, DB_WL_COMMENT_MAX);
	MDB_val k, v;
	int rc;

	k.mv_size = wl_key(key, e->kind, e->entry);
	k.mv_data = key;
	memset(val, 0, WL_VALUE_HEAD);
	val[0] = 1;
	le64_put(val + 4, (uint64_t)e->added);
	le64_put(val + 12, (uint64_t)e->expires);
	memcpy(val + WL_VALUE_HEAD, e->comment, clen);
	v.mv_size = WL_VALUE_HEAD + clen;
	v.mv_data = val;
	rc = mdb_put(txn, db->whitelist, &k, &v, 0);
	return rc != 0 ? rc : bump_generation(db, txn);
}

int
db_wl_put(db_t *db, const struct db_wl_entry *e)
{
	if (strlen(e->entry) >= WHITELIST_MAX_ENTRY)
		return -E2BIG;
	return write_txn(db, wl_put_txn, e);
}

struct wl_del_arg {
	enum whitelist_kind kind;
	const char *entry;
};

static int
wl_del_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct wl_del_arg *a = arg;
	char key[WHITELIST_MAX_ENTRY + 2];
	MDB_val k;
	int rc;

	k.mv_size = wl_key(key, a->kind, a->entry);
	k.mv_data = key;
	rc = mdb_del(txn, db->whitelist, &k, NULL);
	return rc != 0 ? rc : bump_generation(db, txn);
}

int
db_wl_del(db_t *db, enum whitelist_kind kind, const char *entry)
{
	struct wl_del_arg a = {kind, entry};

	if (strlen(entry) >= WHITELIST_MAX_ENTRY)
		return -ENOENT;
	return write_txn(db, wl_del_txn, &a);
}

static int
read_txn_begin(db_t *db, MDB_txn **txn)
{
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);

	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(db);
		rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);
	}
	return rc;
}

int
db_wl_generation(db_t *db, uint64_t *out)
{
	MDB_txn *txn;
	MDB_val k = {sizeof(wl_generation_key) - 1, wl_generation_key};
	MDB_val v;
	int rc = read_txn_begin(db, &txn);

	*out = 0;
	if (rc != 0)
		return db_errno(rc);
	rc = mdb_get(txn, db->meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		*out = le64_get(v.mv_data);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : db_errno(rc);
}

static bool
wl_decode(const MDB_val *k, const MDB_val *v, struct db_wl_entry *e)
{
	const uint8_t *p = v->mv_data;
	const char *key = k->mv_data;
	size_t clen;

	if (k->mv_size < 3 || k->mv_size - 2 >= sizeof(e->entry) ||
	    key[1] != ':' || (key[0] != 'c' && key[0] != 'r') ||
	    v->mv_size < WL_VALUE_HEAD || p[0] != 1 ||
	    v->mv_size > WL_VALUE_HEAD + DB_WL_COMMENT_MAX)
		return false;
	e->kind = key[0] == 'c' ? WHITELIST_CLIENTS : WHITELIST_RECIPIENTS;
	memcpy(e->entry, key + 2, k->mv_size - 2);
	e->entry[k->mv_size - 2] = '\0';
	e->added = (int64_t)le64_get(p + 4);
	e->expires = (int64_t)le64_get(p + 12);
	clen = v->mv_size - WL_VALUE_HEAD;
	memcpy(e->comment, p + WL_VALUE_HEAD, clen);
	e->comment[clen] = '\0';
	return true;
}

int
db_wl_foreach(db_t *db, int (*fn)(const struct db_wl_entry *, void *),
	      void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct db_wl_entry e;
	int rc = read_txn_begin(db, &txn);
	int stop = 0;

	if (rc != 0)
		return db_errno(rc);
	rc = mdb_cursor_open(txn, db->whitelist, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && stop == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!wl_decode(&k, &v, &e)) {
			log_msg(LOG_LEVEL_WARN, "skipping a malformed live whitelist "
				"record (%zu bytes)", v.mv_size);
			continue;
		}
		stop = fn(&e, arg);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return rc != 0 ? db_errno(rc) : stop;
}

/* ---- admin access (greyholdctl) ----------------------------------------- */

static MDB_dbi
table_dbi(db_t *db, enum db_table table)
{
	return table == DB_CLIENTS ? db->clients : db->triplets;
}

/* Begin a transaction, adopting a map grown by another process. */
static int
txn_begin(db_t *db, bool writable, MDB_txn **txn)
{
	unsigned flags = writable ? 0 : MDB_RDONLY;
	int rc = mdb_txn_begin(db->env, NULL, flags, txn);

	if (rc == MDB_MAP_RESIZED) {
		adopt_map_size(db);
		rc = mdb_txn_begin(db->env, NULL, flags, txn);
	}
	return rc;
}

/* Where a chunked walk resumes: after key (none yet when !started). */
struct walk_pos {
	bool started;
	size_t len;
	char key[512];
};

static void
walk_remember(struct walk_pos *pos, const MDB_val *k)
{
	pos->started = true;
	pos->len = k->mv_size < sizeof(pos->key) ? k->mv_size : sizeof(pos->key);
	memcpy(pos->key, k->mv_data, pos->len);
}

/* Position the cursor on the first key after pos. */
static int
walk_seek(MDB_cursor *cur, const struct walk_pos *pos, MDB_val *k, MDB_val *v)
{
	int rc;

	if (!pos->started)
		return mdb_cursor_get(cur, k, v, MDB_FIRST);
	k->mv_size = pos->len;
	k->mv_data = (void *)pos->key;
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc == 0 && k->mv_size == pos->len &&
	    memcmp(k->mv_data, pos->key, pos->len) == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
	return rc;
}

struct walk {
	db_t *db;
	MDB_dbi dbi;
	bool writable;
	db_walk_fn fn;
	void *arg;
	struct walk_pos pos;
	bool done;
	int err;		/* a callback's negative errno */
};

/* Hand one record to the callback; returns an LMDB code. */
static int
walk_one(struct walk *w, MDB_cursor *cur, const MDB_val *k, const MDB_val *v,
	 bool *deleted)
{
	struct record r;
	bool ok = record_decode(&r, v->mv_data, v->mv_size) == 0;
	int act = w->fn(k->mv_data, k->mv_size, ok ? &r : NULL, w->arg);

	walk_remember(&w->pos, k);
	if (act < 0) {
		w->err = act;
		w->done = true;
		return 0;
	}
	if (act == DB_WALK_STOP)
		w->done = true;
	if (act != DB_WALK_DELETE)
		return 0;
	if (!w->writable) {
		w->err = -EINVAL;
		w->done = true;
		return 0;
	}
	*deleted = true;
	return mdb_cursor_del(cur, 0);
}

static int
walk_chunk(struct walk *w)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	bool deleted = false;
	size_t n;
	int rc = txn_begin(w->db, w->writable, &txn);

	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, w->dbi, &cur);
	if (rc != 0)
		goto out;
	rc = walk_seek(cur, &w->pos, &k, &v);
	for (n = 0; rc == 0 && n < DB_CHUNK && !w->done; n++) {
		rc = walk_one(w, cur, &k, &v, &deleted);
		if (rc == 0 && !w->done)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		w->done = true;
		rc = 0;
	}
	mdb_cursor_close(cur);
out:
	if (rc == 0 && deleted)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

int
db_walk(db_t *db, enum db_table table, bool writable, db_walk_fn fn,
	void *arg)
{
	struct walk *w = calloc(1, sizeof(*w));
	int rc = 0;

	if (w == NULL)
		return -ENOMEM;
	w->db = db;
	w->dbi = table_dbi(db, table);
	w->writable = writable;
	w->fn = fn;
	w->arg = arg;
	while (!w->done && rc == 0)
		rc = walk_chunk(w);
	rc = rc != 0 ? db_errno(rc) : w->err;
	free(w);
	return rc;
}

int
db_record_get(db_t *db, enum db_table table, const char *key, size_t key_len,
	      struct record *out)
{
	return get_one(db, table_dbi(db, table), key, key_len, out);
}

struct del_arg {
	MDB_dbi dbi;
	MDB_val key;
};

static int
record_del_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct del_arg *a = arg;
	MDB_val k = a->key;

	(void)db;
	return mdb_del(txn, a->dbi, &k, NULL);
}

int
db_record_del(db_t *db, enum db_table table, const char *key, size_t key_len)
{
	struct del_arg a = {table_dbi(db, table), {key_len, (void *)key}};

	return write_txn(db, record_del_txn, &a);
}

struct update_arg {
	MDB_dbi dbi;
	const char *key;
	size_t key_len;
	bool (*fn)(const struct record *cur, struct record *out, void *arg);
	void *arg;
};

static int
record_update_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct update_arg *a = arg;
	struct record cur, next;
	MDB_val k = {a->key_len, (void *)a->key};
	MDB_val v;
	bool have;
	int rc = mdb_get(txn, a->dbi, &k, &v);

	(void)db;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	have = rc == 0 && record_decode(&cur, v.mv_data, v.mv_size) == 0;
	if (!a->fn(have ? &cur : NULL, &next, a->arg))
		return 0;
	return write_record(txn, a->dbi, a->key, a->key_len, &next);
}

int
db_record_update(db_t *db, enum db_table table, const char *key,
		 size_t key_len,
		 bool (*fn)(const struct record *cur, struct record *out,
			    void *arg),
		 void *arg)
{
	struct update_arg a = {table_dbi(db, table), key, key_len, fn, arg};

	return write_txn(db, record_update_txn, &a);
}

struct merge_arg {
	const struct db_item *items;
	size_t n;
	size_t added;
	size_t changed;
};

static void
merge_into(struct record *cur, const struct record *in)
{
	if (in->first_seen < cur->first_seen)
		cur->first_seen = in->first_seen;
	if (in->last_seen > cur->last_seen)
		cur->last_seen = in->last_seen;
	if (in->passes > cur->passes)
		cur->passes = in->passes;
}

/* Merge one item; returns an LMDB code. */
static int
merge_one(db_t *db, MDB_txn *txn, const struct db_item *it,
	  struct merge_arg *a)
{
	MDB_dbi dbi = table_dbi(db, it->table);
	MDB_val k = {it->key_len, (void *)it->key};
	MDB_val v;
	struct record cur, next;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND ||
	    (rc == 0 && record_decode(&cur, v.mv_data, v.mv_size) < 0)) {
		a->added++;
		return write_record(txn, dbi, it->key, it->key_len, &it->rec);
	}
	if (rc != 0)
		return rc;
	next = cur;
	merge_into(&next, &it->rec);
	if (memcmp(&next, &cur, sizeof(cur)) == 0)
		return 0;
	a->changed++;
	return write_record(txn, dbi, it->key, it->key_len, &next);
}

static int
merge_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	struct merge_arg *a = (struct merge_arg *)arg;
	size_t i;
	int rc = 0;

	/* A replay after map growth starts the counts again. */
	a->added = 0;
	a->changed = 0;
	for (i = 0; i < a->n && rc == 0; i++)
		rc = merge_one(db, txn, &a->items[i], a);
	return rc;
}

int
db_merge(db_t *db, const struct db_item *items, size_t n, size_t *added,
	 size_t *changed)
{
	struct merge_arg a = {items, n, 0, 0};
	int rc;

	if (n == 0)
		return 0;
	rc = write_txn(db, merge_txn, &a);
	if (rc == 0) {
		*added += a.added;
		*changed += a.changed;
	}
	return rc;
}

static int
stat_entries(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
	MDB_stat st;
	int rc = mdb_stat(txn, dbi, &st);

	if (rc == 0)
		*out = st.ms_entries;
	return rc;
}

static void
stat_env(db_t *db, struct db_stats *out)
{
	MDB_envinfo info;
	MDB_stat st;
	const char *dir = NULL;
	char path[4096];
	struct stat fst;

	/* The size the environment records (its writers' map), not ours. */
	adopt_map_size(db);
	mdb_env_info(db->env, &info);
	mdb_env_stat(db->env, &st);
	out->page_size = st.ms_psize;
	out->map_size = info.me_mapsize;
	out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	out->max_size = db->max_size;
	out->readers = info.me_numreaders;
	out->max_readers = info.me_maxreaders;
	out->file_size = 0;
	if (mdb_env_get_path(db->env, &dir) == 0 && dir != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) <
	    sizeof(path) && stat(path, &fst) == 0)
		out->file_size = (uint64_t)fst.st_size;
}

int
db_stats(db_t *db, struct db_stats *out)
{
	MDB_txn *txn;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = txn_begin(db, false, &txn);
	if (rc != 0)
		return db_errno(rc);
	rc = stat_entries(txn, db->triplets, &out->triplets);
	if (rc == 0)
		rc = stat_entries(txn, db->clients, &out->clients);
	if (rc == 0)
		rc = stat_entries(txn, db->whitelist, &out->whitelist);
	mdb_txn_abort(txn);
	if (rc == 0)
		stat_env(db, out);
	return db_errno(rc);
}

struct expire_count {
	enum db_table table;
	int64_t now;
	const struct engine_params *p;
	size_t n;
};

static int
count_expired(const char *key, size_t key_len, const struct record *r,
	      void *arg)
{
	struct expire_count *c = arg;
	bool expired;

	(void)key;
	(void)key_len;
	if (r == NULL)
		expired = true;	/* the sweep removes what cannot be decoded */
	else if (c->table == DB_TRIPLETS)
		expired = engine_triplet_expired(r, c->now, c->p);
	else
		expired = engine_client_expired(r, c->now, c->p);
	if (expired)
		c->n++;
	return DB_WALK_KEEP;
}

static int
expire_dry_run(db_t *db, int64_t now, const struct engine_params *p,
	       struct db_expire_counts *out)
{
	struct expire_count t = {DB_TRIPLETS, now, p, 0};
	struct expire_count c = {DB_CLIENTS, now, p, 0};
	int rc = db_walk(db, DB_TRIPLETS, false, count_expired, &t);

	if (rc == 0)
		rc = db_walk(db, DB_CLIENTS, false, count_expired, &c);
	out->triplets = t.n;
	out->clients = c.n;
	return rc;
}

int
db_expire_all(db_t *db, int64_t now, const struct engine_params *p,
	      bool dry_run, struct db_expire_counts *out)
{
	bool wrapped = false;
	size_t removed;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (dry_run)
		return expire_dry_run(db, now, p, out);
	/* A whole pass from the start, whatever earlier slices did. */
	db->sweep_db = 0;
	db->sweep_key_len = 0;
	while (!wrapped && rc == 0) {
		bool clients = db->sweep_db != 0;

		rc = db_expire_slice(db, now, p, DB_CHUNK, &removed, &wrapped);
		if (clients)
			out->clients += removed;
		else
			out->triplets += removed;
	}
	return rc;
}

/* ---- deciding from the committed state (another thread) -------------- */

static int
snapshot_begin(db_t *db)
{
	int rc;

	if (db->snapshot_open)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_rwlock_rdlock(&db->resize_lock);
		if (db->snapshot == NULL)
			rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &db->snapshot);
		else
			rc = mdb_txn_renew(db->snapshot);
		if (rc == 0) {
			db->snapshot_open = true;
			return 0;
		}
		pthread_rwlock_unlock(&db->resize_lock);
		if (rc != MDB_MAP_RESIZED)
			break;
		/* Another process grew the map: adopt it, then try again. */
		adopt_map_size(db);
	}
	return rc;
}

void
db_snapshot_end(db_t *db)
{
	if (!db->snapshot_open)
		return;
	mdb_txn_reset(db->snapshot);
	db->snapshot_open = false;
	pthread_rwlock_unlock(&db->resize_lock);
}

/* Read a record from the snapshot; corrupt ones count as "cannot decide". */
static int
peek_record(db_t *db, MDB_dbi dbi, const void *key, size_t key_len,
	    struct record *out, bool *found)
{
	MDB_val k = {key_len, (void *)key};
	MDB_val v;
	int rc = mdb_get(db->snapshot, dbi, &k, &v);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (record_decode(out, v.mv_data, v.mv_size) < 0)
		return MDB_CORRUPTED;
	*found = true;
	return 0;
}

bool
db_peek(db_t *db, struct store_job *job, const struct engine_params *p)
{
	struct record crec, rec, updated;
	bool have_client = false, have_rec;
	bool awl = p->awl_passes > 0 && job->key.client_is_net;

	if (snapshot_begin(db) != 0)
		return false;
	if (awl) {
		if (peek_record(db, db->clients, job->key.client,
				job->key.client_len, &crec, &have_client) != 0)
			return false;
		if (engine_client_listed(have_client ? &crec : NULL, job->now, p)) {
			if (engine_client_count(&crec, job->now, &updated))
				return false;	/* the count is due: the store writes */
			job->verdict.action = ENGINE_PASS;
			job->verdict.reason = ENGINE_AWL;
			job->verdict.seconds_left = 0;
			job->verdict.delay = 0;
			job->err = 0;
			return true;
		}
	}
	if (peek_record(db, db->triplets, job->key.key, job->key.key_len, &rec,
			&have_rec) != 0)
		return false;
	if (engine_triplet(have_rec ? &rec : NULL, job->now, p, &updated,
			   &job->verdict))
		return false;
	if (job->verdict.action == ENGINE_PASS && awl &&
	    engine_client_count(have_client ? &crec : NULL, job->now, &updated))
		return false;
	job->err = 0;
	return true;
}
