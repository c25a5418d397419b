/*
 * db - the LMDB environment: open and close, schema check, map growth,
 * the error mapping, and the record helpers the other db_*.c files share.
 *
 * Contract with LMDB (lmdb.h): one MDB_env per process; MDB_NOTLS, because
 * the daemon's loop thread keeps a read transaction (db_peek.c) while the
 * store thread runs its own, and a read transaction must not claim a
 * thread-local reader slot that the other thread's would share; the map
 * size is changed only by the thread that owns the handle, with no
 * transaction of the process open (see db_int.h); a transaction whose put
 * failed is aborted, never committed; MDB_val data is copied before its
 * transaction ends.  The admin functions live in db_admin.c, batches in
 * db_batch.c, the loop thread's snapshot in db_peek.c, expiry in
 * db_expire.c and the live whitelist in db_wl.c.
 */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "db_int.h"
#include "db_peek.h"
#include "log.h"

/* The one place LMDB's codes become errnos. */
int
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

uint64_t
db_usec_since(const struct timespec *start)
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
	static const char schema_key[] = "schema";
	MDB_val k = {6, (void *)schema_key};	/* LMDB only reads keys */
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
		pthread_rwlock_destroy(&db->resize_lock);
		free(db);
		return rc;
	}
	*out = db;
	return 0;

fail:
	if (db->env != NULL)
		mdb_env_close(db->env);
	pthread_rwlock_destroy(&db->resize_lock);
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

int
db_grow_map(db_t *db)
{
	return grow_map_to(db, db->max_size);
}

/*
 * Deleting needs free pages too (LMDB copies on write), so a map full at
 * its cap could never be emptied.  Expiry may use a small reserve above
 * the cap: a sixteenth of it, at least 1 MiB.
 */
int
db_grow_map_for_deletes(db_t *db)
{
	uint64_t reserve = db->max_size / 16;

	if (reserve < (1ULL << 20))
		reserve = 1ULL << 20;
	return grow_map_to(db, db->max_size + reserve);
}

int
db_adopt_map_size(db_t *db)
{
	MDB_envinfo info;
	int rc;

	pthread_rwlock_wrlock(&db->resize_lock);
	rc = mdb_env_set_mapsize(db->env, 0);
	pthread_rwlock_unlock(&db->resize_lock);
	if (rc != 0) {
		log_msg(LOG_LEVEL_ERR, "cannot adopt the database map size another "
			"process set: %s", mdb_strerror(rc));
		return rc;
	}
	mdb_env_info(db->env, &info);
	db->map_size = info.me_mapsize;
	return 0;
}

/*
 * Adopt the size another process set, with room above it as our own
 * growth would leave (twice, up to the cap).  A process that grows the
 * map in small steps may commit again between our adopting and our next
 * transaction; adopting only its exact size, we can lose that race at
 * each of its steps, and a batch that loses it 16 times in a row fails.
 * With room, one adoption of ours covers many of its steps.  At or past
 * the cap only its size is adopted: our own writes must not go beyond
 * the cap.
 */
static int
adopt_map_size_with_room(db_t *db)
{
	int rc = db_adopt_map_size(db);

	if (rc != 0 || db->map_size >= db->max_size)
		return rc;
	return grow_map_to(db, db->max_size);
}

int
db_txn_begin(db_t *db, bool writable, MDB_txn **txn)
{
	unsigned flags = writable ? 0 : MDB_RDONLY;
	int rc = mdb_txn_begin(db->env, NULL, flags, txn);

	/*
	 * Past our cap the other process may still outgrow each size we
	 * adopt before our next try: a few rounds, not one.
	 */
	for (int tries = 0; rc == MDB_MAP_RESIZED && tries < 16; tries++) {
		rc = adopt_map_size_with_room(db);
		if (rc == 0)
			rc = mdb_txn_begin(db->env, NULL, flags, txn);
	}
	return rc;
}

int
db_write_txn(db_t *db, int (*fn)(db_t *, MDB_txn *, const void *),
	     const void *arg)
{
	MDB_txn *txn;
	int rc;

	for (;;) {
		rc = db_txn_begin(db, true, &txn);
		if (rc != 0)
			return db_errno(rc);
		rc = fn(db, txn, arg);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL && db_grow_map(db) == 0)
			continue;
		return db_errno(rc);
	}
}

MDB_dbi
db_table_dbi(db_t *db, enum db_table table)
{
	return table == DB_CLIENTS ? db->clients : db->triplets;
}

int
db_read_record(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len,
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

int
db_write_record(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len,
		const struct record *r)
{
	uint8_t buf[RECORD_SIZE];
	MDB_val k = {key_len, (void *)key};
	MDB_val v = {sizeof(buf), buf};

	record_encode(buf, r);
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Count a pass for the job's client in the auto-whitelist. */

int
db_get_one(db_t *db, MDB_dbi dbi, const void *key, size_t key_len,
	   struct record *out)
{
	MDB_txn *txn;
	MDB_val k = {key_len, (void *)key};
	MDB_val v;
	int rc = db_txn_begin(db, false, &txn);

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
	return db_get_one(db, db->triplets, key, key_len, out);
}

int
db_get_client(db_t *db, const char *client, struct record *out)
{
	return db_get_one(db, db->clients, client, strlen(client), out);
}

int
db_put_triplet(db_t *db, const char *key, size_t key_len,
	       const struct record *r)
{
	MDB_txn *txn;
	int rc = db_txn_begin(db, true, &txn);

	if (rc != 0)
		return db_errno(rc);
	rc = db_write_record(txn, db->triplets, key, key_len, r);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	return db_errno(mdb_txn_commit(txn));
}
